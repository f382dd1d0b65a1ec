"""The core below the fault layer: errors, transports, paths, processes, sockets, text.

Private to sockharness: every other layer imports what it needs from here
(``from sockharness._core import UsageError, parse_kind``), never from the
modules inside. It depends on :mod:`sockharness.server` only.
"""

from .attribution import Creations, handler_running, install, not_attributed
from .counting import ByteCounter, CountingSocket, count_bytes, counter_of
from .draining import wait_until_sent
from .errors import (
    ConnectionClosed,
    HandlerErrors,
    HeldDatagramsWarning,
    IPv6Unavailable,
    LeakError,
    LeakWarning,
    ProxyError,
    ProxyTimeout,
    ReceiveTimeout,
    ServerStopTimeout,
    SockharnessError,
    SockharnessWarning,
    UnfiredFaults,
    UnfiredFaultWarning,
    UsageError,
)
from .exports import publish
from .fork_safety import keep_out_of_children
from .imports import import_object, object_path
from .kinds import (
    CONCURRENCIES,
    KINDS,
    Address,
    Concurrency,
    Kind,
    concurrency_of_class,
    kind_of_class,
    parse_address,
    parse_concurrency,
    parse_kind,
    server_class_for,
)
from .paths import private_directory
from .procfs import ChildState, child_state, open_descriptors, socket_descriptors
from .seeds import MAX_SWEEP, derive_seed, sweep_count_argument, sweep_seed
from .table import format_table
from .text import plural
from .vocabulary import (
    LEAK_MODES,
    PATTERNS,
    PAYLOAD_KINDS,
    PROFILE_NAMES,
    REPLIES,
    UNFIRED_MODES,
    Direction,
    LeakMode,
    Outcome,
    Pattern,
    PayloadKind,
    ProfileName,
    Reply,
    ScenarioOutcome,
    Side,
    Transport,
    UnfiredMode,
    unreachable,
)

__all__ = [
    "CONCURRENCIES",
    "KINDS",
    "LEAK_MODES",
    "MAX_SWEEP",
    "PATTERNS",
    "PAYLOAD_KINDS",
    "PROFILE_NAMES",
    "REPLIES",
    "UNFIRED_MODES",
    "Address",
    "ByteCounter",
    "ChildState",
    "Concurrency",
    "ConnectionClosed",
    "CountingSocket",
    "Creations",
    "Direction",
    "HandlerErrors",
    "HeldDatagramsWarning",
    "IPv6Unavailable",
    "Kind",
    "LeakError",
    "LeakMode",
    "LeakWarning",
    "Outcome",
    "Pattern",
    "PayloadKind",
    "ProfileName",
    "ProxyError",
    "ProxyTimeout",
    "ReceiveTimeout",
    "Reply",
    "ScenarioOutcome",
    "ServerStopTimeout",
    "Side",
    "SockharnessError",
    "SockharnessWarning",
    "Transport",
    "UnfiredFaultWarning",
    "UnfiredFaults",
    "UnfiredMode",
    "UsageError",
    "child_state",
    "concurrency_of_class",
    "count_bytes",
    "counter_of",
    "derive_seed",
    "format_table",
    "handler_running",
    "import_object",
    "install",
    "keep_out_of_children",
    "kind_of_class",
    "not_attributed",
    "object_path",
    "open_descriptors",
    "parse_address",
    "parse_concurrency",
    "parse_kind",
    "plural",
    "private_directory",
    "publish",
    "server_class_for",
    "socket_descriptors",
    "sweep_count_argument",
    "sweep_seed",
    "unreachable",
    "wait_until_sent",
]
