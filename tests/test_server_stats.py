"""A running server's counters of bytes each way: every kind, concurrency, TLS, faults, forks."""

from __future__ import annotations

import socketserver
import ssl
from typing import Any

import pytest
import trustme

from sockharness import ReceiveTimeout, connect, start_server
from sockharness.faults import Latency, Slicer
from sockharness.handlers import EchoHandler, LineEchoHandler

REQUEST = b"hello\n"


def _exchange(server: Any, count: int = 2) -> None:
    for _ in range(count):
        with server.connect() as client:
            assert client.request(REQUEST) == REQUEST


@pytest.mark.parametrize("kind", ["tcp", "unix"])
@pytest.mark.parametrize("concurrency", ["sync", "threading", "forking"])
def test_a_server_counts_the_bytes_of_its_connections(
    make_server: Any, kind: str, concurrency: str
) -> None:
    server = make_server(LineEchoHandler, kind, concurrency=concurrency)
    _exchange(server)
    stats = server.wait_stats(lambda s: s.connections_done == 2)
    assert (stats.connections, stats.bytes_received, stats.bytes_sent) == (2, 12, 12)
    assert (stats.datagrams, stats.datagram_bytes_received, stats.datagram_bytes_sent) == (0, 0, 0)


def test_a_live_connection_counts_as_it_goes_and_once_when_done(make_server: Any) -> None:
    server = make_server(LineEchoHandler, "tcp", concurrency="threading")
    with server.connect() as client:
        assert client.request(REQUEST) == REQUEST
        live = server.wait_stats(lambda s: s.bytes_sent >= len(REQUEST))
        assert (live.connections_done, live.bytes_received, live.bytes_sent) == (0, 6, 6)
        assert client.request(b"again\n") == b"again\n"
    server.stop()
    stats = server.stats
    assert (stats.connections_done, stats.bytes_received, stats.bytes_sent) == (1, 12, 12)


def test_tls_counts_the_applications_bytes(make_server: Any) -> None:
    server = make_server(LineEchoHandler, "tcp", tls=True)
    _exchange(server, 1)
    stats = server.wait_stats(lambda s: s.bytes_sent >= len(REQUEST))
    # The handshake's and the records' own bytes are not the application's.
    assert (stats.bytes_received, stats.bytes_sent) == (6, 6)


def test_tls_with_a_plain_context_of_the_users_own_is_counted_too() -> None:
    ca = trustme.CA()
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client_context)
    server = start_server(LineEchoHandler, "tcp", tls=server_context, client_tls=client_context)
    try:
        _exchange(server, 1)
        stats = server.wait_stats(lambda s: s.bytes_sent >= len(REQUEST))
        assert (stats.bytes_received, stats.bytes_sent) == (6, 6)
    finally:
        server.stop()


@pytest.mark.parametrize("concurrency", ["sync", "forking"])
def test_faulty_connections_count_what_crossed_the_socket(
    make_server: Any, concurrency: str
) -> None:
    server = make_server(
        LineEchoHandler,
        "tcp",
        concurrency=concurrency,
        faults=[Slicer(average_size=2, delay=0), Latency(0.001, direction="upstream")],
    )
    _exchange(server)
    stats = server.wait_stats(lambda s: s.bytes_sent >= 2 * len(REQUEST))
    assert (stats.bytes_received, stats.bytes_sent) == (12, 12)


@pytest.mark.parametrize("concurrency", ["sync", "forking"])
def test_a_datagram_server_counts_its_replies(make_server: Any, concurrency: str) -> None:
    server = make_server(EchoHandler, "udp", concurrency=concurrency)
    with server.connect() as client:
        for payload in (b"one", b"three"):
            assert client.request(payload) == payload
    stats = server.wait_stats(lambda s: s.datagram_bytes_sent >= 8)
    assert (stats.datagrams, stats.datagram_bytes_received, stats.datagram_bytes_sent) == (2, 8, 8)
    assert (stats.bytes_received, stats.bytes_sent) == (0, 0)


class _Silent(socketserver.BaseRequestHandler):
    """Reads the request and answers nothing: a server whose counters must say so."""

    def handle(self) -> None:
        self.request.recv(100)


def test_a_server_that_sends_nothing_is_counted_as_sending_nothing(make_server: Any) -> None:
    server = make_server(_Silent, "tcp")
    with connect(server.address, "tcp", timeout=5) as client:
        client.send(REQUEST)
        assert client.recv_all() == b""
    stats = server.wait_stats(lambda s: s.bytes_received >= len(REQUEST))
    assert stats.bytes_sent == 0
    with pytest.raises(ReceiveTimeout, match=r"did not get there within 0.2 s: .*bytes_sent=0"):
        server.wait_stats(lambda s: s.bytes_sent > 0, timeout=0.2)
