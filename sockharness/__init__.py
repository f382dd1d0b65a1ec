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
    "Client": ".harness",
    "connect": ".harness",
    "HandlerError": ".harness",
    "Received": ".harness",
    "Payloads": ".harness",
    "RunningServer": ".harness",
    "start_server": ".harness",
    "TLSMaterial": ".harness",
    "ConnectionClosed": "._core",
    "HandlerErrors": "._core",
    "HeldDatagramsWarning": "._core",
    "IPv6Unavailable": "._core",
    "LeakError": "._core",
    "LeakWarning": "._core",
    "ProxyError": "._core",
    "ProxyTimeout": "._core",
    "ReceiveTimeout": "._core",
    "ServerStopTimeout": "._core",
    "SockharnessError": "._core",
    "SockharnessWarning": "._core",
    "UsageError": "._core",
    "UnfiredFaults": "._core",
    "UnfiredFaultWarning": "._core",
}

__all__ = [
    "Client",
    "ConnectionClosed",
    "HandlerError",
    "HandlerErrors",
    "HeldDatagramsWarning",
    "IPv6Unavailable",
    "LeakError",
    "LeakWarning",
    "Payloads",
    "ProxyError",
    "ProxyTimeout",
    "ReceiveTimeout",
    "Received",
    "RunningServer",
    "ServerStopTimeout",
    "SockharnessError",
    "SockharnessWarning",
    "TLSMaterial",
    "UnfiredFaultWarning",
    "UnfiredFaults",
    "UsageError",
    "__version__",
    "connect",
    "start_server",
]

if TYPE_CHECKING:
    from ._core import ConnectionClosed as ConnectionClosed
    from ._core import HandlerErrors as HandlerErrors
    from ._core import HeldDatagramsWarning as HeldDatagramsWarning
    from ._core import IPv6Unavailable as IPv6Unavailable
    from ._core import LeakError as LeakError
    from ._core import LeakWarning as LeakWarning
    from ._core import ProxyError as ProxyError
    from ._core import ProxyTimeout as ProxyTimeout
    from ._core import ReceiveTimeout as ReceiveTimeout
    from ._core import ServerStopTimeout as ServerStopTimeout
    from ._core import SockharnessError as SockharnessError
    from ._core import SockharnessWarning as SockharnessWarning
    from ._core import UnfiredFaults as UnfiredFaults
    from ._core import UnfiredFaultWarning as UnfiredFaultWarning
    from ._core import UsageError as UsageError
    from .harness import Client as Client
    from .harness import HandlerError as HandlerError
    from .harness import Payloads as Payloads
    from .harness import Received as Received
    from .harness import RunningServer as RunningServer
    from .harness import TLSMaterial as TLSMaterial
    from .harness import connect as connect
    from .harness import start_server as start_server


def __getattr__(name: str) -> Any:
    try:
        module_name = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'sockharness' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module_name, __name__), name)
    # Not cached in globals(): the submodule stays the one source of truth, even
    # when something (pytester's inline runs) drops it from sys.modules and it is
    # imported afresh.


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
