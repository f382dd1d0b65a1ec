"""The conformance suite: green on ours and the stdlib, catches broken servers, runs every way."""

from __future__ import annotations

import json
import os
import socketserver as stdlib
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

import sockharness.server as ours
from sockharness.conformance import (
    PROPERTIES,
    TargetError,
    check,
    resolve_target,
    run_property,
)
from sockharness.conformance._target import describe_class

OUR_CLASSES = [sut.name for sut in resolve_target(ours)]
STDLIB_CLASSES = [sut.name for sut in resolve_target(stdlib)]


@pytest.mark.parametrize("name", OUR_CLASSES)
def test_every_class_of_ours_passes_the_ci_profile(name: str) -> None:
    report = check(getattr(ours, name), profile="ci")
    assert report.passed, report.table()
    statuses = {result.property: result.status for result in report.results}
    assert set(statuses) == set(PROPERTIES)


@pytest.mark.parametrize("name", STDLIB_CLASSES)
def test_every_class_of_the_stdlib_passes_with_its_own_shutdown_bound(name: str) -> None:
    # The default bound is the poll interval plus slack: the stdlib's natural one.
    report = check(getattr(stdlib, name), profile="ci")
    assert report.passed, report.table()


def test_a_module_target_covers_every_concrete_server_class() -> None:
    names = set(OUR_CLASSES)
    assert "BaseServer" not in names
    assert "ThreadingMixIn" not in names
    assert {"TCPServer", "UDPServer", "UnixStreamServer", "ForkingUnixDatagramServer"} <= names
    assert len(names) == 12


def test_kind_and_concurrency_are_detected_from_the_bases() -> None:
    class Mine(stdlib.ThreadingMixIn, stdlib.UnixDatagramServer):
        pass

    sut = describe_class(Mine)
    assert (sut.kind.name, sut.concurrency) == ("unix_dgram", "threading")


BROKEN = [
    ("ImpatientCloseServer", "block_on_close", "server_close() returned while"),
    ("HangingShutdownServer", "shutdown", "shutdown() did not return within"),
    ("SkipsFinishServer", "handler_lifecycle", "finish() was never called"),
    ("ZombieForkingServer", "forking", "zombies remain after every request completed"),
    ("ForgetfulThreadingServer", "threading", "finished threads accumulate"),
]


@pytest.mark.parametrize(("name", "prop", "message"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_servers_are_caught_under_the_right_property(
    name: str, prop: str, message: str
) -> None:
    report = check(f"sockharness.conformance.broken:{name}", [prop], profile="quick")
    [result] = report.results
    assert result.status == "FAIL"
    assert message in result.message
    assert "Failing test case" in result.counterexample
    assert f"--property {prop}" in result.replay(report.target)
    assert "FAIL" in report.table()


def test_the_stateful_model_finds_a_broken_lifecycle_as_a_sequence_of_steps() -> None:
    report = check("sockharness.conformance.broken:SkipsFinishServer", ["stateful"], profile="ci")
    [result] = report.results
    assert result.status == "FAIL"
    assert "not setup, handle, finish" in result.message
    assert "state.request(fails=True)" in result.counterexample


def test_properties_that_do_not_apply_are_na_with_a_reason() -> None:
    report = check("sockharness.server:TCPServer", ["forking", "threading", "datagram"])
    assert [r.status for r in report.results] == ["n/a", "n/a", "n/a"]
    assert report.results[0].message == "not a forking server"
    assert report.passed


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no.such.module", "cannot import 'no.such.module'"),
        ("sockharness.server:NoSuchClass", "has no 'NoSuchClass'"),
        ("sockharness.handlers:EchoHandler", "is not a socketserver-compatible server class"),
        ("json", "'json' has no server classes to check"),
    ],
)
def test_bad_targets_are_clear_errors(target: str, message: str) -> None:
    with pytest.raises(TargetError, match=message):
        check(target)


