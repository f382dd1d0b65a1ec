"""Every server type x sync/threading/forking over real loopback and Unix sockets."""

from __future__ import annotations

import os
import threading

import pytest

import sockharness.server as ss
from tests.helpers import (
    CONCURRENCIES,
    HAS_FORK,
    KINDS,
    WAIT,
    Client,
    address_for,
    is_stream,
    open_fds,
    server_class,
    serving,
)

MATRIX = [
    pytest.param(
        kind,
        concurrency,
        id=f"{kind}-{concurrency}",
        marks=pytest.mark.skipif(
            concurrency == "forking" and not HAS_FORK, reason="no os.fork() here"
        ),
    )
    for kind in KINDS
    for concurrency in CONCURRENCIES
]


class UpperStream(ss.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline().upper())


class UpperDatagram(ss.DatagramRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.read().upper())


def handler_for(kind: str) -> type:
    return UpperStream if is_stream(kind) else UpperDatagram


@pytest.mark.parametrize(("kind", "concurrency"), MATRIX)
def test_round_trips_and_releases_everything(kind: str, concurrency: str, sock_dir: str) -> None:
    fds_before = open_fds()
    threads_before = set(threading.enumerate())
    server = server_class(kind, concurrency)(address_for(kind, sock_dir), handler_for(kind))
    assert server.server_address == server.socket.getsockname()
    with serving(server, poll_interval=0.05):
        for n in range(5):
            with Client(kind, server.server_address, sock_dir) as client:
                message = f"message {n} to {kind}-{concurrency}\n".encode()
                assert client.request(message) == message.upper()
    assert server.socket.fileno() == -1
    if concurrency == "forking":
        assert not server.active_children
    if kind.startswith("unix"):
        assert not os.path.exists(server.server_address)
    # Every descriptor and thread the server made is gone once it is closed.
    assert open_fds() <= fds_before
    leftover = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    for thread in leftover:
        thread.join(WAIT)
    assert not [t for t in leftover if t.is_alive()]


@pytest.mark.parametrize(("kind", "concurrency"), [p for p in MATRIX if "sync" not in p.id])
def test_concurrent_clients_are_all_served(kind: str, concurrency: str, sock_dir: str) -> None:
    server = server_class(kind, concurrency)(address_for(kind, sock_dir), handler_for(kind))
    replies: dict[int, bytes] = {}
    errors: list[BaseException] = []

    def one_client(n: int) -> None:
        try:
            with Client(kind, server.server_address, sock_dir) as client:
                replies[n] = client.request(f"client {n}\n".encode())
        except BaseException as exc:  # Reported by the assertion below.
            errors.append(exc)

    with serving(server, poll_interval=0.05):
        clients = [threading.Thread(target=one_client, args=(n,)) for n in range(8)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(WAIT)
    assert errors == []
    assert replies == {n: f"CLIENT {n}\n".encode() for n in range(8)}


@pytest.mark.parametrize(("kind", "concurrency"), MATRIX)
def test_handle_request_serves_exactly_one(kind: str, concurrency: str, sock_dir: str) -> None:
    with server_class(kind, concurrency)(address_for(kind, sock_dir), handler_for(kind)) as server:
        server.timeout = WAIT
        result: list[bytes] = []
        with Client(kind, server.server_address, sock_dir) as client:
            if is_stream(kind):
                requester = threading.Thread(target=lambda: result.append(client.request(b"x\n")))
                requester.start()
                server.handle_request()
                requester.join(WAIT)
            else:
                client.sock.sendto(b"x\n", server.server_address)
                server.handle_request()
                result.append(client.sock.recv(100))
        assert result == [b"X\n"]
