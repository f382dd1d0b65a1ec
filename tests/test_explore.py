"""Bounded-exhaustive exploration of one exchange, against handlers healthy and broken."""

from __future__ import annotations

import http.client
import http.server
import socket
import socketserver
import subprocess
import sys
import threading
from typing import Any

import pytest

from sockharness import UsageError
from sockharness.explore import (
    POINTS,
    Case,
    ExplorationFailed,
    Outcome,
    escape_request,
    exchanges,
    parse_case,
    parse_points,
)
from sockharness.handlers import EchoHandler, LineEchoHandler

REQUEST = b"SET 12345 " + b"x" * 53 + b"\n"  # 64 bytes.


class OneReadIsOneMessage(socketserver.BaseRequestHandler):
    """Takes whatever one recv() returns for the whole request: wrong when it is cut."""

    def handle(self) -> None:
        data = self.request.recv(1024)
        self.request.sendall(data.upper())


class ParsesBeforeChecking(socketserver.StreamRequestHandler):
    """Parses the line before checking it is whole: a cut request crashes it."""

    def handle(self) -> None:
        line = self.rfile.readline()
        count = int(line.split(b" ")[1])
        self.wfile.write(b"OK %d\n" % count)


release = threading.Event()


class WaitsForTheRest(socketserver.BaseRequestHandler):
    """Waits for the 64 bytes it expects even after the client ended its side: a hang."""

    def handle(self) -> None:
        data = b""
        while len(data) < len(REQUEST):
            piece = self.request.recv(1024)
            if not piece:
                release.wait(10)  # Hung, until the test lets it go.
                return
            data += piece
        self.request.sendall(b"done\n")


class HangsOnASecondRequest(socketserver.StreamRequestHandler):
    """Answers one line; a second one on the same connection hangs it."""

    def handle(self) -> None:
        self.wfile.write(self.rfile.readline())
        if self.rfile.readline():
            release.wait(10)


# -- cases ----------------------------------------------------------------------------------------


def test_every_case_of_a_healthy_handler_holds_in_sync_and_threading_servers() -> None:
    for concurrency in ("sync", "threading"):
        exploration = exchanges(LineEchoHandler, REQUEST, concurrency=concurrency)
        assert exploration.ok, exploration.format()
        # 63 splits, 64 coalescings, 64 client closes and resets, 64 server closes and resets.
        assert len(exploration.outcomes) == 63 + 64 * 5
        assert (exploration.request_size, exploration.reply_size) == (64, 64)
        assert exploration.format().endswith("every case held")


# 383 cases, each a fork of this worker: 3.3 s in a bare interpreter, 8.4 s there
# beside four CPU burners, about 6 s in a pytest worker, and past the default 60 s
# once when two whole suites ran at once on two cores. The bound follows the load.
@pytest.mark.timeout(180)
def test_every_case_of_a_healthy_handler_holds_when_forking() -> None:
    # Every point: a client-reset case once hung under load, as a child forked
    # while the client was closing kept its socket (tests/test_fork_safety.py).
    exploration = exchanges(LineEchoHandler, REQUEST, concurrency="forking")
    assert exploration.ok, exploration.format()
    assert len(exploration.outcomes) == 63 + 64 * 5


def test_the_cases_are_every_offset_of_every_point() -> None:
    exploration = exchanges(EchoHandler, b"abc")
    names = [str(outcome.case) for outcome in exploration.outcomes]
    assert names == [
        "split:1", "split:2",
        "coalesce:1", "coalesce:2", "coalesce:3",
        "client-close:0", "client-close:1", "client-close:2",
        "client-reset:0", "client-reset:1", "client-reset:2",
        "server-close:0", "server-close:1", "server-close:2",
        "server-reset:0", "server-reset:1", "server-reset:2",
    ]  # fmt: skip
    by_case = {str(o.case): o for o in exploration.outcomes}
    # What the client got is what each case says.
    assert by_case["split:1"].reply == b"abc"
    assert by_case["coalesce:2"].reply == b"abcabc"
    assert by_case["client-close:2"].reply == b"ab"
    assert by_case["server-close:2"].reply == b"ab"
    assert by_case["server-reset:1"].reply == b"a"
    assert isinstance(by_case["server-reset:1"].error, ConnectionResetError)


