"""Faults that strike chosen connections (``connections=``), at a byte offset (``after_bytes``),
and in the connection phase (refuse, blackhole, accept_delay, ...), over real sockets."""

from __future__ import annotations

import contextlib
import http.server
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from hypothesis import given, settings
from hypothesis import strategies as st

from sockharness import ConnectionClosed, RunningServer, UsageError, connect, start_server
from sockharness.faults import (
    AcceptDelay,
    AcceptThenClose,
    AcceptThenReset,
    Blackhole,
    FaultProxy,
    Latency,
    LimitData,
    Loss,
    NeverRead,
    NoReply,
    Ordinals,
    Refuse,
    ResetPeer,
    ordinals,
    parse_fault,
)
from sockharness.faults.framers import framer_name
from sockharness.handlers import EchoHandler, LineEchoHandler, RecordingHandler
from sockharness.strategies import connection_faults, ordinal_sets, stream_faults
from tests.helpers import wait_for
from tests.test_cli_serve import read_line

# -- ordinals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_as", "members", "outsiders", "text"),
    [
        ("3", [3], [0, 2, 4], "3"),
        ("0-1", [0, 1], [2], "0-1"),
        ("0,2,5-", [0, 2, 5, 6, 1000], [1, 3, 4], "0,2,5-"),
        ("every 3", [2, 5, 8], [0, 1, 3, 4, 6], "every 3"),
        (range(2), [0, 1], [2], "0-1"),
        (range(0, 6, 2), [0, 2, 4], [1, 3, 5], "0,2,4"),
        ({1, 2, 3, 7}, [1, 2, 3, 7], [0, 4, 8], "1-3,7"),
        ([4, 0], [0, 4], [1, 5], "0,4"),
        (5, [5], [4, 6], "5"),
        (" 1 - 2 , every 10 ", [1, 2, 9, 19], [0, 3, 10], "1-2,every 10"),
    ],
)
def test_ordinals_from_text_and_python(
    given_as: Any, members: list[int], outsiders: list[int], text: str
) -> None:
    chosen = ordinals(given_as)
    assert [n in chosen for n in members] == [True] * len(members)
    assert [n in chosen for n in outsiders] == [False] * len(outsiders)
    assert str(chosen) == text
    assert ordinals(text) == chosen  # The text it prints builds it again.


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("x", r"connections='x'\): 'x' is not an ordinal or a range; write e.g."),
        ("3-1", r"the range '3-1' ends before it starts"),
        ("", r"selects nothing"),
        ([], r"selects nothing"),
        ([-1], r"-1 is not an ordinal"),
        (True, r"is not a set of ordinals"),
        ("every 0", r"'every' needs a count of at least 1"),
        (1.5, r"is not a set of ordinals"),
    ],
)
def test_bad_ordinals_are_one_clear_line(value: Any, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        ResetPeer(connections=value)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("ResetPeer(connections=")
    assert caught.value.parameter == "connections"


def test_a_selector_is_part_of_the_fault_and_reads_like_its_call() -> None:
    assert ResetPeer(connections=range(2)) == ResetPeer(connections="0-1")
    assert hash(ResetPeer(connections={0, 1})) == hash(ResetPeer(connections="0-1"))
    assert repr(ResetPeer(connections=[0, 1])) == "ResetPeer(connections='0-1')"
    assert isinstance(ResetPeer(connections=1).connections, Ordinals)
    # Without a selector, a fault is what it always was (its seeded draws too).
    assert repr(Latency(0.1)) == "Latency(delay=0.1)"


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("reset_peer,connections=0-1", ResetPeer(connections="0-1")),
        ("reset_peer,connections=0,2,5-", ResetPeer(connections="0,2,5-")),
        (
            "latency=0.1,connections=every 3,direction=upstream",
            Latency(0.1, connections="every 3", direction="upstream"),
        ),
        ("refuse,connections=0", Refuse(connections=0)),
        ("blackhole", Blackhole()),
        ("accept_delay=0.5", AcceptDelay(0.5)),
        ("accept-then-close", AcceptThenClose()),
        ("accept_then_reset,toxicity=0.5", AcceptThenReset(toxicity=0.5)),
        ("never_read", NeverRead()),
        ("no_reply", NoReply()),
        ("reset_peer,after_bytes=10", ResetPeer(after_bytes=10)),
    ],
)
def test_parse_targeted_faults(text: str, fault: Any) -> None:
    assert parse_fault(text) == fault


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("blackhole,connections=1", "Blackhole concerns the whole proxy"),
        ("refuse,direction=upstream", r"Refuse\(direction='upstream'\): Refuse strikes"),
        ("accept_delay=1,after_bytes=3", "strikes before any byte flows"),
        ("no_reply,direction=both", r"its direction is 'downstream'"),
        ("refuse=1", "Refuse takes no main value"),
        ("reset_peer,after_bytes=-1", r"after_bytes=-1\) is out of range"),
        ("reset_peer,connections=0,x", "'x' is not an ordinal"),
    ],
)
def test_bad_targeted_faults_are_clear(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_fault(text)


def test_connection_faults_go_where_they_mean_something_and_after_bytes_is_for_streams(
    make_server: Any,
) -> None:
    with pytest.raises(UsageError, match=r"Blackhole\(\) cannot strike a server's accepted"):
        make_server(EchoHandler, "tcp", faults=[Blackhole()])
    server = make_server(EchoHandler, "udp")
    with pytest.raises(UsageError, match="after_bytes, framer and messages cut a stream"):
        FaultProxy(server.address, "udp", [Latency(0.1, after_bytes=3)])


# -- which connection -----------------------------------------------------------------------------


def _outcomes(address: Any, count: int, kind: str = "tcp") -> list[str]:
    outcomes = []
    for _ in range(count):
        try:
            with connect(address, kind, timeout=5) as client:
                outcomes.append(client.request(b"hi\n").decode().strip() or "closed")
        except ConnectionClosed:
            outcomes.append("closed")
        except ConnectionResetError:
            outcomes.append("reset")
        except BrokenPipeError:
            outcomes.append("broken pipe")
    return outcomes


@pytest.mark.parametrize("seed", [0, 7])
def test_refuse_the_first_two_connections_then_succeed(make_server: Any, seed: int) -> None:
    server = make_server(LineEchoHandler)
    with FaultProxy(server.address, "tcp", [Refuse(connections="0-1")], seed=seed) as proxy:
        assert _outcomes(proxy.address, 4) == ["reset", "reset", "hi", "hi"]
        events = proxy.timeline.events
        assert [(e.connection, e.effect) for e in events] == [
            (0, "refused a connection"),
            (1, "refused a connection"),
        ]
        assert proxy.stats.connections == 4
        assert proxy.unfired() == []


def test_every_third_connection_is_reset_as_it_is_accepted(make_server: Any) -> None:
    server = make_server(LineEchoHandler)
    with FaultProxy(server.address, "tcp", [AcceptThenReset(connections="every 3")]) as proxy:
        assert _outcomes(proxy.address, 7) == ["hi", "hi", "reset", "hi", "hi", "reset", "hi"]


def test_a_stream_fault_on_chosen_connections_only(make_server: Any) -> None:
    server = make_server(LineEchoHandler)
    with FaultProxy(server.address, "tcp", [LimitData(0, connections=[1, 3])]) as proxy:
        assert _outcomes(proxy.address, 5) == ["hi", "closed", "hi", "closed", "hi"]


def test_a_selector_in_process_counts_the_servers_accepted_connections(make_server: Any) -> None:
    server = make_server(LineEchoHandler, "tcp", faults=[LimitData(0, connections="1")])
    assert _outcomes(server.address, 3) == ["hi", "closed", "hi"]


def test_a_selector_on_a_faulty_client_counts_its_connections(make_server: Any) -> None:
    server = make_server(LineEchoHandler, "tcp")
    seen = []
    for _ in range(3):
        with server.connect(faults=[LimitData(0, connections="2", direction="upstream")]) as c:
            c.send(b"hi\n")
            c.shutdown_write()
            seen.append(c.recv_all())
    assert seen == [b"hi\n", b"hi\n", b""]


def test_datagram_faults_select_peers_by_ordinal(make_server: Any) -> None:
    server = make_server(EchoHandler, "udp")
    with FaultProxy(server.address, "udp", [Loss(1.0, connections="1")]) as proxy:
        first = connect(proxy.address, "udp", timeout=0.5)
        second = connect(proxy.address, "udp", timeout=0.5)
        with first, second:
            assert first.request(b"peer 0") == b"peer 0"
            second.send(b"peer 1")
            with pytest.raises(TimeoutError):
                second.recv(100)
            assert first.request(b"peer 0 again") == b"peer 0 again"


def test_a_selector_past_the_last_connection_is_reported_never_fired(make_server: Any) -> None:
    server = make_server(LineEchoHandler)
    with FaultProxy(server.address, "tcp", [Refuse(connections="5-")]) as proxy:
        assert _outcomes(proxy.address, 2) == ["hi", "hi"]
        (report,) = proxy.unfired()
    assert report == (
        "Refuse(connections='5-') never fired: connections=5- starts at connection 5 "
        "(ordinals count from 0), and only 2 connections were made"
    )


# -- a third-party client's retries ---------------------------------------------------------------


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize("fault", [AcceptThenReset(connections="0-1"), Refuse(connections="0-1")])
def test_urllib3_retries_exactly_the_connections_that_were_reset(
    make_server: Any, fault: Any
) -> None:
    server = make_server(_Hello, "tcp", server_class=http.server.ThreadingHTTPServer)
    with FaultProxy(server.address, "tcp", [fault]) as proxy:
        host, port = proxy.address
        retries = urllib3.Retry(total=3, connect=3, read=3, backoff_factor=0)
        with urllib3.HTTPConnectionPool(host, port, retries=retries, maxsize=1) as pool:
            response = pool.request("GET", "/", timeout=5)
        assert (response.status, response.data) == (200, b"hello")
        assert proxy.stats.connections == 3  # Two reset, the third served.
        assert len(proxy.timeline.events) == 2


def test_urllib3_gives_up_when_every_connection_is_refused(make_server: Any) -> None:
    server = make_server(_Hello, "tcp", server_class=http.server.ThreadingHTTPServer)
    with FaultProxy(server.address, "tcp", [Refuse()]) as proxy:
        host, port = proxy.address
        retries = urllib3.Retry(total=2, backoff_factor=0)
        with urllib3.HTTPConnectionPool(host, port, retries=retries, maxsize=1) as pool:
            with pytest.raises(urllib3.exceptions.MaxRetryError):
                pool.request("GET", "/", timeout=5)
        assert proxy.stats.connections == 3  # The first try and two retries.


# -- the connection phase -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_blackhole_connect_never_completes_until_removed(make_server: Any, kind: str) -> None:
    server = make_server(LineEchoHandler, kind)
    with FaultProxy(server.address, kind, [Blackhole()]) as proxy:
        family = socket.AF_INET if kind == "tcp" else socket.AF_UNIX
        # A TCP client waits out its timeout (its SYNs are dropped); a Unix one with a
        # timeout is told at once that the listener's queue is full (EAGAIN).
        expected = TimeoutError if kind == "tcp" else BlockingIOError
        for _ in range(3):
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.3)
                with pytest.raises(expected):
                    sock.connect(proxy.address)
        if kind == "tcp":
            with pytest.raises(TimeoutError):
                socket.create_connection(proxy.address, timeout=0.3)
        assert proxy.unfired() == []
        assert [e.effect for e in proxy.timeline.events] == [
            "blackholed new connections (the listener's backlog is full)"
        ]
        proxy.clear()
        assert _outcomes(proxy.address, 2, kind) == ["hi", "hi"]
        # The proxy's own filler connection is neither counted nor relayed.
        assert proxy.stats.connections == 2


