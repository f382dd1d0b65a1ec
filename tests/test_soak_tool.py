"""tools/soak.py, run as a user runs it: it holds on sockharness, and it fails on a leak."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOAK = str(ROOT / "tools" / "soak.py")
SHORT = ["--every", "20", "--proxy-every", "6", "--scenario-every", "1"]


@pytest.fixture
def soak_env() -> Iterator[dict[str, str]]:
    """A TMPDIR of the soak's own (short, for socket paths): other tests' files not counted."""
    directory = tempfile.mkdtemp(prefix="sk", dir="/tmp")
    try:
        yield {**os.environ, "TMPDIR": directory}
        assert os.listdir(directory) == [], "the soak left files in its TMPDIR"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _soak(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, SOAK, *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_short_soak_of_every_phase_holds(soak_env: dict[str, str]) -> None:
    done = _soak(soak_env, "--cycles", "60", "--proxy-cycles", "18", "--scenario-runs", "2", *SHORT)
    assert done.returncode == 0, done.stdout + done.stderr
    for phase, cycles in (("servers", 60), ("proxies", 18), ("scenarios", 2)):
        assert f"{phase}: {cycles} cycles in" in done.stdout
    assert done.stdout.count(": held") == 3, done.stdout
    assert "BROKEN" not in done.stdout


@pytest.mark.parametrize(
    ("leak", "count"),
    [("thread", "threads"), ("descriptor", "descriptors"), ("child", "zombies"), ("file", "temp")],
)
def test_the_soak_fails_on_what_accumulates(
    soak_env: dict[str, str], leak: str, count: str
) -> None:
    done = _soak(
        soak_env, "--cycles", "40", "--proxy-cycles", "0", "--scenario-runs", "0", "--inject-leak",
        leak, *SHORT,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "BROKEN: " in done.stdout
    assert f"{count}" in done.stdout.split("BROKEN: ", 1)[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cycles", "many"], "argument --cycles: 'many' is not a whole number"),
        (["--every", "0"], "--every must be at least 1"),
        (["--cycles", "-3"], "-3 is negative"),
        (["--scenario", "/nonexistent.toml"], "--scenario /nonexistent.toml: no such file"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    soak_env: dict[str, str], args: list[str], message: str
) -> None:
    done = _soak(soak_env, *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
