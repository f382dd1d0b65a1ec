"""JSON Schemas (draft 2020-12) for scenario files and for the JSON report, versioned.

``sockharness schema scenario`` prints :func:`scenario_schema`, ``sockharness
schema report`` :func:`report_schema`. A scenario file is TOML; the schema
describes the document TOML reads into (tables as objects), so that editors
that validate TOML against a JSON Schema (taplo, Even Better TOML) check keys,
types, choices and ranges as the file is written.

The schema is the file's shape, not all of its rules: what concerns several
keys at once (a pattern that does not fit the kind, a window past the end, an
import path that does not import) is checked by ``sockharness check``, and a
file the schema accepts may still be invalid; one it rejects is always invalid.
The property names come from the models and the fault specs themselves, so a
key added to a model that the schema does not describe fails the tests.
"""

from __future__ import annotations

import dataclasses
from typing import Any, get_args

from sockharness._core import (
    CLIENT_PROTOCOLS,
    CONCURRENCIES,
    KINDS,
    PATTERNS,
    PAYLOAD_KINDS,
    REPLIES,
    Direction,
    Outcome,
    Phase,
    ScenarioOutcome,
)
from sockharness.faults import FAULT_NAMES, NETWORK_PROFILES
from sockharness.handlers import BUILTIN_HANDLERS

from ._schema import (
    MAX_CLIENTS,
    MAX_COMMAND_TIMEOUT,
    MAX_DURATION,
    SIDES,
)

__all__ = [
    "REPORT_SCHEMA_ID",
    "REPORT_SCHEMA_VERSION",
    "SCENARIO_SCHEMA_ID",
    "SCENARIO_SCHEMA_VERSION",
    "report_schema",
    "scenario_schema",
]

#: Bumped when a file valid under one version is not under the next.
SCENARIO_SCHEMA_VERSION = 1
REPORT_SCHEMA_VERSION = 1
_BASE = "https://sockharness.invalid/docs/schemas"
_DRAFT = "https://json-schema.org/draft/2020-12/schema"
#: What the JSON report's ``schema`` key says: the ``$id`` of the schema it follows.
REPORT_SCHEMA_ID = f"{_BASE}/report-{REPORT_SCHEMA_VERSION}.json"
SCENARIO_SCHEMA_ID = f"{_BASE}/scenario-{SCENARIO_SCHEMA_VERSION}.json"

#: A string that holds a variable (``${NAME}``): its value is known only when the file is read.
_VARIABLE: dict[str, Any] = {"type": "string", "pattern": r"\$\{"}
_IMPORT_PATH: dict[str, Any] = {"type": "string", "pattern": r"^[^:\s]+:[^:\s]+$"}


def _choice(values: Any, description: str) -> dict[str, Any]:
    """One of ``values``, or a string with a variable in it."""
    return {"anyOf": [{"enum": list(values)}, _VARIABLE], "description": description}


