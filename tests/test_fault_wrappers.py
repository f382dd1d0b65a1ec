"""Faults in the process: make_server(faults=...), connect(faults=...), on real sockets."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

import pytest

from sockharness import ReceiveTimeout, RunningServer, UsageError, connect, start_server
from sockharness.faults import (
    Bandwidth,
    Corrupt,
    Duplicate,
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
from sockharness.faults._plans import DatagramPlan
from sockharness.handlers import EchoHandler, LineEchoHandler, RecordingHandler
from sockharness.server import BaseRequestHandler
from tests.helpers import wait_for

MakeServer = Callable[..., RunningServer]
STREAMS = ["tcp", "unix"]
DATAGRAMS = ["udp", "unix_dgram"]


class ChunkSizes(BaseRequestHandler):
    def handle(self) -> None:
        sizes = []
        while chunk := self.request.recv(65536):
            sizes.append(len(chunk))
        self.server.sockharness_record(self.client_address, ",".join(map(str, sizes)).encode())


class CountOnEof(BaseRequestHandler):
    def handle(self) -> None:
        total = 0
        while chunk := self.request.recv(65536):
            total += len(chunk)
        self.request.sendall(b"%d bytes\n" % total)


# -- server side ----------------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", ["sync", "threading", "forking"])
@pytest.mark.parametrize("kind", STREAMS)
def test_server_side_latency_on_replies(
    make_server: MakeServer, kind: str, concurrency: str
) -> None:
    server = make_server(
        LineEchoHandler,
        kind,
        concurrency=concurrency,
        faults=[Latency(0.1, direction="downstream")],
    )
    with server.connect() as client:
        started = time.monotonic()
        assert client.request(b"late\n") == b"late\n"
        assert time.monotonic() - started >= 0.1


@pytest.mark.parametrize("kind", STREAMS)
def test_server_side_slicer_on_what_the_handler_reads(make_server: MakeServer, kind: str) -> None:
    server = make_server(
        ChunkSizes, kind, faults=[Slicer(5, size_variation=1, direction="upstream")]
    )
    with server.connect() as client:
        client.send(bytes(40))
        client.shutdown_write()
        client.recv_all()
    [sizes] = server.wait_received(1)
    received = [int(size) for size in sizes.split(b",")]
    assert sum(received) == 40
    assert max(received) <= 6  # Receives are cut in the process: no coalescing can undo it.


@pytest.mark.parametrize("kind", STREAMS)
def test_a_half_close_passes_through_the_wrappers(make_server: MakeServer, kind: str) -> None:
    server = make_server(CountOnEof, kind, faults=[Latency(0.01)])
    with server.connect(faults=[Latency(0.01)]) as client:
        client.send(b"x" * 1000)
        client.shutdown_write()
        assert client.recv_line() == b"1000 bytes\n"


def test_server_side_limit_data_ends_what_the_handler_reads(make_server: MakeServer) -> None:
    server = make_server(RecordingHandler, faults=[LimitData(5, direction="upstream")])
    server.expect_errors(BrokenPipeError)  # The handler's echo after the close: as in real life.
    with server.connect() as client:
        client.send(b"0123456789")
        client.shutdown_write()
        assert b"01234".startswith(client.recv_all())
    assert server.wait_received(1) == [b"01234"]


def test_server_side_reset_peer_resets_the_client(make_server: MakeServer) -> None:
    class Lingers(BaseRequestHandler):
        def handle(self) -> None:
            self.request.sendall(b"hello\n")
            try:
                while self.request.recv(100):
                    pass
            except ConnectionResetError:
                pass  # The fault resets this side too.

    server = make_server(Lingers, faults=[ResetPeer(after=0.05, direction="downstream")])
    with server.connect() as client:
        assert client.recv_line() == b"hello\n"
        with pytest.raises(ConnectionResetError):
            client.recv_all()


def test_client_side_timeout_none_is_a_hung_connection(make_server: MakeServer) -> None:
    server = make_server(LineEchoHandler)
    with server.connect(timeout=0.2, faults=[Timeout(direction="downstream")]) as client:
        client.send(b"the reply never arrives\n")
        with pytest.raises(ReceiveTimeout):
            client.recv_line()
        client.shutdown_write()
        with pytest.raises(ReceiveTimeout):
            client.recv_all()  # Not even the server's end of stream.


# -- client side ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", STREAMS)
def test_client_side_bandwidth_and_slow_close(make_server: MakeServer, kind: str) -> None:
    server = make_server(CountOnEof, kind)
    faults = [Bandwidth(50_000, direction="upstream"), SlowClose(0.1, direction="upstream")]
    with server.connect(faults=faults) as client:
        started = time.monotonic()
        client.send(b"x" * 10_000)
        client.shutdown_write()
        assert client.recv_line() == b"10000 bytes\n"
        assert time.monotonic() - started >= 0.2 + 0.1


def test_client_side_slicer_on_receives(make_server: MakeServer) -> None:
    with make_server(LineEchoHandler).connect(faults=[Slicer(3, direction="downstream")]) as client:
        client.send(b"abcdefghij\n")
        pieces = [client.recv(100) for _ in range(4)]
        assert pieces == [b"abc", b"def", b"ghi", b"j\n"]


def test_client_side_timeout_after_closes(make_server: MakeServer) -> None:
    with make_server(LineEchoHandler).connect(faults=[Timeout(after=0.2)]) as client:
        client.send(b"dropped\n")
        started = time.monotonic()
        assert client.recv_all() == b""
        assert time.monotonic() - started >= 0.15


def test_client_side_reset(make_server: MakeServer) -> None:
    server = make_server(LineEchoHandler)
    server.expect_errors(ConnectionError)
    with server.connect(faults=[ResetPeer(after=0.05)]) as client:
        assert client.request(b"ok\n") == b"ok\n"
        time.sleep(0.06)  # The fault's time passes with the application idle: it strikes next.
        with pytest.raises(ConnectionResetError):
            client.request(b"after\n")


# -- datagrams ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", DATAGRAMS)
def test_client_side_loss_is_seeded_and_the_server_sees_the_rest(
    make_server: MakeServer, kind: str
) -> None:
    fault = Loss(0.4, direction="upstream")
    plan = DatagramPlan([fault], seed=9, connection=0, direction="upstream", started=0.0)
    kept = [n for n in range(100) if plan.datagram(0.0, b"%03d" % n)[0].kind == "data"]
    server = make_server(RecordingHandler, kind, concurrency="sync")
    with connect(server.address, kind, faults=[fault], seed=9) as client:
        for n in range(100):
            client.send(b"%03d" % n)
            if n % 8 == 7:
                time.sleep(0.002)
        # Still open: the recording handler's replies must find the client's socket.
        assert [int(d) for d in server.wait_received(len(kept))] == kept
    assert 40 < len(kept) < 85


@pytest.mark.parametrize("kind", DATAGRAMS)
def test_server_side_datagram_faults(make_server: MakeServer, kind: str) -> None:
    faults = [
        Truncate(4, direction="downstream"),
        Duplicate(1.0, direction="downstream"),
        Corrupt(1.0, direction="upstream"),
    ]
    server = make_server(EchoHandler, kind, concurrency="sync", faults=faults)
    with server.connect() as client:
        client.send(b"\x00" * 8)
        first, second = client.recv(), client.recv()
    assert first == second
    assert len(first) == 4
    assert server.unfired_faults() == []


def test_server_side_loss_does_not_block_the_loop(make_server: MakeServer) -> None:
    server = make_server(
        RecordingHandler, "udp", concurrency="sync", faults=[Loss(1.0, direction="upstream")]
    )
    with server.connect() as client:
        client.send(b"gone")
    deadline = time.monotonic() + 5
    while not server.fault_timeline.events:  # The loss happened: the server read it.
        assert time.monotonic() < deadline
        time.sleep(0.001)
    # The lost datagram was read and ignored: the server still stops at once.
    server.stop()
    assert server.received == []


def test_client_side_reorder_lets_later_datagrams_overtake(make_server: MakeServer) -> None:
    server = make_server(RecordingHandler, "udp", concurrency="sync")
    with server.connect(faults=[Reorder(0.5, delay=0.1, direction="upstream")]) as client:
        for n in range(20):
            client.send(b"%02d" % n)
    received = [int(d) for d in server.wait_received(20)]
    assert sorted(received) == list(range(20))
    assert received != list(range(20))


# -- reporting and errors -------------------------------------------------------------------------


def test_unfired_in_process_faults_are_reported() -> None:
    with start_server(LineEchoHandler, faults=[ResetPeer(after=60)]) as server:
        with server.connect(faults=[LimitData(10_000)]) as client:
            assert client.request(b"x\n") == b"x\n"
    assert server.unfired_faults() == [
        "ResetPeer(after=60) never fired (planned on 2 connection directions)",
        "LimitData(nbytes=10000) never fired (planned on 2 connection directions)",
    ]


def test_the_fixture_fails_a_vacuous_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from sockharness.faults import ResetPeer, Latency
        from sockharness.handlers import LineEchoHandler

        def test_vacuous(make_server):
            server = make_server(LineEchoHandler, faults=[ResetPeer(after=60)])
            with server.connect() as client:
                assert client.request(b"x\\n") == b"x\\n"

        def test_fired(make_server, make_client):
            server = make_server(LineEchoHandler)
            client = make_client(server.address, faults=[Latency(0.01)])
            assert client.request(b"x\\n") == b"x\\n"
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*UnfiredFaults*",
            "*ResetPeer(after=60) never fired (planned on 2 connection directions)*",
        ]
    )


def test_in_process_faults_refuse_tls_and_proxy_only_faults(make_server: MakeServer) -> None:
    from sockharness.faults import Down

    server = make_server(LineEchoHandler, tls=True)
    with pytest.raises(UsageError, match="cannot reach the bytes under TLS"):
        server.connect(faults=[Latency(0.1)])
    with pytest.raises(UsageError, match="only a FaultProxy applies it"):
        connect(("127.0.0.1", 1), faults=[Down()])


def test_a_faulty_socket_is_still_a_socket(make_server: MakeServer) -> None:
    with make_server(LineEchoHandler).connect(faults=[Latency(0.001)]) as client:
        assert isinstance(client.sock, socket.socket)
        with client.sock.makefile("rwb") as stream:
            stream.write(b"through makefile\n")
            stream.flush()
            assert stream.readline() == b"through makefile\n"


def test_the_same_seed_gives_the_same_timeline(make_server: MakeServer) -> None:
    def effects(seed: int) -> list[str]:
        server = make_server(RecordingHandler, "udp", concurrency="sync")
        fault = Loss(0.5, direction="upstream")
        with connect(server.address, "udp", faults=[fault], seed=seed) as client:
            for n in range(30):
                client.send(b"%02d" % n)
        return [event.effect for event in client.sock.fault_timeline.events]

    assert effects(1) == effects(1)
    assert effects(1) != effects(2)


def test_a_forked_childs_fault_events_reach_the_timeline() -> None:
    with start_server(LineEchoHandler, concurrency="forking", faults=[Latency(0.01)]) as server:
        with server.connect() as client:
            assert client.request(b"x\n") == b"x\n"
    effects = [(e.direction, e.effect) for e in server.fault_timeline.events]
    assert effects == [
        ("upstream", "delayed 2 bytes by 0.0100 s"),
        ("downstream", "delayed 2 bytes by 0.0100 s"),
    ]


def test_closing_with_datagrams_still_held_back_warns(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sockharness import HeldDatagramsWarning
    from sockharness.faults import Reorder, _wrapper

    monkeypatch.setattr(_wrapper, "HELD_DATAGRAMS_WAIT", 0.1)
    server = make_server(RecordingHandler, "udp")
    client = server.connect(faults=[Reorder(1.0, delay=30.0, direction="upstream")])
    client.send(b"held back for 30 s")
    with pytest.warns(HeldDatagramsWarning, match="with 1 datagram\\(s\\) its faults still held"):
        client.close()
    # What was held back is dropped, not left for a thread to send 30 s later.
    assert _wrapper._DELIVERER.cancel(client.sock) == 0
    wait_for(
        lambda: "sockharness datagrams" not in {t.name for t in threading.enumerate()},
        what="the delivery thread to end once nothing is left to send",
    )


@pytest.mark.parametrize("side", ["client", "server"])
def test_a_fault_that_applies_to_nothing_leaves_the_sockets_own_calls(side: str) -> None:
    """No Python frame between the caller and the system call when no fault applies
    (toxicity 0); a server's connections still count their bytes for its statistics."""
    idle = [Latency(0.05, toxicity=0.0)]
    seen: list[Callable[..., object]] = []

    class Echo(BaseRequestHandler):
        def handle(self) -> None:
            seen.append(self.request.recv)
            while data := self.request.recv(65536):
                self.request.sendall(data)

    # start_server, not the fixture: the fixture fails a test whose faults never fire.
    with start_server(Echo, faults=idle if side == "server" else ()) as server:
        with server.connect(faults=idle if side == "client" else ()) as client:
            assert client.request(b"ping\n") == b"ping\n"
            if side == "client":
                # The socket's own (C) methods, not a counting or fault frame.
                assert client.sock.sendall == socket.socket.sendall.__get__(client.sock)
                assert client.sock.recv == socket.socket.recv.__get__(client.sock)
        wait_for(lambda: bool(seen), timeout=5)
        if side == "server":
            # Counted: the statistics need the server's bytes (a Python frame that counts).
            assert getattr(seen[0], "__func__", None) is not None
        assert server.unfired_faults() != []
