"""The servers under many connections at once: all served, nothing leaked, a prompt stop."""

from __future__ import annotations

import contextlib
import os
import resource
import select
import socket
import threading
from collections.abc import Iterator

import pytest

import sockharness.server as ss
from sockharness import start_server
from sockharness.handlers import LineEchoHandler

SIMULTANEOUS = 512


@pytest.fixture
def descriptors_for() -> Iterator[None]:
    """Room for both ends of every connection in this one process."""
    needed = 2 * SIMULTANEOUS + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        yield
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"needs {needed} descriptors, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _connect_all(address: tuple[str, int], count: int) -> list[socket.socket]:
    clients = []
    try:
        for _ in range(count):
            clients.append(socket.create_connection(address, timeout=20))
    except BaseException:
        for client in clients:
            client.close()
        raise
    return clients


def _read_line(client: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = client.recv(256)
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.usefixtures("descriptors_for")
def test_a_threading_server_serves_512_connections_at_once() -> None:
    # Every handler waits at a barrier until all 512 are running at the same time:
    # the test passes only if the server holds 512 live connections and threads.
    together = threading.Barrier(SIMULTANEOUS, timeout=30)

    class Together(LineEchoHandler):
        def handle(self) -> None:
            together.wait()
            super().handle()

    with start_server(Together, "tcp", leaks="fail", request_queue_size=SIMULTANEOUS) as server:
        clients = _connect_all(server.address, SIMULTANEOUS)
        try:
            for index, client in enumerate(clients):
                client.sendall(b"client %d\n" % index)
            replies = [_read_line(client) for client in clients]
        finally:
            for client in clients:
                client.close()
        assert replies == [b"client %d\n" % index for index in range(SIMULTANEOUS)]
        stats = server.wait_stats(lambda s: s.connections_done >= SIMULTANEOUS, timeout=30)
        assert stats.connections == SIMULTANEOUS
        server.stop(timeout=10)  # ServerStopTimeout if not; LeakError if anything is left.
    assert server.leak_report() is None
    assert not together.broken


def test_a_forking_server_at_its_max_children_serves_everyone_in_turn() -> None:
    # 64 clients hold their connections open; the server may run only 8 children at
    # once, so 8 are answered, and each client that leaves lets one more in.
    limit, total = 8, 64

    class PidEcho(ss.StreamRequestHandler):
        def handle(self) -> None:
            line = self.rfile.readline()
            self.wfile.write(b"%d %s" % (os.getpid(), line))
            self.rfile.read()  # Hold the child until the client leaves.

    with start_server(
        PidEcho,
        "tcp",
        concurrency="forking",
        leaks="fail",
        max_children=limit,
        request_queue_size=total,  # At the limit the server accepts no more: they wait here.
    ) as server:
        clients = _connect_all(server.address, total)
        try:
            served = _serve_in_turn(clients, limit)
        finally:
            for client in clients:
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_WR)  # EOF despite the children's copies.
                client.close()
        server.stop(timeout=10)
    assert server.leak_report() is None
    pids = {int(reply.split()[0]) for reply in served.values()}
    assert len(pids) == total, "each connection had a child of its own"
    assert all(reply.split(b" ", 1)[1] == b"client %d\n" % index for index, reply in served.items())
    assert isinstance(server.server, ss.ForkingMixIn)


def _serve_in_turn(clients: list[socket.socket], limit: int) -> dict[int, bytes]:
    """Send on every client, read replies as they come, let the earliest served go each time."""
    served: dict[int, bytes] = {}
    for index, client in enumerate(clients):
        client.sendall(b"client %d\n" % index)
    gone: set[int] = set()
    while len(served) < len(clients):
        waiting = [client for i, client in enumerate(clients) if i not in served]
        ready, _, _ = select.select(waiting, [], [], 20)
        assert ready, f"no reply for 20 s with {len(served)} of {len(clients)} served"
        for client in ready:
            served[clients.index(client)] = _read_line(client)
        live = len(served) - len(gone)
        assert live <= limit, f"{live} children serving at once, over max_children={limit}"
        earliest = min(set(served) - gone)
        # The end of the connection itself (the child holds a copy of every socket).
        clients[earliest].shutdown(socket.SHUT_WR)
        gone.add(earliest)
    return served