def test_a_handler_that_takes_one_read_for_the_request_fails_every_split() -> None:
    exploration = exchanges(OneReadIsOneMessage, REQUEST, points="split,coalesce")
    failed = [str(outcome.case) for outcome in exploration.failures]
    # Every split; every coalescing but the one where both requests come whole.
    assert failed == [f"split:{k}" for k in range(1, 64)] + [f"coalesce:{j}" for j in range(1, 64)]
    first = exploration.failures[0]
    assert first.failure == f"the reply was b'S', not {REQUEST.upper()[:60]!r} (+4 bytes)"
    with pytest.raises(ExplorationFailed, match=r"126 failed\n  split:1 ") as raised:
        exploration.raise_if_failed()
    assert raised.value.exploration is exploration


def test_a_handler_that_crashes_on_a_cut_request_is_caught_at_the_cut() -> None:
    exploration = exchanges(ParsesBeforeChecking, REQUEST)
    failed = {str(o.case): o.failure for o in exploration.failures}
    # "SET" and "SET " have no count to parse, "SET 1" to "SET 12345" parse: a cut
    # before byte 5 crashes the handler; a reset is an OSError (allowed).
    assert failed == {
        "client-close:0": "the handler raised IndexError: list index out of range",
        "client-close:1": "the handler raised IndexError: list index out of range",
        "client-close:2": "the handler raised IndexError: list index out of range",
        "client-close:3": "the handler raised IndexError: list index out of range",
        "client-close:4": "the handler raised ValueError: invalid literal for int() with "
        "base 10: b''",
    }
    line = exploration.replay(exploration.failures[0].case)
    assert line == (
        "sockharness explore tests.test_explore:ParsesBeforeChecking --kind tcp "
        f"--concurrency threading --request '{escape_request(REQUEST)}' --case client-close:0"
    )


def test_a_hanging_handler_is_a_failure_with_its_reason_not_a_hang() -> None:
    release.clear()
    try:
        exploration = exchanges(
            WaitsForTheRest, REQUEST, cases=["client-close:10", "split:3"], timeout=0.3,
            block_on_close=False,
        )  # fmt: skip
    finally:
        release.set()
    (hung,) = exploration.outcomes
    assert hung.failure == (
        "a handler was still running 0.3 s after the client was done (it waits for bytes "
        "that never come, or never ends)"
    )
    # The exploration stops there: the hung handler may hold the server.
    assert exploration.not_run == [Case("split", 3)]
    assert "stopped at client-close:10, which hung: 1 case not run" in exploration.format()


def test_a_hang_on_two_requests_in_a_row_fails_the_baseline_of_coalesce() -> None:
    release.clear()
    try:
        exploration = exchanges(
            HangsOnASecondRequest, b"one\n", points="coalesce", timeout=0.3,
            block_on_close=False,
        )  # fmt: skip
    finally:
        release.set()
    assert exploration.outcomes == []
    assert exploration.baseline.failure == (
        "the request sent twice, one after the other (what coalesce cases are compared "
        "with), did not end: a handler was still running 0.3 s after the client was done"
    )
    assert not exploration.ok


def test_allowed_errors_are_configurable() -> None:
    exploration = exchanges(
        ParsesBeforeChecking,
        REQUEST,
        points=["client-close"],
        expected_errors=(OSError, IndexError, ValueError),
    )
    assert exploration.ok, exploration.format()
    # But never in a split, where nothing went wrong: any error there is a failure.
    assert not exchanges(OneReadIsOneMessage, REQUEST, cases=["split:1"]).ok


def test_a_users_check_sees_every_outcome_and_fails_the_case() -> None:
    seen: list[Outcome] = []

    def check(outcome: Outcome) -> None:
        seen.append(outcome)
        if outcome.case.point == "server-close":
            assert outcome.reply == REQUEST, "the reply was cut short"

    exploration = exchanges(LineEchoHandler, REQUEST, points="server-close", check=check)
    assert len(seen) == 64 + 1  # The baseline, then each case.
    assert seen[0].case == Case(None)
    assert len(exploration.failures) == 64
    assert str(exploration.failures[0].failure).startswith(
        "check: AssertionError: the reply was cut short"
    )


