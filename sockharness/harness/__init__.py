"""The harness: servers run in the background and surely stopped, clients, TLS, payloads.

Built on :mod:`sockharness.server` and :mod:`sockharness.faults`; the pytest
plugin, the conformance suite and the chaos runner build on it. Everything
here is re-exported by :mod:`sockharness` itself, where users import it from.
"""

from sockharness._core import publish

from ._clients import Client, connect, describe_address
from ._events import HandlerError, Received, describe_client
from ._leaks import Leaks
from ._payloads import Payloads
from ._running import (
    RunningServer,
    ServerStats,
    format_handler_errors,
    has_ipv6_loopback,
    start_server,
)
from ._teardown import Teardown, stop_servers
from ._tls import LOOPBACK_IDENTITIES, TLSMaterial

__all__ = [
    "LOOPBACK_IDENTITIES",
    "Client",
    "HandlerError",
    "Leaks",
    "Payloads",
    "Received",
    "RunningServer",
    "ServerStats",
    "TLSMaterial",
    "Teardown",
    "connect",
    "describe_address",
    "describe_client",
    "format_handler_errors",
    "has_ipv6_loopback",
    "start_server",
    "stop_servers",
]

#: Re-exported by the top package: their reprs and tracebacks name ``sockharness``.
_TOP_LEVEL = [
    "Client",
    "HandlerError",
    "Payloads",
    "Received",
    "RunningServer",
    "TLSMaterial",
    "Teardown",
    "connect",
    "start_server",
]
publish(globals(), _TOP_LEVEL, "sockharness")
publish(globals(), [name for name in __all__ if name not in _TOP_LEVEL], __name__)
