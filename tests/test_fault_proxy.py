"""The fault proxy over real sockets: each fault's observable effect, on each transport it names."""

from __future__ import annotations

import gc
import os
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Collection
from typing import Any

import pytest

from sockharness import ReceiveTimeout, RunningServer, UsageError, connect, start_server
from sockharness.faults import (
    Bandwidth,
    Corrupt,
    Down,
    Duplicate,
    FaultProxy,
    Latency,
    LimitData,
    Loss,
    Reorder,
    ResetPeer,
    Slicer,
    SlowClose,
    Timeout,
    Truncate,
)
from sockharness.faults._plans import DatagramPlan, picks
from sockharness.handlers import EchoHandler, LineEchoHandler, RecordingHandler
from sockharness.server import BaseRequestHandler

MakeServer = Callable[..., RunningServer]
STREAM_KINDS = ["tcp", "unix"]
DATAGRAM_KINDS = ["udp", "unix_dgram"]


class CountOnEof(BaseRequestHandler):
    """Reads until EOF, then answers with the byte count: needs the half-close to pass."""

    def handle(self) -> None:
        total = 0
        while chunk := self.request.recv(65536):
            total += len(chunk)
        self.request.sendall(b"%d bytes\n" % total)


class ChunkSizes(BaseRequestHandler):
    """Records the size of every recv() on the server."""

    def handle(self) -> None:
        sizes = []
        while chunk := self.request.recv(65536):
            sizes.append(len(chunk))
        self.server.sockharness_record(self.client_address, ",".join(map(str, sizes)).encode())


# -- a faithful relay -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", STREAM_KINDS)
def test_a_half_close_is_forwarded(make_server: MakeServer, proxies: Any, kind: str) -> None:
    server = make_server(CountOnEof, kind)
    proxy = proxies(server.address, kind)
    with connect(proxy.address, kind) as client:
        client.send(b"x" * 300_000)
        client.shutdown_write()  # Toxiproxy turns this into a full close: the reply is lost.
        assert client.recv_line() == b"300000 bytes\n"
    assert proxy.stats.upstream_bytes == 300_000


@pytest.mark.parametrize("kind", STREAM_KINDS)
def test_an_ordinary_close_stays_a_fin(make_server: MakeServer, proxies: Any, kind: str) -> None:
    proxy = proxies(make_server(LineEchoHandler, kind).address, kind, [ResetPeer(after=60)])
    with connect(proxy.address, kind) as client:
        assert client.request(b"hi\n") == b"hi\n"
        client.shutdown_write()
        assert client.recv_all() == b""  # End of stream, not ConnectionResetError.


def test_a_reset_from_the_server_reaches_the_client_as_a_reset(
    make_server: MakeServer, proxies: Any
) -> None:
    class Resets(BaseRequestHandler):
        def handle(self) -> None:
            self.request.recv(10)
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.request.close()  # An RST, and no FIN before it.

    proxy = proxies(make_server(Resets).address, "tcp")
    with connect(proxy.address) as client:
        client.send(b"x")
        with pytest.raises(ConnectionResetError):
            client.recv_all()


def test_the_proxy_relays_any_server_not_only_ours(proxies: Any) -> None:
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(conn.recv(100)[::-1])

    thread = threading.Thread(target=serve)
    thread.start()
    proxy = proxies(listener.getsockname(), "tcp", [Latency(0.01)])
    with connect(proxy.address) as client:
        client.send(b"olleh\n")
        assert client.recv_exactly(6) == b"\nhello"
    thread.join(5)
    listener.close()


# -- stream faults --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", STREAM_KINDS)
def test_latency_delays_each_direction(make_server: MakeServer, proxies: Any, kind: str) -> None:
    proxy = proxies(make_server(LineEchoHandler, kind).address, kind, [Latency(0.1)])
    with connect(proxy.address, kind) as client:
        started = time.monotonic()
        assert client.request(b"slow\n") == b"slow\n"
        assert time.monotonic() - started >= 0.2  # 0.1 s each way.


