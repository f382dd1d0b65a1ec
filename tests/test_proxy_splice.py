"""The fault proxy moves the bytes of a fault-free direction inside the kernel (``os.splice``)
where it can, and copies them where it cannot: the same bytes, in order, half-closes and
resets passed on, nothing left open, either way; a fault added mid-stream applies from
the next read, after what the kernel was holding."""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from collections.abc import Callable
from typing import Any

import pytest

from sockharness import RunningServer, connect
from sockharness.faults import Latency, Slicer
from sockharness.server import BaseRequestHandler

MakeServer = Callable[..., RunningServer]
SIZE = 8 << 20
PATTERN = bytes(range(251)) * 4096  # Not a power of two: a slip shows in the digest.


class Moves:
    """How the proxy under test moves bytes, and how many splices it made."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.splices = 0


@pytest.fixture(params=["splice", "copy"])
def moves(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Moves:
    state = Moves(request.param)
    if request.param == "copy":
        monkeypatch.delattr(os, "splice", raising=False)
        return state
    if not hasattr(os, "splice"):
        pytest.skip("no os.splice on this platform (Linux only): the proxy copies")
    real = os.splice

    def counted(*args: Any, **kwargs: Any) -> int:
        state.splices += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(os, "splice", counted)
    return state


class StreamEcho(BaseRequestHandler):
    """Echoes everything until the client's half-close, then closes."""

    def handle(self) -> None:
        while chunk := self.request.recv(1 << 16):
            self.request.sendall(chunk)


class HeldDigest(BaseRequestHandler):
    """Reads nothing until the test lets it, then digests everything up to the end."""

    release = threading.Event()

    def handle(self) -> None:
        if not self.release.wait(20):
            return
        digest = hashlib.sha256()
        total = 0
        while chunk := self.request.recv(1 << 16):
            digest.update(chunk)
            total += len(chunk)
        self.request.sendall(b"%d %s\n" % (total, digest.hexdigest().encode()))


def _payload(size: int) -> bytes:
    return (PATTERN * (size // len(PATTERN) + 1))[:size]


def _send_in_background(client: Any, data: bytes) -> threading.Thread:
    def send() -> None:
        client.send(data)
        client.shutdown_write()

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    return sender


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def _settled(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if condition():
            return True
        deadline.wait(0.01)
    return condition()


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_bytes_both_ways_arrive_whole_and_in_order(
    make_server: MakeServer, proxies: Any, moves: Moves, kind: str
) -> None:
    proxy = proxies(make_server(StreamEcho, kind).address, kind)
    data = _payload(SIZE)
    with connect(proxy.address, kind, timeout=20) as client:
        sender = _send_in_background(client, data)
        echoed = client.recv_all()  # Ends when the server closes after our half-close.
        sender.join(20)
    assert not sender.is_alive()
    assert len(echoed) == SIZE
    assert hashlib.sha256(echoed).digest() == hashlib.sha256(data).digest()
    assert _settled(lambda: proxy.stats.downstream_bytes == SIZE)
    assert proxy.stats.upstream_bytes == SIZE
    if moves.mode == "splice":
        assert moves.splices > 0
    else:
        assert not hasattr(os, "splice")


def test_a_fault_added_mid_stream_comes_after_what_the_kernel_held(
    make_server: MakeServer, proxies: Any, moves: Moves
) -> None:
    HeldDigest.release.clear()
    proxy = proxies(make_server(HeldDigest).address, "tcp")
    data = _payload(32 << 20)  # More than every buffer on the way holds.
    with connect(proxy.address, timeout=30) as client:
        sender = _send_in_background(client, data)
        # The server reads nothing yet: the bytes pile up in the buffers on the way.
        assert _settled(lambda: proxy.stats.upstream_bytes > 0)
        proxy.add(Slicer(average_size=1000, size_variation=500, delay=0))
        proxy.add(Latency(0.001, direction="upstream"))
        HeldDigest.release.set()
        reply = client.recv_line()
        sender.join(30)
    assert not sender.is_alive()
    assert reply == b"%d %s\n" % (len(data), hashlib.sha256(data).hexdigest().encode())
    fired = {event.fault.split("(")[0] for event in proxy.timeline.events}
    assert fired == {"Slicer", "Latency"}, "the faults never applied to the rest"


@pytest.mark.parametrize("kind", ["tcp", "unix"])  # Unix: small buffers, copies wait longer.
def test_a_fault_removed_mid_stream_lets_what_it_queued_go_first(
    make_server: MakeServer, proxies: Any, moves: Moves, kind: str
) -> None:
    HeldDigest.release.clear()
    proxy = proxies(make_server(HeldDigest, kind).address, kind)
    slicer = proxy.add(Slicer(average_size=1000, size_variation=500, delay=0))
    data = _payload(32 << 20)
    with connect(proxy.address, kind, timeout=30) as client:
        sender = _send_in_background(client, data)
        # The server reads nothing yet: the sliced bytes wait in the proxy, then stop coming.
        assert _settled(lambda: proxy.stats.upstream_bytes > 0)
        proxy.remove(slicer)
        HeldDigest.release.set()
        reply = client.recv_line()
        sender.join(30)
    assert not sender.is_alive()
    assert reply == b"%d %s\n" % (len(data), hashlib.sha256(data).hexdigest().encode())
    assert [event.fault.split("(")[0] for event in proxy.timeline.events][:1] == ["Slicer"]
    if moves.mode == "splice":
        assert moves.splices > 0, "the bytes after the fault's removal were not spliced"


def test_no_descriptor_is_left_after_the_connections_end(
    make_server: MakeServer, proxies: Any, moves: Moves
) -> None:
    proxy = proxies(make_server(StreamEcho).address, "tcp")
    before = _open_descriptors()
    data = _payload(1 << 20)
    for _ in range(8):
        with connect(proxy.address, timeout=20) as client:
            sender = _send_in_background(client, data)
            assert client.recv_all() == data
            sender.join(20)
    assert _settled(lambda: proxy.stats.active == 0)
    assert _settled(lambda: _open_descriptors() <= before), (
        f"{_open_descriptors() - before} descriptors left open by the proxy"
    )


@pytest.mark.skipif(not hasattr(os, "splice"), reason="no os.splice here: the proxy copies")
@pytest.mark.parametrize("failure", ["no pipe", "not spliceable"])
def test_the_proxy_copies_when_it_cannot_splice(
    make_server: MakeServer, proxies: Any, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    proxy = proxies(make_server(StreamEcho).address, "tcp")
    attempts = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(failure)
        code = errno.EMFILE if failure == "no pipe" else errno.EINVAL
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "pipe" if failure == "no pipe" else "splice", refuse)
    data = _payload(2 << 20)
    with connect(proxy.address, timeout=20) as client:
        sender = _send_in_background(client, data)
        assert client.recv_all() == data
        sender.join(20)
    assert attempts, "the proxy never tried to splice"
