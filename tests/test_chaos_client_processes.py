"""Client groups in processes of their own (``processes = N``): the same verdicts, nothing left."""

from __future__ import annotations

import os
import re
import signal
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from sockharness.chaos import ScenarioError, parse_scenario, run_scenario


def scenario_text(body: str, *, duration: float = 0.8) -> str:
    head = f'[scenario]\nname = "apart"\nseed = 11\nduration = {duration}\n\n'
    return head + textwrap.dedent(body)


def _children() -> set[int]:
    """This process's children, from /proc (every thread's list)."""
    found: set[int] = set()
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as listing:
                found.update(int(pid) for pid in listing.read().split())
        except FileNotFoundError:
            pass  # A thread that ended since the listing: it has no children to list.
    return found


def _descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize(
    ("kind", "extra"),
    [("tcp", ""), ("udp", ""), ("unix", ""), ("tcp", "tls = true")],
    ids=["tcp", "udp", "unix", "tls"],
)
def test_clients_in_processes_hold_as_threads_do_and_leave_nothing(kind: str, extra: str) -> None:
    children, descriptors = _children(), _descriptors()
    body = f"""
        [server]
        kind = "{kind}"
        {extra}

        [[clients]]
        count = 4
        rate = 40
        processes = 2
        """
    result = run_scenario(parse_scenario(scenario_text(body)))
    assert result.result == "held", result.failure_message()
    # Every client sent, from both processes, and every message was judged ok.
    assert {message.client for message in result.messages} == {0, 1, 2, 3}
    assert all(message.outcome == "ok" for message in result.messages)
    assert result.count("ok") >= 4 * 10
    # The messages are on the run's clock, as the runner's own clients' are.
    assert all(0 <= message.sent <= message.done < 5.0 for message in result.messages)
    assert _children() == children
    assert _descriptors() == descriptors


def test_a_broken_service_fails_with_clients_in_processes() -> None:
    body = """
        [server]
        handler = "upper"

        [[clients]]
        count = 2
        rate = 40
        reply = "echo"
        processes = 2
        """
    result = run_scenario(parse_scenario(scenario_text(body)))
    assert result.result == "broken"
    assert result.count("corrupt") > 0
    assert "intact_outside_faults" in {invariant.name for invariant in result.broken}


def test_groups_apart_and_in_the_runner_are_numbered_as_the_file_orders_them() -> None:
    body = """
        [server]
        kind = "tcp"

        [[clients]]
        count = 1
        rate = 30

        [[clients]]
        count = 3
        rate = 30
        processes = 2

        [[clients]]
        count = 1
        rate = 30
        """
    result = run_scenario(parse_scenario(scenario_text(body)))
    assert result.result == "held", result.failure_message()
    assert {message.client for message in result.messages} == {0, 1, 2, 3, 4}


def test_the_same_clients_send_and_are_judged_alike_apart_and_in_the_runner() -> None:
    def messages(processes: int) -> list[tuple[int, int, str]]:
        body = f"""
            [server]
            kind = "tcp"

            [[clients]]
            count = 2
            rate = 0
            payload = "text"
            processes = {processes}
            """
        scenario = parse_scenario(scenario_text(body, duration=1.0))
        result = run_scenario(scenario)
        assert result.result == "held", result.failure_message()
        return sorted((m.client, m.seq, m.outcome) for m in result.messages)

    # The clients run as fast as replies come: how many differs, what each sends does not.
    apart, together = messages(1), messages(0)
    assert {client for client, _, _ in apart} == {client for client, _, _ in together} == {0, 1}
    assert all(outcome == "ok" for _, _, outcome in apart + together)


def test_a_client_process_that_dies_breaks_the_verdict_and_says_why() -> None:
    children = _children()
    body = """
        [server]
        kind = "tcp"

        [[clients]]
        count = 2
        rate = 50
        processes = 1
        """
    scenario = parse_scenario(scenario_text(body, duration=3.0))
    results = []
    runner = threading.Thread(target=lambda: results.append(run_scenario(scenario)))
    runner.start()
    deadline = time.monotonic() + 30
    while not (_children() - children) and time.monotonic() < deadline:
        time.sleep(0.01)  # The runner starts its client process: no event of its crosses here.
    [process] = _children() - children
    # The kill lands mid-run: once the process runs its two client threads.
    while len(os.listdir(f"/proc/{process}/task")) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(os.listdir(f"/proc/{process}/task")) >= 3, "the client threads never started"
    os.kill(process, signal.SIGKILL)
    runner.join(30)
    [result] = results
    assert result.result == "broken"
    broken = {invariant.name: invariant.detail for invariant in result.broken}
    assert "clients_stopped" in broken
    assert "clients 0-1 ended before it reported" in broken["clients_stopped"]
    assert "exit code -9" in broken["clients_stopped"]
    assert _children() == children