def test_a_failing_baseline_stops_before_any_case() -> None:
    exploration = exchanges(ParsesBeforeChecking, b"nonsense\n")
    assert exploration.outcomes == []
    assert exploration.failures == [exploration.baseline]
    assert "the exchange fails with no case applied" in exploration.format()
    assert "IndexError" in str(exploration.baseline.failure)


# -- a client of the user's own, against a real program ------------------------------------------


class _Page(http.server.BaseHTTPRequestHandler):
    """An http.server app: one page, closing the connection after it (no keep-alive)."""

    def do_GET(self) -> None:
        body = b"<p>hello</p>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _get(address: Any) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(*address, timeout=2)
    try:
        connection.request("GET", "/")
        with connection.getresponse() as response:
            return response.status, response.read()
    finally:
        connection.close()


def test_a_real_http_client_against_an_http_server_app_at_every_cut_of_the_reply() -> None:
    def whole_or_an_error(outcome: Outcome) -> None:
        if outcome.error is None:
            assert outcome.result == (200, b"<p>hello</p>"), "a cut reply passed for whole"

    exploration = exchanges(
        _Page,
        client=_get,
        check=whole_or_an_error,
        expected_errors=(OSError, http.client.HTTPException),
    )
    # The sizes come from the server's counters: the request http.client sent, the reply.
    assert exploration.request_size > 30
    points = {outcome.case.point for outcome in exploration.outcomes}
    assert points == {"split", "server-close", "server-reset"}
    errors = {type(o.error).__name__ for o in exploration.outcomes if o.error is not None}
    assert {"RemoteDisconnected", "IncompleteRead", "BadStatusLine"} <= errors
    # What it finds in http.client: a reply closed inside its header section, once
    # the status line is through, is taken for a whole one with an empty body (an
    # HTTP/1.0 reply with no Content-Length yet: its body runs to the close).
    headers = exploration.reply_size - len(b"<p>hello</p>")
    failed = exploration.failures
    assert failed
    assert {o.case.point for o in failed} == {"server-close"}
    assert all(len(b"HTTP/1.0 200") <= o.case.offset < headers for o in failed)
    assert all(o.result == (200, b"") for o in failed)
    # Cut anywhere in the body, it raises IncompleteRead: those cases hold.
    body = [o for o in exploration.outcomes if o.case.point == "server-close"][headers:]
    assert body
    assert all(isinstance(o.error, http.client.IncompleteRead) for o in body)


def test_a_client_that_takes_a_cut_reply_for_whole_is_caught() -> None:
    def reads_to_the_close(address: Any) -> bytes:
        # Ignores Content-Length: takes whatever came before the close.
        with socket.create_connection(address, timeout=2) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
            return data.split(b"\r\n\r\n", 1)[-1]

    exploration = exchanges(
        _Page,
        client=reads_to_the_close,
        points="server-close",
        check=lambda o: _assert_equal(o.result, b"<p>hello</p>"),
    )
    assert exploration.failures  # Every close inside the body passed a cut body as whole.
    assert all(o.case.point == "server-close" for o in exploration.failures)


def _assert_equal(got: Any, expected: Any) -> None:
    assert got == expected, f"{got!r} != {expected!r}"


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"request": "text"}, "request must be bytes"),
        ({"request": b""}, "request is empty"),
        ({"request": b"x", "client": _get}, "not both"),
        ({"request": b"x", "points": "split,bogus"}, "'bogus' is not a point"),
        ({"request": b"x", "cases": ["split"]}, "'split' is not a case"),
        ({"request": b"xy", "cases": ["split:2"]}, "offsets of split: 1 to 1"),
        ({"client": _get, "points": "coalesce"}, "need the built-in client"),
        ({"request": b"x", "kind": "udp"}, "stream kinds"),
        ({"request": b"x", "timeout": 0}, "positive number of seconds"),
    ],
)
def test_bad_arguments_are_one_clear_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        exchanges(LineEchoHandler, **kwargs)


