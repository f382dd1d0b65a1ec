"""A small JSON API on ``http.server``: the real service the shipped HTTP scenario runs.

``GET /health`` answers ``{"ok": true}``; ``GET /items/N`` answers
``{"ok": true, "id": N}`` (404 for an N that is not a number); ``POST /items``
answers ``201`` with the JSON it was sent. HTTP/1.1 with keep-alive, quiet
(no log line per request). Broken variants, for showing that a scenario fails
when the service does: :class:`WrongItemsApp` (healthy, but every item a 500),
:class:`SlowApp` (each answer 0.3 s late), :class:`SilentApp` (reads the request,
never answers).
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

__all__ = ["ItemsApp", "JSONHandler", "SilentApp", "SlowApp", "WrongItemsApp"]

_ITEM = re.compile(r"/items/(\d+)")


class JSONHandler(BaseHTTPRequestHandler):
    """An HTTP/1.1 keep-alive handler that answers JSON, quietly (the apps' common part)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # Headers and body are two writes: no stall between.

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: no line per request."""

    def answer(self, status: int, document: dict[str, Any]) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class ItemsApp(JSONHandler):
    """The healthy service."""

    def do_GET(self) -> None:
        if self.path == "/health":
            self.answer(200, {"ok": True})
            return
        match = _ITEM.fullmatch(self.path)
        if match is None:
            self.answer(404, {"ok": False, "error": "no such item"})
            return
        self.answer(200, {"ok": True, "id": int(match.group(1))})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            sent = json.loads(self.rfile.read(length) or b"null")
        except ValueError:
            self.answer(400, {"ok": False, "error": "not JSON"})
            return
        self.answer(201, {"ok": True, "item": sent})


class WrongItemsApp(ItemsApp):
    """Its health check passes; every item request gets a 500."""

    def answer(self, status: int, document: dict[str, Any]) -> None:
        if self.path == "/health":
            super().answer(status, document)
        else:
            super().answer(500, {"ok": False, "error": "internal error"})


class SlowApp(ItemsApp):
    """Answers each request 0.3 s late."""

    def answer(self, status: int, document: dict[str, Any]) -> None:
        threading.Event().wait(0.3)  # The service's own slowness, not a test's wait.
        super().answer(status, document)


class SilentApp(ItemsApp):
    """Reads each request and never answers it (until the client gives up)."""

    def answer(self, status: int, document: dict[str, Any]) -> None:
        self.close_connection = True
        threading.Event().wait(3.0)
