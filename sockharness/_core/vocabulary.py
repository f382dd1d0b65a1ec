"""The closed sets sockharness's settings and results are drawn from, each defined once."""

from __future__ import annotations

from typing import Literal, NoReturn, get_args

__all__ = [
    "LEAK_MODES",
    "PROFILE_NAMES",
    "UNFIRED_MODES",
    "Direction",
    "LeakMode",
    "ProfileName",
    "Side",
    "Transport",
    "UnfiredMode",
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
#: How hard the conformance suite looks (the settings are in sockharness.conformance).
ProfileName = Literal["quick", "ci", "thorough"]
PROFILE_NAMES: tuple[ProfileName, ...] = get_args(ProfileName)


def unreachable(value: NoReturn) -> NoReturn:
    """End a dispatch over a closed set: type checkers prove it is never reached.

    At run time an unknown value (one no dispatch branch knows) is a bug here,
    and says so, instead of falling through to a default branch.
    """
    raise AssertionError(f"unhandled value {value!r}")
