"""Fault injection: a catalogue of faults, seeded plans, and a fault proxy.

Stream faults (TCP, Unix stream, TLS): :class:`Latency`, :class:`Bandwidth`,
:class:`Slicer`, :class:`SlowClose`, :class:`Timeout`, :class:`ResetPeer`,
:class:`LimitData`, :class:`Down`. Datagram faults (UDP, Unix datagram):
:class:`Loss`, :class:`Duplicate`, :class:`Reorder`, :class:`Corrupt`,
:class:`Truncate`, and :class:`Latency` and :class:`Bandwidth` too.

:class:`FaultProxy` applies them to traffic relayed to any address.
"""

from ._parse import FAULT_NAMES, fault_from_mapping, parse_fault
from ._plans import Event, Timeline
from ._proxy import FaultProxy, ProxyStats
from ._specs import (
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

__all__ = [
    "FAULT_NAMES",
    "Bandwidth",
    "Corrupt",
    "Down",
    "Duplicate",
    "Event",
    "Fault",
    "FaultProxy",
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
    "fault_from_mapping",
    "parse_fault",
]

for _name in __all__:
    if _name != "FAULT_NAMES":
        globals()[_name].__module__ = __name__
del _name
