"""A small client of the proxy API (ours, or Toxiproxy's): proxies, toxics as context managers.

Only the standard library's ``http.client``; every call has a bounded timeout,
and a refusal is :class:`APIError` with the server's message.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import urllib.parse
from collections.abc import Iterator
from typing import Any, Literal

from ._errors import APIError

__all__ = ["APIProxy", "ProxyAPI"]


class ProxyAPI:
    """A client of the proxy API at ``url`` (``http://127.0.0.1:8474``).

    Example:
        >>> from sockharness import start_server, connect
        >>> from sockharness.handlers import LineEchoHandler
        >>> from sockharness.control import ProxyAPIServer
        >>> with start_server(LineEchoHandler) as server, ProxyAPIServer() as api_server:
        ...     api = ProxyAPI(api_server.url)
        ...     proxy = api.create("echo", server.address)
        ...     with proxy.toxic("latency", latency=20):
        ...         with connect(proxy.address) as client:
        ...             client.request(b"late\\n")
        b'late\\n'
    """

    def __init__(self, url: str = "http://127.0.0.1:8474", *, timeout: float = 10.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or parts.port is None:
            raise APIError(0, f"expected the API's URL as http://HOST:PORT, found {url!r}")
        self.url = url.rstrip("/")
        self.host = parts.hostname
        self.port = parts.port
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One call: the decoded JSON answer (``None`` for 204); APIError for an error."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "sockharness ProxyAPI"}
        try:
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        except ConnectionRefusedError:
            raise APIError(0, f"no proxy API at {self.url}: the connection was refused") from None
        except TimeoutError:
            raise APIError(
                0,
                f"the proxy API at {self.url} did not answer {method} {path} within "
                f"{self.timeout:g} s",
            ) from None
        finally:
            connection.close()
        text = raw.decode("utf-8", "replace")
        content_type = response.getheader("Content-Type", "")
        document: Any = json.loads(text) if text and "json" in content_type else text or None
        if response.status >= 400:
            message = document.get("error") if isinstance(document, dict) else None
            raise APIError(response.status, str(message or document or response.reason))
        return document

    def version(self) -> str:
        """The server's version."""
        document = self.request("GET", "/version")
        return str(document["version"] if isinstance(document, dict) else document)

    def proxies(self) -> dict[str, APIProxy]:
        """Every proxy, by name."""
        found = self.request("GET", "/proxies")
        return {name: APIProxy(self, shown) for name, shown in found.items()}

    def proxy(self, name: str) -> APIProxy:
        """The proxy called ``name``."""
        return APIProxy(self, self.request("GET", f"/proxies/{_quoted(name)}"))

    def create(
        self,
        name: str,
        upstream: Any,
        *,
        listen: str = "127.0.0.1:0",
        enabled: bool = True,
        protocol: Literal["tcp", "udp"] = "tcp",
    ) -> APIProxy:
        """A new proxy to ``upstream`` (``"host:port"``, a ``(host, port)`` or a path)."""
        body: dict[str, Any] = {
            "name": name,
            "listen": listen,
            "upstream": _address_text(upstream),
            "enabled": enabled,
        }
        if protocol != "tcp":
            body["protocol"] = protocol
        return APIProxy(self, self.request("POST", "/proxies", body))

    def populate(self, proxies: list[dict[str, Any]]) -> list[APIProxy]:
        """Create, keep or replace each proxy (with ``toxics``, exactly those)."""
        found = self.request("POST", "/populate", proxies)
        return [APIProxy(self, shown) for shown in found["proxies"]]

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        self.request("POST", "/reset")

    def metrics(self) -> str:
        """The Prometheus text of ``GET /metrics``."""
        return str(self.request("GET", "/metrics") or "")


class APIProxy:
    """One proxy of the API, as it was last shown; its methods change it there."""

    def __init__(self, api: ProxyAPI, shown: dict[str, Any]) -> None:
        self.api = api
        self.shown = shown

    def __repr__(self) -> str:
        return f"<APIProxy {self.name!r} {self.listen} -> {self.upstream}>"

    @property
    def name(self) -> str:
        return str(self.shown["name"])

    @property
    def listen(self) -> str:
        """Where it listens, as the API shows it (``127.0.0.1:34567``)."""
        return str(self.shown["listen"])

    @property
    def upstream(self) -> str:
        return str(self.shown["upstream"])

    @property
    def enabled(self) -> bool:
        return bool(self.shown["enabled"])

    @property
    def address(self) -> Any:
        """Where to connect: ``(host, port)``, or a socket path."""
        listen = self.listen
        if listen.startswith(("/", "@")):
            return listen
        host, _, port = listen.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def _path(self) -> str:
        return f"/proxies/{_quoted(self.name)}"

    def refresh(self) -> APIProxy:
        """Read it again from the API."""
        self.shown = self.api.request("GET", self._path)
        return self

    def toxics(self) -> list[dict[str, Any]]:
        """Its toxics, in the order they apply."""
        return list(self.api.request("GET", f"{self._path}/toxics"))

    def add_toxic(
        self,
        type: str,
        *,
        name: str | None = None,
        stream: Literal["upstream", "downstream"] = "downstream",
        toxicity: float = 1.0,
        **attributes: Any,
    ) -> dict[str, Any]:
        """Add a toxic (Toxiproxy's attributes and units, or a fault of ours by name)."""
        body: dict[str, Any] = {
            "type": type,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": attributes,
        }
        if name is not None:
            body["name"] = name
        return dict(self.api.request("POST", f"{self._path}/toxics", body))

    def update_toxic(
        self, name: str, *, toxicity: float | None = None, **attributes: Any
    ) -> dict[str, Any]:
        """Change a toxic's attributes (merged into its own) or its toxicity."""
        body: dict[str, Any] = {"attributes": attributes}
        if toxicity is not None:
            body["toxicity"] = toxicity
        return dict(self.api.request("POST", f"{self._path}/toxics/{_quoted(name)}", body))

    def remove_toxic(self, name: str) -> None:
        self.api.request("DELETE", f"{self._path}/toxics/{_quoted(name)}")

    @contextlib.contextmanager
    def toxic(self, type: str, **options: Any) -> Iterator[dict[str, Any]]:
        """A toxic for the length of a ``with`` block, removed however the block ends."""
        added = self.add_toxic(type, **options)
        try:
            yield added
        finally:
            self.remove_toxic(added["name"])

    def disable(self) -> None:
        """Close its port and cut its connections."""
        self.shown = self.api.request("POST", self._path, {"enabled": False})

    def enable(self) -> None:
        """Listen again, where it listened."""
        self.shown = self.api.request("POST", self._path, {"enabled": True})

    @contextlib.contextmanager
    def down(self) -> Iterator[APIProxy]:
        """Disabled for the length of a ``with`` block, enabled again however it ends."""
        self.disable()
        try:
            yield self
        finally:
            self.enable()

    def delete(self) -> None:
        self.api.request("DELETE", self._path)


def _quoted(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _address_text(address: Any) -> str:
    if isinstance(address, tuple):
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)
