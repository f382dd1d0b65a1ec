"""The scenario format: what a file may say, checked strictly, as immutable objects.

A scenario file has five sections (see ``docs/scenarios.md``): ``[scenario]``,
``[server]``, ``[[clients]]``, ``[[faults]]`` and ``[expect]``. Every key is
known, typed and ranged; anything else is a :class:`ScenarioError` that names
the file, the line where it can be told, the key, what was expected and what
was found.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, get_args

from sockharness._core import (
    CONCURRENCIES,
    KINDS,
    PATTERNS,
    PAYLOAD_KINDS,
    REPLIES,
    Side,
    SockharnessError,
    UsageError,
    parse_address,
)
from sockharness.faults import DATAGRAM, FAULT_NAMES, STREAM, Down, Fault
from sockharness.handlers import BUILTIN_HANDLERS

from ._toml import TOMLDecodeError, decode_error_line, line_of, parse_toml

__all__ = [
    "ClientSpec",
    "Expectations",
    "FaultWindow",
    "Scenario",
    "ScenarioError",
    "ServerSpec",
    "load_scenario",
    "parse_scenario",
]

SIDES: tuple[Side, ...] = get_args(Side)
MAX_DURATION = 300.0
#: The [server] keys of a server sockharness starts (not of an outside ``target``).
_STARTED_SERVER_KEYS = (
    "concurrency",
    "handler",
    "handler_delay",
    "tls",
    "attributes",
    "server_class",
)
MAX_CLIENTS = 256
MAX_DATAGRAM = 8192


class ScenarioError(SockharnessError, ValueError):
    """A scenario file that cannot be run: where, which key, what was expected and found."""

    def __init__(
        self, file: str, message: str, *, line: int | None = None, key: str | None = None
    ) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.reason = message
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


@dataclass(frozen=True)
class ServerSpec:
    """What to serve: ours with a handler, a class by import path, or an outside address."""

    kind: str = "tcp"
    concurrency: str = "threading"
    handler: str = "echo"
    handler_delay: float = 0.05
    tls: bool = False
    attributes: Mapping[str, Any] = field(default_factory=dict)
    server_class: str | None = None
    target: str | None = None

    @property
    def stream(self) -> bool:
        """Whether the kind is a byte stream."""
        return KINDS[self.kind].stream

    def describe(self) -> str:
        """One line for reports."""
        if self.target is not None:
            return f"{self.kind} at {self.target} (outside)"
        what = self.server_class or f"{self.handler} ({self.concurrency})"
        return f"{what} over {self.kind}" + (" with TLS" if self.tls else "")


@dataclass(frozen=True)
class ClientSpec:
    """One group of identical clients and the load each puts on the server."""

    count: int = 1
    pattern: str = "persistent"
    rate: float = 20.0
    size: int = 64
    payload: str = "random"
    timeout: float = 2.0
    reply: str = "echo"
    start: float = 0.0


@dataclass(frozen=True)
class FaultWindow:
    """A fault, where it applies, and from when until when (seconds from the start)."""

    fault: Fault
    side: str
    at: float
    until: float

    def covers(self, start: float, end: float, grace: float = 0.0) -> bool:
        """Whether ``[start, end]`` overlaps the window, lengthened by ``grace`` at its end."""
        return start < self.until + grace and end >= self.at


@dataclass(frozen=True)
class Expectations:
    """The invariants that must hold; ``None`` means not checked."""

    intact_outside_faults: bool = True
    grace: float = 0.5
    max_error_rate: float | None = None
    max_p50_latency: float | None = None
    max_p99_latency: float | None = None
    min_messages: int = 1
    serving_after_faults: bool = True
    shutdown_within: float = 2.0
    no_leaks: bool = True
    faults_fired: bool = True
    max_handler_errors: int | None = None


@dataclass(frozen=True)
class Scenario:
    """One chaos scenario, as its file says."""

    name: str
    file: str
    duration: float
    server: ServerSpec
    clients: tuple[ClientSpec, ...]
    faults: tuple[FaultWindow, ...] = ()
    expect: Expectations = Expectations()
    description: str = ""
    seed: int = 0

    @property
    def fault_sides(self) -> set[str]:
        """The sides the scenario's faults apply on."""
        return {window.side for window in self.faults}


