"""The published JSON Schemas: valid schemas, the same as the command prints, accepting every
shipped scenario and every report a run writes, and rejecting what the reader rejects."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sockharness.chaos import (
    REPORT_SCHEMA_ID,
    AbortWhen,
    ClientSpec,
    Expectations,
    ScenarioError,
    ServerSpec,
    SteadyState,
    json_report,
    parse_scenario,
    report_schema,
    run_scenario,
    scenario_schema,
)
from tests.helpers import SUBPROCESSES_TIMEOUT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(
    [
        *(ROOT / "scenarios").glob("*.toml"),
        *(ROOT / "examples" / "failing").glob("*.toml"),
        *(ROOT / "examples" / "services").glob("*.toml"),
    ]
)
SCENARIO = jsonschema.Draft202012Validator(scenario_schema())
REPORT = jsonschema.Draft202012Validator(report_schema())


def _errors(validator: Any, document: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


@pytest.mark.parametrize("document", ["scenario", "report"])
def test_the_command_prints_the_published_schema(document: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sockharness", "schema", document],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    jsonschema.Draft202012Validator.check_schema(printed)
    published = ROOT / "docs" / "schemas" / f"{document}-1.json"
    assert json.loads(published.read_text()) == printed, (
        f"{published} is out of date: sockharness schema {document} -o {published}"
    )
    assert printed["$id"].endswith(f"/{document}-1.json")


def test_a_bad_schema_name_is_one_line_and_exit_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sockharness", "schema", "scenarios"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "invalid choice: 'scenarios'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("path", SHIPPED, ids=[path.name for path in SHIPPED])
def test_every_shipped_scenario_is_valid_under_the_schema(path: Path) -> None:
    assert _errors(SCENARIO, tomllib.loads(path.read_text())) == []


def _fields(cls: type) -> set[str]:
    return {item.name for item in dataclasses.fields(cls)}


def test_the_schema_has_every_key_the_models_have() -> None:
    sections = scenario_schema()["properties"]
    steady = sections["steady_state"]["properties"]
    service = sections["services"]["additionalProperties"]["properties"]
    for described, model in [
        (sections["server"]["properties"], ServerSpec),
        (sections["clients"]["items"]["properties"], ClientSpec),
        (sections["expect"]["properties"], Expectations),
        (steady, SteadyState),
        (steady["abort_when"]["properties"], AbortWhen),
    ]:
        assert set(described) == _fields(model), (
            f"{model.__name__}: {set(described) ^ _fields(model)}"
        )
    assert set(service) == _fields(ServerSpec) | {"after"}
    assert set(steady["probe"]["properties"]) == _fields(ClientSpec) - {
        "count",
        "rate",
        "start",
        "processes",
    }


# -- what the reader rejects, the schema rejects --------------------------------------------------

HEAD = '[scenario]\nname = "s"\nduration = 1\n'
CLIENT = "\n[[clients]]\n"


@pytest.mark.parametrize(
    "text",
    [
        HEAD + CLIENT + "[extra]\n",
        HEAD + '[server]\nkind = "tcp4"\n' + CLIENT,
        HEAD + "[server]\nhandlr = 'echo'\n" + CLIENT,
        HEAD + "[server]\ntls = 'yes'\n" + CLIENT,
        HEAD + CLIENT + "count = 0\n",
        HEAD + CLIENT + "rate = -1\n",
        HEAD + CLIENT + "size = 8\n",
        HEAD + CLIENT + 'pattern = "sometimes"\n',
        HEAD + CLIENT + 'protocol = "gopher"\n',
        HEAD + CLIENT + 'method = "get"\nprotocol = "http"\n',
        HEAD + CLIENT + "expect_status = 700\nprotocol = 'http'\n",
        HEAD + CLIENT + "command = []\n",
        '[scenario]\nname = "s"\nduration = 0\n' + CLIENT,
        '[scenario]\nname = "s"\nduration = 301\n' + CLIENT,
        '[scenario]\nname = "s"\n' + CLIENT,
        '[scenario]\nname = "s"\nduration = 1\ntags = ["a b"]\n' + CLIENT,
        HEAD,
        HEAD + CLIENT + '[[faults]]\nfault = "latncy"\ndelay = 0.1\n',
        HEAD + CLIENT + '[[faults]]\nfault = "latency"\n',
        HEAD + CLIENT + '[[faults]]\nfault = "latency"\ndelay = 0.1\nsize = 3\n',
        HEAD + CLIENT + '[[faults]]\nfault = "latency"\ndelay = "0.1"\n',
        HEAD + CLIENT + '[[faults]]\nfault = "latency"\ndelay = 0.1\nside = "middle"\n',
        HEAD + CLIENT + '[[faults]]\nprofile = "5g"\n',
        HEAD + CLIENT + '[[faults]]\nprofile = "3g"\nfault = "latency"\n',
        HEAD + "[server]\n[services.db]\n" + CLIENT + 'service = "db"\n',
        HEAD + "[services.server]\n" + CLIENT,
        HEAD + "[services.9db]\n" + CLIENT,
        HEAD + "[services.db]\nafter = 'app'\n" + CLIENT,
        HEAD + CLIENT + "[expect]\nmax_error_rate = 2\n",
        HEAD + CLIENT + "[expect]\nmax_eror_rate = 0.1\n",
        HEAD + CLIENT + "[steady_state]\nsamples = 0\n",
        HEAD + CLIENT + "[steady_state.probe]\ncount = 2\n",
        HEAD + CLIENT + "[steady_state.abort_when]\nerror_rate = 0\n",
    ],
)
def test_what_the_reader_rejects_for_its_shape_the_schema_rejects(text: str) -> None:
    with pytest.raises(ScenarioError):
        parse_scenario(text, "bad.toml")
    assert _errors(SCENARIO, tomllib.loads(text)), f"the schema accepts:\n{text}"


_VALUES: dict[str, Any] = {
    "count": st.integers(1, 4),
    "pattern": st.sampled_from(["persistent", "connect-per-request"]),
    "rate": st.floats(0, 1000) | st.integers(0, 1000),
    "size": st.integers(32, 4096),
    "payload": st.sampled_from(["random", "text", "line", "json"]),
    "timeout": st.floats(0.01, 60),
    "reply": st.sampled_from(["echo", "upper", "none", "any"]),
    "start": st.floats(0, 0.5),
}
_FAULTS = st.sampled_from(
    [
        {"fault": "latency", "delay": 0.1, "jitter": 0.01, "direction": "upstream"},
        {"fault": "slow-close", "delay": 0.1, "toxicity": 0.5},
        {"fault": "reset_peer", "connections": "0-3", "at": 0.1, "until": 0.5},
        {"fault": "slicer", "average_size": 8, "side": "server"},
        {"fault": "socket_error", "error": "ECONNRESET", "calls": [0, 2], "side": "client"},
        {"profile": "3g", "at": 0.2},
        {"fault": "down", "at": 0.3, "until": 0.6},
    ]
)


@settings(max_examples=60, deadline=None)
@given(
    client=st.fixed_dictionaries({}, optional=_VALUES),
    faults=st.lists(_FAULTS, max_size=3, unique_by=lambda fault: str(sorted(fault))),
    kind=st.sampled_from(["tcp", "unix", "tcp6"]),
)
def test_every_scenario_the_reader_accepts_the_schema_accepts(
    client: dict[str, Any], faults: list[dict[str, Any]], kind: str
) -> None:
    document = {
        "scenario": {"name": "generated", "duration": 1.0, "seed": 3},
        "server": {"kind": kind},
        "clients": [client],
        "faults": faults,
    }
    text = _toml(document)
    try:
        parse_scenario(text, "generated.toml")
    except ScenarioError:
        return  # What concerns several keys at once is the reader's alone.
    assert _errors(SCENARIO, tomllib.loads(text)) == [], text


def _toml(document: dict[str, Any]) -> str:
    """A TOML file for ``document`` (tables and arrays of tables of scalars and lists)."""
    lines: list[str] = []
    for name, value in document.items():
        tables = value if isinstance(value, list) else [value]
        for table in tables:
            lines.append(f"[[{name}]]" if isinstance(value, list) else f"[{name}]")
            lines += [f"{key} = {json.dumps(item)}" for key, item in table.items()]
    return "\n".join(lines) + "\n"


# -- reports ------------------------------------------------------------------------------------


# All 15 shipped scenarios in one subprocess: 34.5 s of their durations, 37 s in all.
@SUBPROCESSES_TIMEOUT
def test_the_report_of_every_shipped_scenario_is_valid(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "sockharness", "run", str(ROOT / "scenarios"), "--json",
         str(report), "--failures", "off"],
        capture_output=True, text=True, timeout=600, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(report.read_text())
    assert document["schema"] == REPORT_SCHEMA_ID
    assert len(document["scenarios"]) == len(list((ROOT / "scenarios").glob("*.toml")))
    assert _errors(REPORT, document) == []


def _result_of(body: str) -> dict[str, Any]:
    scenario = parse_scenario(textwrap.dedent(body), "report.toml")
    return json.loads(json_report([run_scenario(scenario)]))


@pytest.mark.parametrize(
    ("body", "result"),
    [
        (
            """
            [scenario]
            name = "broken"
            duration = 0.3
            [server]
            handler = "upper"
            [[clients]]
            reply = "echo"
            """,
            "broken",
        ),
        (
            """
            [scenario]
            name = "not steady"
            duration = 0.3
            [server]
            handler = "discard"
            [[clients]]
            reply = "echo"
            timeout = 0.1
            [steady_state]
            samples = 2
            interval = 0.05
            """,
            "not steady",
        ),
        (
            """
            [scenario]
            name = "aborted"
            duration = 5
            [[clients]]
            timeout = 0.2
            [[faults]]
            fault = "down"
            at = 0.2
            [steady_state]
            samples = 2
            interval = 0.05
            [steady_state.abort_when]
            error_rate = 0.5
            window = 0.3
            """,
            "aborted",
        ),
        (
            """
            [scenario]
            name = "error"
            duration = 0.3
            [server]
            kind = "tcp"
            target = "127.0.0.1:9"
            [[clients]]
            """,
            "error",
        ),
    ],
)
def test_the_report_of_a_failed_run_is_valid(body: str, result: str) -> None:
    document = _result_of(body)
    assert document["scenarios"][0]["result"] == result
    assert _errors(REPORT, document) == []


def test_the_report_schema_rejects_what_no_report_holds() -> None:
    document = _result_of(
        """
        [scenario]
        name = "held"
        duration = 0.2
        [[clients]]
        """
    )
    assert _errors(REPORT, document) == []
    scenario = document["scenarios"][0]
    for broken in (
        {**document, "schema": "https://example.invalid/report-0.json"},
        {**document, "scenarios": [{**scenario, "result": "fine"}]},
        {**document, "scenarios": [{**scenario, "extra": 1}]},
        {**document, "scenarios": [{k: v for k, v in scenario.items() if k != "seed"}]},
    ):
        assert _errors(REPORT, broken)
