"""The scenario models: immutable, hashable, and valid by construction.

Each model checks its own values when it is made, as the fault specs do
(``ServerSpec(kind="bogus")`` raises), and :class:`Scenario` checks what
concerns several sections at once (a client pattern that does not fit the
server's kind, a fault window past the end). A bad value is a
:class:`SpecError` whose ``key`` is the path of the culprit inside the model
(``("clients", 0, "pattern")``); the reader of scenario files
(``_reader.py``) turns that into a :class:`ScenarioError` that names the file
and the line. Defaults live here, once, as the fields' defaults; those that
depend on the server (a client's ``pattern`` and ``reply``, a window's
``until``) are ``None`` until the scenario resolves them.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, get_args

from sockharness._core import (
    CLIENT_PROTOCOLS,
    CONCURRENCIES,
    KINDS,
    PATTERNS,
    PAYLOAD_KINDS,
    REPLIES,
    ClientProtocol,
    Pattern,
    PayloadKind,
    Reply,
    Side,
    SockharnessError,
    UsageError,
    parse_address,
)
from sockharness.faults import DATAGRAM, STREAM, Down, Fault
from sockharness.handlers import BUILTIN_HANDLERS

__all__ = [
    "AbortWhen",
    "ClientSpec",
    "Expectations",
    "FaultWindow",
    "FrozenMapping",
    "Scenario",
    "ScenarioError",
    "ServerSpec",
    "Service",
    "SpecError",
    "SteadyState",
    "type_name",
]

SIDES: tuple[Side, ...] = get_args(Side)
MAX_DURATION = 300.0
MAX_CLIENTS = 256
MAX_DATAGRAM = 8192
MAX_COMMAND_TIMEOUT = 3600.0
#: A command's timeout when its group gives none (a message's default, 2 s, is no run's).
COMMAND_TIMEOUT = 60.0

Key = tuple[str | int, ...]


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


class SpecError(UsageError):
    """A model made with a bad value: ``key`` is where, inside the model, ``reason`` what."""

    def __init__(self, key: Key, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"{dotted(key)}: {reason}" if key else reason, parameter=dotted(key))


def dotted(key: Key) -> str:
    """``("clients", 0, "pattern")`` as ``clients[0].pattern``."""
    parts: list[str] = []
    for part in key:
        if isinstance(part, int):
            parts[-1] += f"[{part}]"
        else:
            parts.append(part)
    return ".".join(parts)


def type_name(value: Any) -> str:
    """What a value is, for messages: ``an integer (3)``, ``a table``."""
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    for python_type, name in ((int, "an integer"), (float, "a number"), (str, "a string")):
        if isinstance(value, python_type):
            return f"{name} ({value!r})"
    if isinstance(value, (list, tuple)):
        return "an array"
    return "a table" if isinstance(value, Mapping) else type(value).__name__


class FrozenMapping(dict[str, Any]):
    """A dict that cannot change and can be hashed (server attributes in a frozen model)."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted((key, _hashable(value)) for key, value in self.items())))

    def _immutable(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("a scenario's attributes cannot be changed")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _immutable


def _hashable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return FrozenMapping(value)
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(item) for item in value)
    return value


# -- checks of one value ------------------------------------------------------------------------