# -- reading ------------------------------------------------------------------------------


def load_scenario(path: str | os.PathLike[str]) -> Scenario:
    """Read and check the scenario file at ``path``."""
    file = os.fspath(path)
    try:
        with open(file, encoding="utf-8") as stream:
            text = stream.read()
    except OSError as exc:
        raise ScenarioError(file, f"cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(file, f"is not UTF-8 text ({exc.reason})") from None
    return parse_scenario(text, file)


def parse_scenario(text: str, file: str = "<scenario>") -> Scenario:
    """Check the scenario in ``text`` (``file`` names it in errors)."""
    try:
        document = parse_toml(text)
    except TOMLDecodeError as exc:
        message = str(exc).split(" (at line")[0]
        raise ScenarioError(
            file, f"is not valid TOML: {message}", line=decode_error_line(exc)
        ) from None
    return _Reader(file, text).scenario(document)


_Path = tuple[str | int, ...]


_TYPE_NAMES = ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"))


def _type_name(value: Any) -> str:
    """What a TOML value is, for messages: ``an integer (3)``, ``a table``."""
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    for python_type, name in _TYPE_NAMES:
        if isinstance(value, python_type):
            shown = f"{value!r}"
            return f"{name} ({shown})"
    if isinstance(value, list):
        return "an array"
    return "a table" if isinstance(value, dict) else type(value).__name__


def _dotted(path: _Path) -> str:
    parts: list[str] = []
    for part in path:
        if isinstance(part, int):
            parts[-1] += f"[{part}]"
        else:
            parts.append(part)
    return ".".join(parts)


class _Reader:
    """Checks one document, raising errors that point into its file."""

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.text = text

    def fail(self, path: _Path, message: str) -> ScenarioError:
        return ScenarioError(
            self.file, message, line=line_of(self.text, path), key=_dotted(path) or None
        )

    # -- typed values -------------------------------------------------------------------

    def table(self, document: Mapping[str, Any], path: _Path, *, required: bool) -> dict[str, Any]:
        value = document.get(str(path[-1])) if not isinstance(path[-1], int) else document
        if value is None:
            if required:
                raise ScenarioError(
                    self.file, f"a [{_dotted(path)}] table is required", key=_dotted(path)
                )
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a table, found {_type_name(value)}")
        return value

    def keys(self, table: Mapping[str, Any], path: _Path, allowed: set[str]) -> None:
        for key in table:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                known = ", ".join(sorted(allowed))
                raise self.fail((*path, key), f"unknown key{hint} (known here: {known})")

    def string(
        self, table: Mapping[str, Any], path: _Path, default: str | None, choices: Any = None
    ) -> Any:
        key = str(path[-1])
        if key not in table:
            if default is None and choices is not None and choices == "required":
                raise self.fail(path[:-1], f"the key {key!r} is required")
            return default
        value = table[key]
        if not isinstance(value, str):
            raise self.fail(path, f"expected a string, found {_type_name(value)}")
        if choices is not None and choices != "required" and value not in choices:
            close = difflib.get_close_matches(value, list(choices), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            options = ", ".join(repr(choice) for choice in choices)
            raise self.fail(path, f"expected one of {options}, found {value!r}{hint}")
        return value

    def number(
        self,
        table: Mapping[str, Any],
        path: _Path,
        default: float | None,
        *,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
        integer: bool = False,
    ) -> Any:
        key = str(path[-1])
        if key not in table:
            return default
        value = table[key]
        wanted = "an integer" if integer else "a number"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(path, f"expected {wanted}, found {_type_name(value)}")
        if integer and not isinstance(value, int):
            raise self.fail(path, f"expected {wanted}, found {_type_name(value)}")
        if not math.isfinite(value):
            raise self.fail(path, f"expected a finite number, found {value}")
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and value > high
        if too_low or too_high:
            left = "(" if low_open else "["
            lower = "-inf" if low is None else f"{low:g}"
            upper = "inf" if high is None else f"{high:g}"
            bounds = f"{left}{lower}, {upper}]"
            raise self.fail(path, f"expected {wanted} in {bounds}, found {value}")
        return value if integer else float(value)

    def boolean(self, table: Mapping[str, Any], path: _Path, default: bool) -> bool:
        key = str(path[-1])
        if key not in table:
            return default
        value = table[key]
        if not isinstance(value, bool):
            raise self.fail(path, f"expected true or false, found {_type_name(value)}")
        return value

    # -- sections -----------------------------------------------------------------------

    def scenario(self, document: Mapping[str, Any]) -> Scenario:
        self.keys(document, (), {"scenario", "server", "clients", "faults", "expect"})
        head = self.table(document, ("scenario",), required=True)
        self.keys(head, ("scenario",), {"name", "description", "seed", "duration"})
        name = self.string(head, ("scenario", "name"), None, "required")
        if not name.strip():
            raise self.fail(("scenario", "name"), "expected a name, found an empty string")
        description = self.string(head, ("scenario", "description"), "")
        seed = self.number(head, ("scenario", "seed"), 0, low=0, integer=True)
        if "duration" not in head:
            raise self.fail(("scenario",), "the key 'duration' (seconds the load runs) is required")
        duration = self.number(
            head, ("scenario", "duration"), None, low=0, low_open=True, high=MAX_DURATION
        )
        server = self.server(self.table(document, ("server",), required=False))
        clients = self.clients(document.get("clients"), server, duration)
        faults = self.faults(document.get("faults"), server, duration)
        expect = self.expect(self.table(document, ("expect",), required=False))
        return Scenario(
            name=name,
            file=self.file,
            duration=duration,
            server=server,
            clients=clients,
            faults=faults,
            expect=expect,
            description=description,
            seed=seed,
        )

    def server(self, table: Mapping[str, Any]) -> ServerSpec:
        p: _Path = ("server",)
        self.keys(table, p, {"kind", "target", *_STARTED_SERVER_KEYS})
        if isinstance(table.get("kind"), str):
            table = {**table, "kind": table["kind"].replace("-", "_")}  # unix-dgram, as on the CLI
        kind = self.string(table, (*p, "kind"), "tcp", tuple(KINDS))
        target = self.string(table, (*p, "target"), None)
        server_class = self.string(table, (*p, "server_class"), None)
        if target is not None:
            for other in _STARTED_SERVER_KEYS:
                if other in table:
                    raise self.fail(
                        (*p, other),
                        "does not apply to an outside server (target = ...): sockharness "
                        "does not start it; leave the key out",
                    )
            if "kind" not in table:
                raise self.fail((*p, "target"), "an outside server needs its kind: add kind = ...")
            self._check_address(target, kind, (*p, "target"))
            return ServerSpec(kind=kind, target=target)
        if server_class is not None:
            self._check_import_path(server_class, (*p, "server_class"))
            if "concurrency" in table:
                raise self.fail(
                    (*p, "concurrency"),
                    "a server_class has its own concurrency (from its bases); leave the key out",
                )
        concurrency = self.string(table, (*p, "concurrency"), "threading", CONCURRENCIES)
        handler = self.string(table, (*p, "handler"), "echo")
        if handler not in BUILTIN_HANDLERS:
            if ":" not in handler:
                options = ", ".join(repr(name) for name in BUILTIN_HANDLERS)
                close = difflib.get_close_matches(handler, list(BUILTIN_HANDLERS), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise self.fail(
                    (*p, "handler"),
                    f"expected one of {options} or 'package.module:HandlerClass', "
                    f"found {handler!r}{hint}",
                )
            self._check_import_path(handler, (*p, "handler"))
        if "handler_delay" in table and handler != "slow":
            raise self.fail((*p, "handler_delay"), "applies only to handler = 'slow'")
        handler_delay = self.number(table, (*p, "handler_delay"), 0.05, low=0, high=60)
        tls = self.boolean(table, (*p, "tls"), False)
        if tls and not KINDS[kind].stream:
            raise self.fail(
                (*p, "tls"),
                f"TLS needs a stream kind (tcp, tcp6, unix), and {kind!r} is a datagram kind",
            )
        attributes = self.table(table, (*p, "attributes"), required=False)
        return ServerSpec(
            kind=kind,
            concurrency=concurrency,
            handler=handler,
            handler_delay=handler_delay,
            tls=tls,
            attributes=dict(attributes),
            server_class=server_class,
        )

    def _check_address(self, target: str, kind: str, path: _Path) -> None:
        try:
            address = parse_address(target, KINDS[kind], "the target")
        except UsageError as exc:
            raise self.fail(path, str(exc)) from None
        if not KINDS[kind].unix and address[1] == 0:
            raise self.fail(path, f"expected a port from 1 to 65535, found {target!r}")

    def _check_import_path(self, value: str, path: _Path) -> None:
        module, sep, name = value.partition(":")
        if not sep or not module or not name:
            raise self.fail(path, f"expected 'package.module:ClassName', found {value!r}")

    def clients(self, value: Any, server: ServerSpec, duration: float) -> tuple[ClientSpec, ...]:
        if value is None:
            raise ScenarioError(
                self.file,
                "at least one [[clients]] table is required (the load to put on the server)",
            )
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise self.fail(("clients",), "expected [[clients]] tables")
        if not value:
            raise self.fail(("clients",), "expected at least one [[clients]] table, found none")
        builtin = BUILTIN_HANDLERS.get(server.handler)
        default_reply = builtin.reply if builtin is not None else "any"
        if server.target is not None or server.server_class is not None:
            default_reply = "any"
        groups = []
        for index, table in enumerate(value):
            p: _Path = ("clients", index)
            allowed = {"count", "pattern", "rate", "size", "payload", "timeout", "reply", "start"}
            self.keys(table, p, allowed)
            count = self.number(table, (*p, "count"), 1, low=1, high=MAX_CLIENTS, integer=True)
            default_pattern = "persistent" if server.stream else "datagram"
            pattern = self.string(table, (*p, "pattern"), default_pattern, PATTERNS)
            if server.stream and pattern == "datagram":
                raise self.fail(
                    (*p, "pattern"),
                    f"'datagram' needs a datagram kind, and {server.kind!r} is a stream; "
                    "use 'persistent' or 'connect-per-request'",
                )
            if not server.stream and pattern != "datagram":
                raise self.fail(
                    (*p, "pattern"),
                    f"a {server.kind!r} server takes datagrams: use pattern = 'datagram'",
                )
            rate = self.number(table, (*p, "rate"), 20.0, low=0, high=100_000)
            high = MAX_DATAGRAM if not server.stream else 1_000_000
            size = self.number(table, (*p, "size"), 64, low=32, high=high, integer=True)
            payload = self.string(table, (*p, "payload"), "random", PAYLOAD_KINDS)
            timeout = self.number(table, (*p, "timeout"), 2.0, low=0, low_open=True, high=60)
            reply = self.string(table, (*p, "reply"), default_reply, REPLIES)
            start = self.number(table, (*p, "start"), 0.0, low=0, high=duration)
            if start >= duration:
                raise self.fail(
                    (*p, "start"),
                    f"expected a start before the end of the scenario ({duration:g} s), "
                    f"found {start:g}: these clients would send nothing",
                )
            groups.append(
                ClientSpec(
                    count=count,
                    pattern=pattern,
                    rate=rate,
                    size=size,
                    payload=payload,
                    timeout=timeout,
                    reply=reply,
                    start=start,
                )
            )
        total = sum(group.count for group in groups)
        if total > MAX_CLIENTS:
            raise self.fail(
                ("clients",),
                f"expected at most {MAX_CLIENTS} clients in all, found {total}: every client "
                f"is a thread of the runner",
            )
        return tuple(groups)

    def faults(self, value: Any, server: ServerSpec, duration: float) -> tuple[FaultWindow, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise self.fail(("faults",), "expected [[faults]] tables")
        windows: list[FaultWindow] = []
        for index, table in enumerate(value):
            window = self.fault(dict(table), ("faults", index), server, duration)
            for earlier, other in enumerate(windows):
                if (
                    other.fault == window.fault
                    and other.side == window.side
                    and window.at < other.until
                    and other.at < window.until
                ):
                    raise self.fail(
                        ("faults", index),
                        f"the same fault on the same side as faults[{earlier}], in an "
                        f"overlapping window: merge the two windows into one",
                    )
            windows.append(window)
        return tuple(windows)

    def fault(
        self, table: dict[str, Any], p: _Path, server: ServerSpec, duration: float
    ) -> FaultWindow:
        name = self.string(table, (*p, "fault"), None, "required")
        key = name.strip().lower().replace("-", "_")
        if key not in FAULT_NAMES:
            close = difflib.get_close_matches(key, FAULT_NAMES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise self.fail(
                (*p, "fault"),
                f"expected a fault name ({', '.join(FAULT_NAMES)}), found {name!r}{hint}",
            )
        cls = FAULT_NAMES[key]
        parameters = {f.name for f in dataclasses.fields(cls)}
        self.keys(table, p, {"fault", "side", "at", "until"} | parameters)
        side = self.string(table, (*p, "side"), "proxy", SIDES)
        at = self.number(table, (*p, "at"), 0.0, low=0, high=duration)
        if at >= duration:
            raise self.fail(
                (*p, "at"),
                f"expected a start before the end of the scenario ({duration:g} s), found {at:g}",
            )
        until = self.number(table, (*p, "until"), duration, low=at, low_open=True, high=duration)
        arguments = {k: v for k, v in table.items() if k in parameters}
        for argument, given in arguments.items():
            if isinstance(given, (list, dict)):
                raise self.fail((*p, argument), f"expected a value, found {_type_name(given)}")
        try:
            fault = cls(**arguments)
        except TypeError as exc:
            raise self.fail((*p, "fault"), f"{cls.__name__}: {exc}") from None
        except UsageError as exc:
            # The spec names the parameter it rejects: the key to point at.
            bad = exc.parameter if exc.parameter in arguments else None
            raise self.fail((*p, bad) if bad else (*p, "fault"), str(exc)) from None
        transport = STREAM if server.stream else DATAGRAM
        if transport not in fault.transports:
            what = "stream" if server.stream else "datagram"
            raise self.fail(
                (*p, "fault"),
                f"{cls.__name__} does not apply to a {what} server ({server.kind}); "
                f"see the fault catalogue for the faults of each transport",
            )
        if isinstance(fault, Down) and side != "proxy":
            raise self.fail((*p, "side"), "Down takes the proxy down: use side = 'proxy'")
        if side != "proxy" and server.tls:
            raise self.fail(
                (*p, "side"),
                "faults in the process cannot reach the bytes under TLS; use side = 'proxy'",
            )
        if side == "server" and server.target is not None:
            raise self.fail(
                (*p, "side"),
                "an outside server (target = ...) runs elsewhere; use side = 'proxy' or 'client'",
            )
        if side == "server" and not server.stream and (at > 0 or until < duration):
            raise self.fail(
                (*p, "at" if at > 0 else "until"),
                "a datagram server's faults apply to its one socket for the whole run; "
                "leave at/until out, or use side = 'proxy' for a window",
            )
        return FaultWindow(fault=fault, side=side, at=at, until=until)

    def expect(self, table: Mapping[str, Any]) -> Expectations:
        p: _Path = ("expect",)
        names = {f.name for f in dataclasses.fields(Expectations)}
        self.keys(table, p, names)
        return Expectations(
            intact_outside_faults=self.boolean(table, (*p, "intact_outside_faults"), True),
            grace=self.number(table, (*p, "grace"), 0.5, low=0, high=60),
            max_error_rate=self.number(table, (*p, "max_error_rate"), None, low=0, high=1),
            max_p50_latency=self.number(
                table, (*p, "max_p50_latency"), None, low=0, low_open=True, high=600
            ),
            max_p99_latency=self.number(
                table, (*p, "max_p99_latency"), None, low=0, low_open=True, high=600
            ),
            min_messages=self.number(table, (*p, "min_messages"), 1, low=0, integer=True),
            serving_after_faults=self.boolean(table, (*p, "serving_after_faults"), True),
            shutdown_within=self.number(
                table, (*p, "shutdown_within"), 2.0, low=0, low_open=True, high=600
            ),
            no_leaks=self.boolean(table, (*p, "no_leaks"), True),
            faults_fired=self.boolean(table, (*p, "faults_fired"), True),
            max_handler_errors=self.number(
                table, (*p, "max_handler_errors"), None, low=0, integer=True
            ),
        )