def test_latency_with_jitter_keeps_the_bytes_in_order(
    make_server: MakeServer, proxies: Any
) -> None:
    server = make_server(RecordingHandler)
    proxy = proxies(server.address, "tcp", [Latency(0.02, jitter=0.019)], seed=3)
    sent = b"".join(b"%05d," % n for n in range(300))
    with connect(proxy.address) as client:
        for offset in range(0, len(sent), 30):
            client.send(sent[offset : offset + 30])
        client.shutdown_write()
        assert client.recv_all() == sent
    assert server.wait_received(1) == [sent]


def test_bandwidth_limits_the_rate(make_server: MakeServer, proxies: Any) -> None:
    proxy = proxies(
        make_server(CountOnEof).address, "tcp", [Bandwidth(100_000, direction="upstream")]
    )
    with connect(proxy.address) as client:
        started = time.monotonic()
        client.send(b"x" * 40_000)
        client.shutdown_write()
        assert client.recv_line() == b"40000 bytes\n"
        assert time.monotonic() - started >= 0.35  # 40 kB at 100 kB/s.


@pytest.mark.parametrize("kind", STREAM_KINDS)
def test_the_slicer_delivers_small_writes(make_server: MakeServer, proxies: Any, kind: str) -> None:
    server = make_server(ChunkSizes, kind)
    slicer = Slicer(8, size_variation=2, delay=0.1, direction="upstream")
    proxy = proxies(server.address, kind, [slicer])
    with connect(proxy.address, kind) as client:
        client.send(bytes(30))
        client.shutdown_write()
        assert client.recv_all() == b""
    [sizes] = server.wait_received(1)
    received = [int(size) for size in sizes.split(b",")]
    assert sum(received) == 30
    assert max(received) <= 10  # 0.1 s apart: each slice arrives on its own.
    assert len(received) >= 3


@pytest.mark.parametrize("kind", STREAM_KINDS)
def test_slow_close_delays_the_fin(make_server: MakeServer, proxies: Any, kind: str) -> None:
    proxy = proxies(
        make_server(CountOnEof, kind).address, kind, [SlowClose(0.3, direction="upstream")]
    )
    with connect(proxy.address, kind) as client:
        started = time.monotonic()
        client.send(b"abc")
        client.shutdown_write()
        assert client.recv_line() == b"3 bytes\n"
        assert time.monotonic() - started >= 0.3


@pytest.mark.parametrize("kind", STREAM_KINDS)
def test_timeout_none_passes_nothing_and_keeps_the_connection_open(
    make_server: MakeServer, proxies: Any, kind: str
) -> None:
    server = make_server(RecordingHandler, kind)
    proxy = proxies(server.address, kind, [Timeout()])
    with connect(proxy.address, kind, timeout=0.3) as client:
        client.send(b"anyone there?\n")
        with pytest.raises(ReceiveTimeout):
            client.recv_line()  # A timeout, not an end of stream: still open.
        with pytest.raises(ReceiveTimeout):
            client.recv(10)
    proxy.close()  # Only now does the server see the end.
    assert server.wait_received(1) == [b""]


@pytest.mark.parametrize("kind", STREAM_KINDS)
def test_timeout_after_closes_the_connection(
    make_server: MakeServer, proxies: Any, kind: str
) -> None:
    proxy = proxies(make_server(LineEchoHandler, kind).address, kind, [Timeout(after=0.2)])
    with connect(proxy.address, kind) as client:
        started = time.monotonic()
        client.send(b"lost\n")
        assert client.recv_all() == b""
        assert time.monotonic() - started >= 0.15


def test_reset_peer_resets_the_client(make_server: MakeServer, proxies: Any) -> None:
    proxy = proxies(
        make_server(LineEchoHandler).address, "tcp", [ResetPeer(after=0.1, direction="downstream")]
    )
    with connect(proxy.address) as client:
        assert client.request(b"before\n") == b"before\n"
        with pytest.raises(ConnectionResetError):
            client.recv_all()


