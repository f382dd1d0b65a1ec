"""sockharness: a socketserver-compatible framework and a harness for testing network code.

The server framework is :mod:`sockharness.server` and the built-in handlers are
:mod:`sockharness.handlers`. This package gives the harness: start servers in
the background (:func:`start_server`), connect clients (:func:`connect`),
seeded payloads (:class:`Payloads`) and TLS material (:class:`TLSMaterial`).
The pytest plugin (:mod:`sockharness.pytest_plugin`) wraps them in fixtures.

Importing this package is cheap: names are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

_EXPORTS = {
    "Client": "._clients",
    "connect": "._clients",
    "ConnectionClosed": "._errors",
    "HandlerErrors": "._errors",
    "IPv6Unavailable": "._errors",
    "LeakError": "._errors",
    "ReceiveTimeout": "._errors",
    "ServerStopTimeout": "._errors",
    "SockharnessError": "._errors",
    "UsageError": "._errors",
    "UnfiredFaults": "._errors",
    "UnfiredFaultWarning": "._errors",
    "HandlerError": "._events",
    "Received": "._events",
    "Payloads": "._payloads",
    "LeakWarning": "._running",
    "RunningServer": "._running",
    "start_server": "._running",
    "TLSMaterial": "._tls",
}

__all__ = [
    "Client",
    "ConnectionClosed",
    "HandlerError",
    "HandlerErrors",
    "IPv6Unavailable",
    "LeakError",
    "LeakWarning",
    "Payloads",
    "ReceiveTimeout",
    "Received",
    "RunningServer",
    "ServerStopTimeout",
    "SockharnessError",
    "TLSMaterial",
    "UnfiredFaultWarning",
    "UnfiredFaults",
    "UsageError",
    "__version__",
    "connect",
    "start_server",
]

if TYPE_CHECKING:
    from ._clients import Client as Client
    from ._clients import connect as connect
    from ._errors import ConnectionClosed as ConnectionClosed
    from ._errors import HandlerErrors as HandlerErrors
    from ._errors import IPv6Unavailable as IPv6Unavailable
    from ._errors import LeakError as LeakError
    from ._errors import ReceiveTimeout as ReceiveTimeout
    from ._errors import ServerStopTimeout as ServerStopTimeout
    from ._errors import SockharnessError as SockharnessError
    from ._errors import UnfiredFaults as UnfiredFaults
    from ._errors import UnfiredFaultWarning as UnfiredFaultWarning
    from ._errors import UsageError as UsageError
    from ._events import HandlerError as HandlerError
    from ._events import Received as Received
    from ._payloads import Payloads as Payloads
    from ._running import LeakWarning as LeakWarning
    from ._running import RunningServer as RunningServer
    from ._running import start_server as start_server
    from ._tls import TLSMaterial as TLSMaterial


def __getattr__(name: str) -> Any:
    try:
        module_name = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'sockharness' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module_name, __name__), name)
    if getattr(value, "__module__", "").startswith("sockharness._"):
        # Reprs, tracebacks and docs name the public module, as pickles do.
        try:
            value.__module__ = __name__
        except (AttributeError, TypeError):
            pass
    # Not cached in globals(): the submodule stays the one source of truth, even
    # when something (pytester's inline runs) drops it from sys.modules and it is
    # imported afresh.
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
