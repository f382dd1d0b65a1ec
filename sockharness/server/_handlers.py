"""Request handlers: one instance per request, ``setup()``, ``handle()``, ``finish()``.

PYTEST_DONT_REWRITE: a drop-in for the stdlib module, left as written when
pytest loads the sockharness plugin.
"""

from __future__ import annotations

import io
import socket
from typing import Any

__all__ = ["BaseRequestHandler", "DatagramRequestHandler", "StreamRequestHandler"]


class BaseRequestHandler:
    """Base class of request handlers; subclass it and define :meth:`handle`.

    The server instantiates the handler once per request with the request,
    the client's address and the server itself, available to ``handle()`` as
    ``self.request``, ``self.client_address`` and ``self.server``. The
    constructor runs ``setup()``, then ``handle()``, then ``finish()`` (also
    when ``handle()`` raised).

    Example:
        >>> from sockharness.server import BaseRequestHandler
        >>> class Greeter(BaseRequestHandler):
        ...     def handle(self):
        ...         self.request.sendall(b"hello\\n")
    """

    def __init__(self, request: Any, client_address: Any, server: Any) -> None:
        self.request = request
        self.client_address = client_address
        self.server = server
        self.setup()
        try:
            self.handle()
        finally:
            self.finish()

    def setup(self) -> None:
        """Prepare for ``handle()``; called first."""

    def handle(self) -> None:
        """Serve the request."""

    def finish(self) -> None:
        """Clean up after ``handle()``; called last, even when ``handle()`` raised."""


class _SocketWriter(io.BufferedIOBase):
    """A binary writer that sends every write at once, in full, with ``sendall``."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self._sock.sendall(b)
        with memoryview(b) as view:
            return view.nbytes

    def fileno(self) -> int:
        return self._sock.fileno()


class StreamRequestHandler(BaseRequestHandler):
    """Handler for stream sockets, with file objects ``self.rfile`` and ``self.wfile``.

    ``self.connection`` is the connected socket. With the default
    ``wbufsize`` of 0, every ``wfile.write()`` is sent at once and in full.

    Example:
        >>> from sockharness.server import StreamRequestHandler
        >>> class LineEcho(StreamRequestHandler):
        ...     def handle(self):
        ...         for line in self.rfile:
        ...             self.wfile.write(line)
    """

    #: Buffer size of ``rfile`` (-1: the io default).
    rbufsize: int = -1
    #: Buffer size of ``wfile`` (0: unbuffered, every write sent at once).
    wbufsize: int = 0
    #: Socket timeout applied to the connection in ``setup()``, if not ``None``.
    timeout: float | None = None
    #: Set ``TCP_NODELAY`` on the connection.
    disable_nagle_algorithm: bool = False

    def setup(self) -> None:
        """Apply the timeout and Nagle options and open ``rfile`` and ``wfile``."""
        self.connection = self.request
        if self.timeout is not None:
            self.connection.settimeout(self.timeout)
        if self.disable_nagle_algorithm:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        self.rfile = self.connection.makefile("rb", self.rbufsize)
        if self.wbufsize == 0:
            self.wfile: io.BufferedIOBase = _SocketWriter(self.connection)
        else:
            self.wfile = self.connection.makefile("wb", self.wbufsize)

    def finish(self) -> None:
        """Flush ``wfile`` (ignoring a peer that went away) and close both files."""
        if not self.wfile.closed:
            try:
                self.wfile.flush()
            except OSError:
                pass
        self.wfile.close()
        self.rfile.close()


class DatagramRequestHandler(BaseRequestHandler):
    """Handler for datagram servers, with ``self.rfile`` over the datagram.

    What ``handle()`` writes to ``self.wfile`` is sent back to the client as
    one datagram in ``finish()``. ``self.packet`` is the datagram and
    ``self.socket`` the server's socket.
    """

    def setup(self) -> None:
        """Open ``rfile`` over the received datagram and an empty ``wfile``."""
        self.packet, self.socket = self.request
        self.rfile = io.BytesIO(self.packet)
        self.wfile = io.BytesIO()

    def finish(self) -> None:
        """Send what was written to ``wfile`` back to the client as one datagram."""
        self.socket.sendto(self.wfile.getvalue(), self.client_address)
