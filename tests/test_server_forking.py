"""ForkingMixIn: no zombies, at most max_children, only our own children reaped."""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import pytest

import sockharness.server as ss
from tests.helpers import HAS_FORK, WAIT, child_is_zombie_or_gone, serving, wait_for

pytestmark = pytest.mark.skipif(not HAS_FORK, reason="no os.fork() here")


class WaitForWord(ss.StreamRequestHandler):
    """Blocks until the client sends a line, answers it, and exits the child."""

    def handle(self) -> None:
        self.wfile.write(b"got " + self.rfile.readline())


def ask(client: socket.socket, line: bytes) -> bytes:
    client.sendall(line)
    client.shutdown(socket.SHUT_WR)  # A forked child holds copies: only SHUT_WR is EOF.
    chunks = []
    while chunk := client.recv(100):
        chunks.append(chunk)
    return b"".join(chunks)


class Observed(ss.ForkingTCPServer):
    """Records how many children were alive right after each fork."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.alive_after_fork: list[int] = []
        self.forked: list[int] = []

    def process_request(self, request: Any, client_address: Any) -> None:
        super().process_request(request, client_address)
        # Only the parent gets here; the child exits inside process_request.
        assert self.active_children is not None
        self.alive_after_fork.append(len(self.active_children))
        self.forked.extend(pid for pid in self.active_children if pid not in self.forked)


def test_children_are_reaped_and_no_zombie_is_left() -> None:
    server = Observed(("127.0.0.1", 0), WaitForWord)
    with serving(server, poll_interval=0.01):
        for n in range(5):
            with socket.create_connection(server.server_address, timeout=WAIT) as client:
                assert ask(client, b"%d\n" % n) == b"got %d\n" % n
        wait_for(lambda: not server.active_children, what="children to be reaped")
    assert len(server.forked) == 5
    for pid in server.forked:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # Already reaped by the server.


@pytest.mark.parametrize("loop", ["handle_request", "serve_forever"])
def test_never_more_than_max_children(loop: str) -> None:
    server = Observed(("127.0.0.1", 0), WaitForWord)
    server.max_children = 2
    clients = [socket.create_connection(server.server_address, timeout=WAIT) for _ in range(5)]
    try:
        if loop == "handle_request":
            driver = threading.Thread(target=lambda: [server.handle_request() for _ in clients])
            driver.start()
        else:
            driver = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
            driver.start()
        for n, client in enumerate(clients):
            assert ask(client, b"%d\n" % n) == b"got %d\n" % n
        if loop == "serve_forever":
            server.shutdown()
        driver.join(WAIT)
        assert not driver.is_alive()
    finally:
        for client in clients:
            client.close()
        server.server_close()
    assert len(server.alive_after_fork) == 5
    assert max(server.alive_after_fork) <= 2
    assert not server.active_children


def test_a_child_someone_else_started_is_never_reaped_by_the_server() -> None:
    foreign = os.fork()
    if foreign == 0:
        os._exit(72)
    try:
        wait_for(lambda: child_is_zombie_or_gone(foreign), what="the foreign child to exit")
        server = Observed(("127.0.0.1", 0), WaitForWord)
        server.max_children = 1  # Exercise the path that waits for "any" child.
        with serving(server, poll_interval=0.01):
            for n in range(3):
                with socket.create_connection(server.server_address, timeout=WAIT) as client:
                    assert ask(client, b"%d\n" % n) == b"got %d\n" % n
            wait_for(lambda: not server.active_children, what="children to be reaped")
    finally:
        pid, status = os.waitpid(foreign, 0)
    assert pid == foreign
    assert os.waitstatus_to_exitcode(status) == 72


def test_server_close_waits_for_children_with_block_on_close() -> None:
    server = Observed(("127.0.0.1", 0), WaitForWord)
    with socket.create_connection(server.server_address, timeout=WAIT) as client:
        server.handle_request()
        closed = threading.Event()
        closer = threading.Thread(target=lambda: (server.server_close(), closed.set()))
        closer.start()
        assert not closed.wait(0.2)  # The child is still waiting for its line.
        assert ask(client, b"bye\n") == b"got bye\n"
        assert closed.wait(WAIT)
        closer.join(WAIT)
    assert not server.active_children
    with pytest.raises(ChildProcessError):
        os.waitpid(server.forked[0], os.WNOHANG)


def test_server_close_without_block_on_close_does_not_wait() -> None:
    server = Observed(("127.0.0.1", 0), WaitForWord)
    server.block_on_close = False
    with socket.create_connection(server.server_address, timeout=WAIT) as client:
        server.handle_request()
        server.server_close()  # Returns while the child still waits for its line.
        [child] = server.forked
        assert not child_is_zombie_or_gone(child)
        assert ask(client, b"late\n") == b"got late\n"
    _pid, status = os.waitpid(child, 0)  # Ours to reap now.
    assert os.waitstatus_to_exitcode(status) == 0


def test_handler_errors_are_reported_in_the_child_and_the_request_closed(
    tmp_path: Any,
) -> None:
    report = tmp_path / "report"

    class Broken(ss.BaseRequestHandler):
        def handle(self) -> None:
            raise ValueError("in the child")

    class Reporting(ss.ForkingTCPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            with open(report, "a") as f:
                f.write(f"handle_error in {os.getpid()}\n")

    with (
        Reporting(("127.0.0.1", 0), Broken) as server,
        socket.create_connection(server.server_address, timeout=WAIT) as client,
    ):
        server.handle_request()
        client.shutdown(socket.SHUT_WR)
        assert client.recv(10) == b""
        [child] = server.active_children or [None]
    assert report.read_text() == f"handle_error in {child}\n"


def test_forking_datagram_server_replies_from_the_child() -> None:
    class Upper(ss.DatagramRequestHandler):
        def handle(self) -> None:
            self.wfile.write(self.rfile.read().upper() + b" from %d" % os.getpid())

    with (
        ss.ForkingUDPServer(("127.0.0.1", 0), Upper) as server,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client,
    ):
        client.settimeout(WAIT)
        client.sendto(b"hello", server.server_address)
        server.handle_request()
        reply = client.recv(100)
        [child] = server.active_children or [None]
    assert reply == b"HELLO from %d" % child
