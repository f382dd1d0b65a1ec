"""`sockharness run` writes a broken scenario's replay file; `--replay` runs it again."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

SCENARIO = """
[scenario]
name = "no retries"
seed = 11
duration = 0.6

[server]
kind = "tcp"

[[clients]]
pattern = "connect-per-request"
rate = 20

[[faults]]
fault = "refuse"
connections = "0-1"

[expect]
max_error_rate = 0.0
"""


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sockharness", "run", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )


def _replay_line(result: subprocess.CompletedProcess[str]) -> str:
    return next(line for line in result.stdout.splitlines() if line.startswith("replay file: "))


def test_a_broken_scenario_writes_a_replay_file_and_the_replay_comes_again(
    tmp_path: Path,
) -> None:
    (tmp_path / "retry.toml").write_text(SCENARIO)
    broken = _run("retry.toml", cwd=tmp_path)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    line = _replay_line(broken)
    assert line == (
        "replay file: .sockharness/failures/no_retries-11.json (replay with: sockharness run "
        "retry.toml --replay .sockharness/failures/no_retries-11.json)"
    )
    recorded = json.loads((tmp_path / ".sockharness/failures/no_retries-11.json").read_text())
    assert recorded["name"] == "retry.toml::no retries"
    assert recorded["seed"] == 11
    assert recorded["plans"] == [{"source": "proxy", "faults": [
        "Refuse(connections='0-1') from 0 s until 0.6 s"
    ]}]  # fmt: skip
    assert sorted(recorded["decisions"]) == ["proxy conn 0 both", "proxy conn 1 both"]

    replay = _run(
        "retry.toml", "--replay", ".sockharness/failures/no_retries-11.json", cwd=tmp_path
    )
    assert replay.returncode == 1  # Still broken: the bug, found again.
    assert (
        "replay of .sockharness/failures/no_retries-11.json: the 2 recorded fault decisions "
        "came again, in order"
    ) in replay.stdout


def test_a_replay_that_diverges_says_where_and_fails(tmp_path: Path) -> None:
    (tmp_path / "retry.toml").write_text(SCENARIO)
    _run("retry.toml", cwd=tmp_path)
    path = tmp_path / ".sockharness/failures/no_retries-11.json"
    recorded = json.loads(path.read_text())
    recorded["decisions"]["proxy conn 2 both"] = [["Refuse(connections='0-1')", "refused"]]
    path.write_text(json.dumps(recorded))
    replay = _run("retry.toml", "--replay", str(path), cwd=tmp_path)
    assert replay.returncode == 1
    assert (
        "the run diverged from the recording at proxy conn 2 both, decision 0: recorded "
        "Refuse(connections='0-1'): refused; this run nothing"
    ) in replay.stdout


def test_held_scenarios_write_nothing_and_off_writes_nowhere(tmp_path: Path) -> None:
    held = SCENARIO.replace("max_error_rate = 0.0", "max_error_rate = 1.0")
    (tmp_path / "held.toml").write_text(held)
    assert _run("held.toml", cwd=tmp_path).returncode == 0
    assert not (tmp_path / ".sockharness").exists()
    (tmp_path / "retry.toml").write_text(SCENARIO)
    off = _run("retry.toml", "--failures", "off", cwd=tmp_path)
    assert off.returncode == 1
    assert "replay file:" not in off.stdout
    assert not (tmp_path / ".sockharness").exists()


def test_bad_replays_are_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "retry.toml").write_text(SCENARIO)
    (tmp_path / "junk.json").write_text("{")
    for args, message in [
        (["--replay", "missing.json"], "replay file 'missing.json' cannot be read"),
        (["--replay", "junk.json"], "replay file 'junk.json' is not JSON"),
    ]:
        bad = _run("retry.toml", *args, cwd=tmp_path)
        assert bad.returncode == 2
        assert message in bad.stderr
        assert bad.stderr.count("\n") == 1
    _run("retry.toml", cwd=tmp_path)
    other = tmp_path / "other.toml"
    other.write_text(SCENARIO.replace("no retries", "another"))
    gone = _run("other.toml", "--replay", ".sockharness/failures/no_retries-11.json", cwd=tmp_path)
    assert gone.returncode == 2
    assert "the recorded scenario retry.toml::no retries is not among the files given" in (
        gone.stderr
    )
    seeded = _run(
        "retry.toml", "--replay", ".sockharness/failures/no_retries-11.json", "--seed", "3",
        cwd=tmp_path,
    )  # fmt: skip
    assert seeded.returncode == 2
    assert "a replay runs with its own seed" in seeded.stderr


# -- seed sweeps and determinism checks ------------------------------------------------------

UNSEEDED_FAULT = """
import dataclasses
import itertools