def test_blackhole_added_while_running_and_by_scope(make_server: Any) -> None:
    server = make_server(LineEchoHandler)
    with FaultProxy(server.address, "tcp") as proxy:
        assert _outcomes(proxy.address, 1) == ["hi"]
        with proxy.faults(Blackhole()):
            with pytest.raises(TimeoutError):
                socket.create_connection(proxy.address, timeout=0.3)
        assert _outcomes(proxy.address, 1) == ["hi"]


def test_accept_delay_takes_the_connection_up_late(make_server: Any) -> None:
    server = make_server(LineEchoHandler)
    with FaultProxy(server.address, "tcp", [AcceptDelay(0.3, connections="0")]) as proxy:
        started = time.monotonic()  # Before connecting: the proxy accepts after this.
        with connect(proxy.address) as client:
            assert client.request(b"late\n") == b"late\n"
            assert time.monotonic() - started >= 0.3
        with connect(proxy.address) as client:  # Connection 1: not chosen.
            assert client.request(b"now\n") == b"now\n"
    assert [e.effect for e in proxy.timeline.events] == ["took the connection up 0.3 s late"]


def test_a_delayed_connection_is_closed_with_the_proxy(make_server: Any) -> None:
    server = make_server(LineEchoHandler)
    proxy = FaultProxy(server.address, "tcp", [AcceptDelay(30)])
    with connect(proxy.address) as client:
        client.send(b"never relayed\n")
        proxy.close()
        # Closed with data unread: the kernel makes that a reset; either way, it ends.
        try:
            assert client.recv_all() == b""
        except ConnectionResetError:
            pass
    assert proxy.stats.active == 0