def test_reset_peer_on_unix_ends_the_connection(make_server: MakeServer, proxies: Any) -> None:
    """Unix sockets have no RST: the client sees the end, or a reset if it had sent unread data."""
    proxy = proxies(
        make_server(LineEchoHandler, "unix").address,
        "unix",
        [ResetPeer(after=0.1, direction="downstream")],
    )
    with connect(proxy.address, "unix") as client:
        assert client.request(b"before\n") == b"before\n"
        try:
            assert client.recv_all() == b""
        except ConnectionResetError:
            pass


def test_reset_peer_resets_only_the_connections_it_picked(
    make_server: MakeServer, proxies: Any
) -> None:
    fault = ResetPeer(after=0.0, toxicity=0.5, direction="downstream")
    server = make_server(LineEchoHandler)
    server.expect_errors(ConnectionError)  # The server's side of a reset connection may see it.
    proxy = proxies(server.address, "tcp", [fault], seed=11)
    outcomes = []
    for _ in range(16):
        try:  # A reset at once may even beat the end of connect().
            with connect(proxy.address) as client:
                assert client.request(b"x\n") == b"x\n"
                client.shutdown_write()
                assert client.recv_all() == b""
                outcomes.append("fin")
        except (ConnectionResetError, BrokenPipeError):
            outcomes.append("reset")
    expected = ["reset" if picks(11, n, 0, fault) else "fin" for n in range(16)]
    assert outcomes == expected
    assert 0 < outcomes.count("reset") < 16


@pytest.mark.parametrize("kind", STREAM_KINDS)
def test_limit_data_closes_after_n_bytes(make_server: MakeServer, proxies: Any, kind: str) -> None:
    server = make_server(RecordingHandler, kind)
    proxy = proxies(server.address, kind, [LimitData(10, direction="upstream")])
    with connect(proxy.address, kind) as client:
        client.send(b"0123456789abcdef")
        # The connection closes once 10 bytes passed: the echo may not make it back.
        assert b"0123456789".startswith(client.recv_all())
    assert server.wait_received(1) == [b"0123456789"]  # Closed gently: no reset, no error.


@pytest.mark.parametrize("kind", STREAM_KINDS)
def test_down_refuses_and_cuts_connections(
    make_server: MakeServer, proxies: Any, kind: str
) -> None:
    proxy = proxies(make_server(LineEchoHandler, kind).address, kind)
    live = connect(proxy.address, kind)
    assert live.request(b"up\n") == b"up\n"
    proxy.add(Down())
    if kind == "tcp":
        with pytest.raises(ConnectionResetError):
            live.recv_all()  # The live connection is cut.
    else:
        assert live.recv_all() == b""  # Unix sockets have no RST: it ends.
    live.close()
    try:  # Refused at once: the reset may even beat the end of connect().
        with connect(proxy.address, kind) as refused:
            assert refused.recv_all() == b""
    except ConnectionResetError:
        pass
    wait_until(lambda: proxy.stats.active == 0)
    proxy.remove(Down)
    with connect(proxy.address, kind) as client:
        assert client.request(b"up again\n") == b"up again\n"


# -- faults change while traffic flows ------------------------------------------------------------


def test_faults_are_added_removed_and_suspended_on_a_live_connection(
    make_server: MakeServer, proxies: Any
) -> None:
    proxy = proxies(make_server(LineEchoHandler).address, "tcp")
    with connect(proxy.address) as client:
        assert client.request(b"plain\n") == b"plain\n"
        assert proxy.timeline.events == []
        latency = proxy.add(Latency(0.15))  # In force for the next byte read.
        started = time.monotonic()
        assert client.request(b"delayed\n") == b"delayed\n"
        assert time.monotonic() - started >= 0.3
        events = len(proxy.timeline.events)
        assert events == 2
        proxy.disable()
        assert proxy.faults == ()
        assert client.request(b"suspended\n") == b"suspended\n"
        proxy.enable()
        proxy.remove(latency)
        assert client.request(b"removed\n") == b"removed\n"
        assert len(proxy.timeline.events) == events  # Nothing fired since.
    with pytest.raises(UsageError, match="is not among this proxy's faults"):
        proxy.remove(latency)


