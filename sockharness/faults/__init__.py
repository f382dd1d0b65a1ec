"""Fault injection: a catalogue of faults, seeded plans, and a fault proxy.

Stream faults (TCP, Unix stream, TLS): :class:`Latency`, :class:`Bandwidth`,
:class:`Slicer`, :class:`SlowClose`, :class:`Timeout`, :class:`ResetPeer`,
:class:`LimitData`, :class:`Down`. Datagram faults (UDP, Unix datagram):
:class:`Loss`, :class:`Duplicate`, :class:`Reorder`, :class:`Corrupt`,
:class:`Truncate`, and :class:`Latency` and :class:`Bandwidth` too.

:class:`FaultProxy` applies them to traffic relayed to any address.
"""

from sockharness._core import publish

from ._parse import FAULT_NAMES, fault_from_mapping, parse_fault
from ._plans import Event, Timeline, summarize_unfired
from ._proxy import FaultProxy, ProxyStats, check_faults
from ._specs import (
    DATAGRAM,
    STREAM,
    Bandwidth,
    Corrupt,
    Down,
    Duplicate,
    Fault,
    Latency,
    LimitData,
    Loss,
    Reorder,
    ResetPeer,
    Slicer,
    SlowClose,
    Timeout,
    Truncate,
)
from ._wrapper import FaultyDatagramSocket, FaultyStreamSocket, wrap_socket

__all__ = [
    "DATAGRAM",
    "FAULT_NAMES",
    "STREAM",
    "Bandwidth",
    "Corrupt",
    "Down",
    "Duplicate",
    "Event",
    "Fault",
    "FaultProxy",
    "FaultyDatagramSocket",
    "FaultyStreamSocket",
    "Latency",
    "LimitData",
    "Loss",
    "ProxyStats",
    "Reorder",
    "ResetPeer",
    "Slicer",
    "SlowClose",
    "Timeline",
    "Timeout",
    "Truncate",
    "check_faults",
    "fault_from_mapping",
    "parse_fault",
    "summarize_unfired",
    "wrap_socket",
]

publish(globals(), __all__, __name__)
