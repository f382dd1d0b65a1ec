"""Reports of a scenario run: the terminal summary, JSON and JUnit XML (HTML: ``_html``)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from sockharness._core import format_table

from ._json_schema import REPORT_SCHEMA_ID
from ._result import ScenarioResult

__all__ = ["json_report", "junit_report", "markdown_report", "summary_table"]


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def summary_table(results: Sequence[ScenarioResult]) -> str:
    """One row per scenario: result, messages, errors, p50/p99 latency, broken invariants.

    ``errors`` counts the messages that failed (lost, corrupt or a connection
    error); ``handler errors`` the exceptions the server's handlers raised.
    """
    header = [
        "scenario",
        "result",
        "messages ok",
        "errors",
        "handler errors",
        "p50 ms",
        "p99 ms",
        "broken",
    ]
    rows = []
    for result in results:
        broken = ", ".join(invariant.name for invariant in result.broken)
        if result.skipped is not None:
            broken = f"skipped: {result.skipped}"
        elif result.error is not None:
            broken = "could not run"
        rows.append(
            [
                result.scenario.name,
                result.result,
                f"{result.count('ok')}/{len(result.messages)}",
                str(len(result.messages) - result.count("ok")),
                str(len(result.handler_errors)),
                _ms(result.latency(0.5)),
                _ms(result.latency(0.99)),
                broken or "-",
            ]
        )
    held = sum(1 for result in results if result.result == "held")
    skipped = sum(1 for result in results if result.result == "skipped")
    total = len(results)
    footer = f"{held} of {total} scenario{'s' if total != 1 else ''} held"
    if skipped:
        footer += f" ({skipped} skipped: this host cannot run them)"
    details = [result.failure_message() for result in results if result.failed]
    vacuous = [
        f"scenario {result.scenario.name!r}: {invariant.name} held with nothing to judge "
        f"({invariant.detail})"
        for result in results
        for invariant in result.invariants
        if invariant.vacuous
    ]
    if vacuous:
        details.append("\n".join(vacuous))
    return "\n\n".join([format_table(header, rows), *details, footer])


def json_report(results: Sequence[ScenarioResult]) -> str:
    """Every result in full, as JSON."""
    return json.dumps(
        {
            "schema": REPORT_SCHEMA_ID,
            "held": not any(result.failed for result in results),
            "scenarios": [result.to_dict() for result in results],
        },
        indent=2,
    )


def junit_report(results: Sequence[ScenarioResult]) -> str:
    """A JUnit XML test suite: one test case per scenario, failures with the broken invariants."""
    suite = ET.Element(
        "testsuite",
        name="sockharness chaos scenarios",
        tests=str(len(results)),
        failures=str(sum(1 for result in results if result.failed and not result.error)),
        skipped=str(sum(1 for result in results if result.result == "skipped")),
        errors=str(sum(1 for result in results if result.result == "error")),
        time=f"{sum(result.elapsed for result in results):.3f}",
    )
    for result in results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=result.scenario.file,
            name=result.scenario.name,
            time=f"{result.elapsed:.3f}",
        )
        if result.failed and result.error is None:
            names = ", ".join(invariant.name for invariant in result.broken)
            failure = ET.SubElement(case, "failure", message=f"{result.result}: {names}")
            failure.text = result.failure_message()
        elif result.result == "skipped":
            ET.SubElement(case, "skipped", message=result.skipped or "")
        elif result.result == "error":
            error = ET.SubElement(case, "error", message=result.error or "")
            error.text = result.failure_message()
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)


_MARKS = {
    "held": "✅",
    "broken": "❌",
    "aborted": "⛔",
    "not steady": "⚠️",
    "error": "💥",
    "skipped": "⏭️",
}


def _cell(text: object) -> str:
    """Text for a Markdown table cell: pipes escaped, one line."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def markdown_report(results: Sequence[ScenarioResult]) -> str:
    """A Markdown summary (for ``$GITHUB_STEP_SUMMARY``): a table, then each failure's
    broken invariants by phase."""
    held = sum(1 for result in results if result.result == "held")
    total = len(results)
    lines = [
        f"## sockharness chaos: {held} of {total} scenario{'s' if total != 1 else ''} held",
        "",
        "| scenario | result | messages ok | errors | p50 ms | p99 ms | recovery s | broken |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        steady = result.steady
        recovery = steady.recovery_time if steady is not None else None
        broken = ", ".join(f"`{invariant.name}`" for invariant in result.broken) or "-"
        lines.append(
            "| "
            + " | ".join(
                [
                    _cell(result.scenario.name),
                    f"{_MARKS.get(result.result, '')} {result.result}",
                    f"{result.count('ok')}/{len(result.messages)}",
                    str(len(result.messages) - result.count("ok")),
                    _ms(result.latency(0.5)),
                    _ms(result.latency(0.99)),
                    "-" if recovery is None else f"{recovery:.2f}",
                    broken,
                ]
            )
            + " |"
        )
    for result in results:
        if not result.failed:
            continue
        lines += [
            "",
            f"### {_MARKS.get(result.result, '')} {_cell(result.scenario.name)}: {result.result}",
            "",
        ]
        lines.append(f"`{_cell(result.scenario.file)}`, seed {result.seed}")
        lines.append("")
        if result.error is not None:
            lines.append(f"- could not run: {_cell(result.error)}")
        for invariant in result.broken:
            lines.append(f"- **{invariant.phase}** `{invariant.name}`: {_cell(invariant.detail)}")
    return "\n".join(lines) + "\n"
