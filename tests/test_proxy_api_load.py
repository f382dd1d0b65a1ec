"""The proxy API under traffic: toxic changes while 256 connections stream lose no byte, keep
half-closes, and every API call answers (Toxiproxy's hangs here: #412, #558)."""

from __future__ import annotations

import hashlib
import resource
import selectors
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from sockharness import RunningServer, start_server
from sockharness.control import ProxyAPI, ProxyAPIServer
from sockharness.handlers import EchoHandler

CONNECTIONS = 256
#: Bytes each connection sends (and must get back, in order).
PER_CONNECTION = 48 * 1024
CHUNK = 4096
#: The bound on the whole exchange: a liveness verdict, not a speed figure.
DEADLINE = 120.0


@pytest.fixture
def descriptors() -> Iterator[None]:
    """Room for 4 descriptors per connection (client, proxy's two, server's)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = CONNECTIONS * 4 + 256
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"the descriptor limit is {hard}, under the {needed} this test needs")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _payload(index: int) -> bytes:
    seed = hashlib.sha256(b"%d" % index).digest()
    return (seed * (PER_CONNECTION // len(seed) + 1))[:PER_CONNECTION]


class _Stream:
    """One client connection: sends its payload, half-closes, reads the echo to EOF."""

    def __init__(self, index: int, address: tuple[str, int]) -> None:
        self.payload = _payload(index)
        self.sent = 0
        self.received = hashlib.sha256()
        self.count = 0
        self.eof = False
        self.sock = socket.create_connection(address, timeout=10)
        self.sock.setblocking(False)

    def step(self, readable: bool, writable: bool) -> None:
        if writable and self.sent < len(self.payload):
            try:
                self.sent += self.sock.send(self.payload[self.sent : self.sent + CHUNK])
            except BlockingIOError:
                pass
            if self.sent == len(self.payload):
                self.sock.shutdown(socket.SHUT_WR)  # The half-close the proxy must pass on.
        if readable:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            if not data:
                self.eof = True
            self.received.update(data)
            self.count += len(data)

    @property
    def intact(self) -> bool:
        return self.received.digest() == hashlib.sha256(self.payload).digest()


def _stream_all(address: tuple[str, int]) -> list[_Stream]:
    streams = [_Stream(index, address) for index in range(CONNECTIONS)]
    deadline = time.monotonic() + DEADLINE
    with selectors.DefaultSelector() as selector:
        for stream in streams:
            selector.register(stream.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, stream)
        open_streams = len(streams)
        while open_streams and time.monotonic() < deadline:
            for key, events in selector.select(1.0):
                stream = key.data
                stream.step(
                    bool(events & selectors.EVENT_READ), bool(events & selectors.EVENT_WRITE)
                )
                if stream.sent == len(stream.payload) and key.events & selectors.EVENT_WRITE:
                    selector.modify(stream.sock, selectors.EVENT_READ, stream)
                if stream.eof:
                    selector.unregister(stream.sock)
                    open_streams -= 1
    for stream in streams:
        stream.sock.close()
    return streams


def _churn(api: ProxyAPI, name: str, stop: threading.Event, seen: list[float]) -> None:
    """Add, update and remove toxics as fast as the API answers, until ``stop``."""
    proxy = api.proxy(name)
    changes = 0
    while not stop.is_set() and changes < 2000:
        for action in (
            lambda: proxy.add_toxic("latency", latency=1, jitter=1),
            lambda: proxy.add_toxic("slicer", average_size=512, size_variation=256, delay=10),
            lambda: proxy.update_toxic("latency_downstream", latency=2),
            lambda: proxy.add_toxic("latency", name="up", stream="upstream", latency=1),
            lambda: proxy.remove_toxic("slicer_downstream"),
            lambda: proxy.remove_toxic("latency_downstream"),
            lambda: proxy.remove_toxic("up"),
        ):
            began = time.monotonic()
            action()
            seen.append(time.monotonic() - began)
            changes += 1


@pytest.mark.usefixtures("descriptors")
def test_toxic_changes_while_256_connections_stream_lose_no_byte() -> None:
    server: RunningServer
    with (
        start_server(EchoHandler, daemon_threads=True, request_queue_size=512) as server,
        ProxyAPIServer() as api_server,
    ):
        api = ProxyAPI(api_server.url, timeout=30)
        proxy = api.create("stream", server.address)
        stop = threading.Event()
        calls: list[float] = []
        churn = threading.Thread(target=_churn, args=(api, "stream", stop, calls), daemon=True)
        churn.start()
        try:
            streams = _stream_all(proxy.address)
        finally:
            stop.set()
            churn.join(60)
        assert not churn.is_alive(), "an API call did not return"
        unfinished = [index for index, stream in enumerate(streams) if not stream.eof]
        assert not unfinished, f"{len(unfinished)} streams did not end by {DEADLINE:g} s"
        broken = [index for index, stream in enumerate(streams) if not stream.intact]
        assert not broken, (
            f"{len(broken)} streams lost or changed bytes; the first, {broken[0]}, got "
            f"{streams[broken[0]].count} of {PER_CONNECTION}"
        )
        assert len(calls) >= 7  # The API was changing toxics while the bytes flowed.
        metrics = api.metrics()
        assert f'sockharness_proxy_connections_total{{proxy="stream"}} {CONNECTIONS}' in metrics
        total = CONNECTIONS * PER_CONNECTION
        assert f'direction="upstream"}} {total}' in metrics
        assert f'direction="downstream"}} {total}' in metrics