def test_stream_faults_are_refused_on_datagrams_and_the_reverse(
    make_server: MakeServer, proxies: Any
) -> None:
    with pytest.raises(
        UsageError, match=r"Loss\(probability=0.1\) is a datagram fault; tcp is a stream"
    ):
        proxies(("127.0.0.1", 1), "tcp", [Loss(0.1)])
    with pytest.raises(
        UsageError, match=r"Slicer\(average_size=4\) is a stream fault; udp is a datagram"
    ):
        proxies(("127.0.0.1", 1), "udp", [Slicer(4)])
    with pytest.raises(UsageError, match="faults must be fault specs"):
        proxies(("127.0.0.1", 1), "tcp", ["latency"])


def test_a_fault_that_never_fired_is_reported(make_server: MakeServer, proxies: Any) -> None:
    proxy = proxies(
        make_server(LineEchoHandler).address, "tcp", [LimitData(10_000, direction="upstream")]
    )
    with connect(proxy.address) as client:
        assert client.request(b"short\n") == b"short\n"
    assert proxy.unfired() == [
        "LimitData(nbytes=10000, direction='upstream') never fired "
        "(planned on 1 connection direction)"
    ]
    idle = proxies(("127.0.0.1", 1), "tcp", [Latency(0.1)])
    assert idle.unfired() == ["Latency(delay=0.1) never fired: no connection was made"]


# -- datagram faults ------------------------------------------------------------------------------


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.002)


def send_numbered(
    proxy: FaultProxy,
    kind: str,
    count: int,
    server: RunningServer | None = None,
    lost: Collection[int] = (),
) -> None:
    """Send ``count`` numbered datagrams; with ``server`` (a recording one), 50 at a time,
    each burst once the server has the last one's (all but the ``lost``), so that no
    kernel buffer drops a datagram on its own while a loaded machine lags."""
    with connect(proxy.address, kind) as client:
        for n in range(count):
            client.send(b"%04d" % n)
            if server is not None and n % 50 == 49:
                server.wait_received(sum(1 for m in range(n + 1) if m not in lost))


def expected_losses(fault: Loss, seed: int, count: int) -> set[int]:
    plan = DatagramPlan([fault], seed=seed, connection=0, direction="upstream", started=0.0)
    return {n for n in range(count) if plan.datagram(0.0, b"%04d" % n)[0].kind == "drop"}


@pytest.mark.parametrize("kind", DATAGRAM_KINDS)
def test_loss_drops_the_same_datagrams_for_the_same_seed(
    make_server: MakeServer, proxies: Any, kind: str
) -> None:
    fault = Loss(0.3, direction="upstream")
    lost = expected_losses(fault, seed=5, count=300)
    # 300 draws at p=0.3: mean 90, sd 7.9; five sd either side.
    assert 50 < len(lost) < 130
    for _ in range(2):  # Twice: the same datagrams every run.
        server = make_server(RecordingHandler, kind, concurrency="sync")
        proxy = proxies(server.address, kind, [fault], seed=5)
        send_numbered(proxy, kind, 300, server, lost)
        received = server.wait_received(300 - len(lost))
        assert {int(data) for data in received} == set(range(300)) - lost
        assert proxy.stats.dropped_datagrams == len(lost)


@pytest.mark.parametrize("kind", DATAGRAM_KINDS)
def test_duplicate_delivers_twice(make_server: MakeServer, proxies: Any, kind: str) -> None:
    server = make_server(RecordingHandler, kind, concurrency="sync")
    fault = Duplicate(0.5, direction="upstream")
    plan = DatagramPlan([fault], seed=2, connection=0, direction="upstream", started=0.0)
    copies = [len(plan.datagram(0.0, b"%04d" % n)) for n in range(40)]
    assert 0 < copies.count(2) < 40
    proxy = proxies(server.address, kind, [fault], seed=2)
    send_numbered(proxy, kind, 40)
    received = [int(d) for d in server.wait_received(sum(copies))]
    assert sorted(received) == sorted(n for n in range(40) for _ in range(copies[n]))


