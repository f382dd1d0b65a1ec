"""The steady-state lifecycle: a probe before the faults (``not steady``), during them
(``abort_when``: ``aborted``) and after them (recovery within ``max_recovery_time``).

Each verdict is shown to fail on a subject broken in that phase, and to hold on a
healthy one; the reports carry the phases.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from sockharness.chaos import (
    ScenarioError,
    ScenarioResult,
    json_report,
    parse_scenario,
    render_html,
    run_scenario,
)


def _scenario(body: str, *, duration: float = 1.2) -> str:
    head = f'[scenario]\nname = "steady"\nduration = {duration}\nseed = 3\n'
    return head + textwrap.dedent(body)


def _run(text: str) -> ScenarioResult:
    return run_scenario(parse_scenario(text, "steady.toml"))


def _phases(result: ScenarioResult) -> dict[str, str]:
    return {invariant.name: invariant.phase for invariant in result.invariants}


ECHO = """
[server]
handler = "echo"

[[clients]]
count = 2
rate = 40
timeout = 0.5
"""


# -- before -----------------------------------------------------------------------------------


def test_a_healthy_service_holds_through_every_phase() -> None:
    result = _run(
        _scenario(
            ECHO
            + """
            [[faults]]
            fault = "latency"
            delay = 0.2
            at = 0.3
            until = 0.6

            [steady_state]
            samples = 3
            interval = 0.05
            max_latency = 0.1
            max_recovery_time = 0.5
            """
        )
    )
    assert result.result == "held", result.failure_message()
    phases = _phases(result)
    assert phases["steady_before"] == "before"
    assert phases["recovered"] == "after"
    assert phases["intact_outside_faults"] == "during"
    steady = result.steady
    assert steady is not None
    assert {sample.phase for sample in steady.samples} >= {"before", "during"}
    assert sum(1 for sample in steady.samples if sample.phase == "before") == 3
    # The latency fault slowed the probe past max_latency, and it recovered once it ended.
    assert steady.recovery_time is not None
    assert 0 <= steady.recovery_time <= 0.5
    assert steady.faults_ended is not None
    assert result.clock_started is not None
    assert steady.faults_ended - result.clock_started == pytest.approx(0.6, abs=0.05)


def test_a_service_broken_before_the_faults_is_not_steady_and_gets_no_fault() -> None:
    result = _run(
        _scenario(
            """
            [server]
            handler = "tests.chaos_apps:BadRequestApp"

            [[clients]]
            protocol = "http"
            expect_status = 200

            [[faults]]
            fault = "latency"
            delay = 0.1

            [steady_state]
            samples = 2
            interval = 0.05
            """
        )
    )
    assert result.result == "not steady", result.failure_message()
    assert result.failed
    assert [i.name for i in result.broken] == ["steady_before"]
    assert result.broken[0].phase == "before"
    assert "400" in result.broken[0].detail
    assert result.messages == []  # No load ran...
    assert result.fired == [False]  # ...and no fault was injected.
    assert "not steady before the faults" in result.failure_message()


def test_a_probe_slower_than_max_latency_is_not_steady() -> None:
    result = _run(
        _scenario(
            """
            [server]
            handler = "slow"
            handler_delay = 0.1

            [[clients]]
            timeout = 1.0

            [steady_state]
            samples = 2
            interval = 0.05
            max_latency = 0.02
            """
        )
    )
    assert result.result == "not steady", result.failure_message()
    assert "took longer than 20 ms" in result.broken[0].detail


def test_a_probe_of_its_own_judges_the_steady_state_not_the_load() -> None:
    # The load speaks HTTP to a healthy app; the probe asks for a status it never gives.
    result = _run(
        _scenario(
            """
            [server]
            handler = "tests.chaos_apps:HealthyApp"

            [[clients]]
            protocol = "http"

            [steady_state]
            samples = 2
            interval = 0.05

            [steady_state.probe]
            protocol = "http"
            path = "/health"
            expect_status = 204
            """
        )
    )
    assert result.result == "not steady", result.failure_message()
    assert "corrupt" in result.broken[0].detail


# -- during -----------------------------------------------------------------------------------


def test_abort_when_stops_the_run_and_takes_the_faults_away() -> None:
    result = _run(
        _scenario(
            ECHO
            + """
            [[faults]]
            fault = "reset_peer"
            at = 0.2

            [expect]
            intact_outside_faults = false

            [steady_state]
            samples = 2
            interval = 0.05

            [steady_state.abort_when]
            error_rate = 0.5
            window = 0.3
            """,
            duration=5.0,
        )
    )
    assert result.result == "aborted", result.failure_message()
    assert [i.name for i in result.broken] == ["not_aborted"]
    steady = result.steady
    assert steady is not None
    assert steady.aborted is not None
    assert "abort_when.error_rate = 50%" in steady.aborted
    assert steady.aborted_at is not None
    assert result.clock_started is not None
    assert steady.aborted_at - result.clock_started < 2.0  # Long before the 5 s end.
    assert result.elapsed < 4.0
    # The faults went with the abort: the steady state came back at once.
    assert steady.recovery_time is not None
    assert steady.recovery_time < 0.5
    assert max(m.sent for m in result.messages) < 2.0


def test_abort_when_that_never_comes_true_holds() -> None:
    result = _run(
        _scenario(
            ECHO
            + """
            [steady_state]
            samples = 2
            interval = 0.05

            [steady_state.abort_when]
            error_rate = 0.5
            window = 0.3
            """
        )
    )
    assert result.result == "held", result.failure_message()
    assert "abort_when never came true" in {i.detail for i in result.invariants}


# -- after ------------------------------------------------------------------------------------


def test_a_service_that_stays_broken_after_the_faults_has_not_recovered() -> None:
    result = _run(
        _scenario(
            ECHO
            + """
            [[faults]]
            fault = "latency"
            delay = 0.05
            at = 0.1
            until = 0.3

            [steady_state]
            samples = 3
            interval = 0.05
            max_recovery_time = 0.3

            [steady_state.probe]
            workload = "tests.chaos_apps:works_three_times"
            """
        )
    )
    assert result.result == "broken", result.failure_message()
    assert [(i.name, i.phase) for i in result.broken] == [("recovered", "after")]
    assert "did not hold again within 0.3 s" in result.broken[0].detail
    assert "after: recovered:" in result.failure_message()


# -- the file ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "message"),
    [
        ("[steady_state]\nsample = 3", "steady_state.sample", "did you mean 'samples'"),
        ("[steady_state]\nsamples = 0", "steady_state.samples", "expected an integer in [1"),
        ("[steady_state]\ninterval = -1", "steady_state.interval", "expected a number"),
        ("[steady_state.abort_when]\nwindow = 1", "steady_state.abort_when", "error_rate"),
        ("[steady_state.abort_when]\nerror_rate = 2", "steady_state.abort_when.error_rate", "1]"),
        ("[steady_state.probe]\ncount = 2", "steady_state.probe.count", "unknown key"),
        ("[steady_state.probe]\nprotocol = 'smtp'", "steady_state.probe.protocol", "'http'"),
        ("[steady_state.probe]\npath = '/x'", "steady_state.probe.path", "protocol = 'http'"),
    ],
)
def test_a_bad_steady_state_is_an_error_at_its_key(section: str, key: str, message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(_scenario(ECHO + section), "bad.toml")
    assert caught.value.key == key
    assert message in caught.value.reason
    assert caught.value.line is not None


def test_a_datagram_server_fault_cannot_come_after_the_steady_state() -> None:
    text = _scenario(
        """
        [server]
        kind = "udp"

        [[clients]]

        [[faults]]
        fault = "loss"
        probability = 0.1
        side = "server"

        [steady_state]
        """
    )
    with pytest.raises(ScenarioError, match="use side = 'proxy' with"):
        parse_scenario(text, "bad.toml")


# -- reports and the command line -------------------------------------------------------------


def test_the_reports_carry_the_phases(tmp_path: Path) -> None:
    result = _run(_scenario(ECHO + "[steady_state]\nsamples = 2\ninterval = 0.05\n"))
    report = json.loads(json_report([result]))["scenarios"][0]
    steady = report["steady_state"]
    assert steady["not_steady"] is None
    assert {s["phase"] for s in steady["samples"]} >= {"before", "during"}
    assert min(s["t"] for s in steady["samples"]) < 0  # The check came before the clock.
    assert {i["name"]: i["phase"] for i in report["invariants"]}["recovered"] == "after"
    page = render_html([report])
    assert "<h3>Steady state</h3>" in page
    assert 'class="phase phase-before"' in page
    assert page.count('class="sample ok"') == len(steady["samples"])


def test_not_steady_fails_the_command_and_the_junit_report(tmp_path: Path) -> None:
    scenario = tmp_path / "broken.toml"
    scenario.write_text(
        _scenario(
            """
            [server]
            handler = "tests.chaos_apps:BadRequestApp"

            [[clients]]
            protocol = "http"

            [steady_state]
            samples = 1
            """
        )
    )
    junit = tmp_path / "junit.xml"
    done = subprocess.run(
        [sys.executable, "-m", "sockharness", "run", str(scenario), "--junit-xml", str(junit)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "not steady" in done.stdout
    assert 'message="not steady: steady_before"' in junit.read_text()
    assert 'failures="1"' in junit.read_text()  # A failure of the service, not an error.
    assert 'errors="0"' in junit.read_text()


def test_the_probe_stops_when_the_run_fails_midway() -> None:
    # A progress display that fails ends the run with an error: the probe of the
    # run must stop with it, not keep probing in the background.
    def progress(elapsed: float, duration: float, ok: int, failed: int) -> None:
        raise RuntimeError("the display broke")

    scenario = parse_scenario(_scenario(ECHO + "[steady_state]\nsamples = 1\ninterval = 0.05\n"))
    result = run_scenario(scenario, progress=progress)
    assert result.result == "error"
    assert "the display broke" in (result.error or "")
    probes = [t for t in threading.enumerate() if t.name == "sockharness steady-state probe"]
    assert not [t for t in probes if t.is_alive()]
