"""``sockharness schema scenario|report``: the versioned JSON Schemas, printed or written."""

from __future__ import annotations

import json
import sys
from typing import Literal

from ._reports import check_writable, write_report

__all__ = ["print_schema"]


def print_schema(document: Literal["scenario", "report"], output: str | None) -> int:
    """Print (or write to ``output``) the JSON Schema of ``document``; 0."""
    from sockharness.chaos import report_schema, scenario_schema

    schema = scenario_schema() if document == "scenario" else report_schema()
    text = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        sys.stdout.write(text)
        return 0
    check_writable(output, "--output")
    write_report(output, text)
    return 0
