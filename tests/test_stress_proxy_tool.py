"""tools/stress_proxy.py in a short form, as a user runs it: nothing lost, losses accounted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .helpers import load_tool

STRESS = str(Path(__file__).resolve().parents[1] / "tools" / "stress_proxy.py")


def _stress(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, STRESS, *args], check=False, capture_output=True, text=True, timeout=300
    )


def test_streams_through_changing_faults_and_datagrams_hold() -> None:
    done = _stress("--connections", "48", "--size", "131072", "--datagrams", "3000")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "streams: 48 x 131072 bytes each way, faults toggle" in done.stdout
    assert "datagrams: sent 3000," in done.stdout
    assert done.stdout.strip().endswith("held")


def test_streams_with_no_fault_hold() -> None:
    done = _stress(
        "--connections", "16", "--size", "1048576", "--faults", "none", "--datagrams", "0"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "faults none (0 changes)" in done.stdout


def test_bad_arguments_exit_2() -> None:
    done = _stress("--size", "big")
    assert done.returncode == 2
    assert "argument --size: 'big' is not a whole number" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_verdict_names_each_thing_that_went_wrong() -> None:
    tool = load_tool("stress_proxy")
    good = tool.StreamVerdict(1.0, 5, 0, 0, (200, 200), 0, 30.0)
    assert good.problems(2, 100) == []
    bad = tool.StreamVerdict(1.0, 5, 1, 2, (200, 150), 3, 30.0)
    assert bad.problems(2, 100) == [
        "1 connections did not reach EOF (half-close lost?)",
        "2 connections got bytes lost, changed or out of order",
        "the proxy counted (200, 150), not 200 each way",
        "3 descriptors left after the proxy closed",
    ]
