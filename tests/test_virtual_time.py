"""Virtual time for in-process faults: certain timeouts at once, jumps, and stops that cut waits
short; each outcome checked against the same exchange in real time."""

from __future__ import annotations

import socket
import textwrap
import threading
from collections.abc import Callable
from typing import Any

import pytest

from sockharness import ConnectionClosed, ReceiveTimeout, RunningServer, UsageError, start_server
from sockharness.faults import (
    AcceptDelay,
    Blackhole,
    FaultClock,
    Latency,
    NoReply,
    ResetPeer,
    Stall,
    Timeout,
    check_virtual_time,
)
from sockharness.handlers import EchoHandler, LineEchoHandler
from sockharness.server import StreamRequestHandler

MakeServer = Callable[..., RunningServer]


def _effects(server: RunningServer) -> list[str]:
    return [event.effect for event in server.fault_timeline.events]


def _outcome(server: RunningServer, faults: list[Any], timeout: float) -> str:
    """What a client with ``faults`` sees of one line's echo: the reply, or how it failed."""
    try:
        with server.connect(timeout=timeout, faults=faults) as client:
            return client.request(b"ping\n").decode()
    except ReceiveTimeout:
        return "timeout"
    except ConnectionClosed:
        return "closed"
    except ConnectionResetError:
        return "reset"


# -- certain timeouts ---------------------------------------------------------------------------


def test_a_30_s_latency_against_a_1_s_timeout_times_out_at_once(make_server: MakeServer) -> None:
    server = make_server(LineEchoHandler, virtual_time="timeouts")
    with server.connect(timeout=1.0, faults=[Latency(30.0, direction="downstream")]) as client:
        with pytest.raises(ReceiveTimeout):
            client.request(b"ping\n")
        assert client.sock.virtual_time_skipped == pytest.approx(1.0, abs=0.05)  # type: ignore[attr-defined]
    [note] = [effect for effect in _effects(server) if "virtual time" in effect]
    assert note.startswith("receive timed out at once in virtual time")
    assert "the next 5 bytes are held back" in note


def test_a_receive_never_waits_past_its_timeout_in_real_time_either(
    make_server: MakeServer,
) -> None:
    server = make_server(LineEchoHandler, virtual_time="off")
    with server.connect(timeout=0.1, faults=[Latency(5.0, direction="downstream")]) as client:
        with pytest.raises(ReceiveTimeout):
            client.request(b"ping\n")  # Before: slept the whole 5 s, then returned the reply.
        assert client.sock.virtual_time_skipped == 0.0  # type: ignore[attr-defined]
    assert not any("virtual time" in effect for effect in _effects(server))


def test_a_direction_held_for_good_times_out_at_once_and_its_fault_fired(
    make_server: MakeServer,
) -> None:
    server = make_server(LineEchoHandler, virtual_time="timeouts")
    with server.connect(timeout=20.0, faults=[Timeout(direction="downstream")]) as client:
        with pytest.raises(ReceiveTimeout):
            client.request(b"ping\n")
        assert client.fault_usage() == [("Timeout(direction='downstream')", True)]
    assert "held back everything until the receive timed out" in _effects(server)


def test_a_fault_timer_before_the_deadline_is_waited_for(make_server: MakeServer) -> None:
    """Not certain: the Timeout closes at 0.1 s, before the 5 s deadline; the end arrives."""
    server = make_server(LineEchoHandler, virtual_time="timeouts")
    faults = [Timeout(after=0.1, direction="downstream")]
    assert _outcome(server, faults, timeout=5.0) == "closed"


def test_jump_skips_a_latency_within_the_timeout(make_server: MakeServer) -> None:
    server = make_server(LineEchoHandler, virtual_time="jump")
    with server.connect(timeout=60.0, faults=[Latency(30.0, direction="downstream")]) as client:
        assert client.request(b"ping\n") == b"ping\n"
        assert client.sock.virtual_time_skipped == pytest.approx(30.0, abs=0.05)  # type: ignore[attr-defined]
    [event] = [e for e in server.fault_timeline.events if e.fault.startswith("Latency")]
    assert event.effect == "delayed 5 bytes by 30.0000 s"  # Stood for 30 s, in virtual time.