def test_accept_then_close_gives_the_end_of_the_stream(make_server: Any) -> None:
    server = make_server(RecordingHandler)
    with FaultProxy(server.address, "tcp", [AcceptThenClose()]) as proxy:
        with connect(proxy.address) as client:
            client.send(b"lost\n")
            assert client.recv_all() == b""
    assert server.received == []  # Nothing reached the server.


def test_never_read_leaves_the_client_hanging(make_server: Any) -> None:
    server = make_server(RecordingHandler)
    with FaultProxy(server.address, "tcp", [NeverRead()]) as proxy:
        with socket.create_connection(proxy.address, timeout=0.5) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            with pytest.raises(TimeoutError):
                sock.recv(10)
            with pytest.raises(TimeoutError):  # The buffers fill; the sends block.
                for _ in range(10_000):
                    sock.sendall(b"x" * 65536)
    assert server.received == []


def test_no_reply_the_request_arrives_and_nothing_comes_back(make_server: Any) -> None:
    server = make_server(RecordingHandler)
    with FaultProxy(server.address, "tcp", [NoReply()]) as proxy:
        with connect(proxy.address, timeout=0.5) as client:
            client.send(b"anyone there?")
            client.shutdown_write()
            assert server.wait_received(1) == [b"anyone there?"]
            with pytest.raises(TimeoutError):
                client.recv(100)