@pytest.mark.parametrize(
    ("clients", "fragment"),
    [
        ("count = 2\nprocesses = 3", "processes"),
        ("count = 2\nprocesses = -1", "processes"),
        ("count = 2\nprocesses = 1.5", "processes"),
        ('count = 2\nprocesses = 1\nworkload = "json:dumps"', "leave processes out"),
        ('count = 1\nprocesses = 1\ncommand = ["true"]', "leave processes out"),
    ],
)
def test_processes_that_cannot_be_are_refused_when_the_scenario_is_read(
    clients: str, fragment: str
) -> None:
    text = scenario_text(f'[server]\nkind = "tcp"\n\n[[clients]]\n{clients}\n')
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "apart.toml")
    assert caught.value.key.endswith("processes")
    assert fragment in str(caught.value)
    assert "apart.toml:" in str(caught.value)


def test_client_side_faults_on_clients_apart_are_refused() -> None:
    text = scenario_text(
        """
        [server]
        kind = "tcp"

        [[clients]]
        count = 2
        processes = 2

        [[faults]]
        fault = "latency"
        delay = 0.01
        side = "client"
        """
    )
    with pytest.raises(ScenarioError, match="outside the runner") as caught:
        parse_scenario(text, "apart.toml")
    assert caught.value.key.endswith("side")


def test_the_probe_takes_no_processes() -> None:
    text = scenario_text(
        """
        [server]
        kind = "tcp"

        [[clients]]
        count = 1

        [steady_state]
        interval = 0.1

        [steady_state.probe]
        processes = 1
        """
    )
    with pytest.raises(ScenarioError, match="processes"):
        parse_scenario(text, "apart.toml")


def test_the_steady_state_probe_of_a_group_apart_is_one_client_of_the_runner() -> None:
    children = _children()
    body = """
        [server]
        kind = "tcp"

        [[clients]]
        count = 4
        rate = 30
        processes = 2

        [steady_state]
        samples = 2
        interval = 0.05
        """
    result = run_scenario(parse_scenario(scenario_text(body)))
    assert result.result == "held", result.failure_message()
    assert result.steady is not None
    assert {message.client for message in result.messages} == {0, 1, 2, 3}
    assert _children() == children


def _interpreter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    """Make ``script`` (sh) the interpreter the runner starts its client processes with."""
    interpreter = tmp_path / "python"
    interpreter.write_text("#!/bin/sh\n" + script)
    interpreter.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(interpreter))


def _error_of_tcp_clients(count: int, processes: int) -> str:
    """Run ``count`` TCP clients in ``processes``, expecting an error; its message, once
    nothing is left behind."""
    children, descriptors = _children(), _descriptors()
    body = f"""
        [server]
        kind = "tcp"

        [[clients]]
        count = {count}
        processes = {processes}
        """
    result = run_scenario(parse_scenario(scenario_text(body)))
    assert result.result == "error"
    assert result.messages == []
    assert _children() == children
    assert _descriptors() == descriptors
    return result.failure_message()


def test_a_client_process_that_cannot_start_is_an_error_that_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _interpreter(tmp_path, monkeypatch, "echo 'no module named sockharness' >&2\nexit 3\n")
    message = _error_of_tcp_clients(2, 1)
    assert "the process of clients 0-1 ended before it was ready (exit code 3)" in message
    assert "no module named sockharness" in message


def test_one_process_of_two_failing_to_start_is_an_error_and_the_other_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One of the two fails (the first to make the marker); the other is a real one.
    marker = tmp_path / "failed-once"
    _interpreter(
        tmp_path,
        monkeypatch,
        f'if ! mkdir {marker} 2>/dev/null; then exec {sys.executable} "$@"; fi\n'
        "echo 'the first one fails' >&2\nexit 3\n",
    )
    message = _error_of_tcp_clients(4, 2)
    assert re.search(
        r"the process of clients (0-1|2-3) ended before it was ready \(exit code 3\)", message
    ), message
    assert "the first one fails" in message


def test_a_runner_with_more_than_1024_descriptors_open_runs_clients_apart() -> None:
    """The control sockets then have numbers select() cannot take: they are polled."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"at most {hard} descriptors here")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100 - _descriptors())]
    try:
        body = """
            [server]
            kind = "tcp"

            [[clients]]
            count = 2
            rate = 30
            processes = 1
            """
        result = run_scenario(parse_scenario(scenario_text(body, duration=0.5)))
    finally:
        for descriptor in held:
            os.close(descriptor)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert result.result == "held", result.failure_message()
    assert {message.client for message in result.messages} == {0, 1}


def test_a_client_process_that_hangs_before_it_is_ready_is_killed_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sockharness.chaos import _client_processes

    monkeypatch.setattr(_client_processes, "READY_WITHIN", 1.0)
    _interpreter(tmp_path, monkeypatch, "exec sleep 60\n")
    started = time.monotonic()
    message = _error_of_tcp_clients(2, 1)
    assert "the process of clients 0-1 was not ready within 1 s" in message
    assert time.monotonic() - started < 30
