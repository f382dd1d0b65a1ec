"""The closed sets sockharness's settings and results are drawn from, each defined once."""

from __future__ import annotations

from typing import Literal, NoReturn, get_args

from .errors import UsageError

__all__ = [
    "CLIENT_PROTOCOLS",
    "FAILED_OUTCOMES",
    "LEAK_MODES",
    "PATTERNS",
    "PAYLOAD_KINDS",
    "PROFILE_NAMES",
    "REPLIES",
    "UNFIRED_MODES",
    "VIRTUAL_TIMES",
    "ClientProtocol",
    "Direction",
    "LeakMode",
    "Outcome",
    "Pattern",
    "PayloadKind",
    "Phase",
    "ProfileName",
    "Reply",
    "ScenarioOutcome",
    "Side",
    "Transport",
    "UnfiredMode",
    "VirtualTime",
    "check_virtual_time",
    "unreachable",
]

#: Which traffic a fault strikes: client to server, server to client, or both.
Direction = Literal["upstream", "downstream", "both"]
#: Where a fault is applied: the fault proxy, the server's sockets, the clients'.
Side = Literal["proxy", "server", "client"]
#: The two families of transport faults mean something on.
Transport = Literal["stream", "datagram"]
#: What a leak does to its test: fail it, warn, or nothing.
LeakMode = Literal["fail", "warn", "off"]
LEAK_MODES: tuple[LeakMode, ...] = get_args(LeakMode)
#: What a fault that never fired does to its test.
UnfiredMode = Literal["fail", "warn", "off"]
UNFIRED_MODES: tuple[UnfiredMode, ...] = get_args(UnfiredMode)

#: What a scenario's clients speak (besides a workload of the user's own).
ClientProtocol = Literal["echo", "http", "lines", "length-prefixed"]
CLIENT_PROTOCOLS: tuple[ClientProtocol, ...] = get_args(ClientProtocol)

#: How in-process faults' waits pass, least skipped first (see ``faults.FaultClock``).
VirtualTime = Literal["off", "connect", "timeouts", "jump"]
VIRTUAL_TIMES: tuple[VirtualTime, ...] = get_args(VirtualTime)


def check_virtual_time(value: object) -> VirtualTime:
    """``value`` as a :data:`VirtualTime`, or a :class:`UsageError` naming the choices."""
    for choice in VIRTUAL_TIMES:
        if value == choice:
            return choice
    raise UsageError(
        f"virtual_time must be one of {', '.join(map(repr, VIRTUAL_TIMES))}, got {value!r}",
        parameter="virtual_time",
        value=value,
    )


#: What a chaos client expects back for a message: it, upper-cased, nothing, or anything.
Reply = Literal["echo", "upper", "none", "any"]
REPLIES: tuple[Reply, ...] = get_args(Reply)
#: How a chaos client group talks: one connection, one per message, or datagrams.
Pattern = Literal["persistent", "connect-per-request", "datagram"]
PATTERNS: tuple[Pattern, ...] = get_args(Pattern)
#: What a chaos client's message bodies are made of.
PayloadKind = Literal["random", "text", "line", "json"]
PAYLOAD_KINDS: tuple[PayloadKind, ...] = get_args(PayloadKind)
#: How one chaos message ended.
Outcome = Literal["ok", "lost", "corrupt", "error"]
#: How a scenario run ended: "not steady" (the steady state did not hold before any fault),
#: "aborted" (abort_when stopped it), "broken" (an invariant), "error" (it could not run).
ScenarioOutcome = Literal["held", "broken", "aborted", "not steady", "error", "skipped"]
#: The outcomes that fail a run (exit status 1).
FAILED_OUTCOMES: frozenset[ScenarioOutcome] = frozenset(
    {"broken", "aborted", "not steady", "error"}
)
#: The phase of a scenario an invariant judges: the steady state before the faults, the
#: faults and the load, and what comes after them.
Phase = Literal["before", "during", "after"]
#: How hard the conformance suite looks (the settings are in sockharness.conformance).
ProfileName = Literal["quick", "ci", "thorough"]
PROFILE_NAMES: tuple[ProfileName, ...] = get_args(ProfileName)


def unreachable(value: NoReturn) -> NoReturn:
    """End a dispatch over a closed set: type checkers prove it is never reached.

    At run time an unknown value (one no dispatch branch knows) is a bug here,
    and says so, instead of falling through to a default branch.
    """
    raise AssertionError(f"unhandled value {value!r}")
