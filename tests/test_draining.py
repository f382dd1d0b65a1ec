"""Before a reset, what was sent reaches the peer: waiting on the kernel's send queue."""

from __future__ import annotations

import socket
import time

from sockharness._core import wait_until_sent


def _pair() -> tuple[socket.socket, socket.socket, socket.socket]:
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    return listener, client, accepted


def test_a_sent_queue_that_drains_is_waited_for() -> None:
    listener, client, accepted = _pair()
    with listener, client, accepted:
        client.sendall(b"x" * 10_000)
        assert wait_until_sent(client, timeout=5)
        assert accepted.recv(10_000, socket.MSG_WAITALL) == b"x" * 10_000


def test_a_peer_that_reads_nothing_ends_the_wait_at_its_timeout() -> None:
    listener, client, accepted = _pair()
    with listener, client, accepted:
        client.setblocking(False)
        try:
            while True:  # Fill the peer's window and our send buffer (bounded by them).
                client.send(b"y" * 65536)
        except BlockingIOError:
            pass
        started = time.monotonic()
        assert not wait_until_sent(client, timeout=0.05)
        assert time.monotonic() - started < 2  # It ended: a bounded wait, not a hang.


def test_a_unix_socket_needs_no_wait() -> None:
    left, right = socket.socketpair()
    with left, right:
        left.sendall(b"z")
        assert wait_until_sent(left, timeout=0)
