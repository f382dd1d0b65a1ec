"""What the plugin reports: leaks by mode, seeds, stuck servers, and runs under pytest-xdist."""

from __future__ import annotations

import re

import pytest

from tests.helpers import SUBPROCESSES_TIMEOUT

LEAKY = """
    import threading
    import pytest
    from sockharness.server import BaseRequestHandler

    RELEASE = threading.Event()

    class Lingering(BaseRequestHandler):
        def handle(self):
            self.request.sendall(b"hi\\n")
            RELEASE.wait(30)  # Outlives the server: a leaked handler thread.

    def teardown_module():
        RELEASE.set()

    def test_leaky(make_server):
        server = make_server(Lingering, block_on_close=False)
        with server.connect() as client:
            assert client.recv_line() == b"hi\\n"
"""


def run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_downstream=source)
    return pytester.runpytest("-p", "no:cacheprovider", "--sockharness-stop-timeout", "0.5", *args)


def test_a_leak_fails_the_test_in_fail_mode(pytester: pytest.Pytester) -> None:
    result = run(pytester, LEAKY, "--sockharness-leaks=fail")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*LeakError: <RunningServer ThreadingTCPServer tcp 127.0.0.1:* left things behind:*",
            "*threads still running: 'Thread-* (process_request_thread)' (daemon=False), "
            "a handler thread*",
            "*sockharness seed: *",
        ]
    )
    assert "yield factory" not in result.stdout.str()  # The fixture's source is hidden.


def test_a_leak_warns_by_default(pytester: pytest.Pytester) -> None:
    # (-W: this suite itself turns warnings into errors; a user's run would not.)
    result = run(pytester, LEAKY, "-W", "default::UserWarning")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        ["*LeakWarning: <RunningServer*left things behind:*", "*threads still running*"]
    )


def test_leaks_off_says_nothing(pytester: pytest.Pytester) -> None:
    result = run(pytester, LEAKY, "--sockharness-leaks=off")
    result.assert_outcomes(passed=1)
    assert "LeakWarning" not in result.stdout.str()


def test_the_ini_option_sets_the_default(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nsockharness_leaks = fail\n")
    result = run(pytester, LEAKY)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*leaks=fail*", "*LeakError*"])


def test_a_bad_ini_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nsockharness_leaks = sometimes\n")
    result = run(pytester, "def test_x(): pass")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*sockharness_leaks = 'sometimes' is not one of fail, warn, off*"])


HANDLER_MADE = """
    import socket
    import threading
    import pytest
    from sockharness.server import BaseRequestHandler

    RELEASE = threading.Event()
    KEPT = []

    class StartsAThread(BaseRequestHandler):
        def handle(self):
            # A worker that outlives the server, started from a thread it starts.
            def starter():
                threading.Thread(target=RELEASE.wait, args=(30,), name="forgotten").start()
            spawner = threading.Thread(target=starter, name="spawner")
            spawner.start()
            spawner.join()
            self.request.sendall(b"ok\\n")

    class OpensASocket(BaseRequestHandler):
        def handle(self):
            # A connection to somewhere else, never closed (kept referenced).
            KEPT.append(socket.create_connection(self.server.elsewhere))
            self.request.sendall(b"ok\\n")

    @pytest.fixture
    def elsewhere():
        with socket.create_server(("127.0.0.1", 0)) as listener:
            yield listener.getsockname()

    def teardown_module():
        RELEASE.set()

    def test_thread(make_server):
        server = make_server(StartsAThread)
        with server.connect() as client:
            assert client.recv_line() == b"ok\\n"

    def test_socket(make_server, elsewhere):
        server = make_server(OpensASocket, elsewhere=elsewhere)
        with server.connect() as client:
            assert client.recv_line() == b"ok\\n"

    def test_own_things_are_not_blamed(make_server, elsewhere):
        own_thread = threading.Thread(target=RELEASE.wait, args=(30,), name="the test's own")
        own_thread.start()
        own_socket = socket.create_connection(elsewhere)
        server = make_server(StartsAThread)
        with server.connect() as client:  # The handler's thread ends here: nothing of its own.
            assert client.recv_line() == b"ok\\n"
        RELEASE.set()
        own_thread.join()
        own_socket.close()
"""


def test_what_handlers_start_or_open_and_leave_behind_is_theirs(pytester: pytest.Pytester) -> None:
    result = run(pytester, HANDLER_MADE, "--sockharness-leaks=fail", "-p", "no:randomly")
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_thread*",
            "*threads still running: 'forgotten' (daemon=False), started by a handler*",
            "*ERROR at teardown of test_socket*",
            "*sockets still open: fd * AF_INET stream ('127.0.0.1', *), "
            "opened by a handler (now closed)*",
        ]
    )
    assert "the test's own" not in result.stdout.str()


