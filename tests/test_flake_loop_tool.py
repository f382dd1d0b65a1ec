"""tools/flake_loop.py, as a user runs it: it counts failures, names them with their seed."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOOP = str(ROOT / "tools" / "flake_loop.py")


def _loop(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, LOOP, *args], check=False, capture_output=True, text=True, timeout=300
    )


def test_a_steady_suite_passes_every_run(tmp_path: Path) -> None:
    test_file = tmp_path / "test_steady.py"
    test_file.write_text("def test_fine():\n    assert 1 + 1 == 2\n")
    done = _loop("--runs", "2", "--seed", "5", "--", str(test_file))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "flake loop: 0 of 2 runs failed (loop seed 5)" in done.stdout


def test_a_failure_that_depends_on_the_seed_is_reported_with_it(tmp_path: Path) -> None:
    test_file = tmp_path / "test_flaky.py"
    test_file.write_text(
        "def test_by_seed(request):\n"
        "    assert request.config.getoption('sockharness_seed') % 2 == 0\n"
    )
    logs = tmp_path / "logs"
    # Without xdist (--workers 0): three nested `pytest -n 2` beside a CPU burner took
    # 20 s here and outlived the 60 s timeout on a doubly loaded machine; the steady
    # test above runs the default -n 2.
    done = _loop(
        "--runs", "3", "--seed", "11", "--cpu-load", "1", "--workers", "0",
        "--logs", str(logs), "--", str(test_file),
    )  # fmt: skip
    # The loop's seed decides the runs' seeds: these three are odd, even, even.
    draw = random.Random(11)
    odd = [seed for seed in (draw.randrange(2**32) for _ in range(3)) if seed % 2]
    lines = [line for line in done.stdout.splitlines() if "replay: --sockharness-seed=" in line]
    seeds = [int(line.rsplit("=", 1)[1].rstrip(")")) for line in lines]
    assert done.returncode == 1, done.stdout + done.stderr
    assert seeds == odd
    assert "flake loop: 1 of 3 runs failed" in done.stdout
    kept = list(logs.iterdir())
    assert [path.name for path in kept] == [f"run-1-seed-{odd[0]}.log"]
    assert "test_by_seed" in kept[0].read_text()
    assert "bringing up nodes" not in kept[0].read_text()  # --workers 0: no xdist.
    assert all("FAILED " in line and "test_by_seed" in line for line in lines)


def test_keep_logs_keeps_the_output_of_every_run_passed_or_not(tmp_path: Path) -> None:
    test_file = tmp_path / "test_steady.py"
    test_file.write_text("def test_fine():\n    assert 1 + 1 == 2\n")
    logs = tmp_path / "logs"
    done = _loop(
        "--runs", "2", "--seed", "7", "--workers", "0", "--keep-logs", "--logs", str(logs),
        "--", str(test_file), "--durations=5",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    draw = random.Random(7)
    seeds = [draw.randrange(2**32) for _ in range(2)]
    kept = sorted(path.name for path in logs.iterdir())
    assert kept == sorted(f"run-{i + 1}-seed-{seed}.log" for i, seed in enumerate(seeds))
    for path in logs.iterdir():
        text = path.read_text()
        assert "1 passed" in text
        assert "slowest 5 durations" in text


def test_without_keep_logs_a_passing_run_leaves_no_log(tmp_path: Path) -> None:
    test_file = tmp_path / "test_steady.py"
    test_file.write_text("def test_fine():\n    assert 1 + 1 == 2\n")
    logs = tmp_path / "logs"
    done = _loop("--runs", "1", "--workers", "0", "--logs", str(logs), "--", str(test_file))
    assert done.returncode == 0, done.stdout + done.stderr
    assert not logs.exists()


def test_bad_arguments_exit_2_with_one_line() -> None:
    done = _loop("--runs", "0")
    assert done.returncode == 2
    assert "--runs must be at least 1" in done.stderr
    assert "Traceback" not in done.stderr