def test_no_reply_in_process_on_the_server_side(make_server: Any) -> None:
    server = make_server(EchoHandler, "tcp", faults=[NoReply()])
    with server.connect(timeout=0.5) as client:
        client.send(b"ping")
        with pytest.raises(TimeoutError):
            client.recv(100)


# -- a byte offset --------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["proxy", "in process"])
def test_reset_after_bytes_cuts_the_reply_at_that_byte(make_server: Any, where: str) -> None:
    fault = ResetPeer(after_bytes=6, direction="downstream")
    if where == "proxy":
        server = make_server(LineEchoHandler)
        proxy = FaultProxy(server.address, "tcp", [fault])
        address = proxy.address
    else:
        server = make_server(LineEchoHandler, "tcp", faults=[fault])
        server.expect_errors(ConnectionResetError, BrokenPipeError)
        proxy = None
        address = server.address
    try:
        with connect(address) as client:
            assert client.request(b"abc\n") == b"abc\n"  # 4 bytes: before the trigger.
            client.send(b"defg\n")
            got = b""
            with pytest.raises(ConnectionResetError):
                while True:
                    piece = client.recv(100)
                    if not piece:
                        break
                    got += piece
            assert got == b"de"  # Bytes 5 and 6 of the reply, then the reset.
    finally:
        if proxy is not None:
            proxy.close()


def test_latency_after_bytes_leaves_the_first_bytes_alone(make_server: Any) -> None:
    server = make_server(LineEchoHandler)
    fault = Latency(0.3, after_bytes=4, direction="upstream")
    with FaultProxy(server.address, "tcp", [fault]) as proxy, connect(proxy.address) as client:
        started = time.monotonic()
        assert client.request(b"abc\n") == b"abc\n"
        first = time.monotonic() - started
        started = time.monotonic()
        assert client.request(b"def\n") == b"def\n"
        second = time.monotonic() - started
    assert second >= 0.25
    assert first < second
    assert [e.effect for e in proxy.timeline.events] == ["delayed 4 bytes by 0.3000 s"]


