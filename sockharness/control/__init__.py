"""A control plane for fault proxies: Toxiproxy's HTTP API, served by sockharness.

:class:`ProxyAPIServer` serves the API (``sockharness proxy --api``): every
Toxiproxy client library can create proxies and toxics through it, and the
toxics become sockharness faults (docs/proxy-api.md has the mapping and the
differences). :class:`ProxyAPI` is a small client of it (or of Toxiproxy),
with toxics as context managers; the ``proxy_api`` fixture starts a server
once per session and hands a test a client.
"""

from __future__ import annotations

from ._client import APIProxy, ProxyAPI
from ._errors import APIError
from ._server import API_VERSION, ProxyAPIServer
from ._toxics import TOXIPROXY_TYPES, Toxic

__all__ = [
    "API_VERSION",
    "TOXIPROXY_TYPES",
    "APIError",
    "APIProxy",
    "ProxyAPI",
    "ProxyAPIServer",
    "Toxic",
]
