"""`sockharness proxy` as a subprocess, fault parsing, and the fault_proxy fixture (pytester)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from sockharness import RunningServer, UsageError, connect
from sockharness.faults import (
    Down,
    Latency,
    Loss,
    Reorder,
    ResetPeer,
    Timeout,
    fault_from_mapping,
    parse_fault,
)
from sockharness.handlers import LineEchoHandler
from tests.test_cli_serve import read_line

# -- parsing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("latency=0.1", Latency(0.1)),
        (
            "latency=0.1,jitter=0.02,direction=upstream",
            Latency(0.1, jitter=0.02, direction="upstream"),
        ),
        ("Reset-Peer=2", ResetPeer(2)),
        ("timeout", Timeout()),
        ("timeout=none", Timeout(None)),
        ("timeout=1.5", Timeout(1.5)),
        ("down", Down()),
        ("loss=0.2,toxicity=0.5", Loss(0.2, toxicity=0.5)),
        ("reorder=0.3,delay=0.05", Reorder(0.3, delay=0.05)),
    ],
)
def test_parse_fault(text: str, fault: Any) -> None:
    assert parse_fault(text) == fault


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("latncy=0.1", "'latncy' is not a fault. Did you mean 'latency'"),
        ("latency=0.1,jiter=0.01", "Latency has no parameter 'jiter'. Did you mean"),
        ("reorder=0.2", "Reorder needs delay"),
        ("latency=-1", r"Latency\(delay=-1\) is out of range"),
        ("down=1", "Down takes no main value"),
        ("latency=0.1,oops", "'oops' in 'latency=0.1,oops' is not param=value"),
        ("", "an empty fault"),
    ],
)
def test_parse_errors_are_clear(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_fault(text)


def test_from_a_mapping() -> None:
    assert fault_from_mapping("loss", {"probability": 0.1, "correlation": 0.5}) == Loss(0.1, 0.5)
    with pytest.raises(UsageError, match="Loss needs probability"):
        fault_from_mapping("loss", {})


# -- the command ----------------------------------------------------------------------------------


def test_the_proxy_command_relays_with_faults_and_stops_cleanly(
    make_server: Any,
) -> None:
    server: RunningServer = make_server(LineEchoHandler)
    process = subprocess.Popen(
        [
            sys.executable, "-m", "sockharness", "proxy",
            "--upstream", f"127.0.0.1:{server.address[1]}",
            "--fault", "latency=0.1,direction=upstream",
            "--seed", "3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    line = read_line(process)
    assert line.startswith("sockharness: proxy tcp at 127.0.0.1:")
    assert "[Latency(delay=0.1, direction='upstream')] (seed 3)" in line
    port = int(line.split(" at 127.0.0.1:")[1].split(" ")[0])
    with connect(("127.0.0.1", port)) as client:
        started = time.monotonic()
        assert client.request(b"through the proxy\n") == b"through the proxy\n"
        assert time.monotonic() - started >= 0.1
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=10)
    assert process.returncode == 0
    assert err == ""
    assert "sockharness: stopped after 1 connection, 18 bytes up, 18 bytes down" in out


def test_the_proxy_command_on_unix_datagrams(make_server: Any, sock_dir: str) -> None:
    server: RunningServer = make_server(LineEchoHandler, "unix_dgram")
    listen = f"{sock_dir}/proxy.sock"
    process = subprocess.Popen(
        [sys.executable, "-m", "sockharness", "proxy", "--kind", "unix-dgram",
         "--listen", listen, "--upstream", server.address, "--fault", "truncate=3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert read_line(process).startswith(f"sockharness: proxy unix_dgram at {listen} -> ")
    with connect(listen, "unix_dgram") as client:
        assert client.request(b"abcdef") == b"abc"
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "1 flow," in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--upstream", "127.0.0.1"], "--upstream '127.0.0.1' is not host:port"),
        (["--upstream", "127.0.0.1:x"], "has no port number"),
        (
            ["--upstream", "127.0.0.1:1", "--fault", "loss=0.1"],
            "is a datagram fault; tcp is a stream",
        ),
        (["--upstream", "127.0.0.1:1", "--fault", "nope"], "'nope' is not a fault"),
        (
            ["--upstream", "127.0.0.1:1", "--listen", "127.0.0.1:99999"],
            "99999 is not a port number",
        ),
        (["--upstream", "127.0.0.1:0"], "port 0 cannot be connected to"),
        (["--upstream", "127.0.0.1:1", "--seed", "-5"], "-5 is not a seed"),
        (
            ["--kind", "unix", "--upstream", "/tmp/" + "u" * 200],
            "over the platform's limit of",
        ),
        (
            ["--kind", "unix", "--upstream", "/tmp/x.sock", "--listen", "/tmp/" + "l" * 200],
            "--listen '/tmp/lll",
        ),
        (
            ["--upstream", "127.0.0.1:9", "--fault", "refuse,connections=two"],
            "'two' is not an ordinal or a range",
        ),
        (
            ["--upstream", "127.0.0.1:9", "--fault", "small_recv=1"],
            "only a faulty socket in the process applies it",
        ),
        (
            ["--upstream", "127.0.0.1:9", "--network-profile", "dialup"],
            "'dialup' is not a network profile",
        ),
    ],
)
def test_bad_proxy_arguments(args: list[str], message: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "sockharness", "proxy", *args],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert completed.returncode == 2
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr
    assert len(completed.stderr.strip().splitlines()) == 1, completed.stderr


def test_the_command_says_its_version() -> None:
    from importlib.metadata import version

    completed = subprocess.run(
        [sys.executable, "-m", "sockharness", "--version"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert completed.returncode == 0
    assert completed.stdout.strip() == f"sockharness {version('sockharness')}"


# -- the fixture ----------------------------------------------------------------------------------


def test_fault_proxy_fixture_as_a_downstream_project_uses_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_chaos="""
        import time
        import pytest
        from sockharness.faults import Latency, LimitData, ResetPeer
        from sockharness.handlers import LineEchoHandler

        def test_latency(make_server, fault_proxy, make_client):
            server = make_server(LineEchoHandler)
            proxy = fault_proxy(server, faults=[Latency(0.05)])
            client = make_client(proxy.address)
            started = time.monotonic()
            assert client.request(b"hi\\n") == b"hi\\n"
            assert time.monotonic() - started >= 0.1

        def test_vacuous(make_server, fault_proxy, make_client):
            server = make_server(LineEchoHandler)
            proxy = fault_proxy(server.address, "tcp", [ResetPeer(after=30)])
            assert make_client(proxy.address).request(b"hi\\n") == b"hi\\n"

        def test_failing_shows_the_timeline(make_server, fault_proxy, make_client):
            server = make_server(LineEchoHandler)
            proxy = fault_proxy(server, faults=[Latency(0.01)])
            assert make_client(proxy.address).request(b"hi\\n") == b"hi\\n"
            assert False, "the test fails on its own"
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--sockharness-seed", "5")
    result.assert_outcomes(passed=2, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*UnfiredFaults: faults that never fired*",
            "*ResetPeer(after=30) never fired (planned on 2 connection directions)*",
            "*- sockharness fault timeline <FaultProxy tcp*",
            "*conn 0   upstream   Latency(delay=0.01): delayed 3 bytes by 0.0100 s*",
            "sockharness seed: 5 (replay with --sockharness-seed 5)",
        ]
    )
    relaxed = pytester.runpytest(
        "-p", "no:cacheprovider", "--sockharness-unfired=off", "-k", "vacuous"
    )
    relaxed.assert_outcomes(passed=1)