def test_a_trigger_never_reached_is_reported(make_server: Any) -> None:
    server = make_server(LineEchoHandler)
    with FaultProxy(server.address, "tcp", [ResetPeer(after_bytes=1000)]) as proxy:
        assert _outcomes(proxy.address, 1) == ["hi"]
        (report,) = proxy.unfired()
    assert report.startswith("ResetPeer(after_bytes=1000) never fired (planned on")


# -- scoping --------------------------------------------------------------------------------------


def test_faults_for_the_length_of_a_block_even_when_it_fails(make_server: Any) -> None:
    server = make_server(LineEchoHandler)
    with FaultProxy(server.address, "tcp", [Latency(0.01)]) as proxy:
        with pytest.raises(RuntimeError), proxy.faults(LimitData(0)) as added:
            assert added == (LimitData(0),)
            assert proxy.faults == (Latency(0.01), LimitData(0))
            assert _outcomes(proxy.address, 1) == ["closed"]
            raise RuntimeError("the block failed")
        assert proxy.faults == (Latency(0.01),)
        with proxy.down():
            assert _outcomes(proxy.address, 1) == ["reset"]
        assert _outcomes(proxy.address, 1) == ["hi"]
        assert proxy.faults == (Latency(0.01),)


def test_the_fault_proxy_fixture_scopes_faults(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from sockharness.faults import Refuse
        from sockharness.handlers import LineEchoHandler

        def test_retry_once(make_server, fault_proxy, make_client):
            server = make_server(LineEchoHandler)
            proxy = fault_proxy(server.address)
            with proxy.faults(Refuse(connections="0")):
                attempts = 0
                while True:
                    attempts += 1
                    try:
                        with make_client(proxy.address) as client:
                            assert client.request(b"hi\\n") == b"hi\\n"
                            break
                    except ConnectionResetError:
                        assert attempts < 3
            assert attempts == 2
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1)


# -- the command line and scenario files ----------------------------------------------------------


