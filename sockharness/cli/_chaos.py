"""``sockharness run`` and ``sockharness check``: chaos scenarios from the command line."""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from sockharness._core import UsageError, sweep_seed

from ._conform import INTERRUPTED
from ._interrupts import ctrl_c_seen, raise_if_interrupted
from ._reports import check_writable, write_report

if TYPE_CHECKING:
    from sockharness.chaos import Scenario, ScenarioResult
    from sockharness.faults import Recording

__all__ = ["check_scenarios", "run_scenarios"]


def check_scenarios(
    paths: list[str],
    *,
    variables: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Validate every scenario under ``paths`` without running it: 0 all valid, 2 not."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    from sockharness.chaos import ScenarioError, find_scenario_files, load_scenario, resolve_classes

    try:
        files = find_scenario_files(paths)
    except ScenarioError as error:
        print(f"sockharness check: {error}", file=err)
        return 2
    if not files:
        print(f"sockharness check: no scenario files under {' '.join(paths)}", file=err)
        return 2
    invalid = 0
    for file in files:
        try:
            scenario = load_scenario(file, variables=variables)
            resolve_classes(scenario)
        except ScenarioError as error:
            invalid += 1
            print(f"invalid: {error}", file=err)
            continue
        print(f"ok: {file} ({scenario.name})", file=out)
    total = len(files)
    print(f"{total - invalid} of {total} scenario files valid", file=out)
    return 2 if invalid else 0


class _Invalid(Exception):
    """A scenario, a path or a replay file is not valid: the message says why (exit 2)."""


def run_scenarios(
    paths: list[str],
    *,
    seed: int | None = None,
    junit_xml: str | None = None,
    json_path: str | None = None,
    html_path: str | None = None,
    replay: str | None = None,
    failures: str | None = None,
    seeds: int | None = None,
    check_determinism: bool = False,
    variables: Mapping[str, str] | None = None,
    names: Sequence[str] = (),
    tags: Sequence[str] = (),
    markdown_path: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run every scenario under ``paths``: 0 all held, 1 one failed (broken, aborted, not
    steady or not run), 2 invalid.

    ``variables`` fill in ``${NAME}`` before the environment; ``names`` (glob
    patterns) and ``tags`` select the scenarios to run. The Markdown summary
    goes to ``markdown_path`` and, when it is set, is added to the file
    ``$GITHUB_STEP_SUMMARY`` names.

    A broken scenario's replay file goes under ``failures`` (``None``: nowhere);
    ``replay`` runs only the scenario a replay file recorded, with its seed,
    and fails (1) where a fault decision differs from the recording. ``seeds``
    runs each scenario under that many seeds derived from its own (or
    ``seed``); ``check_determinism`` runs each twice with the same seed and
    fails where their fault decisions differ.
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    from sockharness.chaos import (
        json_report,
        junit_report,
        markdown_report,
        render_html,
        summary_table,
    )

    summary = os.environ.get("GITHUB_STEP_SUMMARY") or None
    for path, option in (
        (junit_xml, "--junit-xml"),
        (json_path, "--json"),
        (html_path, "--html"),
        (markdown_path, "--markdown"),
        (summary, "$GITHUB_STEP_SUMMARY"),
    ):
        if path:
            check_writable(path, option)
    try:
        scenarios = _select(_load(paths, variables), names, tags)
        recording = None
        if replay is not None:
            if seeds is not None or check_determinism:
                raise _Invalid(
                    "--replay runs the recorded run: leave out --seeds and --check-determinism"
                )
            recording, scenarios, seed = _replayed(replay, scenarios, seed)
        runs = _plan_runs(scenarios, seed, seeds=seeds, twice=check_determinism)
        if seeds is not None:
            print(_sweep_header(scenarios, seed, seeds), file=out, flush=True)
        results, interrupted = _run_all(runs, out, labelled=seeds is not None or check_determinism)
    except _Invalid as error:
        print(f"sockharness run: error: {error}", file=err)
        return 2
    print("", file=out)
    print(summary_table(results), file=out, flush=True)
    for path, text in (
        (junit_xml, junit_report),
        (json_path, json_report),
        (html_path, lambda rs: render_html([r.to_dict() for r in rs])),
        (markdown_path, markdown_report),
    ):
        if path:
            write_report(path, text(results))
    if summary:
        _append(summary, markdown_report(results), out)
    if interrupted:
        return INTERRUPTED
    held = not any(result.failed for result in results)
    if check_determinism:
        held = _check_determinism(results, out) and held
    if seeds is not None:
        _report_sweep(results, out)
    return _after_the_run(held, results, out, failures=failures, replay=replay, recorded=recording)


def _after_the_run(
    held: bool,
    results: list[ScenarioResult],
    out: TextIO,
    *,
    failures: str | None,
    replay: str | None,
    recorded: Recording | None,
) -> int:
    """Check a replay against its recording, or write the broken runs' replay files."""
    if replay is not None and recorded is not None:
        return 0 if _check_replay(replay, recorded, results, out) and held else 1
    if failures is not None:
        _write_replay_files(failures, results, out)
    return 0 if held else 1


def _append(path: str, text: str, out: TextIO) -> None:
    """Add ``text`` to the file at ``path`` (GitHub's step summary collects, so never replace)."""
    try:
        with open(path, "a", encoding="utf-8") as stream:
            stream.write(text)
    except OSError as error:
        print(f"no step summary written to {path}: {error.strerror or error}", file=out)


def _select(scenarios: list[Scenario], names: Sequence[str], tags: Sequence[str]) -> list[Scenario]:
    """The scenarios whose name matches one of ``names`` and that have one of ``tags``."""
    chosen = [
        scenario
        for scenario in scenarios
        if (not names or any(fnmatch.fnmatchcase(scenario.name, name) for name in names))
        and (not tags or set(tags) & set(scenario.tags))
    ]
    if not chosen:
        asked = " and ".join(
            part
            for part in (
                " or ".join(f"--name {name!r}" for name in names),
                " or ".join(f"--tag {tag!r}" for tag in tags),
            )
            if part
        )
        found = ", ".join(repr(scenario.name) for scenario in scenarios[:10])
        raise _Invalid(f"no scenario matches {asked} (found: {found})")
    return chosen


def _load(paths: list[str], variables: Mapping[str, str] | None = None) -> list[Scenario]:
    from sockharness.chaos import ScenarioError, load_scenarios, resolve_classes

    try:
        scenarios = load_scenarios(paths, variables=variables)
        for scenario in scenarios:  # Every class imports and fits, before anything runs.
            resolve_classes(scenario)
    except ScenarioError as error:
        raise _Invalid(str(error)) from None
    if not scenarios:
        raise _Invalid(f"no scenario files under {' '.join(paths)}")
    return scenarios


def _plan_runs(
    scenarios: list[Scenario], seed: int | None, *, seeds: int | None, twice: bool
) -> list[tuple[Scenario, int | None]]:
    """Each run: a scenario and its seed (``None``: the file's)."""
    if seeds is not None and twice:
        raise _Invalid("--seeds and --check-determinism: give one of them")
    if seeds is not None:
        return [
            (scenario, sweep_seed(scenario.seed if seed is None else seed, index))
            for scenario in scenarios
            for index in range(seeds)
        ]
    if twice:
        return [
            (scenario, scenario.seed if seed is None else seed)
            for scenario in scenarios
            for _ in range(2)
        ]
    return [(scenario, seed) for scenario in scenarios]


def _sweep_header(scenarios: list[Scenario], seed: int | None, count: int) -> str:
    bases = sorted({scenario.seed if seed is None else seed for scenario in scenarios})
    shown = ", ".join(map(str, bases))
    return f"seed sweep: {count} seeds per scenario, derived from {shown}"


def _run_all(
    runs: list[tuple[Scenario, int | None]], out: TextIO, *, labelled: bool = False
) -> tuple[list[ScenarioResult], bool]:
    """Run them in order, with progress; ``(results, whether Ctrl-C cut the run short)``."""
    from sockharness.chaos import ScenarioError, run_scenario

    from ._progress import ProgressDisplay

    display = ProgressDisplay(out)
    results: list[ScenarioResult] = []
    try:
        for index, (scenario, seed) in enumerate(runs, start=1):
            label = scenario.name
            if labelled:
                label += f" (seed {scenario.seed if seed is None else seed})"
            display.begin(label, index, len(runs))
            try:
                result = run_scenario(scenario, seed=seed, progress=display.update)
            except ScenarioError as error:
                print("", file=out)
                raise _Invalid(str(error)) from None
            # A run Ctrl-C cut short is no verdict, whatever the interrupt became in it.
            raise_if_interrupted()
            display.end(result.result, len(result.messages), result.count("ok"), result.elapsed)
            results.append(result)
    except BaseException as error:  # The scenario in hand was torn down on the way out.
        if not (isinstance(error, KeyboardInterrupt) or ctrl_c_seen()):
            raise
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # A second Ctrl-C must not cut the report.
        print(
            f"\ninterrupted: {len(results)} of {len(runs)} scenarios finished",
            file=out,
            flush=True,
        )
        return results, True
    return results, False


def _check_determinism(results: list[ScenarioResult], out: TextIO) -> bool:
    """Compare each scenario's two runs, decision by decision; print and return the verdict."""
    same = True
    for first, second in zip(results[::2], results[1::2], strict=False):
        name = f"{first.scenario.name!r} (seed {first.seed})"
        if first.recording is None or second.recording is None:
            print(f"not checked: {name} did not run to its end twice", file=out)
            same = False
            continue
        divergence = first.recording.first_divergence(second.recording.decisions)
        if divergence is None:
            print(
                f"deterministic: {name}: both runs made the same "
                f"{first.recording.count()} fault decisions",
                file=out,
            )
            continue
        same = False
        divergence = divergence.replace("recorded", "first run", 1)
        divergence = divergence.replace("; this run", "; second run", 1)
        print(f"not deterministic: {name}: the runs differ at {divergence}", file=out)
    return same


def _report_sweep(results: list[ScenarioResult], out: TextIO) -> None:
    by_name: dict[str, list[ScenarioResult]] = {}
    for result in results:
        by_name.setdefault(result.scenario.name, []).append(result)
    for name, runs in by_name.items():
        failed = [r for r in runs if r.failed]
        if not failed:
            print(f"seed sweep: {name!r} held under all {len(runs)} seeds", file=out)
            continue
        seeds = ", ".join(str(r.seed) for r in failed)
        print(
            f"seed sweep: {name!r} broke under {len(failed)} of {len(runs)} seeds: {seeds} "
            f"(replay one with --seed N, or its replay file below)",
            file=out,
        )


def _replayed(
    path: str, scenarios: list[Scenario], seed: int | None
) -> tuple[Recording, list[Scenario], int]:
    """The recording, the one scenario it names, and its seed."""
    from sockharness.chaos import scenario_id
    from sockharness.faults import Recording

    try:
        recording = Recording.read(path)
    except UsageError as error:
        raise _Invalid(f"--replay: {error}") from None
    chosen = [s for s in scenarios if scenario_id(s) == recording.name]
    if not chosen:
        raise _Invalid(
            f"--replay: the recorded scenario {recording.name} is not among the files given; "
            f"give its file ({recording.extra.get('file', '?')})"
        )
    if seed is not None and seed != recording.seed:
        raise _Invalid(
            f"--replay: --seed {seed}, but the recording's seed is {recording.seed}: a replay "
            f"runs with its own seed; leave --seed out"
        )
    return recording, chosen[:1], recording.seed


def _check_replay(
    path: str, recording: Recording, results: list[ScenarioResult], out: TextIO
) -> bool:
    now = results[0].recording if results else None
    if now is None:
        print(f"replay of {path}: the scenario did not run to its end", file=out)
        return False
    divergence = recording.first_divergence(now.decisions)
    if divergence is None:
        print(
            f"replay of {path}: the {recording.count()} recorded fault decisions came "
            f"again, in order",
            file=out,
        )
        return True
    print(f"replay of {path}: the run diverged from the recording at {divergence}", file=out)
    return False


def _write_replay_files(directory: str, results: list[ScenarioResult], out: TextIO) -> None:
    for result in results:
        if not result.failed or result.recording is None:
            continue
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", result.scenario.name)[:80]
        target = Path(directory) / f"{name}-{result.seed}.json"
        try:
            result.recording.write(target)
        except OSError as error:
            print(f"no replay file for {result.scenario.name!r}: {error}", file=out)
            continue
        scenario_file = shlex.quote(str(result.scenario.file))
        print(
            f"replay file: {target} (replay with: sockharness run {scenario_file} --replay "
            f"{shlex.quote(str(target))})",
            file=out,
        )