def _number(
    description: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    integer: bool = False,
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer" if integer else "number"}
    if low is not None:
        schema["exclusiveMinimum" if low_open else "minimum"] = low
    if high is not None:
        schema["maximum"] = high
    schema["description"] = description
    return schema


def _string(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", **extra, "description": description}


def _boolean(description: str) -> dict[str, Any]:
    return {"type": "boolean", "description": description}


def _strings(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string", **extra}, "description": description}


def _table(properties: dict[str, Any], *, required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = list(required)
    return schema


# -- sections -----------------------------------------------------------------------------------

HEAD = {
    "name": _string("the scenario's name", minLength=1, pattern=r"\S"),
    "description": _string("one line for the reports"),
    "seed": _number("seeds every random choice of the run", low=0, integer=True),
    "duration": _number("seconds the clients send", low=0, low_open=True, high=MAX_DURATION),
    "tags": _strings("labels for sockharness run --tag", pattern=r"^[A-Za-z0-9_.:/-]+$"),
}

SERVER: dict[str, Any] = {
    "kind": _choice([*KINDS, "unix-dgram"], "the transport"),
    "concurrency": _choice(CONCURRENCIES, "one request at a time, a thread, a child process"),
    "handler": {
        "anyOf": [{"enum": list(BUILTIN_HANDLERS)}, _IMPORT_PATH, _VARIABLE],
        "description": "a built-in handler or 'package.module:HandlerClass'",
    },
    "handler_delay": _number("seconds the slow handler waits", low=0, high=60),
    "tls": _boolean("serve TLS with a certificate from a fresh test CA"),
    "attributes": {"type": "object", "description": "set on the server class before it binds"},
    "server_class": {**_IMPORT_PATH, "description": "'package.module:ClassName' to run instead"},
    "target": _string("the address of a server that runs elsewhere", minLength=1),
}

SERVICE_ONLY = {
    "after": _strings("the services that must be serving before this one starts"),
}

CLIENT: dict[str, Any] = {
    "count": _number("identical clients in the group", low=1, high=MAX_CLIENTS, integer=True),
    "pattern": _choice(PATTERNS, "how the clients use connections"),
    "rate": _number("messages a second per client (0: as fast as it can)", low=0, high=100_000),
    "size": _number("bytes per message", low=32, high=1_000_000, integer=True),
    "payload": _choice(PAYLOAD_KINDS, "what the message bodies are"),
    "timeout": _number("seconds a reply may take", low=0, low_open=True, high=MAX_COMMAND_TIMEOUT),
    "reply": _choice(REPLIES, "what the echo clients expect back"),
    "start": _number("seconds after the start the group begins", low=0),
    "protocol": _choice(CLIENT_PROTOCOLS, "what the clients speak"),
    "workload": {**_IMPORT_PATH, "description": "'package.module:function' called per message"},
    "method": _string("the HTTP method", pattern=r"^([A-Z]+|.*\$\{.*)$"),
    "path": _string("the HTTP path", pattern=r"^(/|\*|.*\$\{)"),
    "headers": {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "description": "HTTP headers",
    },
    "body": _string("the HTTP request body"),
    "expect_status": {
        "anyOf": [
            {"type": "integer", "minimum": 100, "maximum": 599},
            {
                "type": "array",
                "items": {"type": "integer", "minimum": 100, "maximum": 599},
                "minItems": 1,
            },
        ],
        "description": "the HTTP status (or statuses) of a right answer",
    },
    "expect_body": _string("a regular expression the HTTP body must match"),
    "expect_json": {"type": "object", "description": "JSON pointer = the value it must hold"},
    "request": _string("the request template of lines and length-prefixed"),
    "expect_reply": _string("the exact reply"),
    "expect_match": _string("a regular expression the reply must match"),
    "command": {
        "type": "array",
        "items": {"type": "string"},
        "minItems": 1,
        "description": "a program and its arguments, run as the load",
    },
    "repeat": _boolean("run the command again and again until the end"),
    "processes": _number(
        "processes the clients run in, threads in each (0: threads of the runner)",
        low=0,
        high=MAX_CLIENTS,
        integer=True,
    ),
    "service": _string("the service the clients go to (several services)"),
}

#: The keys a probe does not take: it is one client, from the start.
NOT_PROBE = ("count", "rate", "start", "processes")

EXPECT: dict[str, Any] = {
    "intact_outside_faults": _boolean("every message outside the fault windows arrives intact"),
    "grace": _number("seconds after a window still counted in it", low=0, high=60),
    "max_error_rate": _number("the share of messages that may fail", low=0, high=1),
    "max_p50_latency": _number("the median latency bound", low=0, low_open=True, high=600),
    "max_p99_latency": _number("the 99th percentile bound", low=0, low_open=True, high=600),
    "min_messages": _number("messages that must have been answered", low=0, integer=True),
    "serving_after_faults": _boolean("a fresh request is answered after the faults"),
    "shutdown_within": _number("seconds the server may take to stop", low=0, low_open=True),
    "no_leaks": _boolean("no thread, descriptor or child left behind"),
    "faults_fired": _boolean("every fault did something"),
    "max_handler_errors": _number("exceptions the handlers may raise", low=0, integer=True),
}

ABORT_WHEN: dict[str, Any] = {
    "error_rate": _number("stop at this error rate", low=0, low_open=True, high=1),
    "latency": _number("stop at this median latency", low=0, low_open=True, high=600),
    "window": _number("over the last seconds", low=0, low_open=True, high=MAX_DURATION),
}

STEADY: dict[str, Any] = {
    "probe": None,  # Filled in below: a client table without count, rate, start.
    "samples": _number("exchanges per check", low=1, high=1000, integer=True),
    "interval": _number("seconds between them", low=0, low_open=True, high=60),
    "max_error_rate": _number("the share of them that may fail", low=0, high=1),
    "max_latency": _number("the bound on each one's latency", low=0, low_open=True, high=600),
    "max_recovery_time": _number("seconds to hold again", low=0, high=MAX_DURATION),
    "abort_when": None,
}

WINDOW: dict[str, Any] = {
    "fault": {
        "anyOf": [
            {"enum": sorted({*FAULT_NAMES, *(name.replace("_", "-") for name in FAULT_NAMES)})},
            _IMPORT_PATH,
        ],
        "description": "a fault of the catalogue, or 'package.module:FaultClass'",
    },
    "profile": {"enum": list(NETWORK_PROFILES), "description": "a network profile's faults"},
    "side": {"enum": list(SIDES), "description": "where the fault applies"},
    "at": _number("seconds from the start the window opens", low=0),
    "until": _number("seconds from the start it closes"),
    "service": _string("the service the fault strikes (several services)"),
}

#: A fault parameter's annotation (as the specs write it) and its JSON type.
_PARAMETER_TYPES: dict[str, dict[str, Any]] = {
    "float": {"type": "number"},
    "float | None": {"type": "number"},
    "int": {"type": "integer"},
    "int | None": {"type": "integer"},
    "bool": {"type": "boolean"},
    "str": {"type": "string"},
    "Direction": {"enum": list(get_args(Direction))},
    "OrdinalsLike": {
        "anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "array"}],
    },
    "OrdinalsLike | None": {
        "anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "array"}],
    },
    "FramerLike | None": {"type": "string"},
}


def fault_parameters(name: str) -> dict[str, Any]:
    """The JSON types of the parameters of the fault called ``name``."""
    parameters = {}
    for item in dataclasses.fields(FAULT_NAMES[name]):
        annotation = str(item.type)
        if annotation not in _PARAMETER_TYPES:
            raise TypeError(f"no JSON type for {name}.{item.name}: {annotation}")
        parameters[item.name] = _PARAMETER_TYPES[annotation]
    return parameters


def _required_parameters(name: str) -> list[str]:
    return [
        item.name
        for item in dataclasses.fields(FAULT_NAMES[name])
        if item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING
    ]


def _fault_table() -> dict[str, Any]:
    """A [[faults]] table: a fault and its parameters, or a profile, and the window."""
    window = {key: WINDOW[key] for key in ("side", "at", "until", "service")}
    by_name = []
    for name in FAULT_NAMES:
        parameters = fault_parameters(name)
        then: dict[str, Any] = {
            "properties": parameters,
            "propertyNames": {"enum": ["fault", *window, *parameters]},
        }
        required = _required_parameters(name)
        if required:
            then["required"] = required
        names = sorted({name, name.replace("_", "-")})
        by_name.append(
            {"if": {"properties": {"fault": {"enum": names}}, "required": ["fault"]}, "then": then}
        )
    return {
        "type": "object",
        "properties": {"fault": WINDOW["fault"], "profile": WINDOW["profile"], **window},
        "oneOf": [
            {"required": ["fault"], "not": {"required": ["profile"]}},
            {
                "required": ["profile"],
                "propertyNames": {"enum": ["profile", *window]},
            },
        ],
        "allOf": by_name,
    }


def _client_table(*, probe: bool = False) -> dict[str, Any]:
    properties = {k: v for k, v in CLIENT.items() if not (probe and k in NOT_PROBE)}
    return _table(properties)


def scenario_schema() -> dict[str, Any]:
    """The JSON Schema of a scenario file (as TOML reads it)."""
    steady = dict(STEADY)
    steady["probe"] = _client_table(probe=True)
    steady["abort_when"] = _table(ABORT_WHEN)
    service = _table({**SERVER, **SERVICE_ONLY})
    return {
        "$schema": _DRAFT,
        "$id": SCENARIO_SCHEMA_ID,
        "title": "sockharness chaos scenario",
        "description": f"A sockharness chaos scenario file, version {SCENARIO_SCHEMA_VERSION} "
        "(docs/scenarios.md). TOML tables are objects here.",
        "type": "object",
        "properties": {
            "scenario": _table(HEAD, required=("name", "duration")),
            "server": _table(SERVER),
            "services": {
                "type": "object",
                "minProperties": 1,
                "propertyNames": {
                    "pattern": r"^[A-Za-z][A-Za-z0-9_-]*$",
                    "not": {"enum": ["server"]},
                },
                "additionalProperties": service,
                "description": "several services, by name",
            },
            "clients": {"type": "array", "items": _client_table(), "minItems": 1},
            "faults": {"type": "array", "items": _fault_table()},
            "expect": _table(EXPECT),
            "steady_state": _table(steady),
        },
        "required": ["scenario", "clients"],
        "not": {"required": ["server", "services"]},
        "additionalProperties": False,
    }


# -- the report ---------------------------------------------------------------------------------


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    """An object with exactly these keys."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


_NUMBER = {"type": "number"}
_INTEGER = {"type": "integer", "minimum": 0}
_STRING = {"type": "string"}
_BOOLEAN = {"type": "boolean"}
_PHASE = {"enum": list(get_args(Phase))}


def _server_report() -> dict[str, Any]:
    return {
        "kind": {"enum": list(KINDS)},
        "concurrency": _nullable({"enum": list(CONCURRENCIES)}),
        "handler": _nullable(_STRING),
        "tls": _BOOLEAN,
        "target": _nullable(_STRING),
        "server_class": _nullable(_STRING),
        "description": _STRING,
    }


def _scenario_report() -> dict[str, Any]:
    steady = _object(
        {
            "not_steady": _nullable(_STRING),
            "aborted": _nullable(_STRING),
            "aborted_at": _nullable(_NUMBER),
            "faults_ended": _nullable(_NUMBER),
            "recovered_at": _nullable(_NUMBER),
            "recovery_time": _nullable(_NUMBER),
            "not_recovered": _nullable(_STRING),
            "samples": {
                "type": "array",
                "items": _object(
                    {
                        "t": _nullable(_NUMBER),
                        "latency": _NUMBER,
                        "outcome": {"enum": list(get_args(Outcome))},
                        "phase": _PHASE,
                    }
                ),
            },
        }
    )
    series = {"type": "object", "description": "the plots' time series (bins of the run)"}
    return _object(
        {
            "name": _STRING,
            "file": _STRING,
            "description": _STRING,
            "seed": _INTEGER,
            "duration": _NUMBER,
            "elapsed": _NUMBER,
            "result": {"enum": list(get_args(ScenarioOutcome))},
            "error": _nullable(_STRING),
            "server": _object(_server_report()),
            "services": {
                "type": "array",
                "minItems": 1,
                "items": _object(
                    {"name": _STRING, "after": {"type": "array", "items": _STRING}}
                    | _server_report()
                ),
            },
            "messages": _object(
                dict.fromkeys(("sent", "ok", "failed", "lost", "corrupt", "errors"), _INTEGER)
            ),
            "latency": _object({name: _nullable(_NUMBER) for name in ("p50", "p99", "max")}),
            "handler_errors": _INTEGER,
            "invariants": {
                "type": "array",
                "items": _object(
                    {
                        "name": _STRING,
                        "held": _BOOLEAN,
                        "detail": _STRING,
                        "vacuous": _BOOLEAN,
                        "phase": _PHASE,
                    }
                ),
            },
            "steady_state": _nullable(steady),
            "faults": {
                "type": "array",
                "items": _object(
                    {
                        "fault": _STRING,
                        "side": {"enum": list(SIDES)},
                        "service": _nullable(_STRING),
                        "at": _NUMBER,
                        "until": _nullable(_NUMBER),
                        "fired": _nullable(_BOOLEAN),
                    }
                ),
            },
            "problems": {"type": "array", "items": _STRING},
            "series": series,
        }
    )


def report_schema() -> dict[str, Any]:
    """The JSON Schema of the JSON report (``sockharness run --json``)."""
    return {
        "$schema": _DRAFT,
        "$id": REPORT_SCHEMA_ID,
        "title": "sockharness chaos report",
        "description": f"The JSON report of sockharness run --json, version "
        f"{REPORT_SCHEMA_VERSION} (docs/scenarios.md).",
        **_object(
            {
                "schema": {"const": REPORT_SCHEMA_ID},
                "held": _BOOLEAN,
                "scenarios": {"type": "array", "items": _scenario_report()},
            }
        ),
    }
