"""A tiny key/value store over a line protocol: the database of the app-and-store scenario.

One command per line, one answer per line::

    PING            -> PONG
    SET key value   -> OK
    GET key         -> VALUE value   (or NONE)

The data lives on the server object, shared by its connections, and is gone
when the server stops. :class:`ForgetfulStore` is the broken variant: it says
``OK`` to every ``SET`` and keeps nothing.
"""

from __future__ import annotations

import threading
from socketserver import BaseServer, StreamRequestHandler

__all__ = ["ForgetfulStore", "Store"]

_LOCKS = threading.Lock()


def _data_of(server: BaseServer) -> dict[str, str]:
    """The server's key/value data, made on first use."""
    with _LOCKS:
        data: dict[str, str] | None = getattr(server, "store_data", None)
        if data is None:
            data = {}
            server.store_data = data  # type: ignore[attr-defined]
        return data


class Store(StreamRequestHandler):
    """The healthy store."""

    def handle(self) -> None:
        data = _data_of(self.server)
        for raw in self.rfile:
            command, _, rest = raw.decode("utf-8", "replace").rstrip("\r\n").partition(" ")
            self.wfile.write(self.answer(data, command.upper(), rest).encode() + b"\n")

    def answer(self, data: dict[str, str], command: str, rest: str) -> str:
        if command == "PING":
            return "PONG"
        if command == "SET":
            key, _, value = rest.partition(" ")
            self.keep(data, key, value)
            return "OK"
        if command == "GET":
            value = data.get(rest)
            return "NONE" if value is None else f"VALUE {value}"
        return f"ERR unknown command {command!r}"

    def keep(self, data: dict[str, str], key: str, value: str) -> None:
        data[key] = value


class ForgetfulStore(Store):
    """Answers ``OK`` to every ``SET``, and keeps nothing."""

    def keep(self, data: dict[str, str], key: str, value: str) -> None:
        """Forget it."""
