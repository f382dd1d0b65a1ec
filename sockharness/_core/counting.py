"""Sockets that count the bytes they send and receive, for a server's statistics.

A :class:`CountingSocket` is an ordinary ``socket.socket`` whose data calls add
what they moved to a :class:`ByteCounter`. The counter is an object of its own,
so that a socket remade around the same descriptor (a faulty socket made from
a counting one) keeps counting into it, and so that the server's statistics
can hold the counters of live connections without holding their sockets.
"""

from __future__ import annotations

import socket
from typing import Any

__all__ = ["ByteCounter", "CountingSocket", "count_bytes", "counter_of"]


class ByteCounter:
    """The bytes one socket received and sent."""

    __slots__ = ("__weakref__", "received", "sent")

    def __init__(self) -> None:
        self.received = 0
        self.sent = 0

    def __repr__(self) -> str:
        return f"ByteCounter(received={self.received}, sent={self.sent})"


def counter_of(sock: Any) -> ByteCounter | None:
    """The counter of ``sock``, when it counts its bytes."""
    counter = getattr(sock, "sockharness_bytes", None)
    return counter if isinstance(counter, ByteCounter) else None


class CountingSocket(socket.socket):
    """A socket whose sends and receives add up in :attr:`sockharness_bytes`.

    ``sendall()`` counts what it was given once it returns (one that raises has
    sent an unknown part: it counts nothing). ``sendfile()`` counts what it
    reports sent.
    """

    __slots__ = ("sockharness_bytes",)

    sockharness_bytes: ByteCounter

    # -- receiving -----------------------------------------------------------------------------

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data = socket.socket.recv(self, bufsize, flags)
        self.sockharness_bytes.received += len(data)
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        size = socket.socket.recv_into(self, buffer, nbytes, flags)
        self.sockharness_bytes.received += size
        return size

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        data, address = socket.socket.recvfrom(self, bufsize, flags)
        self.sockharness_bytes.received += len(data)
        return data, address

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, Any]:
        size, address = socket.socket.recvfrom_into(self, buffer, nbytes, flags)
        self.sockharness_bytes.received += size
        return size, address

    def recvmsg(self, bufsize: int, ancbufsize: int = 0, flags: int = 0) -> Any:
        result = socket.socket.recvmsg(self, bufsize, ancbufsize, flags)
        self.sockharness_bytes.received += len(result[0])
        return result

    def recvmsg_into(self, buffers: Any, ancbufsize: int = 0, flags: int = 0) -> Any:
        result = socket.socket.recvmsg_into(self, buffers, ancbufsize, flags)
        self.sockharness_bytes.received += result[0]
        return result

    # -- sending -------------------------------------------------------------------------------

    def send(self, data: Any, flags: int = 0) -> int:
        size = socket.socket.send(self, data, flags)
        self.sockharness_bytes.sent += size
        return size

    def sendall(self, data: Any, flags: int = 0) -> None:
        socket.socket.sendall(self, data, flags)
        self.sockharness_bytes.sent += memoryview(data).nbytes

    def sendto(self, data: Any, *args: Any) -> int:
        size = socket.socket.sendto(self, data, *args)
        self.sockharness_bytes.sent += size
        return size

    def sendmsg(self, buffers: Any, *args: Any) -> int:
        size = socket.socket.sendmsg(self, buffers, *args)
        self.sockharness_bytes.sent += size
        return size

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        # socket.sendfile() may fall back to self.send(), which counts already.
        before = self.sockharness_bytes.sent
        size = socket.socket.sendfile(self, file, offset, count)
        self.sockharness_bytes.sent = before + size
        return size


def count_bytes(sock: socket.socket, counter: ByteCounter | None = None) -> CountingSocket:
    """``sock`` as a :class:`CountingSocket` (taking over its descriptor; ``sock`` is detached).

    It counts into ``counter``, or into the counter ``sock`` already had, or a new one.
    """
    counter = counter or counter_of(sock) or ByteCounter()
    timeout = sock.gettimeout()
    made = CountingSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
    made.settimeout(timeout)
    made.sockharness_bytes = counter
    return made
