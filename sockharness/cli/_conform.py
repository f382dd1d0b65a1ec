"""``sockharness conform TARGET``: the conformance suite from the command line."""

from __future__ import annotations

import signal
import sys
from typing import TYPE_CHECKING, TextIO

from ._interrupts import ctrl_c_seen, raise_if_interrupted
from ._reports import check_writable, write_report

if TYPE_CHECKING:
    from sockharness.conformance import PropertyResult

#: The exit status of a run ended by Ctrl-C (128 + SIGINT), as a shell reports it.
INTERRUPTED = 130


def run_conform(
    target: str,
    *,
    properties: list[str],
    profile: str,
    seed: int | None,
    shutdown_bound: float | None,
    factory: str | None = None,
    junit_xml: str | None,
    json_path: str | None,
    out: TextIO | None = None,
) -> int:
    """Check ``target``, a line per property as it ends, then the table.

    Exit 0: all hold; 1: a property failed; 130: interrupted (the table and
    reports then cover what finished).
    """
    out = sys.stdout if out is None else out
    from sockharness.conformance import Report, check

    for path, option in ((junit_xml, "--junit-xml"), (json_path, "--json")):
        if path:
            check_writable(path, option)
    partial = Report(target, profile)

    def progress(result: PropertyResult, index: int, total: int) -> None:
        # A property Ctrl-C cut short is no verdict, whatever the interrupt became in it.
        raise_if_interrupted()
        partial.results.append(result)
        note = f"  ({result.note})" if result.note else ""
        print(
            f"[{index:>{len(str(total))}}/{total}] {result.name}.{result.property}: "
            f"{result.status} in {result.seconds:.1f} s{note}",
            file=out,
            flush=True,
        )

    try:
        report = check(
            target,
            properties or None,
            profile=profile,
            seed=seed,
            shutdown_bound=shutdown_bound,
            factory=factory,
            progress=progress,
        )
        raise_if_interrupted()
    except BaseException as error:
        if not (isinstance(error, KeyboardInterrupt) or ctrl_c_seen()):
            raise
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # A second Ctrl-C must not cut the report.
        print("\ninterrupted: the results so far", file=out, flush=True)
        report, status = partial, INTERRUPTED
    else:
        status = 0 if report.passed else 1
    print("", file=out)
    print(report.table(), file=out, flush=True)
    if junit_xml:
        write_report(junit_xml, report.to_junit_xml())
    if json_path:
        write_report(json_path, report.to_json())
    return status