def test_bad_properties_and_profiles_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="'shutdwn' is not a conformance property"):
        check("sockharness.server:TCPServer", ["shutdwn"])
    with pytest.raises(ValueError, match="profile='hard' is not one of"):
        check("sockharness.server:TCPServer", profile="hard")


def test_reports_as_json_and_junit_xml() -> None:
    report = check(
        "sockharness.conformance.broken:SkipsFinishServer",
        ["handler_lifecycle", "forking"],
        profile="quick",
    )
    data = json.loads(report.to_json())
    assert data["passed"] is False
    assert [r["status"] for r in data["results"]] == ["FAIL", "n/a"]
    suite = ET.fromstring(report.to_junit_xml())
    assert suite.get("tests") == "2"
    assert suite.get("failures") == "1"
    assert suite.get("skipped") == "1"
    [failure] = suite.iter("failure")
    assert "finish() was never called" in (failure.get("message") or "")


def test_a_randomized_run_replays_by_its_seed() -> None:
    sut = describe_class(ours.TCPServer)
    first = run_property(sut, PROPERTIES["timeout"], profile="thorough", seed=1234)
    again = run_property(sut, PROPERTIES["timeout"], profile="thorough", seed=1234)
    assert first.seed == again.seed == 1234
    assert first.status == again.status == "pass"


def test_the_command_prints_the_table_and_exits_by_outcome(tmp_path: os.PathLike[str]) -> None:
    def conform(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sockharness", "conform", *args],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip

    json_path = os.path.join(tmp_path, "r.json")
    xml_path = os.path.join(tmp_path, "r.xml")
    ok = conform("sockharness.server:ThreadingTCPServer", "--profile", "quick",
                 "--json", json_path, "--junit-xml", xml_path)  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "ThreadingTCPServer" in ok.stdout
    assert "1 server class, 10 properties: all hold" in ok.stdout
    with open(json_path) as f:
        assert json.load(f)["passed"] is True
    assert ET.parse(xml_path).getroot().get("failures") == "0"
    failing = conform("sockharness.conformance.broken:ForgetfulThreadingServer",
                      "--property", "threading", "--profile", "quick")  # fmt: skip
    assert failing.returncode == 1
    assert "FAIL ForgetfulThreadingServer.threading" in failing.stdout
    assert "replay: sockharness conform" in failing.stdout
    bad = conform("not_a_module_anywhere")
    assert bad.returncode == 2
    assert "cannot import 'not_a_module_anywhere'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_pytest_collects_the_suite_for_a_target(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "-v",
        "--sockharness-conformance=sockharness.conformance.broken:ForgetfulThreadingServer",
        "--sockharness-conformance-profile=quick",
    )  # fmt: skip
    result.assert_outcomes(passed=6, failed=2, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "*ForgetfulThreadingServer*threading FAILED*",
            "*ForgetfulThreadingServer fails threading: the server still tracks*",
        ]
    )


def test_a_downstream_project_subclasses_the_base_class(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import socketserver
        from sockharness.conformance import ServerConformance

        class MyServer(socketserver.ThreadingTCPServer):
            daemon_threads = True

        class TestMyServer(ServerConformance):
            server_class = MyServer
            conformance_profile = "quick"
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-v", "-rs")
    result.assert_outcomes(passed=8, skipped=2)
    result.stdout.fnmatch_lines(["*forking does not apply: not a forking server*"])


def test_a_tight_shutdown_bound_separates_ours_from_the_stdlib() -> None:
    mine = check(ours.ThreadingTCPServer, ["shutdown"], profile="quick", shutdown_bound=0.2)
    theirs = check(stdlib.ThreadingTCPServer, ["shutdown"], profile="ci", shutdown_bound=0.2)
    assert mine.passed, mine.table()
    assert not theirs.passed
    assert "shutdown() did not return within 0.20 s" in theirs.results[0].message
