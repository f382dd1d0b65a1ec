"""The HTTP side of the control plane: Toxiproxy's paths, methods, status codes and bodies."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from sockharness._core import UsageError
from sockharness.server import ThreadingTCPServer

from ._config import read_config
from ._errors import APIError
from ._metrics import prometheus_text
from ._registry import ProxyRegistry

__all__ = ["API_VERSION", "ProxyAPIServer"]

#: The Toxiproxy API version this one speaks (what ``GET /version`` says, with ours).
API_VERSION = "2.12.0-sockharness"
#: A request body larger than this is refused (no proxy list needs more).
MAX_BODY = 1 << 20

Route = Callable[["_Handler", dict[str, str]], tuple[int, Any]]


class _Server(ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    registry: ProxyRegistry


class _Server6(_Server):
    address_family = socket.AF_INET6


def _route(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "/?$")


class _Handler(BaseHTTPRequestHandler):
    """One API request: routed by path and method, answered in JSON."""

    protocol_version = "HTTP/1.1"
    server_version = "sockharness-proxy-api"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the command prints its own lines."""

    # -- dispatch ---------------------------------------------------------------------------

    def do_GET(self) -> None:
        self.dispatch("GET")

    def do_POST(self) -> None:
        self.dispatch("POST")

    def do_PATCH(self) -> None:
        self.dispatch("PATCH")

    def do_DELETE(self) -> None:
        self.dispatch("DELETE")

    def dispatch(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        try:
            body = self.read_body()
            if self.headers.get("User-Agent", "").startswith("Mozilla/"):
                # As Toxiproxy: a page in a browser must not drive the API (CSRF).
                raise APIError(403, "User agent not allowed")
            found = [(pattern, routes) for pattern, routes in ROUTES if pattern.match(path)]
            if not found:
                raise APIError(404, f"no such endpoint: {path}")
            pattern, routes = found[0]
            route = routes.get(method)
            if route is None:
                allowed = ", ".join(sorted(routes))
                raise APIError(405, f"{method} is not allowed on {path} (allowed: {allowed})")
            match = pattern.match(path)
            assert match is not None
            self.body = body
            names = {key: urllib.parse.unquote(value) for key, value in match.groupdict().items()}
            status, document = route(self, names)
        except APIError as error:
            status, document = error.status, error.to_json()
        except Exception as exc:  # A bug of ours: a 500 that says what, never a dead server.
            status = 500
            document = {"error": f"internal error: {type(exc).__name__}: {exc}", "status": 500}
        self.answer(status, document)

    def read_body(self) -> Any:
        length_text = self.headers.get("Content-Length") or "0"
        try:
            length = int(length_text)
        except ValueError:
            raise APIError.bad_body(f"Content-Length {length_text!r} is not a number") from None
        if length < 0 or length > MAX_BODY:
            raise APIError(413, f"request body of {length} bytes (at most {MAX_BODY})")
        raw = self.rfile.read(length) if length else b""
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise APIError.bad_body(f"not JSON: {exc}") from None

    def answer(self, status: int, document: Any) -> None:
        if status == 204:
            payload, content_type = b"", None
        elif isinstance(document, str):
            payload, content_type = document.encode(), "text/plain; version=0.0.4; charset=utf-8"
        else:
            payload = (json.dumps(document) + "\n").encode()
            content_type = "application/json"
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    @property
    def registry(self) -> ProxyRegistry:
        assert isinstance(self.server, _Server)
        return self.server.registry

    # -- endpoints --------------------------------------------------------------------------

    def version(self, names: dict[str, str]) -> tuple[int, Any]:
        return 200, {"version": API_VERSION}

    def proxies(self, names: dict[str, str]) -> tuple[int, Any]:
        return 200, self.registry.all_json()

    def create_proxy(self, names: dict[str, str]) -> tuple[int, Any]:
        return 201, self.registry.create(self.body)

    def populate(self, names: dict[str, str]) -> tuple[int, Any]:
        return 201, {"proxies": self.registry.populate(self.body)}

    def proxy(self, names: dict[str, str]) -> tuple[int, Any]:
        return 200, self.registry.get_json(names["proxy"])

    def update_proxy(self, names: dict[str, str]) -> tuple[int, Any]:
        return 200, self.registry.update(names["proxy"], self.body or {})

    def delete_proxy(self, names: dict[str, str]) -> tuple[int, Any]:
        self.registry.delete(names["proxy"])
        return 204, None

    def toxics(self, names: dict[str, str]) -> tuple[int, Any]:
        return 200, self.registry.toxics_json(names["proxy"])

    def create_toxic(self, names: dict[str, str]) -> tuple[int, Any]:
        return 200, self.registry.add_toxic(names["proxy"], self.body)

    def toxic(self, names: dict[str, str]) -> tuple[int, Any]:
        return 200, self.registry.toxic_json(names["proxy"], names["toxic"])

    def update_toxic(self, names: dict[str, str]) -> tuple[int, Any]:
        return 200, self.registry.update_toxic(names["proxy"], names["toxic"], self.body or {})

    def delete_toxic(self, names: dict[str, str]) -> tuple[int, Any]:
        self.registry.remove_toxic(names["proxy"], names["toxic"])
        return 204, None

    def reset(self, names: dict[str, str]) -> tuple[int, Any]:
        self.registry.reset()
        return 204, None

    def metrics(self, names: dict[str, str]) -> tuple[int, Any]:
        return 200, prometheus_text(self.registry)


ROUTES: list[tuple[re.Pattern[str], dict[str, Route]]] = [
    (_route("/version"), {"GET": _Handler.version}),
    (_route("/metrics"), {"GET": _Handler.metrics}),
    (_route("/reset"), {"POST": _Handler.reset}),
    (_route("/populate"), {"POST": _Handler.populate}),
    (_route("/proxies"), {"GET": _Handler.proxies, "POST": _Handler.create_proxy}),
    (
        _route("/proxies/{proxy}"),
        {
            "GET": _Handler.proxy,
            "POST": _Handler.update_proxy,
            "PATCH": _Handler.update_proxy,
            "DELETE": _Handler.delete_proxy,
        },
    ),
    (_route("/proxies/{proxy}/toxics"), {"GET": _Handler.toxics, "POST": _Handler.create_toxic}),
    (
        _route("/proxies/{proxy}/toxics/{toxic}"),
        {
            "GET": _Handler.toxic,
            "POST": _Handler.update_toxic,
            "PATCH": _Handler.update_toxic,
            "DELETE": _Handler.delete_toxic,
        },
    ),
]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ProxyAPIServer:
    """A Toxiproxy-compatible HTTP API that creates and faults proxies, in a thread.

    Every Toxiproxy client can drive it: point the client at :attr:`url`.
    It binds to loopback unless ``any_host`` is true (the API can open
    proxies to anywhere the machine reaches, so it must not face a network
    by accident). ``config`` is a file of proxies and toxics to make now
    (:meth:`reload` applies it again); ``watch`` is called with a line per
    connection and fault decision of every proxy. :meth:`close` (or leaving
    the ``with`` block) stops the API and every proxy it made.

    Example:
        >>> import json, urllib.request
        >>> with ProxyAPIServer() as api:
        ...     with urllib.request.urlopen(api.url + "/version") as reply:
        ...         json.load(reply)["version"].startswith("2.")
        True
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        seed: int = 0,
        any_host: bool = False,
        config: str | os.PathLike[str] | None = None,
        watch: Callable[[str], None] | None = None,
    ) -> None:
        if not any_host and not _is_loopback(host):
            raise UsageError(
                f"the API would listen on {host!r}, beyond loopback: anyone who reaches it can "
                f"open proxies from this machine. Use 127.0.0.1, or allow it explicitly "
                f"(--api-any-host)"
            )
        self.registry = ProxyRegistry(seed=seed, watch=watch)
        self.config = None if config is None else os.fspath(config)
        #: The proxies the config file made (a reload deletes those it no longer names).
        self._from_config: set[str] = set()
        v6 = ":" in host
        server_class = _Server6 if v6 else _Server
        try:
            self._server = server_class((host, port), _Handler)
        except OSError as exc:
            raise UsageError(f"the API cannot listen on {host}:{port}: {exc.strerror}") from None
        self._server.registry = self.registry
        if self.config is not None:
            try:
                self.reload()
            except BaseException:
                self._server.server_close()
                self.registry.close()
                raise
        self._closed = False
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.5},
            name="sockharness proxy API",
            daemon=True,
        )
        self._thread.start()

    def reload(self) -> list[str]:
        """Read the config file again and apply it: its proxies, with their toxics, made,
        kept or replaced; those it made before and no longer names, deleted. A bad file
        changes nothing and raises :class:`UsageError`. Returns the names it holds."""
        if self.config is None:
            raise UsageError("no config file to reload: start the API with config=FILE")
        entries = read_config(self.config)
        try:
            proxies = self.registry.populate(entries, prune=self._from_config)
        except APIError as exc:
            raise UsageError(f"--config {self.config}: {exc.message}") from None
        self._from_config = {proxy["name"] for proxy in proxies}
        return sorted(self._from_config)

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` the API listens on."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        """``http://host:port``, for a client."""
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def close(self) -> None:
        """Stop the API, then every proxy. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
        self.registry.close()

    def __enter__(self) -> ProxyAPIServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