def test_case_names_and_points_read_back() -> None:
    assert parse_case("split:17") == Case("split", 17)
    assert str(parse_case("server_reset:0")) == "server-reset:0"
    assert str(parse_case("baseline")) == "baseline"
    assert parse_points(None) == POINTS
    assert parse_points("client_reset, split") == ("client-reset", "split")
    assert escape_request(b"a\\b\r\n\t\x00\xff") == "a\\\\b\\r\\n\\t\\x00\\xff"


# -- the command line ----------------------------------------------------------------------------


def _explore(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sockharness", "explore", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_command_finds_the_bug_and_its_replay_line_replays_it() -> None:
    found = _explore(
        "tests.test_explore:ParsesBeforeChecking", "--request", escape_request(REQUEST)
    )
    assert found.returncode == 1, found.stderr
    assert "explored 273 cases of ParsesBeforeChecking (tcp, threading)" in found.stdout
    assert "  client-close:0  the handler raised IndexError" in found.stdout
    replay = found.stdout.splitlines()[-1].removeprefix("replay the first: ")
    words = replay.split(" ", 2)
    assert words[:2] == ["sockharness", "explore"]
    again = subprocess.run(
        [sys.executable, "-m", "sockharness", "explore", *_shell_words(words[2])],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 1
    assert "explored 1 case of ParsesBeforeChecking" in again.stdout
    assert "client-close:0  the handler raised IndexError" in again.stdout


def _shell_words(text: str) -> list[str]:
    import shlex

    return shlex.split(text)


def test_the_command_passes_a_healthy_handler(tmp_path: Any) -> None:
    request = tmp_path / "request"
    request.write_bytes(b"hello\r\n")
    held = _explore(
        "sockharness.handlers:LineEchoHandler", "--request-file", str(request), "--kind", "unix"
    )
    assert held.returncode == 0, held.stdout + held.stderr
    assert held.stdout.strip().endswith("every case held")
    hexed = _explore(
        "sockharness.handlers:EchoHandler", "--request-hex", "6869", "--points", "split"
    )
    assert hexed.returncode == 0
    assert "explored 1 case of EchoHandler" in hexed.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope.nowhere:Handler", "--request", "x"], "handler 'nope.nowhere:Handler' could not"),
        (["sockharness.handlers:Payloads", "--request", "x"], "could not be imported"),
        (["sockharness.faults:Latency", "--request", "x"], "is not a request handler class"),
        (["sockharness.handlers:EchoHandler"], "give the request once"),
        (["sockharness.handlers:EchoHandler", "--request", "a", "--request-hex", "61"], "once"),
        (["sockharness.handlers:EchoHandler", "--request-hex", "6g"], "not hexadecimal"),
        (["sockharness.handlers:EchoHandler", "--request", "\\u1234"], "write bytes as"),
        (["sockharness.handlers:EchoHandler", "--request", "a", "--case", "x:1"], "not a case"),
        (["sockharness.handlers:EchoHandler", "--request", "a", "--expect-error", "Nope"],
         "not an exception class"),
        (["sockharness.handlers:EchoHandler", "--request", "a", "--timeout", "0"],
         "not a positive number"),
    ],
)  # fmt: skip
def test_bad_command_lines_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    bad = _explore(*args)
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert message in bad.stderr
    assert bad.stderr.count("\n") == 1
    assert "Traceback" not in bad.stderr


# -- from pytest ---------------------------------------------------------------------------------


def test_the_fixture_fails_the_test_with_the_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import socketserver
        from sockharness.handlers import LineEchoHandler

        class OneRead(socketserver.BaseRequestHandler):
            def handle(self):
                self.request.sendall(self.request.recv(1024))

        def test_healthy(explore_exchanges):
            exploration = explore_exchanges(LineEchoHandler, b"hello\\n")
            assert len(exploration.outcomes) == 5 + 6 * 5

        def test_broken(explore_exchanges):
            explore_exchanges(OneRead, b"hello\\n", points="split")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*ExplorationFailed: explored 5 cases of OneRead (tcp, threading)*: 5 failed",
            "*split:1  the reply was b'h', not b'hello\\n'",
            "*replay the first: sockharness explore test_the_fixture_fails_the_test_with_the_"
            "report:OneRead --kind tcp --concurrency threading --request 'hello\\n' --case split:1",
        ]
    )
