"""`sockharness run` writes a broken scenario's replay file; `--replay` runs it again."""

from __future__ import annotations

import json
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
