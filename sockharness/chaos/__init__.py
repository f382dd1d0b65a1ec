"""Chaos scenarios: declarative TOML files that run a server under load and faults, and judge it.

A scenario names a server (ours with a built-in handler, a class by import
path, or an outside address behind the fault proxy), the clients' load, the
faults and when they strike, and the invariants that must still hold::

    from sockharness.chaos import load_scenario, run_scenario

    result = run_scenario(load_scenario("scenarios/tcp_latency_window.toml"))
    assert result.result == "held", result.failure_message()

The format is documented in ``docs/scenarios.md``; ``sockharness run`` and
``sockharness check`` run and validate files, and ``pytest scenarios/``
collects them as test items.
"""

from __future__ import annotations

from typing import Any

from ._discover import find_scenario_files, is_scenario_file, load_scenarios
from ._html import render_html
from ._json_schema import (
    REPORT_SCHEMA_ID,
    SCENARIO_SCHEMA_ID,
    report_schema,
    scenario_schema,
)
from ._reader import load_scenario, parse_scenario
from ._reports import json_report, junit_report, markdown_report, summary_table
from ._result import Invariant, ScenarioResult
from ._runner import resolve_classes, resolve_services, run_scenario, scenario_id
from ._schema import (
    AbortWhen,
    ClientSpec,
    Expectations,
    FaultWindow,
    Scenario,
    ScenarioError,
    ServerSpec,
    Service,
    SpecError,
    SteadyState,
)
from ._steady import SteadyRecord

__all__ = [
    "REPORT_SCHEMA_ID",
    "SCENARIO_SCHEMA_ID",
    "AbortWhen",
    "ClientSpec",
    "Expectations",
    "FaultWindow",
    "Invariant",
    "Scenario",
    "ScenarioError",
    "ScenarioResult",
    "ServerSpec",
    "Service",
    "SpecError",
    "SteadyRecord",
    "SteadyState",
    "collect_scenario_file",
    "find_scenario_files",
    "is_scenario_file",
    "json_report",
    "junit_report",
    "load_scenario",
    "load_scenarios",
    "markdown_report",
    "parse_scenario",
    "render_html",
    "report_schema",
    "resolve_classes",
    "resolve_services",
    "run_scenario",
    "scenario_id",
    "scenario_schema",
    "summary_table",
]


def __getattr__(name: str) -> Any:
    # pytest's collector, loaded only by pytest: the CLI does not import pytest.
    if name == "collect_scenario_file":
        from ._pytest import collect_scenario_file

        return collect_scenario_file
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
