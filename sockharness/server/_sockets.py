"""Socket-based servers: TCP, UDP, and their Unix-domain siblings.

PYTEST_DONT_REWRITE: a drop-in for the stdlib module, left as written when
pytest loads the sockharness plugin.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from typing import Any

from ._base import BaseServer

__all__ = ["TCPServer", "UDPServer", "unix_path_limit"]


def unix_path_limit() -> int:
    """The longest filesystem path, in bytes, an ``AF_UNIX`` socket can bind to here.

    ``sun_path`` is 108 bytes on Linux and 104 on the BSDs and macOS, and a
    path must leave room for its terminating NUL.
    """
    return 107 if sys.platform.startswith("linux") else 103


def _check_unix_address(address: Any) -> None:
    """Raise a clear ``OSError`` for a Unix socket path the kernel cannot hold."""
    if isinstance(address, (str, bytes, os.PathLike)):
        raw = os.fsencode(address)
        if raw.startswith(b"\0"):
            return  # Linux abstract namespace: no NUL terminator, no file.
        limit = unix_path_limit()
        if len(raw) > limit:
            raise OSError(
                errno.ENAMETOOLONG,
                f"Unix socket path is {len(raw)} bytes long but the platform limit "
                f"(sun_path) is {limit} bytes: {os.fsdecode(raw)!r}. Bind to a shorter path, "
                f"for example in a directory made by tempfile.mkdtemp(dir='/tmp').",
            )


class TCPServer(BaseServer):
    """A synchronous stream server over an Internet socket (TCP).

    The constructor creates the socket and, unless ``bind_and_activate`` is
    false, binds it (``server_bind()``) and listens (``server_activate()``);
    if either fails the socket is closed before the error propagates.
    After binding, ``server_address`` is the address actually bound, so
    port 0 picks a free port.

    Example:
        >>> from sockharness.server import TCPServer, BaseRequestHandler
        >>> with TCPServer(("127.0.0.1", 0), BaseRequestHandler) as server:
        ...     host, port = server.server_address
        >>> port > 0
        True
    """

    address_family: int = socket.AF_INET
    socket_type: int = socket.SOCK_STREAM
    #: The ``listen()`` backlog.
    request_queue_size: int = 5
    #: Set ``SO_REUSEADDR`` before binding.
    allow_reuse_address: bool = False
    #: Set ``SO_REUSEPORT`` before binding, where the platform has it.
    allow_reuse_port: bool = False

    def __init__(
        self,
        server_address: Any,
        RequestHandlerClass: Any,
        bind_and_activate: bool = True,
    ) -> None:
        """Create the socket, then bind and listen. May be extended, do not override."""
        BaseServer.__init__(self, server_address, RequestHandlerClass)
        self.socket = socket.socket(self.address_family, self.socket_type)
        if bind_and_activate:
            try:
                self.server_bind()
                self.server_activate()
            except BaseException:
                self.server_close()
                raise

    def server_bind(self) -> None:
        """Apply the reuse options and bind the socket. May be overridden."""
        if self.allow_reuse_address and hasattr(socket, "SO_REUSEADDR"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.allow_reuse_port and hasattr(socket, "SO_REUSEPORT"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if getattr(socket, "AF_UNIX", None) == self.address_family:
            _check_unix_address(self.server_address)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()

    def server_activate(self) -> None:
        """Start listening. May be overridden."""
        self.socket.listen(self.request_queue_size)

    def server_close(self) -> None:
        """Close the listening socket. Idempotent. May be overridden."""
        self.socket.close()

    def fileno(self) -> int:
        """The listening socket's descriptor, so the server can be used with selectors."""
        return self.socket.fileno()

    def get_request(self) -> tuple[Any, Any]:
        """Accept one connection: return ``(connection, client_address)``."""
        return self.socket.accept()

    def shutdown_request(self, request: Any) -> None:
        """Send FIN on the connection (ignoring a peer already gone), then close it."""
        try:
            request.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # ENOTCONN and friends: the peer is already gone.
        self.close_request(request)

    def close_request(self, request: Any) -> None:
        """Close the connection."""
        request.close()