#: (faults, timeout, outcome in real time): small enough to run in real time here.
SAME_OUTCOME = [
    ([Latency(0.3, direction="downstream")], 0.1, "timeout"),
    ([Latency(0.02, direction="downstream")], 2.0, "ping\n"),
    ([Timeout(direction="downstream")], 0.15, "timeout"),
    ([Timeout(after=0.05, direction="downstream")], 2.0, "closed"),
    ([NoReply()], 0.15, "timeout"),
    ([Stall(0.3, direction="downstream")], 0.1, "timeout"),
    ([Stall(0.02, direction="downstream")], 2.0, "ping\n"),
    ([Latency(0.5, direction="downstream"), ResetPeer(after=0.05)], 0.3, "reset"),
    ([Stall(None, direction="downstream")], 0.15, "timeout"),
]


@pytest.mark.parametrize(("faults", "timeout", "expected"), SAME_OUTCOME, ids=repr)
@pytest.mark.parametrize("virtual_time", ["off", "timeouts"])
def test_virtual_and_real_time_give_the_same_outcome(
    make_server: MakeServer,
    faults: list[Any],
    timeout: float,
    expected: str,
    virtual_time: Any,
) -> None:
    server = make_server(LineEchoHandler, virtual_time=virtual_time)
    server.expect_errors(ConnectionError)
    assert _outcome(server, faults, timeout) == expected


def test_a_server_side_read_timeout_passes_at_once(make_server: MakeServer) -> None:
    class Impatient(StreamRequestHandler):
        timeout = 1.0

        def handle(self) -> None:
            try:
                self.rfile.readline()
            except TimeoutError:
                self.wfile.write(b"you are too slow\n")

    server = make_server(
        Impatient, faults=[Latency(30.0, direction="upstream")], virtual_time="timeouts"
    )
    with server.connect(timeout=5.0) as client:
        client.send(b"slow request\n")
        assert client.recv_line() == b"you are too slow\n"
    assert any(effect.startswith("receive timed out at once") for effect in _effects(server))


@pytest.mark.parametrize("kind", ["udp", "unix_dgram"])
def test_a_datagram_held_past_the_timeout_times_out_at_once(
    make_server: MakeServer, kind: str
) -> None:
    server = make_server(EchoHandler, kind, virtual_time="timeouts")
    faults = [Latency(30.0, direction="downstream")]
    with server.connect(timeout=1.0, faults=faults) as client:
        with pytest.raises(ReceiveTimeout):
            client.request(b"ping")
        assert client.sock.virtual_time_skipped == pytest.approx(1.0, abs=0.05)  # type: ignore[attr-defined]


def test_a_non_blocking_receive_says_try_again(make_server: MakeServer) -> None:
    server = make_server(LineEchoHandler, virtual_time="off")
    with server.connect(faults=[Latency(30.0, direction="downstream")]) as client:
        client.send(b"ping\n")
        client.sock.settimeout(0.2)
        with pytest.raises(TimeoutError):
            client.sock.recv(100)  # The echo came, and the fault holds it for 30 s.
        client.sock.settimeout(0)
        with pytest.raises(BlockingIOError):
            client.sock.recv(100)  # Not a 30 s sleep on a non-blocking socket.


# -- the connect phase ----------------------------------------------------------------------


def test_a_blackholed_connect_times_out_at_once_by_default(make_server: MakeServer) -> None:
    server = make_server(LineEchoHandler)
    with pytest.raises(ReceiveTimeout):
        server.connect(timeout=30.0, faults=[Blackhole()])
    [event] = server.fault_timeline.events
    assert event.effect.endswith("(at once, in virtual time: 30 s skipped)")
    assert event.at == pytest.approx(30.0, abs=0.01)


def test_a_connect_later_than_its_timeout_times_out_at_once(make_server: MakeServer) -> None:
    server = make_server(LineEchoHandler)
    with pytest.raises(ReceiveTimeout):
        server.connect(timeout=1.0, faults=[AcceptDelay(30.0)])
    assert _effects(server) == [
        "the connect() did not complete within the timeout (at once, in virtual time: 1 s skipped)"
    ]


def test_a_stall_before_the_connect_does_not_shorten_the_time_it_stood_for(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The harness's own time before the connect (a garbage collection in a busy test
    process, say) is not the connect's: the timeline still says the whole timeout."""
    import sockharness.faults

    decide = sockharness.faults.connection_fate

    def after_a_stall(*args: Any) -> Any:
        threading.Event().wait(0.005)  # The stall being simulated, not a wait for anything.
        return decide(*args)

    monkeypatch.setattr(sockharness.faults, "connection_fate", after_a_stall)
    server = make_server(LineEchoHandler)
    with pytest.raises(ReceiveTimeout):
        server.connect(timeout=1.0, faults=[AcceptDelay(30.0)])
    assert _effects(server) == [
        "the connect() did not complete within the timeout (at once, in virtual time: 1 s skipped)"
    ]
    [event] = server.fault_timeline.events
    assert event.at == 1.0


