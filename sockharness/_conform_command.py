"""``sockharness conform TARGET``: the conformance suite from the command line."""

from __future__ import annotations

import sys
from typing import TextIO


def run_conform(
    target: str,
    *,
    properties: list[str],
    profile: str,
    seed: int | None,
    shutdown_bound: float | None,
    junit_xml: str | None,
    json_path: str | None,
    out: TextIO = sys.stdout,
) -> int:
    """Check ``target``; print the table; exit 0 all hold, 1 a property failed."""
    from .conformance import check

    report = check(
        target,
        properties or None,
        profile=profile,
        seed=seed,
        shutdown_bound=shutdown_bound,
    )
    print(report.table(), file=out, flush=True)
    if junit_xml:
        with open(junit_xml, "w") as f:
            f.write(report.to_junit_xml())
    if json_path:
        with open(json_path, "w") as f:
            f.write(report.to_json())
    return 0 if report.passed else 1
