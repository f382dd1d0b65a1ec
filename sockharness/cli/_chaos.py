"""``sockharness run`` and ``sockharness check``: chaos scenarios from the command line."""

from __future__ import annotations

import signal
import sys
from typing import TextIO

from ._conform import INTERRUPTED
from ._reports import check_writable, write_report

__all__ = ["check_scenarios", "run_scenarios"]


def check_scenarios(paths: list[str], *, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Validate every scenario under ``paths`` without running it: 0 all valid, 2 not."""
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
            scenario = load_scenario(file)
            resolve_classes(scenario)
        except ScenarioError as error:
            invalid += 1
            print(f"invalid: {error}", file=err)
            continue
        print(f"ok: {file} ({scenario.name})", file=out)
    total = len(files)
    print(f"{total - invalid} of {total} scenario files valid", file=out)
    return 2 if invalid else 0


def run_scenarios(
    paths: list[str],
    *,
    seed: int | None = None,
    junit_xml: str | None = None,
    json_path: str | None = None,
    html_path: str | None = None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Run every scenario under ``paths``: 0 all held, 1 an invariant broke, 2 invalid."""
    from sockharness.chaos import (
        ScenarioError,
        json_report,
        junit_report,
        load_scenarios,
        resolve_classes,
        run_scenario,
        summary_table,
    )

    from ._progress import ProgressDisplay

    for path, option in ((junit_xml, "--junit-xml"), (json_path, "--json"), (html_path, "--html")):
        if path:
            check_writable(path, option)
    try:
        scenarios = load_scenarios(paths)
        for scenario in scenarios:  # Every class imports and fits, before anything runs.
            resolve_classes(scenario)
    except ScenarioError as error:
        print(f"sockharness run: {error}", file=err)
        return 2
    if not scenarios:
        print(f"sockharness run: no scenario files under {' '.join(paths)}", file=err)
        return 2
    display = ProgressDisplay(out)
    results = []
    interrupted = False
    try:
        for index, scenario in enumerate(scenarios, start=1):
            display.begin(scenario.name, index, len(scenarios))
            try:
                result = run_scenario(scenario, seed=seed, progress=display.update)
            except ScenarioError as error:
                print(f"\nsockharness run: {error}", file=err)
                return 2
            display.end(result.result, len(result.messages), result.count("ok"), result.elapsed)
            results.append(result)
    except KeyboardInterrupt:  # The scenario in hand was torn down on the way out.
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # A second Ctrl-C must not cut the report.
        interrupted = True
        print(
            f"\ninterrupted: {len(results)} of {len(scenarios)} scenarios finished",
            file=out,
            flush=True,
        )
    print("", file=out)
    print(summary_table(results), file=out, flush=True)
    from sockharness.chaos import render_html

    for path, text in (
        (junit_xml, junit_report),
        (json_path, json_report),
        (html_path, lambda rs: render_html([r.to_dict() for r in rs])),
    ):
        if path:
            write_report(path, text(results))
    if interrupted:
        return INTERRUPTED
    return 0 if all(result.result in ("held", "skipped") for result in results) else 1