class UDPServer(TCPServer):
    """A synchronous datagram server over an Internet socket (UDP).

    Each datagram is one request: the handler receives ``(data, socket)`` and
    replies with ``socket.sendto(reply, client_address)``. Datagrams longer
    than ``max_packet_size`` are truncated.
    """

    allow_reuse_address: bool = False
    allow_reuse_port: bool = False
    socket_type: int = socket.SOCK_DGRAM
    #: The largest datagram read, in bytes.
    max_packet_size: int = 8192

    def get_request(self) -> tuple[Any, Any]:
        """Read one datagram: return ``((data, socket), client_address)``."""
        data, client_address = self.socket.recvfrom(self.max_packet_size)
        return (data, self.socket), client_address

    def server_activate(self) -> None:
        """Nothing to do: datagram sockets do not listen."""

    def shutdown_request(self, request: Any) -> None:
        """Nothing to shut down: the socket is shared by every request."""
        self.close_request(request)

    def close_request(self, request: Any) -> None:
        """Nothing to close: the socket is shared by every request."""


class _BoundSocketFile:
    """The filesystem entry a Unix socket server created, so it can remove exactly that.

    The file is removed only by the process that bound it (never by a forked
    child) and only while it is still the same file (another server may have
    replaced it since).
    """

    __slots__ = ("_identity", "_path", "_pid")

    def __init__(self, address: Any) -> None:
        self._path: bytes | None = None
        self._identity: tuple[int, int] | None = None
        self._pid = os.getpid()
        if isinstance(address, (str, bytes, os.PathLike)):
            raw = os.fsencode(address)
            if raw and not raw.startswith(b"\0"):
                try:
                    info = os.stat(raw)
                except OSError:
                    return
                self._path = raw
                self._identity = (info.st_dev, info.st_ino)

    def remove(self) -> None:
        """Unlink the socket file if this process made it and it is still ours."""
        path, self._path = self._path, None
        if path is None or os.getpid() != self._pid:
            return
        try:
            info = os.stat(path)
        except OSError:
            return
        if (info.st_dev, info.st_ino) == self._identity:
            try:
                os.unlink(path)
            except OSError:
                pass


def _remember_socket_file(server: TCPServer) -> None:
    server.__dict__["_socket_file"] = _BoundSocketFile(server.server_address)


def _remove_socket_file(server: TCPServer) -> None:
    socket_file = server.__dict__.pop("_socket_file", None)
    if socket_file is not None:
        socket_file.remove()


if hasattr(socket, "AF_UNIX"):
    __all__ += ["UnixDatagramServer", "UnixStreamServer"]

    class UnixStreamServer(TCPServer):
        """A synchronous stream server over a Unix-domain socket.

        ``server_close()`` also removes the socket file this server created
        (not one that has replaced it since, and never from a forked child).
        """

        address_family: int = socket.AF_UNIX

        # Not super(): called by class name under multiple inheritance
        # (``UnixStreamServer.server_bind(self)`` in a class that also derives
        # from http.server.HTTPServer), these must do what the standard
        # library's do, which are TCPServer's own.
        def server_bind(self) -> None:
            """Bind to the socket path (see :meth:`TCPServer.server_bind`)."""
            TCPServer.server_bind(self)
            _remember_socket_file(self)

        def server_close(self) -> None:
            """Close the socket and remove the socket file it created."""
            try:
                TCPServer.server_close(self)
            finally:
                _remove_socket_file(self)

    class UnixDatagramServer(UDPServer):
        """A synchronous datagram server over a Unix-domain socket.

        Clients must bind their own socket to a path to receive replies.
        ``server_close()`` also removes the socket file this server created.
        """

        address_family: int = socket.AF_UNIX

        def server_bind(self) -> None:
            """Bind to the socket path (see :meth:`TCPServer.server_bind`)."""
            UDPServer.server_bind(self)  # Not super(): see UnixStreamServer.
            _remember_socket_file(self)

        def server_close(self) -> None:
            """Close the socket and remove the socket file it created."""
            try:
                UDPServer.server_close(self)
            finally:
                _remove_socket_file(self)
