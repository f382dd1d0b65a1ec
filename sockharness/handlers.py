"""Built-in request handlers: each works for stream and datagram servers alike.

On a stream server a handler reads the connection until the client's EOF (or,
for line handlers, line by line); on a datagram server each datagram is one
request and the reply is one datagram.

Example:
    >>> import threading
    >>> from sockharness.server import ThreadingTCPServer
    >>> from sockharness.handlers import UpperHandler
    >>> server = ThreadingTCPServer(("127.0.0.1", 0), UpperHandler)
    >>> server.server_close()
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from ._core import Reply, SockharnessError, UsageError
from .server import BaseRequestHandler

__all__ = [
    "BUILTIN_HANDLERS",
    "BuiltinHandler",
    "CrashHandler",
    "DiscardHandler",
    "EchoHandler",
    "HandlerCrash",
    "LineEchoHandler",
    "RecordingHandler",
    "SlowHandler",
    "UpperHandler",
]

_CHUNK = 65536


class HandlerCrash(SockharnessError, RuntimeError):
    """Raised on purpose by :class:`CrashHandler`."""


class _EitherTransport(BaseRequestHandler):
    """Dispatches to ``handle_stream`` or ``handle_datagram`` by the request's shape."""

    def handle(self) -> None:
        if isinstance(self.request, tuple):
            data, sock = self.request
            reply = self.handle_datagram(data)
            if reply is not None:
                sock.sendto(reply, self.client_address)
        else:
            self.handle_stream(self.request)

    def handle_stream(self, connection: socket.socket) -> None:
        """Serve a stream connection until the client's EOF."""
        while chunk := connection.recv(_CHUNK):
            reply = self.transform(chunk)
            if reply:
                connection.sendall(reply)

    def handle_datagram(self, data: bytes) -> bytes | None:
        """Return the reply datagram for ``data`` (``None``: no reply)."""
        return self.transform(data)

    def transform(self, data: bytes) -> bytes | None:
        """The reply to ``data``; the default echoes it."""
        return data


class EchoHandler(_EitherTransport):
    """Sends back every byte it receives: chunk by chunk, or datagram by datagram."""


class UpperHandler(_EitherTransport):
    """Sends back what it receives in upper case."""

    def transform(self, data: bytes) -> bytes | None:
        return data.upper()


class DiscardHandler(_EitherTransport):
    """Reads everything and answers nothing."""

    def transform(self, data: bytes) -> bytes | None:
        return None


class LineEchoHandler(_EitherTransport):
    """Sends back each complete line as soon as it has arrived (datagrams: echoed whole)."""

    def handle_stream(self, connection: socket.socket) -> None:
        with connection.makefile("rb") as lines:
            for line in lines:
                connection.sendall(line)


class SlowHandler(_EitherTransport):
    """Echoes, after waiting ``delay`` seconds before each reply.

    Example:
        >>> from sockharness.handlers import SlowHandler
        >>> QuarterSecond = SlowHandler.with_delay(0.25)
        >>> QuarterSecond.delay
        0.25
    """

    delay: ClassVar[float] = 0.1

    @classmethod
    def with_delay(cls, delay: float) -> type[SlowHandler]:
        """A subclass that waits ``delay`` seconds before each reply."""
        if not isinstance(delay, (int, float)) or delay < 0:
            raise UsageError(
                f"SlowHandler delay must be a number of seconds >= 0, got {delay!r}",
                parameter="delay",
                value=delay,
            )
        return type(f"SlowHandler_{delay:g}s", (cls,), {"delay": float(delay)})

    def transform(self, data: bytes) -> bytes | None:
        time.sleep(self.delay)
        return data


class CrashHandler(_EitherTransport):
    """Reads the first chunk or datagram, then raises :class:`HandlerCrash`."""

    def handle_stream(self, connection: socket.socket) -> None:
        connection.recv(_CHUNK)
        self.crash()

    def handle_datagram(self, data: bytes) -> bytes | None:
        self.crash()
        return None

    def crash(self) -> Any:
        raise HandlerCrash(f"CrashHandler crashed on purpose serving {self.client_address!r}")


class RecordingHandler(_EitherTransport):
    """Echoes, and records every request's bytes for the test to read back.

    Run by sockharness (``make_server``, ``start_server``), the recordings are
    read from ``RunningServer.received`` (one ``bytes`` per request, in order),
    also when the handler ran in a forked child. On a plain server they are
    appended to ``server.received``.
    """

    def setup(self) -> None:
        self._recorded = bytearray()
        self._started = time.monotonic()  # Recordings are ordered by when requests began.

    def transform(self, data: bytes) -> bytes | None:
        self._recorded += data
        return data

    def finish(self) -> None:
        record = getattr(self.server, "sockharness_record", None)
        if record is not None:
            record(self.client_address, bytes(self._recorded), started=self._started)
        else:
            self.server.__dict__.setdefault("received", []).append(bytes(self._recorded))


@dataclass(frozen=True)
class BuiltinHandler:
    """A built-in handler by the name scenarios and ``sockharness serve`` use for it.

    ``reply`` is what a client gets back for a message: it, ``upper``-cased,
    ``none``, or ``any`` (it cannot tell).
    """

    name: str
    handler: type[BaseRequestHandler]
    reply: Reply
    summary: str


#: Every built-in handler by name: the one table the CLI, the scenario schema and the
#: chaos runner read.
BUILTIN_HANDLERS: dict[str, BuiltinHandler] = {
    entry.name: entry
    for entry in (
        BuiltinHandler("echo", EchoHandler, "echo", "sends back every byte"),
        BuiltinHandler("line-echo", LineEchoHandler, "echo", "sends back each whole line"),
        BuiltinHandler("upper", UpperHandler, "upper", "sends back what it gets, upper-cased"),
        BuiltinHandler("discard", DiscardHandler, "none", "reads everything, answers nothing"),
        BuiltinHandler("slow", SlowHandler, "echo", "echoes after a delay (0.1 s by default)"),
        BuiltinHandler("crash", CrashHandler, "none", "raises HandlerCrash on the first data"),
        BuiltinHandler("recording", RecordingHandler, "echo", "echoes, and records requests"),
    )
}