def _choice(key: Key, value: Any, choices: Any) -> None:
    _string(key, value)
    if value not in choices:
        close = difflib.get_close_matches(value, list(choices), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        options = ", ".join(repr(choice) for choice in choices)
        raise SpecError(key, f"expected one of {options}, found {value!r}{hint}")


def _string(key: Key, value: Any) -> None:
    if not isinstance(value, str):
        raise SpecError(key, f"expected a string, found {type_name(value)}")


def _boolean(key: Key, value: Any) -> None:
    if not isinstance(value, bool):
        raise SpecError(key, f"expected true or false, found {type_name(value)}")


def _number(
    key: Key,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    integer: bool = False,
) -> None:
    wanted = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(key, f"expected {wanted}, found {type_name(value)}")
    if integer and not isinstance(value, int):
        raise SpecError(key, f"expected {wanted}, found {type_name(value)}")
    if not math.isfinite(value):
        raise SpecError(key, f"expected a finite number, found {value}")
    too_low = low is not None and (value <= low if low_open else value < low)
    if too_low or (high is not None and value > high):
        left = "(" if low_open else "["
        lower = "-inf" if low is None else f"{low:g}"
        upper = "inf" if high is None else f"{high:g}"
        raise SpecError(key, f"expected {wanted} in {left}{lower}, {upper}], found {value}")


def _as_float(spec: Any, name: str) -> None:
    """Store an integer given for a float field as a float (``1`` is ``1.0``)."""
    value = getattr(spec, name)
    if isinstance(value, int) and not isinstance(value, bool):
        object.__setattr__(spec, name, float(value))


def _import_path(key: Key, value: str) -> None:
    module, sep, name = value.partition(":")
    if not sep or not module or not name:
        raise SpecError(key, f"expected 'package.module:ClassName', found {value!r}")


# -- the models ---------------------------------------------------------------------------------


#: The [server] keys of a server sockharness starts (not of an outside ``target``).
STARTED_SERVER_KEYS = (
    "concurrency",
    "handler",
    "handler_delay",
    "tls",
    "attributes",
    "server_class",
)


@dataclass(frozen=True)
class ServerSpec:
    """What to serve: ours with a handler, a class by import path, or an outside address."""

    kind: str = "tcp"
    concurrency: str = "threading"
    handler: str = "echo"
    handler_delay: float = 0.05
    tls: bool = False
    attributes: Mapping[str, Any] = field(default_factory=FrozenMapping)
    server_class: str | None = None
    target: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.kind, str):  # "unix-dgram", as on the command line.
            object.__setattr__(self, "kind", self.kind.replace("-", "_"))
        _choice(("kind",), self.kind, tuple(KINDS))
        if not isinstance(self.attributes, Mapping):
            raise SpecError(
                ("attributes",), f"expected a table, found {type_name(self.attributes)}"
            )
        object.__setattr__(self, "attributes", FrozenMapping(_hashable(dict(self.attributes))))
        if self.target is not None:
            self._check_target()
            return
        if self.server_class is not None:
            _string(("server_class",), self.server_class)
            _import_path(("server_class",), self.server_class)
        _choice(("concurrency",), self.concurrency, CONCURRENCIES)
        _string(("handler",), self.handler)
        if self.handler not in BUILTIN_HANDLERS:
            if ":" not in self.handler:
                options = ", ".join(repr(name) for name in BUILTIN_HANDLERS)
                close = difflib.get_close_matches(self.handler, list(BUILTIN_HANDLERS), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise SpecError(
                    ("handler",),
                    f"expected one of {options} or 'package.module:HandlerClass', "
                    f"found {self.handler!r}{hint}",
                )
            _import_path(("handler",), self.handler)
        _number(("handler_delay",), self.handler_delay, low=0, high=60)
        _as_float(self, "handler_delay")
        if self.handler != "slow" and self.handler_delay != _default(ServerSpec, "handler_delay"):
            raise SpecError(("handler_delay",), "applies only to handler = 'slow'")
        _boolean(("tls",), self.tls)
        if self.tls and not KINDS[self.kind].stream:
            raise SpecError(
                ("tls",),
                f"TLS needs a stream kind (tcp, tcp6, unix), and {self.kind!r} is a datagram kind",
            )

    def _check_target(self) -> None:
        assert self.target is not None
        _string(("target",), self.target)
        for name in STARTED_SERVER_KEYS:
            if getattr(self, name) != _default(ServerSpec, name):
                raise SpecError(
                    (name,),
                    "does not apply to an outside server (target = ...): sockharness does not "
                    "start it; leave the key out",
                )
        try:
            address = parse_address(self.target, KINDS[self.kind], "the target")
        except UsageError as exc:
            raise SpecError(("target",), str(exc)) from None
        if not KINDS[self.kind].unix and address[1] == 0:
            raise SpecError(("target",), f"expected a port from 1 to 65535, found {self.target!r}")

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
    """One group of identical clients and the load each puts on the server.

    ``pattern`` and ``reply`` left ``None`` are the server's: ``persistent``
    (``datagram`` on a datagram kind), and what the built-in handler answers
    (``any`` for other servers); the :class:`Scenario` fills them in.

    ``protocol`` is what the clients speak: ``echo`` (numbered lines, judged
    by ``reply``), ``http`` (``method``, ``path``, ``headers``, ``body``;
    judged by ``expect_status``, ``expect_body``, ``expect_json``), ``lines``
    or ``length-prefixed`` (``request``; judged by ``expect_reply`` or
    ``expect_match``). ``workload`` (``"package.module:function"``) is the
    user's own client instead: called once per message.
    """

    count: int = 1
    pattern: Pattern | None = None
    rate: float = 20.0
    size: int = 64
    payload: PayloadKind = "random"
    timeout: float = 2.0
    reply: Reply | None = None
    start: float = 0.0
    protocol: ClientProtocol = "echo"
    workload: str | None = None
    method: str = "GET"
    path: str = "/"
    headers: Mapping[str, str] = field(default_factory=FrozenMapping)
    body: str | None = None
    expect_status: int | tuple[int, ...] | None = None
    expect_body: str | None = None
    expect_json: Mapping[str, Any] = field(default_factory=FrozenMapping)
    request: str = "{payload}"
    expect_reply: str | None = None
    expect_match: str | None = None
    command: tuple[str, ...] | None = None
    repeat: bool = False
    #: Processes the group's clients run in (threads in each); 0: threads of the runner.
    processes: int = 0
    #: The service the group's clients address (``None``: the scenario's only one).
    service: str | None = None

    def __post_init__(self) -> None:
        if self.service is not None:
            _string(("service",), self.service)
        self._check_load()
        self._check_protocol()
        self._check_command()
        self._check_processes()

    @property
    def own_client(self) -> bool:
        """Whether the group is the user's own client (a workload or a command), which makes
        its own connections and judges its own answers."""
        return self.workload is not None or self.command is not None

    def _check_processes(self) -> None:
        _number(("processes",), self.processes, low=0, high=self.count, integer=True)
        if self.processes and self.own_client:
            raise SpecError(
                ("processes",),
                "a workload runs in the runner's process and a command is a process of its "
                "own: leave processes out",
            )

    def _check_command(self) -> None:
        _boolean(("repeat",), self.repeat)
        if self.command is None:
            if self.repeat:
                raise SpecError(("repeat",), "applies only to a command (command = [...])")
            return
        if not isinstance(self.command, (list, tuple)) or not self.command:
            raise SpecError(
                ("command",),
                f"expected an array of strings (the program and its arguments), found "
                f"{type_name(self.command)}",
            )
        for argument in self.command:
            _string(("command",), argument)
        if not self.command[0].strip():
            raise SpecError(("command",), "expected a program name first, found ''")
        if self.workload is not None:
            raise SpecError(("command",), "a group runs a workload or a command: not both")
        object.__setattr__(self, "command", tuple(self.command))

    @property
    def expected_statuses(self) -> frozenset[int]:
        """The HTTP statuses that count as a right answer (default: any below 400)."""
        if self.expect_status is None:
            return frozenset(range(100, 400))
        if isinstance(self.expect_status, int):
            return frozenset({self.expect_status})
        return frozenset(self.expect_status)

    def _check_protocol(self) -> None:
        _choice(("protocol",), self.protocol, CLIENT_PROTOCOLS)
        if self.workload is not None:
            _string(("workload",), self.workload)
            _import_path(("workload",), self.workload)
        _string(("method",), self.method)
        if not re.fullmatch(r"[A-Z]+", self.method):
            raise SpecError(
                ("method",), f"expected an HTTP method (GET, POST, ...), found {self.method!r}"
            )
        _string(("path",), self.path)
        if not (self.path.startswith("/") or self.path == "*") or _has_line_break(self.path):
            raise SpecError(("path",), f"expected a path that starts with '/', found {self.path!r}")
        _headers(self.headers)
        object.__setattr__(self, "headers", FrozenMapping(dict(self.headers)))
        for name in ("body", "expect_reply"):
            if getattr(self, name) is not None:
                _string((name,), getattr(self, name))
        _string(("request",), self.request)
        for name in ("expect_body", "expect_match"):
            pattern = getattr(self, name)
            if pattern is not None:
                _regex((name,), pattern)
        _statuses(self)
        _json_checks(self.expect_json)
        object.__setattr__(self, "expect_json", FrozenMapping(_hashable(dict(self.expect_json))))

    def _check_load(self) -> None:
        _number(("count",), self.count, low=1, high=MAX_CLIENTS, integer=True)
        if self.pattern is not None:
            _choice(("pattern",), self.pattern, PATTERNS)
        _number(("rate",), self.rate, low=0, high=100_000)
        _number(("size",), self.size, low=32, high=1_000_000, integer=True)
        _choice(("payload",), self.payload, PAYLOAD_KINDS)
        # A command (a whole test suite, say) may take far longer than one message.
        longest = MAX_COMMAND_TIMEOUT if self.command is not None else 60
        _number(("timeout",), self.timeout, low=0, low_open=True, high=longest)
        if self.reply is not None:
            _choice(("reply",), self.reply, REPLIES)
        _number(("start",), self.start, low=0)
        for name in ("rate", "timeout", "start"):
            _as_float(self, name)


def _has_line_break(text: str) -> bool:
    return "\r" in text or "\n" in text


def _regex(key: Key, pattern: str) -> None:
    _string(key, pattern)
    try:
        re.compile(pattern)
    except re.error as exc:
        raise SpecError(key, f"expected a regular expression, found {pattern!r} ({exc})") from None


def _headers(headers: Any) -> None:
    if not isinstance(headers, Mapping):
        raise SpecError(
            ("headers",), f"expected a table of header: value, found {type_name(headers)}"
        )
    for name, value in headers.items():
        if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
            raise SpecError(("headers", name), f"expected a header name, found {name!r}")
        _string(("headers", name), value)
        if _has_line_break(value):
            raise SpecError(("headers", name), "a header's value cannot hold a line break")


def _statuses(spec: ClientSpec) -> None:
    status = spec.expect_status
    if status is None:
        return
    codes = [status] if not isinstance(status, (list, tuple)) else list(status)
    if not codes:
        raise SpecError(("expect_status",), "expected a status or a list of them, found []")
    for code in codes:
        _number(("expect_status",), code, low=100, high=599, integer=True)
    if isinstance(status, list):
        object.__setattr__(spec, "expect_status", tuple(status))


def _json_checks(checks: Any) -> None:
    if not isinstance(checks, Mapping):
        raise SpecError(
            ("expect_json",), f"expected a table of JSON pointer = value, found {type_name(checks)}"
        )
    for pointer in checks:
        if pointer and not pointer.startswith("/"):
            raise SpecError(
                ("expect_json", pointer),
                f"expected a JSON pointer ('/name', '/items/0'), found {pointer!r}",
            )


@dataclass(frozen=True)
class FaultWindow:
    """A fault, where it applies, and from when until when (seconds from the start).

    ``until`` left ``None`` is the end of the scenario.
    """

    fault: Fault
    side: str = "proxy"
    at: float = 0.0
    until: float | None = None
    #: The service whose proxy, server or clients the fault strikes (``None``: the only one).
    service: str | None = None

    def __post_init__(self) -> None:
        if self.service is not None:
            _string(("service",), self.service)
        if not isinstance(self.fault, Fault):
            raise SpecError(("fault",), f"expected a fault spec, found {self.fault!r}")
        _choice(("side",), self.side, SIDES)
        _number(("at",), self.at, low=0)
        _as_float(self, "at")
        if self.until is not None:
            _number(("until",), self.until)
            if self.until <= self.at:
                raise SpecError(
                    ("until",),
                    f"expected an end after the start (at = {self.at:g} s), found {self.until:g}",
                )
            _as_float(self, "until")
        if isinstance(self.fault, Down) and self.side != "proxy":
            raise SpecError(("side",), "Down takes the proxy down: use side = 'proxy'")
        if self.fault.process_only and self.side == "proxy":
            raise SpecError(
                ("side",),
                f"{type(self.fault).__name__} strikes a socket's own calls, which no proxy "
                f"makes: use side = 'server' or 'client'",
            )
        if self.side not in self.fault.sides:
            allowed = " or ".join(repr(side) for side in sorted(self.fault.sides))
            raise SpecError(
                ("side",),
                f"{type(self.fault).__name__} cannot strike on side = {self.side!r}: "
                f"use side = {allowed}",
            )

    @property
    def end(self) -> float:
        """When the window closes (``until``; without one, never: the end of the run)."""
        return math.inf if self.until is None else self.until

    def covers(self, start: float, end: float, grace: float = 0.0) -> bool:
        """Whether ``[start, end]`` overlaps the window, lengthened by ``grace`` at its end."""
        return start < self.end + grace and end >= self.at


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

    def __post_init__(self) -> None:
        for name in ("intact_outside_faults", "serving_after_faults", "no_leaks", "faults_fired"):
            _boolean((name,), getattr(self, name))
        _number(("grace",), self.grace, low=0, high=60)
        ranges: dict[str, dict[str, Any]] = {
            "max_error_rate": {"low": 0, "high": 1},
            "max_p50_latency": {"low": 0, "low_open": True, "high": 600},
            "max_p99_latency": {"low": 0, "low_open": True, "high": 600},
            "max_handler_errors": {"low": 0, "integer": True},
        }
        for name, bounds in ranges.items():
            if getattr(self, name) is not None:
                _number((name,), getattr(self, name), **bounds)
        _number(("min_messages",), self.min_messages, low=0, integer=True)
        _number(("shutdown_within",), self.shutdown_within, low=0, low_open=True, high=600)
        for name in ("grace", "max_error_rate", "max_p50_latency", "max_p99_latency"):
            if getattr(self, name) is not None:
                _as_float(self, name)
        _as_float(self, "shutdown_within")


@dataclass(frozen=True)
class AbortWhen:
    """When the probe says the system is too far gone to go on: over the last ``window``
    seconds, an error rate at or above ``error_rate``, or a median latency at or above
    ``latency`` (seconds). At least one of the two is given."""

    error_rate: float | None = None
    latency: float | None = None
    window: float = 2.0

    def __post_init__(self) -> None:
        if self.error_rate is None and self.latency is None:
            raise SpecError((), "expected error_rate or latency (or both): what makes the run stop")
        if self.error_rate is not None:
            _number(("error_rate",), self.error_rate, low=0, low_open=True, high=1)
        if self.latency is not None:
            _number(("latency",), self.latency, low=0, low_open=True, high=600)
        _number(("window",), self.window, low=0, low_open=True, high=MAX_DURATION)
        for name in ("error_rate", "latency", "window"):
            if getattr(self, name) is not None:
                _as_float(self, name)


@dataclass(frozen=True)
class SteadyState:
    """What "working" means for the system under test, checked before, during and after.

    ``probe`` is one client's exchange (any protocol or workload; ``None``:
    the first client group's). A check is ``samples`` exchanges, one every
    ``interval`` seconds; it holds when at most ``max_error_rate`` of them
    failed and every one that succeeded took at most ``max_latency``.
    Before the faults, a check that fails makes the run ``not steady``;
    during them, ``abort_when`` may stop the run (``aborted``); after them,
    the steady state must hold again within ``max_recovery_time``.
    """

    probe: ClientSpec | None = None
    samples: int = 5
    interval: float = 0.2
    max_error_rate: float = 0.0
    max_latency: float | None = None
    max_recovery_time: float = 10.0
    abort_when: AbortWhen | None = None

    def __post_init__(self) -> None:
        if self.probe is not None and not isinstance(self.probe, ClientSpec):
            raise SpecError(("probe",), f"expected a table, found {type_name(self.probe)}")
        _number(("samples",), self.samples, low=1, high=1000, integer=True)
        _number(("interval",), self.interval, low=0, low_open=True, high=60)
        _number(("max_error_rate",), self.max_error_rate, low=0, high=1)
        if self.max_latency is not None:
            _number(("max_latency",), self.max_latency, low=0, low_open=True, high=600)
        _number(("max_recovery_time",), self.max_recovery_time, low=0, high=MAX_DURATION)
        for name in ("interval", "max_error_rate", "max_latency", "max_recovery_time"):
            if getattr(self, name) is not None:
                _as_float(self, name)

    @property
    def check_time(self) -> float:
        """How long one check takes at least (its exchanges' spacing)."""
        return self.samples * self.interval


#: The one service of the short form (``[server]``), as commands' variables name it.
SHORT_FORM_NAME = "server"
_SERVICE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
#: ``{db.address}`` in a service's attributes: where it reaches another service.
ADDRESS_REFERENCE = re.compile(r"\{([A-Za-z][A-Za-z0-9_-]*)\.(host|port|address)\}")


@dataclass(frozen=True)
class Service:
    """One named service of a scenario (``[services.NAME]``): a server, and what it needs first.

    ``after`` names the services that must be serving before this one starts
    (they stop after it). A string in the server's ``attributes`` may hold
    ``{db.address}``, ``{db.host}`` or ``{db.port}`` for any service in
    ``after``: where this one reaches it (through its proxy, when it has one),
    filled in when the run starts; an attribute that is exactly ``"{db.port}"``
    is the port as an integer.
    """

    name: str
    server: ServerSpec = field(default_factory=ServerSpec)
    after: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _string((), self.name)
        if not _SERVICE_NAME.fullmatch(self.name) or self.name.lower().endswith("_upstream"):
            raise SpecError(
                (),
                f"expected a service name of letters, digits, '_' and '-' that starts with a "
                f"letter (and does not end in '_upstream'), found {self.name!r}",
            )
        if not isinstance(self.server, ServerSpec):
            raise SpecError((), f"expected a server, found {type_name(self.server)}")
        if not isinstance(self.after, (list, tuple)):
            raise SpecError(
                ("after",), f"expected an array of service names, found {type_name(self.after)}"
            )
        for name in self.after:
            _string(("after",), name)
            if name == self.name:
                raise SpecError(("after",), f"a service cannot start after itself ({name!r})")
        if len(set(self.after)) != len(self.after):
            raise SpecError(("after",), f"names a service twice: {list(self.after)}")
        object.__setattr__(self, "after", tuple(self.after))
        for attribute, needed in self.references():
            if needed not in self.after:
                raise SpecError(
                    ("attributes", attribute),
                    f"refers to {needed!r}, which is not in after: add after = "
                    f"[{', '.join(repr(n) for n in (*self.after, needed))}] so that it is "
                    f"serving (and its address known) before {self.name!r} starts",
                )

    @property
    def environment_name(self) -> str:
        """The service's name in commands' variables: ``SOCKHARNESS_<NAME>_HOST``."""
        return self.name.upper().replace("-", "_")

    def references(self) -> Iterator[tuple[str, str]]:
        """``(attribute, service)`` for each ``{service.address}`` in the attributes."""
        for attribute, value in self.server.attributes.items():
            if isinstance(value, str):
                for match in ADDRESS_REFERENCE.finditer(value):
                    yield attribute, match.group(1)

    def attributes_with(self, addresses: Mapping[str, Any]) -> dict[str, Any]:
        """The server's attributes, each ``{name.address}`` replaced from ``addresses``."""

        def part(match: re.Match[str]) -> str:
            host, port, shown = address_parts(addresses[match.group(1)])
            return {"host": host, "port": port, "address": shown}[match.group(2)]

        resolved: dict[str, Any] = {}
        for attribute, value in self.server.attributes.items():
            resolved[attribute] = value
            if isinstance(value, str) and ADDRESS_REFERENCE.search(value):
                whole = ADDRESS_REFERENCE.fullmatch(value)
                text = ADDRESS_REFERENCE.sub(part, value)
                port = whole is not None and whole.group(2) == "port" and text.isdigit()
                resolved[attribute] = int(text) if port else text
        return resolved


def address_parts(address: Any) -> tuple[str, str, str]:
    """``(host, port, address)`` of a socket address; a path has no host or port."""
    if isinstance(address, tuple):
        host, port = str(address[0]), str(address[1])
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return host, port, shown
    return "", "", os.fsdecode(address)


def _start_order(services: tuple[Service, ...]) -> tuple[Service, ...]:
    """The services in an order that starts each after those it names (as written, else)."""
    by_name = {service.name: service for service in services}
    for service in services:
        for needed in service.after:
            if needed not in by_name:
                close = difflib.get_close_matches(needed, list(by_name), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise SpecError(
                    ("services", service.name, "after"),
                    f"no service is named {needed!r}{hint} (services: "
                    f"{', '.join(repr(name) for name in by_name)})",
                )
    ordered: list[Service] = []
    placed: set[str] = set()
    while len(ordered) < len(services):
        ready = [
            service
            for service in services
            if service.name not in placed and set(service.after) <= placed
        ]
        if not ready:
            stuck = [service.name for service in services if service.name not in placed]
            raise SpecError(
                ("services", stuck[0], "after"),
                f"the services {', '.join(repr(name) for name in stuck)} wait on each other "
                f"(a cycle in after): none of them can start first",
            )
        ordered.append(ready[0])
        placed.add(ready[0].name)
    return tuple(ordered)


@dataclass(frozen=True)
class Scenario:
    """One chaos scenario, as its file says, with every default resolved.

    The services are ``server`` (the short form: one service, named
    ``"server"``) or ``services`` (several, by name; ``server`` is then the
    first client group's, for what speaks of one server); ``services`` holds
    them in the order they start.
    """

    name: str
    file: str
    duration: float
    server: ServerSpec = field(default_factory=ServerSpec)
    clients: tuple[ClientSpec, ...] = ()
    faults: tuple[FaultWindow, ...] = ()
    expect: Expectations = Expectations()
    description: str = ""
    seed: int = 0
    steady_state: SteadyState | None = None
    #: Labels to select scenarios by (``sockharness run --tag``).
    tags: tuple[str, ...] = ()
    services: tuple[Service, ...] = ()

    def __post_init__(self) -> None:
        _string(("scenario", "name"), self.name)
        self._check_tags()
        if not self.name.strip():
            raise SpecError(("scenario", "name"), "expected a name, found an empty string")
        _string(("scenario", "description"), self.description)
        _number(("scenario", "seed"), self.seed, low=0, integer=True)
        _number(("scenario", "duration"), self.duration, low=0, low_open=True, high=MAX_DURATION)
        _as_float(self, "duration")
        self._resolve_services()
        object.__setattr__(self, "clients", tuple(self._resolved_clients()))
        primary = self.service(self.clients[0].service).server
        if self.server not in (ServerSpec(), primary):
            raise SpecError(
                ("server",), "a scenario has one [server] or [services.NAME] tables: not both"
            )
        object.__setattr__(self, "server", primary)
        object.__setattr__(self, "faults", tuple(self._resolved_faults()))
        self._check_workload_faults()
        if self.steady_state is not None:
            object.__setattr__(self, "steady_state", self._resolved_steady_state())

    def _resolve_services(self) -> None:
        services = self.services
        if not isinstance(services, (list, tuple)) or not all(
            isinstance(service, Service) for service in services
        ):
            raise SpecError(("services",), "expected [services.NAME] tables")
        if not services:
            services = (Service(SHORT_FORM_NAME, self.server),)
        names = [service.name for service in services]
        for name in names:
            if names.count(name) > 1:
                raise SpecError(("services", name), "two services have this name")
        environment = [service.environment_name for service in services]
        for service in services:
            if environment.count(service.environment_name) > 1:
                raise SpecError(
                    ("services", service.name),
                    f"another service's name reads the same in commands' variables "
                    f"(SOCKHARNESS_{service.environment_name}_...): rename one",
                )
            if service.name == SHORT_FORM_NAME and len(services) > 1:
                raise SpecError(
                    ("services", service.name),
                    "'server' names the one service of the short form ([server]); name each "
                    "of several services after what it is (app, db, cache)",
                )
            for attribute, needed in service.references():
                if needed not in names:
                    raise SpecError(
                        ("services", service.name, "attributes", attribute),
                        f"no service is named {needed!r} (services: "
                        f"{', '.join(repr(name) for name in names)})",
                    )
        object.__setattr__(self, "services", _start_order(tuple(services)))

    @property
    def short_form(self) -> bool:
        """Whether the scenario has the one service of the short form, ``[server]``."""
        return len(self.services) == 1 and self.services[0].name == SHORT_FORM_NAME

    def service(self, name: str | None) -> Service:
        """The service named ``name`` (``None``: the only one)."""
        if name is None:
            (service,) = self.services
            return service
        return next(service for service in self.services if service.name == name)

    def _service_name(self, given: str | None, key: Key) -> str:
        """The service a client group, probe or fault addresses: as given, or the only one."""
        names = [service.name for service in self.services]
        if given is None:
            if len(names) > 1:
                raise SpecError(
                    (*key, "service"),
                    f"the scenario has several services: say which, service = one of "
                    f"{', '.join(repr(name) for name in names)}",
                )
            return names[0]
        if given not in names:
            close = difflib.get_close_matches(given, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise SpecError(
                (*key, "service"),
                f"no service is named {given!r}{hint} (services: "
                f"{', '.join(repr(name) for name in names)})",
            )
        return given

    def _check_tags(self) -> None:
        if not isinstance(self.tags, (list, tuple)):
            raise SpecError(
                ("scenario", "tags"), f"expected an array of strings, found {type_name(self.tags)}"
            )
        for tag in self.tags:
            _string(("scenario", "tags"), tag)
            if not re.fullmatch(r"[A-Za-z0-9_.:/-]+", tag):
                raise SpecError(
                    ("scenario", "tags"),
                    f"expected a tag of letters, digits and _.:/- (no spaces), found {tag!r}",
                )
        object.__setattr__(self, "tags", tuple(self.tags))

    def _resolved_steady_state(self) -> SteadyState:
        steady = self.steady_state
        assert steady is not None
        for index, window in enumerate(self.faults):
            if window.side == "server" and not self.service(window.service).server.stream:
                raise SpecError(
                    ("faults", index, "side"),
                    "a datagram server's faults apply from its start, before the steady "
                    "state is checked: use side = 'proxy' with [steady_state]",
                )
        key: Key = ("steady_state", "probe")
        probe = steady.probe
        if probe is None:
            probe = dataclasses.replace(self.clients[0], count=1, start=0.0, processes=0)
            key = ("clients", 0)
        elif probe.service is None:  # The system's front door: where the first group goes.
            probe = dataclasses.replace(probe, service=self.clients[0].service)
        elif probe.count != 1 or probe.start != 0.0:
            name = "count" if probe.count != 1 else "start"
            raise SpecError((*key, name), "the probe is one client, from the start: leave it out")
        if probe.command is not None:
            raise SpecError(
                (*key, "command"),
                "a probe runs every interval and a command is a whole program: give the "
                "probe a protocol or a workload ([steady_state.probe])",
            )
        return dataclasses.replace(steady, probe=self._resolved_client(probe, key))

    def _check_workload_faults(self) -> None:
        own = {client.service for client in self.clients if client.own_client}
        apart = {client.service for client in self.clients if client.processes}
        for index, window in enumerate(self.faults):
            if window.side == "client" and window.service in own:
                raise SpecError(
                    ("faults", index, "side"),
                    "a workload or command makes its own connections, which in-process client "
                    "faults cannot reach: use side = 'proxy' (or 'server')",
                )
            if window.side == "client" and window.service in apart:
                raise SpecError(
                    ("faults", index, "side"),
                    "clients with processes = N run outside the runner, where its client-side "
                    "faults do not reach: use side = 'proxy' (or 'server'), or leave processes "
                    "out",
                )

    @property
    def fault_sides(self) -> set[str]:
        """The sides the scenario's faults apply on."""
        return {window.side for window in self.faults}

    def faults_of(self, service: str) -> tuple[FaultWindow, ...]:
        """The fault windows that strike ``service`` (its proxy, server or clients)."""
        return tuple(window for window in self.faults if window.service == service)

    def _resolved_clients(self) -> Iterator[ClientSpec]:
        if not self.clients:
            raise SpecError(("clients",), "expected at least one [[clients]] table, found none")
        for index, client in enumerate(self.clients):
            yield self._resolved_client(client, ("clients", index))
        total = sum(client.count for client in self.clients)
        if total > MAX_CLIENTS:
            raise SpecError(
                ("clients",),
                f"expected at most {MAX_CLIENTS} clients in all, found {total}: every client "
                f"is a thread of the runner",
            )

    def _resolved_client(self, client: ClientSpec, key: Key) -> ClientSpec:
        """The group (or the steady state's probe) with its service's defaults filled in."""
        service = self._service_name(client.service, key)
        client = dataclasses.replace(client, service=service)
        server = self.service(service).server
        builtin = BUILTIN_HANDLERS.get(server.handler)
        default_reply = builtin.reply if builtin is not None else "any"
        if server.target is not None or server.server_class is not None:
            default_reply = "any"
        pattern = client.pattern or ("persistent" if server.stream else "datagram")
        if server.stream and pattern == "datagram":
            raise SpecError(
                (*key, "pattern"),
                f"'datagram' needs a datagram kind, and {server.kind!r} is a stream; "
                "use 'persistent' or 'connect-per-request'",
            )
        if not server.stream and pattern != "datagram":
            raise SpecError(
                (*key, "pattern"),
                f"a {server.kind!r} server takes datagrams: use pattern = 'datagram'",
            )
        if not server.stream:
            _number((*key, "size"), client.size, low=32, high=MAX_DATAGRAM, integer=True)
        own = client.own_client or client.protocol != "echo"
        if own and not server.stream and not client.own_client:
            raise SpecError(
                (*key, "protocol"),
                f"protocol = {client.protocol!r} runs over a stream, and {server.kind!r} "
                f"is a datagram kind",
            )
        if own:
            return dataclasses.replace(client, pattern=pattern)
        if client.start > self.duration:
            _number((*key, "start"), client.start, low=0, high=self.duration)
        if client.start >= self.duration:
            raise SpecError(
                (*key, "start"),
                f"expected a start before the end of the scenario ({self.duration:g} s), "
                f"found {client.start:g}: these clients would send nothing",
            )
        return dataclasses.replace(client, pattern=pattern, reply=client.reply or default_reply)

    def _resolved_faults(self) -> Iterator[FaultWindow]:
        windows: list[FaultWindow] = []
        for index, raw in enumerate(self.faults):
            window = self._resolved_fault(raw, ("faults", index))
            for earlier, other in enumerate(windows):
                if (
                    other.fault == window.fault
                    and other.side == window.side
                    and other.service == window.service
                    and window.at < other.end
                    and other.at < window.end
                ):
                    raise SpecError(
                        ("faults", index),
                        f"the same fault on the same side as faults[{earlier}], in an "
                        f"overlapping window: merge the two windows into one",
                    )
            windows.append(window)
        yield from windows

    def _resolved_fault(self, window: FaultWindow, key: Key) -> FaultWindow:
        service = self._service_name(window.service, key)
        window = dataclasses.replace(window, service=service)
        server, duration = self.service(service).server, self.duration
        if window.at > duration:
            _number((*key, "at"), window.at, low=0, high=duration)
        if window.at >= duration:
            raise SpecError(
                (*key, "at"),
                f"expected a start before the end of the scenario ({duration:g} s), "
                f"found {window.at:g}",
            )
        if window.until is not None:
            _number((*key, "until"), window.until, low=window.at, low_open=True, high=duration)
        until = duration if window.until is None else window.until
        fault = window.fault
        transport = STREAM if server.stream else DATAGRAM
        if transport not in fault.transports:
            what = "stream" if server.stream else "datagram"
            raise SpecError(
                (*key, "fault"),
                f"{type(fault).__name__} does not apply to a {what} server ({server.kind}); "
                f"see the fault catalogue for the faults of each transport",
            )
        if window.side != "proxy" and server.tls:
            raise SpecError(
                (*key, "side"),
                "faults in the process cannot reach the bytes under TLS; use side = 'proxy'",
            )
        if window.side == "server" and server.target is not None:
            raise SpecError(
                (*key, "side"),
                "an outside server (target = ...) runs elsewhere; use side = 'proxy' or 'client'",
            )
        if window.side == "server" and not server.stream and (window.at > 0 or until < duration):
            raise SpecError(
                (*key, "at" if window.at > 0 else "until"),
                "a datagram server's faults apply to its one socket for the whole run; "
                "leave at/until out, or use side = 'proxy' for a window",
            )
        return dataclasses.replace(window, until=until)


def _default(cls: type, name: str) -> Any:
    """The default of field ``name`` of the dataclass ``cls``."""
    for item in dataclasses.fields(cls):
        if item.name == name:
            if item.default_factory is not dataclasses.MISSING:
                return item.default_factory()
            return item.default
    raise KeyError(name)