from sockharness.faults import STREAM, Fault, StreamEffect

DRAWS = itertools.count()


class _Draws(StreamEffect):
    def data(self, plan, stage, items):
        for at, data in items:
            # The classic mistake: not stage.rng, so two runs decide differently.
            plan.record(stage, at, f"drew {next(DRAWS)}")
        return items, []


@dataclasses.dataclass(frozen=True, repr=False)
class Unseeded(Fault):
    transports = frozenset({STREAM})
    stream_effect = _Draws()
"""


def test_a_seed_sweep_names_the_seeds_that_broke(tmp_path: Path) -> None:
    (tmp_path / "retry.toml").write_text(SCENARIO)
    swept = _run("retry.toml", "--seeds", "3", cwd=tmp_path)
    assert swept.returncode == 1
    assert "seed sweep: 3 seeds per scenario, derived from 11" in swept.stdout
    line = next(x for x in swept.stdout.splitlines() if x.startswith("seed sweep: 'no retries'"))
    seeds = line.split(": ", 2)[2].split(" (")[0].split(", ")
    assert line.startswith("seed sweep: 'no retries' broke under 3 of 3 seeds: ")
    assert len(set(seeds)) == 3
    # Each has its replay file; the same base gives the same seeds, run after run.
    for seed in seeds:
        assert (tmp_path / f".sockharness/failures/no_retries-{seed}.json").exists()
    again = _run("retry.toml", "--seeds", "3", "--failures", "off", cwd=tmp_path)
    assert line in again.stdout


def test_a_determinism_check_passes_seeded_faults_and_catches_an_unseeded_one(
    tmp_path: Path,
) -> None:
    (tmp_path / "retry.toml").write_text(SCENARIO)
    checked = _run("retry.toml", "--check-determinism", cwd=tmp_path)
    assert (
        "deterministic: 'no retries' (seed 11): both runs made the same 2 fault decisions"
    ) in checked.stdout
    (tmp_path / "unseeded_fault.py").write_text(UNSEEDED_FAULT)
    scenario = SCENARIO.replace('fault = "refuse"', 'fault = "unseeded_fault:Unseeded"')
    scenario = scenario.replace("max_error_rate = 0.0", "max_error_rate = 1.0")
    (tmp_path / "unseeded.toml").write_text(scenario)
    caught = subprocess.run(
        [sys.executable, "-m", "sockharness", "run", "unseeded.toml", "--check-determinism"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        check=False,
    )
    assert caught.returncode == 1, caught.stdout + caught.stderr
    assert "not deterministic: 'no retries' (seed 11): the runs differ at proxy conn 0 " in (
        caught.stdout
    )
    assert re.search(
        r"decision 0: first run Unseeded\(connections='0-1'\): drew \d+; second run "
        r"Unseeded\(connections='0-1'\): drew \d+\n",
        caught.stdout,
    )


def test_sweeps_and_checks_refuse_what_makes_no_sense(tmp_path: Path) -> None:
    (tmp_path / "retry.toml").write_text(SCENARIO)
    for args, message in [
        (["--seeds", "0"], "0 seeds: give from 1 to 10000"),
        (["--seeds", "many"], "'many' is not a number of seeds"),
        (["--seeds", "2", "--check-determinism"], "give one of them"),
    ]:
        bad = _run("retry.toml", *args, cwd=tmp_path)
        assert bad.returncode == 2, bad.stdout + bad.stderr
        assert message in bad.stderr
        assert bad.stderr.count("\n") == 1
