"""Scenario files: TOML read into the models, every error located in the file.

The reader knows the file's shape (which tables and keys a scenario file has,
which are required) and where each key is written; the models
(``_schema.py``) know what a valid value is. It hands each table's keys, as
written, to the model (which applies its own defaults), and turns a model's
:class:`SpecError` into a :class:`ScenarioError` naming the file, the line and
the dotted key.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping
from typing import Any

from sockharness._core import UsageError
from sockharness.faults import FAULT_NAMES, Fault, fault_class, network_profile

from ._schema import (
    COMMAND_TIMEOUT,
    SHORT_FORM_NAME,
    STARTED_SERVER_KEYS,
    AbortWhen,
    ClientSpec,
    Expectations,
    FaultWindow,
    Key,
    Scenario,
    ScenarioError,
    ServerSpec,
    Service,
    SpecError,
    SteadyState,
    dotted,
    type_name,
)
from ._toml import TOMLDecodeError, decode_error_line, line_of, parse_toml
from ._variables import UndefinedVariable, environment_with, expand

__all__ = ["load_scenario", "parse_scenario"]

_SECTIONS = {"scenario", "server", "services", "clients", "faults", "expect", "steady_state"}
#: What a steady-state probe is not: it is one client, from the start.
_NOT_PROBE_KEYS = {"count", "rate", "start", "processes"}
_HEAD_KEYS = {"name", "description", "seed", "duration", "tags"}
_WINDOW_KEYS = {"fault", "side", "at", "until", "service"}
#: The [[clients]] keys of one protocol only.
_HTTP_KEYS = ("method", "path", "headers", "body", "expect_status", "expect_body", "expect_json")
_MESSAGE_KEYS = ("request", "expect_reply", "expect_match")
_ECHO_KEYS = ("reply",)


def load_scenario(
    path: str | os.PathLike[str], *, variables: Mapping[str, str] | None = None
) -> Scenario:
    """Read and check the scenario file at ``path``.

    ``${NAME}`` in its strings comes from ``variables``, then the environment.
    """
    file = os.fspath(path)
    try:
        with open(file, encoding="utf-8") as stream:
            text = stream.read()
    except OSError as exc:
        raise ScenarioError(file, f"cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(file, f"is not UTF-8 text ({exc.reason})") from None
    return parse_scenario(text, file, variables=variables)


def parse_scenario(
    text: str, file: str = "<scenario>", *, variables: Mapping[str, str] | None = None
) -> Scenario:
    """Check the scenario in ``text`` (``file`` names it in errors).

    ``${NAME}`` in its strings comes from ``variables``, then the environment;
    an undefined one is an error at its key.
    """
    try:
        document = parse_toml(text)
    except TOMLDecodeError as exc:
        message = str(exc).split(" (at line")[0]
        raise ScenarioError(
            file, f"is not valid TOML: {message}", line=decode_error_line(exc)
        ) from None
    try:
        document = expand(document, environment_with(variables))
    except UndefinedVariable as exc:
        raise ScenarioError(
            file, exc.message, key=dotted(exc.key) or None, line=line_of(text, exc.key)
        ) from None
    return _Reader(file, text).scenario(document)


def _fields(cls: type) -> set[str]:
    return {item.name for item in dataclasses.fields(cls)}


class _Reader:
    """Reads one document, raising errors that point into its file."""

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.text = text

    def fail(self, key: Key, message: str) -> ScenarioError:
        return ScenarioError(
            self.file, message, line=line_of(self.text, key), key=dotted(key) or None
        )

    def build(self, key: Key, model: Any, **values: Any) -> Any:
        """``model(**values)``; a bad value is an error at ``key`` plus the value's own key."""
        try:
            return model(**values)
        except SpecError as exc:
            raise self.fail((*key, *exc.key), exc.reason) from None

    # -- the file's shape -------------------------------------------------------------------

    def table(self, document: Mapping[str, Any], key: Key, *, required: bool) -> dict[str, Any]:
        value = document.get(str(key[-1]))
        if value is None:
            if required:
                raise ScenarioError(
                    self.file, f"a [{dotted(key)}] table is required", key=dotted(key)
                )
            return {}
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a table, found {type_name(value)}")
        return value

    def keys(self, table: Mapping[str, Any], key: Key, allowed: set[str]) -> None:
        for name in table:
            if name not in allowed:
                close = difflib.get_close_matches(name, allowed, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                known = ", ".join(sorted(allowed))
                raise self.fail((*key, name), f"unknown key{hint} (known here: {known})")

    def tables(self, value: Any, key: Key) -> list[dict[str, Any]]:
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise self.fail(key, f"expected [[{dotted(key)}]] tables")
        return value

    # -- sections ---------------------------------------------------------------------------

    def scenario(self, document: Mapping[str, Any]) -> Scenario:
        self.keys(document, (), _SECTIONS)
        head = self.table(document, ("scenario",), required=True)
        self.keys(head, ("scenario",), _HEAD_KEYS)
        if "name" not in head:
            raise self.fail(("scenario",), "the key 'name' is required")
        if "duration" not in head:
            raise self.fail(("scenario",), "the key 'duration' (seconds the load runs) is required")
        if "server" in document and "services" in document:
            named = document["services"]
            first = next(iter(named), None) if isinstance(named, dict) else None
            raise self.fail(
                ("services", first) if first is not None else ("services",),
                "a scenario has one [server] (the short form) or [services.NAME] tables: "
                "not both (move [server] into [services.NAME])",
            )
        server = self.server(self.table(document, ("server",), required=False), ("server",))
        services = self.services(document)
        clients = self.clients(document.get("clients"))
        faults = self.faults(document.get("faults"), server, services)
        expect = self.expect(self.table(document, ("expect",), required=False))
        steady = None
        if "steady_state" in document:
            steady = self.steady_state(self.table(document, ("steady_state",), required=True))
        return self.build(
            (),
            Scenario,
            file=self.file,
            server=server,
            clients=clients,
            faults=faults,
            expect=expect,
            steady_state=steady,
            services=services,
            **head,
        )

    def services(self, document: Mapping[str, Any]) -> tuple[Service, ...]:
        """The [services.NAME] tables, as written (the scenario orders them)."""
        if "services" not in document:
            return ()
        tables = self.table(document, ("services",), required=True)
        if not tables:
            raise self.fail(("services",), "expected at least one [services.NAME] table")
        services = []
        for name, table in tables.items():
            key: Key = ("services", name)
            if not isinstance(table, dict):
                raise self.fail(
                    key, f"expected a [services.{name}] table, found {type_name(table)}"
                )
            if name == SHORT_FORM_NAME:
                raise self.fail(
                    key,
                    "'server' names the one service of the short form: write [server], or name "
                    "the service after what it is (app, db, cache)",
                )
            values = {k: v for k, v in table.items() if k != "after"}
            self.keys(table, key, _fields(ServerSpec) | {"after"})
            server = self.server(values, key)
            services.append(
                self.build(key, Service, name=name, server=server, after=table.get("after", ()))
            )
        return tuple(services)

    def server(self, table: Mapping[str, Any], key: Key) -> ServerSpec:
        self.keys(table, key, _fields(ServerSpec))
        if "target" in table:
            given = [name for name in STARTED_SERVER_KEYS if name in table]
            if given:
                raise self.fail(
                    (*key, given[0]),
                    "does not apply to an outside server (target = ...): sockharness "
                    "does not start it; leave the key out",
                )
            if "kind" not in table:
                raise self.fail(
                    (*key, "target"), "an outside server needs its kind: add kind = ..."
                )
        if "server_class" in table and "concurrency" in table:
            raise self.fail(
                (*key, "concurrency"),
                "a server_class has its own concurrency (from its bases); leave the key out",
            )
        if "handler_delay" in table and table.get("handler") != "slow":
            raise self.fail((*key, "handler_delay"), "applies only to handler = 'slow'")
        return self.build(key, ServerSpec, **table)

    def clients(self, value: Any) -> tuple[ClientSpec, ...]:
        if value is None:
            raise ScenarioError(
                self.file,
                "at least one [[clients]] table is required (the load to put on the server)",
            )
        groups = []
        for index, table in enumerate(self.tables(value, ("clients",))):
            key: Key = ("clients", index)
            self.keys(table, key, _fields(ClientSpec))
            self.protocol_keys(table, key)
            values = dict(table)
            if "command" in values and "timeout" not in values:
                values["timeout"] = COMMAND_TIMEOUT
            groups.append(self.build(key, ClientSpec, **values))
        return tuple(groups)

    def protocol_keys(self, table: Mapping[str, Any], key: Key) -> None:
        """Each key belongs to the group's protocol; a workload takes none of them."""
        own = next((name for name in ("workload", "command") if name in table), None)
        if own is not None:
            for name in ("protocol", *_ECHO_KEYS, *_HTTP_KEYS, *_MESSAGE_KEYS):
                if name in table:
                    raise self.fail(
                        (*key, name),
                        f"a {own} is its own client and judges its own answers: leave the "
                        f"key out (or the {own})",
                    )
            return
        protocol = table.get("protocol", "echo")
        owners: dict[str, tuple[str, ...]] = dict.fromkeys(_HTTP_KEYS, ("http",))
        owners |= dict.fromkeys(_MESSAGE_KEYS, ("lines", "length-prefixed"))
        owners |= dict.fromkeys(_ECHO_KEYS, ("echo",))
        for name, protocols in owners.items():
            if name in table and protocol not in protocols:
                allowed = " or ".join(f"protocol = {owner!r}" for owner in protocols)
                raise self.fail((*key, name), f"applies only to {allowed}, not {protocol!r}")
        if protocol in ("lines", "length-prefixed") and not (
            "expect_reply" in table or "expect_match" in table
        ):
            raise self.fail(
                (*key, "protocol"),
                f"protocol = {protocol!r} needs expect_reply (the exact reply) or "
                f"expect_match (a regular expression): what a right answer is",
            )

    def faults(
        self, value: Any, server: ServerSpec, services: tuple[Service, ...]
    ) -> tuple[FaultWindow, ...]:
        if value is None:
            return ()
        kinds = {service.name: service.server.kind for service in services}
        windows = []
        for index, table in enumerate(self.tables(value, ("faults",))):
            key: Key = ("faults", index)
            if "profile" in table:
                # A profile's faults are those of its service's transport (an unknown or
                # missing service: any one's, and the scenario names the mistake).
                named = table.get("service")
                kind = kinds.get(named) if isinstance(named, str) else None
                kind = kind or next(iter(kinds.values()), server.kind)
                windows += self.profile(dict(table), key, kind)
                continue
            fault, rest = self.fault(dict(table), key)
            windows.append(self.build(key, FaultWindow, fault=fault, **rest))
        return tuple(windows)

    def profile(self, table: dict[str, Any], key: Key, kind: str) -> list[FaultWindow]:
        """A [[faults]] table with ``profile = "3g"``: one window per fault of the profile."""
        self.keys(table, key, (_WINDOW_KEYS - {"fault"}) | {"profile"})
        name = table["profile"]
        if not isinstance(name, str):
            raise self.fail((*key, "profile"), f"expected a string, found {type_name(name)}")
        try:
            faults = network_profile(name, kind)
        except UsageError as exc:
            raise self.fail((*key, "profile"), str(exc)) from None
        window = {k: v for k, v in table.items() if k in _WINDOW_KEYS - {"fault"}}
        return [self.build(key, FaultWindow, fault=fault, **window) for fault in faults]

    def fault(self, table: dict[str, Any], key: Key) -> tuple[Fault, dict[str, Any]]:
        """The fault a [[faults]] table names, and the table's window keys."""
        if "fault" not in table:
            raise self.fail(key, "the key 'fault' is required")
        name = table["fault"]
        if not isinstance(name, str):
            raise self.fail((*key, "fault"), f"expected a string, found {type_name(name)}")
        normalised = name.strip().lower().replace("-", "_")
        if ":" in name:
            try:
                cls = fault_class(name)
            except UsageError as exc:
                raise self.fail((*key, "fault"), str(exc)) from None
        elif normalised not in FAULT_NAMES:
            close = difflib.get_close_matches(normalised, FAULT_NAMES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise self.fail(
                (*key, "fault"),
                f"expected a fault name ({', '.join(FAULT_NAMES)}), found {name!r}{hint}",
            )
        else:
            cls = FAULT_NAMES[normalised]
        parameters = _fields(cls)
        self.keys(table, key, _WINDOW_KEYS | parameters)
        arguments = {k: v for k, v in table.items() if k in parameters}
        for argument, given in arguments.items():
            listed = argument in ("connections", "messages", "calls")
            if isinstance(given, dict) or (isinstance(given, list) and not listed):
                raise self.fail((*key, argument), f"expected a value, found {type_name(given)}")
        try:
            fault = cls(**arguments)
        except TypeError as exc:
            raise self.fail((*key, "fault"), f"{cls.__name__}: {exc}") from None
        except UsageError as exc:
            # The spec names the parameter it rejects: the key to point at.
            bad = exc.parameter if exc.parameter in arguments else None
            raise self.fail((*key, bad) if bad else (*key, "fault"), str(exc)) from None
        window = {k: v for k, v in table.items() if k in _WINDOW_KEYS - {"fault"}}
        return fault, window

    def steady_state(self, table: Mapping[str, Any]) -> SteadyState:
        key: Key = ("steady_state",)
        self.keys(table, key, _fields(SteadyState))
        values = dict(table)
        if "probe" in values:
            probe = self.table(values, (*key, "probe"), required=True)
            self.keys(probe, (*key, "probe"), _fields(ClientSpec) - _NOT_PROBE_KEYS)
            self.protocol_keys(probe, (*key, "probe"))
            values["probe"] = self.build((*key, "probe"), ClientSpec, **probe)
        if "abort_when" in values:
            abort = self.table(values, (*key, "abort_when"), required=True)
            self.keys(abort, (*key, "abort_when"), _fields(AbortWhen))
            values["abort_when"] = self.build((*key, "abort_when"), AbortWhen, **abort)
        return self.build(key, SteadyState, **values)

    def expect(self, table: Mapping[str, Any]) -> Expectations:
        key: Key = ("expect",)
        self.keys(table, key, _fields(Expectations))
        return self.build(key, Expectations, **table)