def test_a_zombie_child_is_reported_and_reaped(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import os
        from sockharness.server import ForkingTCPServer
        from sockharness.handlers import LineEchoHandler

        class NeverReaps(ForkingTCPServer):
            def collect_children(self, *, blocking=False):
                pass  # A broken forking server: its children become zombies.

        PIDS = []

        def test_leaky_child(make_server):
            server = make_server(LineEchoHandler, server_class=NeverReaps)
            with server.connect() as client:
                assert client.request(b"hi\\n") == b"hi\\n"
            PIDS.extend(server.server.active_children)

        def test_the_zombie_was_reaped():
            [pid] = PIDS
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            else:
                raise AssertionError("the harness left the zombie behind")
        """,
        "--sockharness-leaks=fail",
    )
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*LeakError*NeverReaps*left things behind:*",
            "*child processes not reaped: pid * (zombie)*",
        ]
    )


def test_a_server_that_never_stops_errors_without_hanging_the_run(
    pytester: pytest.Pytester,
) -> None:
    result = run(
        pytester,
        """
        import threading
        from sockharness.server import BaseRequestHandler

        RELEASE = threading.Event()

        class Stuck(BaseRequestHandler):
            def handle(self):
                self.request.sendall(b"stuck\\n")
                RELEASE.wait(30)

        def teardown_module():
            RELEASE.set()

        def test_stuck(make_server):
            server = make_server(Stuck, concurrency="sync")
            with server.connect() as client:
                assert client.recv_line() == b"stuck\\n"
        """,
    )
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ServerStopTimeout*",
            "*the server did not stop within 0.5 s: a handler is still running*",
        ]
    )


def test_the_seed_and_the_handler_errors_are_in_a_failed_tests_report(
    pytester: pytest.Pytester,
) -> None:
    result = run(
        pytester,
        """
        from sockharness.handlers import CrashHandler

        def test_fails_and_crashes(make_server):
            server = make_server(CrashHandler, concurrency="sync")
            with server.connect() as client:
                client.send(b"x")
                client.recv_all()
            assert 1 == 2, "the test's own failure"
        """,
        "--sockharness-seed",
        "1234",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: the test's own failure*",
            "*- sockharness handler errors -*",
            "*HandlerCrash: CrashHandler crashed on purpose*",
            "*- sockharness -*",
            "sockharness seed: 1234 (replay with --sockharness-seed 1234)",
        ]
    )


@pytest.mark.parametrize("exit_exception", ["SystemExit", "KeyboardInterrupt"])
@pytest.mark.parametrize("concurrency", ["sync", "threading", "forking"])
def test_exiting_exceptions_in_handlers_are_reported_too(
    pytester: pytest.Pytester, exit_exception: str, concurrency: str
) -> None:
    result = run(
        pytester,
        f"""
        from sockharness.server import BaseRequestHandler

        class Exits(BaseRequestHandler):
            def handle(self):
                self.request.recv(10)
                raise {exit_exception}("from the handler")

        def test_exits(make_server):
            server = make_server(Exits, concurrency={concurrency!r})
            with server.connect() as client:
                client.send(b"x")
                client.recv_all()
        """,
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) + outcomes.get("errors", 0) >= 1, outcomes
    result.stdout.fnmatch_lines([f"*{exit_exception}: from the handler*"])


def test_ipv6_kinds_skip_with_a_reason_where_there_is_no_ipv6_loopback(
    pytester: pytest.Pytester,
) -> None:
    result = run(
        pytester,
        """
        import sockharness.harness._running as running
        from sockharness.handlers import EchoHandler

        def test_v6(make_server, monkeypatch):
            monkeypatch.setattr(running, "has_ipv6_loopback", lambda: False)
            make_server(EchoHandler, "tcp6")
        """,
        "-rs",
    )
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*kind='tcp6' needs an IPv6 loopback address (::1)*"])


XDIST_SOURCE = """
    import os
    import pytest
    from sockharness.handlers import RecordingHandler

    @pytest.mark.parametrize("n", range(12))
    def test_many(make_server, payloads, n, any_kind):
        server = make_server(RecordingHandler, any_kind)
        message = payloads.line()
        with server.connect() as client:
            assert client.request(message) == message
        out = os.path.join(os.environ["OUT"], f"{n}-{any_kind}")
        with open(out, "w") as f:
            f.write(message.hex())

    @pytest.fixture(params=["tcp", "udp", "unix", "unix_dgram"])
    def any_kind(request):
        return request.param
"""


# A serial and an xdist session in subprocesses: 11-35 s beside a CPU burner.
@SUBPROCESSES_TIMEOUT
def test_under_xdist_results_and_data_match_a_serial_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_downstream=XDIST_SOURCE)
    common = ["-p", "no:cacheprovider", "--sockharness-seed", "99", "-v"]
    outputs = {}
    for name, extra in [("serial", []), ("parallel", ["-n", "2"])]:
        out = pytester.mkdir(f"out-{name}")
        monkeypatch.setenv("OUT", str(out))
        result = pytester.runpytest_subprocess(*extra, *common)
        result.assert_outcomes(passed=48)
        result.stdout.fnmatch_lines(["*sockharness: seed 99 *"])
        outputs[name] = {p.name: p.read_text() for p in out.iterdir()}
        if extra:
            assert re.search(r"\[gw1\] .*PASSED", result.stdout.str())  # Both workers ran.
    assert len(outputs["serial"]) == 48
    # Same seed, same tests: the same data on every test, whichever worker ran it.
    assert outputs["parallel"] == outputs["serial"]


def test_failure_reports_are_short_and_fold_identical_errors(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest
        from sockharness.server import BaseRequestHandler

        class Refuses(BaseRequestHandler):
            def handle(self):
                self.request.recv(1)
                raise ConnectionResetError(104, "reset on purpose")

        @pytest.mark.parametrize("kind", ["tcp", "unix"])
        def test_many_resets(make_server, kind):
            server = make_server(Refuses, kind, concurrency="sync")
            for _ in range(11):
                with server.connect() as client:
                    client.send(b"x")
                    assert client.recv_all() == b""
        """,
        "-p",
        "no:randomly",
    )
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*sockharness.HandlerErrors: 11 handler errors in <RunningServer TCPServer tcp *",
            "*11 \u00d7 ConnectionResetError: [[]Errno 104[]] reset on purpose (the first of them;"
            " from 127.0.0.1:*",
            "*11 \u00d7 ConnectionResetError: [[]Errno 104[]] reset on purpose (the first of them;"
            " from a Unix client (unnamed)*",
        ]
    )
    # One per server, not 22. Counted in the failure sections only: on CI (the CI
    # variable set) pytest repeats each whole message in the short summary.
    failures = out.split("short test summary info")[0]
    assert failures.count("Traceback (most recent call last)") == 2
    assert "sockharness._core" not in out
    assert "def make_server(" not in out  # The fixture's source is not shown.
    assert "yield factory" not in out
