"""Fault injection: a catalogue of faults, seeded plans, and a fault proxy.

Stream faults (TCP, Unix stream, TLS): :class:`Latency`, :class:`Bandwidth`,
:class:`Slicer`, :class:`SlowClose`, :class:`Timeout`, :class:`ResetPeer`,
:class:`LimitData`, :class:`NoReply`, :class:`Down`. The connection phase (on
the proxy): :class:`Refuse`, :class:`Blackhole`, :class:`AcceptDelay`,
:class:`AcceptThenClose`, :class:`AcceptThenReset`, :class:`NeverRead`.
A faulty socket's own calls (in the process only): :class:`ShortSend`,
:class:`SmallRecv`, :class:`SocketError`.
Datagram faults (UDP, Unix datagram): :class:`Loss`, :class:`Duplicate`,
:class:`Reorder`, :class:`Corrupt`, :class:`Truncate`, and :class:`Latency`
and :class:`Bandwidth` too.

Every fault takes ``direction``, ``toxicity`` and ``connections`` (which
connections, by ordinal: :class:`Ordinals`); stream faults ``after_bytes``,
and ``messages`` or ``after_messages`` with a ``framer`` (:mod:`.framers`).
:class:`FaultProxy` applies them to traffic relayed to any address.
"""

from sockharness._core import publish

from . import framers
from ._clock import VIRTUAL_TIMES, FaultClock, VirtualTime, check_virtual_time
from ._effects import DatagramEffect, Recorder, SharedState, Stage, StreamEffect, Timed
from ._parse import FAULT_NAMES, fault_class, fault_from_mapping, parse_fault
from ._phase import connection_fate
from ._plans import Event, Timeline, summarize_unfired
from ._profiles import NETWORK_PROFILES, NetworkProfile, network_profile
from ._proxy import FaultProxy, FaultsInForce, ProxyStats, check_faults
from ._recording import Recording, decisions_of
from ._resolver import (
    NXDomain,
    Resolve,
    ResolveDelay,
    ResolverFault,
    ResolverFaults,
    ResolveTimeout,
    dns_faults,
)
from ._select import Ordinals, ordinals
from ._specs import (
    DATAGRAM,
    DISTRIBUTIONS,
    SOCKET_ERRORS,
    STREAM,
    TLS_POINTS,
    AcceptDelay,
    AcceptThenClose,
    AcceptThenReset,
    Bandwidth,
    Blackhole,
    CallFault,
    ConnectionFault,
    Corrupt,
    Down,
    Duplicate,
    Fault,
    GilbertElliott,
    Latency,
    LimitData,
    Loss,
    MarkovLoss,
    NeverRead,
    NoReply,
    Refuse,
    Reorder,
    ResetPeer,
    ShortSend,
    Slicer,
    Slot,
    SlowClose,
    SmallRecv,
    SocketError,
    Stall,
    Timeout,
    TLSAbort,
    TLSStall,
    Truncate,
)
from ._wrapper import FaultyDatagramSocket, FaultyStreamSocket, wrap_socket
from .framers import FRAMERS, Framing, LengthPrefix

__all__ = [
    "DATAGRAM",
    "DISTRIBUTIONS",
    "FAULT_NAMES",
    "FRAMERS",
    "NETWORK_PROFILES",
    "SOCKET_ERRORS",
    "STREAM",
    "TLS_POINTS",
    "VIRTUAL_TIMES",
    "AcceptDelay",
    "AcceptThenClose",
    "AcceptThenReset",
    "Bandwidth",
    "Blackhole",
    "CallFault",
    "ConnectionFault",
    "Corrupt",
    "DatagramEffect",
    "Down",
    "Duplicate",
    "Event",
    "Fault",
    "FaultClock",
    "FaultProxy",
    "FaultsInForce",
    "FaultyDatagramSocket",
    "FaultyStreamSocket",
    "Framing",
    "GilbertElliott",
    "Latency",
    "LengthPrefix",
    "LimitData",
    "Loss",
    "MarkovLoss",
    "NXDomain",
    "NetworkProfile",
    "NeverRead",
    "NoReply",
    "Ordinals",
    "ProxyStats",
    "Recorder",
    "Recording",
    "Refuse",
    "Reorder",
    "ResetPeer",
    "Resolve",
    "ResolveDelay",
    "ResolveTimeout",
    "ResolverFault",
    "ResolverFaults",
    "SharedState",
    "ShortSend",
    "Slicer",
    "Slot",
    "SlowClose",
    "SmallRecv",
    "SocketError",
    "Stage",
    "Stall",
    "StreamEffect",
    "TLSAbort",
    "TLSStall",
    "Timed",
    "Timeline",
    "Timeout",
    "Truncate",
    "VirtualTime",
    "check_faults",
    "check_virtual_time",
    "connection_fate",
    "decisions_of",
    "dns_faults",
    "fault_class",
    "fault_from_mapping",
    "framers",
    "network_profile",
    "ordinals",
    "parse_fault",
    "summarize_unfired",
    "wrap_socket",
]

publish(globals(), __all__, __name__)