def test_off_waits_the_connect_timeout_in_real_time(make_server: MakeServer) -> None:
    server = make_server(LineEchoHandler, virtual_time="off")
    with pytest.raises(ReceiveTimeout):
        server.connect(timeout=0.1, faults=[Blackhole()])
    assert _effects(server) == ["the connect() never completed (blackhole)"]


def test_a_late_connect_within_the_timeout_is_late_for_real(make_server: MakeServer) -> None:
    server = make_server(LineEchoHandler)
    with server.connect(timeout=5.0, faults=[AcceptDelay(0.05)]) as client:
        assert client.request(b"late\n") == b"late\n"
    assert _effects(server) == ["the connect() completed 0.05 s late"]


# -- a stop cuts fault waits short ----------------------------------------------------------


@pytest.mark.parametrize("concurrency", ["threading", "forking"])
def test_stopping_the_server_cuts_a_handlers_fault_wait_short(concurrency: str) -> None:
    """Before: the handler slept out the 30 s latency; the stop gave up after 10 s (a leak)."""
    server = start_server(
        EchoHandler, concurrency=concurrency, faults=[Latency(30.0)], leaks="fail"
    )
    with server, socket.create_connection(server.address, timeout=5.0) as sock:
        sock.sendall(b"ping\n")
        sock.settimeout(0.1)
        with pytest.raises(TimeoutError):
            sock.recv(100)
    assert server.stopped_in_time
    assert server.leak_report() is None


def test_stopping_the_server_cuts_an_accept_delay_short() -> None:
    server = start_server(EchoHandler, faults=[AcceptDelay(30.0)], leaks="fail")
    with server, socket.create_connection(server.address, timeout=5.0) as sock:
        sock.sendall(b"ping\n")  # The kernel took the connection; the server is "busy".
    assert server.stopped_in_time
    assert server.leak_report() is None


def test_a_cut_short_clock_ends_every_later_wait_at_once() -> None:
    clock = FaultClock("off", stoppable=True)
    try:
        assert clock.sleep(0.001)
        clock.cut_short()
        assert not clock.sleep(30.0)
        assert clock.stopped
    finally:
        clock.close()


# -- settings ----------------------------------------------------------------------------------


def test_an_unknown_virtual_time_is_a_clear_error() -> None:
    with pytest.raises(UsageError, match=r"virtual_time must be one of 'off', 'connect'"):
        check_virtual_time("fast")
    with pytest.raises(UsageError, match="virtual_time must be one of"):
        start_server(EchoHandler, virtual_time="fast")  # type: ignore[arg-type]


def test_the_plugin_takes_virtual_time_from_ini_option_and_marker(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nsockharness_virtual_time = timeouts\n")
    pytester.makepyfile(
        textwrap.dedent(
            """
            import pytest
            from sockharness import ReceiveTimeout
            from sockharness.faults import Latency
            from sockharness.handlers import LineEchoHandler

            FAULTS = [Latency(30.0, direction="downstream")]

            def test_from_the_ini(make_server):
                server = make_server(LineEchoHandler)
                assert server.virtual_time == "timeouts"
                with server.connect(timeout=1.0, faults=FAULTS) as client:
                    with pytest.raises(ReceiveTimeout):
                        client.request(b"ping\\n")

            @pytest.mark.sockharness_virtual_time("jump")
            def test_from_the_marker(make_server, make_client):
                server = make_server(LineEchoHandler)
                assert server.virtual_time == "jump"
                client = make_client(server.address, timeout=60.0, faults=FAULTS)
                assert client.request(b"ping\\n") == b"ping\\n"
            """
        )
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=2)
    result = pytester.runpytest(
        "-p", "no:randomly", "--sockharness-virtual-time=off", "-k", "test_from_the_ini"
    )
    result.assert_outcomes(failed=1)  # Real time: the 1 s timeout passes; the server's
    # virtual_time is "off", which the test's assertion names.
    result.stdout.fnmatch_lines(["*assert 'off' == 'timeouts'*"])


def test_a_bad_ini_value_is_one_clear_line(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nsockharness_virtual_time = fast\n")
    pytester.makepyfile("def test_nothing(): pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*sockharness_virtual_time = 'fast' is not one of off, connect, timeouts, jump*"]
    )
