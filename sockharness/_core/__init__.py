"""The core below the fault layer: errors, transports, paths, process facts, fork safety, text.

Private to sockharness: every other layer imports what it needs from here
(``from sockharness._core import UsageError, parse_kind``), never from the
modules inside. It depends on :mod:`sockharness.server` only.
"""

from .attribution import Creations, handler_running, install, not_attributed
from .errors import (
    ConnectionClosed,
    HandlerErrors,
    IPv6Unavailable,
    LeakError,
    LeakWarning,
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
from .kinds import (
    CONCURRENCIES,
    KINDS,
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
    "PATTERNS",
    "PAYLOAD_KINDS",
    "PROFILE_NAMES",
    "REPLIES",
    "UNFIRED_MODES",
    "ChildState",
    "Concurrency",
    "ConnectionClosed",
    "Creations",
    "Direction",
    "HandlerErrors",
    "IPv6Unavailable",
    "Kind",
    "LeakError",
    "LeakMode",
    "LeakWarning",
    "Outcome",
    "Pattern",
    "PayloadKind",
    "ProfileName",
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
    "format_table",
    "handler_running",
    "install",
    "keep_out_of_children",
    "kind_of_class",
    "not_attributed",
    "open_descriptors",
    "parse_address",
    "parse_concurrency",
    "parse_kind",
    "plural",
    "private_directory",
    "publish",
    "server_class_for",
    "socket_descriptors",
    "unreachable",
]
