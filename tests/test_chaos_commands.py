"""Command workloads: an outside program (an integration suite) run as a scenario's load,
finding the service in its environment, judged by its exit status and its JUnit report."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sockharness.chaos import ScenarioError, ScenarioResult, parse_scenario, run_scenario

INTEGRATION_SUITE = """
import os
import socket


def test_the_service_echoes() -> None:
    host = os.environ["SOCKHARNESS_SERVER_HOST"]
    port = int(os.environ["SOCKHARNESS_SERVER_PORT"])
    assert os.environ["SOCKHARNESS_SERVER_ADDRESS"] == f"{host}:{port}"
    assert os.environ["SOCKHARNESS_SERVER_UPSTREAM_PORT"]
    with socket.create_connection((host, port), timeout=2) as sock:
        sock.sendall(b"hello\\n")
        assert sock.makefile("rb").readline() == b"hello\\n"
"""


def _scenario(clients: str, *, handler: str = "echo", rest: str = "", duration: float = 0.5) -> str:
    head = (
        f'[scenario]\nname = "command"\nduration = {duration}\n\n[server]\nhandler = "{handler}"\n'
    )
    return head + textwrap.dedent(clients) + textwrap.dedent(rest)


def _run(text: str) -> ScenarioResult:
    return run_scenario(parse_scenario(text, "command.toml"))


def _python(code: str) -> str:
    return json.dumps([sys.executable, "-c", code])


def _pytest_command(suite: Path) -> str:
    return json.dumps(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         str(suite), "--junit-xml={junit_xml}"]
    )  # fmt: skip


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    path = tmp_path / "test_integration.py"
    path.write_text(INTEGRATION_SUITE)
    return path


def test_an_integration_suite_that_passes_holds(suite: Path) -> None:
    result = _run(_scenario(f"[[clients]]\ncommand = {_pytest_command(suite)}\n"))
    assert result.result == "held", result.failure_message()
    assert [message.outcome for message in result.messages] == ["ok"]


def test_an_integration_suite_that_fails_is_broken_with_the_failed_tests(suite: Path) -> None:
    result = _run(_scenario(f"[[clients]]\ncommand = {_pytest_command(suite)}\n", handler="upper"))
    assert result.result == "broken", result.failure_message()
    message = result.messages[0]
    assert message.outcome == "corrupt"
    assert "1 of 1 tests failed" in message.detail
    assert "test_the_service_echoes" in message.detail
    names = {invariant.name for invariant in result.broken}
    assert "serving_after_faults" in names  # The run after the faults failed too.


def test_a_command_that_exits_non_zero_is_a_wrong_answer_with_its_output() -> None:
    code = "import sys; print('the check said no'); sys.exit(3)"
    result = _run(_scenario(f"[[clients]]\ncommand = {_python(code)}\n"))
    assert result.result == "broken", result.failure_message()
    assert result.messages[0].outcome == "corrupt"
    assert "exited with status 3: the check said no" in result.messages[0].detail


def test_a_command_past_its_timeout_is_killed_with_every_process_it_started(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "grandchild.pid"
    code = (
        "import subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)"
    )
    began = time.monotonic()
    result = _run(
        _scenario(
            f"[[clients]]\ncommand = {_python(code)}\ntimeout = 1.0\n",
            rest="\n[expect]\nserving_after_faults = false\n",
        )
    )
    assert time.monotonic() - began < 30
    assert result.messages[0].outcome == "lost"
    assert "did not end within 1 s: killed" in result.messages[0].detail
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(grandchild):
        time.sleep(0.05)  # Reaping by init takes a moment; bounded.
    assert not _alive(grandchild)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stream:
            return stream.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_repeat_runs_the_command_again_until_the_end(tmp_path: Path) -> None:
    result = _run(
        _scenario(
            f"[[clients]]\ncommand = {_python('pass')}\nrepeat = true\nrate = 10\n",
            duration=1.0,
        )
    )
    assert result.result == "held", result.failure_message()
    assert len(result.messages) >= 3
    assert {message.outcome for message in result.messages} == {"ok"}


def test_the_command_reaches_the_service_through_the_proxy_and_its_faults(suite: Path) -> None:
    result = _run(
        _scenario(
            f"[[clients]]\ncommand = {_pytest_command(suite)}\n",
            rest='\n[[faults]]\nfault = "down"\n\n[expect]\nintact_outside_faults = false\n',
            duration=30.0,  # Long enough for pytest to start: the run ends with the command.
        )
    )
    assert result.result == "broken", result.failure_message()
    assert result.messages[0].outcome == "corrupt"
    assert "tests failed" in result.messages[0].detail
    assert result.elapsed < 20  # It ended with the command, not at 30 s.
    # After the faults, straight to the server, the suite passes.
    assert "serving_after_faults" not in {invariant.name for invariant in result.broken}


# -- the file ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("clients", "key", "message"),
    [
        ('command = "pytest"', "clients[0].command", "expected an array of strings"),
        ("command = []", "clients[0].command", "expected an array of strings"),
        ('command = ["true"]\nprotocol = "http"', "clients[0].protocol", "a command is its own"),
        ("repeat = true", "clients[0].repeat", "applies only to a command"),
        ('command = ["true"]\ntimeout = 4000', "clients[0].timeout", "3600"),
        ('command = ["true"]\nworkload = "a:b"', "clients[0].protocol", None),
    ],
)
def test_a_bad_command_group_is_an_error_at_its_key(
    clients: str, key: str, message: str | None
) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(_scenario(f"[[clients]]\n{clients}\n"), "bad.toml")
    if message is None:
        assert "not both" in caught.value.reason or "its own client" in caught.value.reason
        return
    assert caught.value.key == key
    assert message in caught.value.reason


def test_a_program_that_is_not_there_is_found_before_the_run() -> None:
    scenario = parse_scenario(
        _scenario('[[clients]]\ncommand = ["no-such-program-here", "-x"]\n'), "bad.toml"
    )
    with pytest.raises(ScenarioError) as caught:
        run_scenario(scenario)
    assert caught.value.key == "clients[0].command"
    assert "'no-such-program-here' is not on PATH" in caught.value.reason


def test_a_command_cannot_be_the_steady_state_probe() -> None:
    text = _scenario(
        "[[clients]]\n",
        rest='\n[steady_state]\n\n[steady_state.probe]\ncommand = ["true"]\n',
    )
    with pytest.raises(ScenarioError, match="give the probe a protocol or a workload"):
        parse_scenario(text, "bad.toml")


def test_a_command_group_defaults_to_a_minute_per_run() -> None:
    scenario = parse_scenario(_scenario('[[clients]]\ncommand = ["true"]\n'), "x.toml")
    assert scenario.clients[0].timeout == 60.0
    assert scenario.clients[0].command == ("true",)
    assert os.sep not in scenario.clients[0].command[0]