@pytest.mark.parametrize("kind", DATAGRAM_KINDS)
def test_reorder_lets_later_datagrams_overtake(
    make_server: MakeServer, proxies: Any, kind: str
) -> None:
    server = make_server(RecordingHandler, kind, concurrency="sync")
    proxy = proxies(server.address, kind, [Reorder(0.3, delay=0.2, direction="upstream")], seed=4)
    send_numbered(proxy, kind, 30)
    received = [int(d) for d in server.wait_received(30)]
    assert sorted(received) == list(range(30))
    assert received != list(range(30))


@pytest.mark.parametrize("kind", DATAGRAM_KINDS)
def test_corrupt_flips_one_bit(make_server: MakeServer, proxies: Any, kind: str) -> None:
    server = make_server(RecordingHandler, kind, concurrency="sync")
    proxy = proxies(server.address, kind, [Corrupt(1.0, direction="upstream")])
    with connect(proxy.address, kind) as client:
        client.send(b"\x00" * 16)
    [data] = server.wait_received(1)
    assert bin(int.from_bytes(data, "big")).count("1") == 1


@pytest.mark.parametrize("kind", DATAGRAM_KINDS)
def test_truncate_and_latency_on_replies(make_server: MakeServer, proxies: Any, kind: str) -> None:
    from sockharness.handlers import EchoHandler

    faults = [Truncate(4, direction="downstream"), Latency(0.1, direction="downstream")]
    proxy = proxies(make_server(EchoHandler, kind).address, kind, faults)
    with connect(proxy.address, kind) as client:
        started = time.monotonic()
        assert client.request(b"abcdefgh") == b"abcd"
        assert time.monotonic() - started >= 0.1


def test_bandwidth_paces_datagrams(make_server: MakeServer, proxies: Any) -> None:
    server = make_server(RecordingHandler, "udp", concurrency="sync")
    proxy = proxies(server.address, "udp", [Bandwidth(20_000, direction="upstream")])
    started = time.monotonic()
    with connect(proxy.address, "udp") as client:
        for _ in range(10):
            client.send(b"x" * 1000)
    server.wait_received(10)
    assert time.monotonic() - started >= 0.4  # 10 kB at 20 kB/s, the first one free.


def test_down_drops_datagrams(make_server: MakeServer, proxies: Any) -> None:
    server = make_server(RecordingHandler, "udp", concurrency="sync")
    proxy = proxies(server.address, "udp", [Down()])
    send_numbered(proxy, "udp", 5)
    wait_until(lambda: proxy.stats.dropped_datagrams == 5)
    proxy.clear()
    send_numbered(proxy, "udp", 1)
    assert server.wait_received(1) == [b"0000"]
    assert proxy.stats.dropped_datagrams == 5


def test_tls_passes_through_the_proxy_with_its_faults(
    make_server: MakeServer, proxies: Any
) -> None:
    from sockharness import TLSMaterial

    material = TLSMaterial()
    server = make_server(LineEchoHandler, tls=material.server_context())
    proxy = proxies(server.address, "tcp", [Slicer(16, delay=0.001), Latency(0.02)])
    with connect(
        proxy.address, tls=material.client_context(), server_hostname="127.0.0.1"
    ) as client:
        started = time.monotonic()
        assert client.request(b"secret through the proxy\n") == b"secret through the proxy\n"
        assert time.monotonic() - started >= 0.04
    assert proxy.unfired() == []


