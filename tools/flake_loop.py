"""Run the whole suite many times in a row and report every failure with the seed to replay it.

Each run is ``python -m pytest -n 2 -p no:cacheprovider -q --sockharness-seed SEED``
(plus what follows ``--``; ``--workers N`` for another ``-n``, 0 for none) with
a new seed, drawn from ``--seed`` so that the loop itself can be replayed.
``--cpu-load N`` runs N busy processes beside the suite for the whole loop (the
suite on a loaded machine). A failed run's whole output is kept under
``--logs`` (default ``flake-logs/``). A run that outlives ``--run-timeout`` is
killed and counted as a failure ("hung"). Exit 0 when no run failed, 1 when one
did, 2 on bad arguments.

    python tools/flake_loop.py --runs 20                    # 20 runs in a row
    python tools/flake_loop.py --runs 5 --cpu-load 1        # 5 beside a CPU burner
    python tools/flake_loop.py --runs 3 -- tests/test_fault_proxy.py
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from _arguments import whole_number  # tools/, on the path when run as a script
from _entry import run_as_script

ROOT = Path(__file__).resolve().parents[1]
FAILED = re.compile(r"^(FAILED|ERROR) (.+?)(?: - .*)?$", re.MULTILINE)


@dataclass
class Run:
    """One run of the suite: its seed, status, time and what failed."""

    index: int
    seed: int
    status: int
    seconds: float
    summary: str
    failures: list[str] = field(default_factory=list)


def _burn(stop_at: float) -> None:  # pragma: no cover - runs in a child process
    while time.monotonic() < stop_at:
        sum(i * i for i in range(10_000))


def run_once(
    index: int,
    seed: int,
    extra: list[str],
    timeout: float,
    log_dir: Path | None = None,
    *,
    workers: int = 2,
    keep_every_log: bool = False,
) -> Run:
    command = [
        sys.executable, "-m", "pytest", "-n", str(workers), "-p", "no:cacheprovider", "-q",
        f"--sockharness-seed={seed}", *extra,
    ]  # fmt: skip
    began = time.monotonic()
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
        status = process.returncode
    except KeyboardInterrupt:  # Ctrl-C: the run (in a session of its own) ends with the loop.
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        return Run(index, seed, -1, time.monotonic() - began, f"hung: over {timeout:g} s", [])
    lines = output.strip().splitlines()
    summary = lines[-1].strip("= ") if lines else "no output"
    failures = [f"{kind} {test}" for kind, test in FAILED.findall(output)]
    if (failures or keep_every_log) and log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        (log_dir / f"run-{index + 1}-seed-{seed}.log").write_text(output)
    if status != 0 and not failures:
        failures = [f"exit status {status} with no failed test named (see the output)"]
    return Run(index, seed, status, time.monotonic() - began, str(summary), failures)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tools/flake_loop.py")
    parser.add_argument("--runs", type=whole_number, default=20, help="runs in a row (default: 20)")
    parser.add_argument("--cpu-load", type=whole_number, default=0, help="busy processes beside it")
    parser.add_argument(
        "--workers", type=whole_number, default=2, help="pytest-xdist's -n (default: 2; 0: none)"
    )
    parser.add_argument(
        "--seed", type=whole_number, help="seed of the runs' seeds (default: random)"
    )
    parser.add_argument(
        "--run-timeout", type=float, default=1800.0, help="seconds before a run is 'hung'"
    )
    parser.add_argument("--json", type=Path, help="write every run here")
    parser.add_argument(
        "--logs",
        type=Path,
        default=Path("flake-logs"),
        help="a failed run's whole output goes here",
    )
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep every run's output in --logs, not only a failed run's (e.g. for --durations)",
    )
    parser.add_argument("pytest_args", nargs="*", help="after --: passed on to pytest")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.runs == 0:
        parser.error("--runs must be at least 1")
    if not args.run_timeout > 0:
        parser.error("--run-timeout must be a positive number of seconds")
    loop_seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    draw = random.Random(loop_seed)
    print(f"flake loop: {args.runs} runs, seed {loop_seed}, cpu load {args.cpu_load}", flush=True)
    stop_at = time.monotonic() + args.runs * args.run_timeout
    burners = [
        multiprocessing.Process(target=_burn, args=(stop_at,), daemon=True)
        for _ in range(args.cpu_load)
    ]
    for burner in burners:
        burner.start()
    runs: list[Run] = []
    try:
        for index in range(args.runs):
            seed = draw.randrange(2**32)
            run = run_once(
                index,
                seed,
                args.pytest_args,
                args.run_timeout,
                args.logs,
                workers=args.workers,
                keep_every_log=args.keep_logs,
            )
            runs.append(run)
            verdict = "ok" if not run.failures else f"{len(run.failures)} FAILED"
            print(f"run {index + 1:>3}: seed {run.seed:>10}  {run.seconds:7.1f} s  {verdict}  "
                  f"({run.summary})", flush=True)  # fmt: skip
            for failure in run.failures:
                print(f"      {failure}  (replay: --sockharness-seed={run.seed})", flush=True)
    except KeyboardInterrupt:
        print(f"flake loop: interrupted after {len(runs)} runs", flush=True)
    finally:
        for burner in burners:
            burner.terminate()
            burner.join(5)
    failed = [run for run in runs if run.failures]
    print(f"flake loop: {len(failed)} of {len(runs)} runs failed (loop seed {loop_seed})")
    if args.json:
        args.json.write_text(json.dumps([asdict(run) for run in runs], indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    run_as_script(main)