def test_a_down_proxy_that_refused_connections_fired(pytester: pytest.Pytester) -> None:
    """Unfired detection comes from what the fault did: Down refused three connections."""
    pytester.makepyfile(
        test_down="""
        import time
        import pytest
        from sockharness import connect
        from sockharness.faults import Down
        from sockharness.handlers import LineEchoHandler

        def test_refused_three_times(make_server, fault_proxy):
            server = make_server(LineEchoHandler)
            proxy = fault_proxy(server, faults=[Down()])
            for _ in range(3):
                with pytest.raises(OSError):
                    with connect(proxy.address, timeout=2) as client:
                        client.request(b"hi\\n")
            deadline = time.monotonic() + 5
            while len(proxy.timeline.events) < 3 and time.monotonic() < deadline:
                time.sleep(0.005)  # The proxy's thread writes its timeline after the reset.
            assert [e.effect for e in proxy.timeline.events] == ["refused a connection"] * 3

        def test_down_with_no_connection_never_fired(make_server, fault_proxy):
            server = make_server(LineEchoHandler)
            fault_proxy(server, faults=[Down()])
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*Down() never fired: no connection was made*"])
    assert "test_refused_three_times ERROR" not in result.stdout.str()


def test_a_toxicity_that_picked_no_connection_says_why(make_server: Any) -> None:
    from sockharness.faults import FaultProxy
    from sockharness.faults._plans import picks

    server = make_server(LineEchoHandler)
    fault = ResetPeer(after=30, toxicity=0.1)
    seed = next(s for s in range(100) if not picks(s, 0, 0, fault))
    with FaultProxy(server.address, "tcp", [fault], seed=seed) as proxy:
        before = proxy.unfired()
        with connect(proxy.address) as client:
            assert client.request(b"hi\n") == b"hi\n"
        proxy.close()
        (report,) = proxy.unfired()
    assert before == [f"{fault!r} never fired: no connection was made"]
    assert "applied to none of the 1 connection (direction, toxicity)" in report
    assert "toxicity picks whole connections, not bytes or messages" in report
    assert "connect-per-request" in report