@contextlib.contextmanager
def _proxy_command(server: RunningServer, fault: str) -> Iterator[tuple[str, int]]:
    """``sockharness proxy --fault FAULT`` in front of ``server``: its first line, its port."""
    process = subprocess.Popen(
        [
            sys.executable, "-m", "sockharness", "proxy",
            "--upstream", f"127.0.0.1:{server.address[1]}", "--fault", fault,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        line = read_line(process)
        yield line, int(line.split(" at 127.0.0.1:")[1].split(" ")[0])
    finally:
        process.terminate()
        process.communicate(timeout=10)


def test_the_proxy_command_takes_selectors_and_connection_faults(make_server: Any) -> None:
    server: RunningServer = make_server(LineEchoHandler)
    with _proxy_command(server, "refuse,connections=0,2") as (line, port):
        assert "[Refuse(connections='0,2')]" in line, line
        assert _outcomes(("127.0.0.1", port), 4) == ["reset", "hi", "reset", "hi"]


def test_a_scenario_refuses_the_first_connections(tmp_path: Any) -> None:
    from sockharness.chaos import load_scenario, run_scenario

    path = tmp_path / "refuse.toml"
    path.write_text(
        """
[scenario]
name = "retries"
duration = 0.6

[server]
handler = "echo"

[[clients]]
count = 1
pattern = "connect-per-request"
rate = 20

[[faults]]
fault = "refuse"
connections = [0, 1]

[expect]
max_error_rate = 1.0
"""
    )
    scenario = load_scenario(path)
    assert scenario.faults[0].fault == Refuse(connections="0-1")
    result = run_scenario(scenario, seed=1)
    assert result.fired == [True]
    assert result.count("error") == 2  # The first two connections, and only they.
    assert result.count("ok") >= 3


def _scenario_with_fault(path: Any, fault_lines: str) -> None:
    path.write_text(
        '[scenario]\nname = "x"\nduration = 1\n[server]\nhandler = "echo"\n'
        f"[[clients]]\ncount = 1\n[[faults]]\n{fault_lines}\n"
    )


def test_a_scenario_puts_connection_faults_on_the_proxy(tmp_path: Any) -> None:
    from sockharness.chaos import ScenarioError, load_scenario

    path = tmp_path / "bad.toml"
    _scenario_with_fault(path, 'fault = "blackhole"\nside = "server"')
    with pytest.raises(
        ScenarioError,
        match=r"bad.toml:10: faults\[0\].side: Blackhole cannot strike on side = 'server': "
        r"use side = 'client' or 'proxy'",
    ):
        load_scenario(path)
    _scenario_with_fault(path, 'fault = "refuse"\nconnections = "first"')
    with pytest.raises(
        ScenarioError, match=r"faults\[0\].connections: .*'first' is not an ordinal"
    ):
        load_scenario(path)


# -- strategies -----------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(chosen=ordinal_sets(), ordinal=st.integers(0, 20))
def test_ordinal_sets_round_trip_through_text(chosen: Ordinals, ordinal: int) -> None:
    again = ordinals(str(chosen))
    assert again == chosen
    assert (ordinal in again) == (ordinal in chosen)


@settings(max_examples=40, deadline=None)
@given(fault=st.one_of(connection_faults(), stream_faults()))
def test_drawn_faults_print_as_text_that_parses_back(fault: Any) -> None:
    assert parse_fault(_as_text(fault)) == fault


def _as_text(fault: Any) -> str:
    import dataclasses

    parts = [type(fault).name]
    for field in dataclasses.fields(fault):
        value = getattr(fault, field.name)
        if value == field.default or field.name in fault.implied:
            continue  # Defaults, and what the fault sets itself, go unsaid.
        if field.name == "framer":
            value = framer_name(value)
        parts.append(f"{field.name}={'none' if value is None else value}")
    return ",".join(parts)


# -- nothing left behind --------------------------------------------------------------------------


@contextlib.contextmanager
def _threads_stay() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        threading.Event().wait(0.01)
    assert set(threading.enumerate()) - before == set()


def test_held_connections_are_closed_with_the_proxy() -> None:
    with _threads_stay(), start_server(LineEchoHandler) as server:
        proxy = FaultProxy(server.address, "tcp", [NeverRead(connections="0"), Blackhole()])
        proxy.remove(Blackhole())
        sock = socket.create_connection(proxy.address, timeout=2)
        with sock:
            # Held once the proxy took it up (a connection still in the listener's
            # queue when the proxy closes is reset by the kernel instead).
            wait_for(lambda: len(proxy.timeline.events) == 2, what="the connection held")
            proxy.close()
            assert sock.recv(10) == b""
        assert [e.effect for e in proxy.timeline.events] == [
            "blackholed new connections (the listener's backlog is full)",
            "accepted the connection and never read from it",
        ]


# -- your own fault -------------------------------------------------------------------------------

USER_FAULTS = """
import dataclasses

from sockharness import UsageError
from sockharness.faults import DATAGRAM, STREAM, Fault, StreamEffect


class _Rot13(StreamEffect):
    def data(self, plan, stage, items):
        out = []
        for at, data in items:
            plan.record(stage, at, f"rotated {len(data)} bytes")
            out.append((at, bytes((b - 97 + 13) % 26 + 97 if 97 <= b <= 122 else b for b in data)))
        return out, []


def _drop_odd(plan, stage, at, data, index):
    if index % 2:
        plan.record(stage, at, f"dropped datagram {index}")
        return []
    return [(at, data)]


@dataclasses.dataclass(frozen=True, repr=False)
class Rot13(Fault):
    times: int = 1
    transports = frozenset({STREAM, DATAGRAM})
    stream_effect = _Rot13()
    datagram_effect = staticmethod(_drop_odd)

    def validate(self):
        if self.times != 1:
            raise UsageError(f"Rot13(times={self.times!r}): only once", parameter="times",
                             value=self.times)


@dataclasses.dataclass(frozen=True, repr=False)
class NoEffect(Fault):
    transports = frozenset({STREAM})
"""


@pytest.fixture
def user_faults(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """A user's module of faults, importable as ``userfaults`` (here and in subprocesses)."""
    (tmp_path / "userfaults.py").write_text(USER_FAULTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    return str(tmp_path)


def test_a_users_fault_in_process_and_through_the_proxy(make_server: Any, user_faults: str) -> None:
    from sockharness.faults import fault_class

    rot13 = fault_class("userfaults:Rot13")
    server = make_server(LineEchoHandler, "tcp", faults=[rot13(direction="downstream")])
    with server.connect() as client:
        assert client.request(b"hello\n") == b"uryyb\n"
    assert [e.effect for e in server.fault_timeline.events] == ["rotated 6 bytes"]
    plain = make_server(LineEchoHandler, "tcp")
    fault = rot13(direction="upstream", connections="1")
    with FaultProxy(plain.address, "tcp", [fault]) as proxy:
        assert _outcomes(proxy.address, 2) == ["hi", "uv"]
    with pytest.raises(UsageError, match=r"Rot13\(times=2\): only once"):
        rot13(times=2)


def test_a_users_datagram_effect(make_server: Any, user_faults: str) -> None:
    from sockharness.faults import fault_class

    server = make_server(EchoHandler, "udp")
    with FaultProxy(server.address, "udp", [fault_class("userfaults:Rot13")()]) as proxy:
        with connect(proxy.address, "udp", timeout=0.5) as client:
            assert client.request(b"zero") == b"zero"
            client.send(b"one")  # Datagram 1: dropped.
            with pytest.raises(TimeoutError):
                client.recv(100)


def test_a_users_fault_without_an_effect_is_a_clear_error(
    make_server: Any, user_faults: str
) -> None:
    from sockharness.faults import fault_class

    server = make_server(LineEchoHandler, "tcp")
    with pytest.raises(UsageError, match="says it works on streams but has no stream_effect"):
        FaultProxy(server.address, "tcp", [fault_class("userfaults:NoEffect")()])
    with pytest.raises(UsageError, match="could not be imported: ModuleNotFoundError"):
        parse_fault("nosuchmodule:Fault")
    with pytest.raises(UsageError, match="is not a fault class"):
        parse_fault("userfaults:dataclasses")


def test_a_users_fault_on_the_command_line(make_server: Any, user_faults: str) -> None:
    server: RunningServer = make_server(LineEchoHandler)
    with _proxy_command(server, "userfaults:Rot13,direction=downstream") as (line, port):
        assert "[Rot13(direction='downstream')]" in line, line
        assert _outcomes(("127.0.0.1", port), 1) == ["uv"]
    bad = subprocess.run(
        [sys.executable, "-m", "sockharness", "proxy", "--upstream", "127.0.0.1:9",
         "--fault", "userfaults:Rot13,times=3"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.strip().endswith("Rot13(times=3): only once"), bad.stderr
    assert bad.stderr.count("\n") == 1


def test_a_users_fault_in_a_scenario_file(tmp_path: Any, user_faults: str) -> None:
    from sockharness.chaos import ScenarioError, load_scenario

    path = tmp_path / "own.toml"
    _scenario_with_fault(path, 'fault = "userfaults:Rot13"\ndirection = "downstream"')
    (window,) = load_scenario(path).faults
    assert repr(window.fault) == "Rot13(direction='downstream')"
    _scenario_with_fault(path, 'fault = "userfaults:Rot13"\ntimes = 5')
    with pytest.raises(ScenarioError, match=r"faults\[0\].times: Rot13\(times=5\): only once"):
        load_scenario(path)
    _scenario_with_fault(path, 'fault = "userfaults:Missing"')
    with pytest.raises(ScenarioError, match=r"faults\[0\].fault: .*could not be imported"):
        load_scenario(path)


# -- a running server's counters -----------------------------------------------------------------


@pytest.mark.parametrize("concurrency", ["sync", "threading", "forking"])
def test_a_server_counts_the_connections_it_accepted(make_server: Any, concurrency: str) -> None:
    server = make_server(LineEchoHandler, "tcp", concurrency=concurrency)
    with FaultProxy(server.address, "tcp", [Refuse(connections="1")]) as proxy:
        assert _outcomes(proxy.address, 3) == ["hi", "reset", "hi"]
    assert _outcomes(server.address, 2) == ["hi", "hi"]
    # The proxy refused connection 1 itself: the server accepted the other four.
    assert server.stats.connections == 4
    assert (server.stats.datagrams, server.stats.datagram_bytes_received) == (0, 0)


def test_a_datagram_server_counts_datagrams_and_bytes(make_server: Any) -> None:
    server = make_server(EchoHandler, "udp")
    with server.connect() as client:
        for payload in (b"one", b"three"):
            assert client.request(payload) == payload
    assert server.stats.datagrams == 2
    assert server.stats.datagram_bytes_received == len(b"one") + len(b"three")
    assert server.stats.connections == 0


# -- the connection phase in the process ----------------------------------------------------------


@pytest.mark.parametrize("concurrency", ["sync", "threading", "forking"])
def test_a_server_refuses_its_first_two_connections(make_server: Any, concurrency: str) -> None:
    server = make_server(
        LineEchoHandler, "tcp", concurrency=concurrency, faults=[Refuse(connections="0-1")]
    )
    assert _outcomes(server.address, 4) == ["reset", "reset", "hi", "hi"]
    assert [e.effect for e in server.fault_timeline.events] == [
        "refused the connection as it was accepted"
    ] * 2
    assert server.unfired_faults() == []


def test_a_server_closes_holds_and_takes_up_late(make_server: Any) -> None:
    faults = [
        AcceptThenClose(connections="0"),
        NeverRead(connections="1"),
        AcceptDelay(0.3, connections="2"),
    ]
    server = make_server(LineEchoHandler, "tcp", concurrency="threading", faults=faults)
    assert _outcomes(server.address, 1) == ["closed"]
    with socket.create_connection(server.address, timeout=0.3) as held:
        held.sendall(b"hello\n")
        with pytest.raises(TimeoutError):
            held.recv(10)
    started = time.monotonic()
    assert _outcomes(server.address, 1) == ["hi"]
    assert time.monotonic() - started >= 0.3
    assert _outcomes(server.address, 1) == ["hi"]  # Connection 3: untouched.


def test_a_client_is_refused_blackholed_or_late(make_server: Any) -> None:
    server = make_server(LineEchoHandler, "tcp")
    with pytest.raises(ConnectionRefusedError):
        server.connect(faults=[Refuse(connections="0")])
    with server.connect(faults=[Refuse(connections="0")]) as client:  # Its connection 1.
        assert client.request(b"ok\n") == b"ok\n"
    with pytest.raises(TimeoutError):  # Certain to time out: at once, in virtual time.
        server.connect(timeout=0.3, faults=[Blackhole()])
    started = time.monotonic()
    with server.connect(faults=[AcceptDelay(0.2)]) as client:
        assert time.monotonic() - started >= 0.2
        assert client.request(b"late\n") == b"late\n"
    effects = [e.effect for e in server.fault_timeline.events]
    assert effects == [
        "refused the connect()",
        "the connect() never completed (blackhole) (at once, in virtual time: 0.3 s skipped)",
        "the connect() completed 0.2 s late",
    ]


def test_a_client_cannot_have_what_only_a_server_does(make_server: Any) -> None:
    server = make_server(LineEchoHandler, "tcp")
    with pytest.raises(UsageError, match=r"NeverRead\(\) cannot strike a client's own connection"):
        server.connect(faults=[NeverRead()])


def test_the_faults_in_force_copy_and_pickle_as_a_plain_tuple(make_server: Any) -> None:
    import copy
    import pickle

    server = make_server(LineEchoHandler)
    with FaultProxy(server.address, "tcp", [Latency(0.01)]) as proxy:
        faults = proxy.faults
        for again in (copy.copy(faults), copy.deepcopy(faults), pickle.loads(pickle.dumps(faults))):
            assert again == (Latency(0.01),)
            assert type(again) is tuple


def test_a_blackhole_removed_and_added_again_at_once_holds(make_server: Any) -> None:
    server = make_server(LineEchoHandler)
    with FaultProxy(server.address, "tcp") as proxy:
        for _ in range(3):
            proxy.add(Blackhole())
            proxy.clear()
        proxy.add(Blackhole())
        with pytest.raises(TimeoutError):
            socket.create_connection(proxy.address, timeout=0.3)
        proxy.clear()
        assert _outcomes(proxy.address, 2) == ["hi", "hi"]
        assert proxy.stats.connections == 2
