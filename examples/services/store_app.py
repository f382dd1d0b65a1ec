"""A JSON API that keeps its items in the line store (``store.py``): an app and its database.

The server's ``store_address`` (``host:port``) says where the store is; a
scenario sets it to ``{store.address}``, the store's address through its fault
proxy, so a fault on the store reaches the app's requests.

- ``GET /health``: ``200 {"ok": true}`` when the store answers ``PING``, else ``503``;
- ``POST /items`` with ``{"name": ...}``: stored under its name, read back from
  the store, and answered ``201 {"ok": true, "item": <what the store holds>}``;
  ``503`` when the store cannot be reached, ``500`` when it lost the item.
"""

from __future__ import annotations

import json
import socket

from sockharness.server import ThreadingTCPServer

from .items_app import JSONHandler

__all__ = ["StoreApp", "StoreAppServer"]

#: How long the app waits on the store before it answers 503.
STORE_TIMEOUT = 1.0


class StoreAppServer(ThreadingTCPServer):
    """The app's server: where its store is."""

    daemon_threads = True
    store_address = ""


class StoreUnavailable(Exception):
    """The store could not be reached, or broke off."""


class StoreApp(JSONHandler):
    """The app: each request is a short conversation with the store."""

    def store(self, *commands: str) -> list[str]:
        """Send ``commands`` to the store on a fresh connection; its answers."""
        host, _, port = str(getattr(self.server, "store_address", "")).rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=STORE_TIMEOUT) as sock:
                reader = sock.makefile("rb")
                answers = []
                for command in commands:
                    sock.sendall(command.encode() + b"\n")
                    line = reader.readline()
                    if not line.endswith(b"\n"):
                        raise StoreUnavailable("the store closed the connection")
                    answers.append(line.decode().rstrip("\n"))
                return answers
        except (OSError, ValueError) as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from None

    def do_GET(self) -> None:
        if self.path != "/health":
            self.answer(404, {"ok": False, "error": "no such page"})
            return
        try:
            (pong,) = self.store("PING")
        except StoreUnavailable as exc:
            self.answer(503, {"ok": False, "error": f"store unavailable: {exc}"})
            return
        self.answer(200 if pong == "PONG" else 503, {"ok": pong == "PONG"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            item = json.loads(self.rfile.read(length) or b"null")
            name = str(item["name"]).replace(" ", "_")
        except (ValueError, TypeError, KeyError):
            self.answer(400, {"ok": False, "error": 'expected {"name": ...}'})
            return
        try:
            _, stored = self.store(f"SET {name} {json.dumps(item)}", f"GET {name}")
        except StoreUnavailable as exc:
            self.answer(503, {"ok": False, "error": f"store unavailable: {exc}"})
            return
        if not stored.startswith("VALUE "):
            self.answer(500, {"ok": False, "error": f"the store lost the item: {stored}"})
            return
        self.answer(201, {"ok": True, "item": json.loads(stored.removeprefix("VALUE "))})