def test_a_stuck_event_loop_is_an_error_not_a_silent_wait(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sockharness import ProxyTimeout
    from sockharness.faults import _proxy

    monkeypatch.setattr(_proxy, "CHANGE_TIMEOUT", 0.2)
    release = threading.Event()
    proxy = FaultProxy(make_server(LineEchoHandler).address, "tcp")
    try:
        proxy._loop.call_soon(lambda: release.wait(10))  # The loop is stuck in a callback.
        with pytest.raises(
            ProxyTimeout, match=r"did not take the new faults within 0\.2 s"
        ) as raised:
            proxy.add(Latency(0.1))
        assert raised.value.timeout == 0.2
        with pytest.raises(ProxyTimeout, match="did not close its connections and stop"):
            proxy.close()
    finally:
        release.set()
        proxy._loop.stop(5.0)
        proxy._loop.close()


def test_replace_swaps_a_fault_in_its_place_in_the_order() -> None:
    with start_server(EchoHandler) as server, FaultProxy(server.address) as proxy:
        proxy.add(Latency(0.5))
        proxy.add(LimitData(2, direction="downstream"))
        assert proxy.replace(Latency(0.5), Latency(0.001)) == Latency(0.001)
        assert list(proxy.faults) == [Latency(0.001), LimitData(2, direction="downstream")]
        with connect(proxy.address, timeout=5) as client:
            client.send(b"hello")
            assert client.recv_all() == b"he"
        with pytest.raises(UsageError, match="is not among"):
            proxy.replace(Latency(0.5), Latency(0.2))


def _thread_cpu_seconds(name_prefix: str) -> float:
    """CPU time (user + system) of this process's threads whose name starts with the prefix."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for thread in threading.enumerate():
        if thread.name.startswith(name_prefix) and thread.native_id is not None:
            with open(f"/proc/self/task/{thread.native_id}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="reads /proc (Linux)")
def test_the_proxy_polls_briefly_after_traffic_and_then_blocks(
    make_server: MakeServer, proxies: Any
) -> None:
    # The loop polls for a moment after each wake-up (a relayed answer comes back
    # within tens of microseconds); a loop that never went back to waiting would
    # burn a core while the proxy sits idle.
    server = make_server(EchoHandler, "tcp")
    proxy = proxies(server.address, "tcp")
    with connect(proxy.address) as client:
        for _ in range(50):
            assert client.request(b"ping\n") == b"ping\n"
        before = _thread_cpu_seconds("sockharness proxy")
        time.sleep(0.5)  # The idle interval measured, with the connection open.
        idle = _thread_cpu_seconds("sockharness proxy") - before
    assert idle < 0.1, f"the idle proxy's loop used {idle:.2f} s of CPU in 0.5 s"


def _live(kind: type) -> int:
    gc.collect()
    return sum(1 for thing in gc.get_objects() if type(thing) is kind)


def _until_no_relay(proxy: FaultProxy) -> None:
    deadline = time.monotonic() + 5
    while proxy.stats.active:
        assert time.monotonic() < deadline, "the proxy still relays a connection that ended"
        time.sleep(0.001)


def test_a_long_lived_proxy_keeps_what_ended_connections_did_not_their_plans(
    make_server: MakeServer, proxies: Any
) -> None:
    # Found by the soak: the API child's RSS grew by 0.5 MB every 1 000 connections,
    # each ended connection's plans (a seeded random.Random per fault and direction,
    # 2.5 KB) kept for the unfired-fault report. The report needs only what they did.
    never = LimitData(10_000, direction="upstream")
    proxy = proxies(make_server(LineEchoHandler).address, "tcp", [Slicer(2), never])
    for _ in range(20):
        with connect(proxy.address) as client:
            assert client.request(b"ping\n") == b"ping\n"
    _until_no_relay(proxy)
    before = _live(random.Random)
    for _ in range(200):
        with connect(proxy.address) as client:
            assert client.request(b"ping\n") == b"ping\n"
    _until_no_relay(proxy)
    assert _live(random.Random) - before < 20
    assert proxy.unfired() == [f"{never!r} never fired (planned on 220 connection directions)"]
