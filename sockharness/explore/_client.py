"""The client side of one case: the built-in client's moves, or the user's client, bounded."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sockharness._core import Kind, end_sending, socket_out_of_children, wait_until_sent

from ._cases import Case

__all__ = ["ClientSide", "run_builtin", "run_users"]


@dataclass
class ClientSide:
    """What the client got: the reply (built-in client) or the value it returned (the user's),
    the exception it raised or met, and whether it ended within its time."""

    reply: bytes | None = None
    result: Any = None
    error: BaseException | None = None
    ended: bool = True


def _connect(kind: Kind, address: Any, timeout: float) -> socket.socket:
    # A forking handler's child must not keep a copy: its close and reset would not reach it.
    sock = socket_out_of_children(kind.family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        if kind.family != getattr(socket, "AF_UNIX", None):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


def _read_to_end(sock: socket.socket, deadline: float, got: bytearray, limit: int | None) -> None:
    """Read until the end of the stream (or ``limit`` bytes), by ``deadline``."""
    while limit is None or len(got) < limit:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the reply did not end in time")
        sock.settimeout(remaining)
        data = sock.recv(65536 if limit is None else limit - len(got))
        if not data:
            return
        got += data


def _reset(sock: socket.socket) -> None:
    wait_until_sent(sock)  # The bytes sent first reach the handler before the reset.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def run_builtin(
    case: Case,
    kind: Kind,
    address: Any,
    request: bytes,
    timeout: float,
    *,
    first_reply: int | None = None,
) -> ClientSide:
    """The built-in client's part of ``case``: send, end or reset, read the reply to its end.

    ``first_reply`` (the sequential baseline of ``coalesce``): send the request,
    read that many bytes of reply, then send it again. A ``client-reset``
    resets once the handler's kernel has acknowledged its bytes: a reset does
    not take back what the peer has queued, so the handler reads them, then
    meets the reset.
    """
    deadline = time.monotonic() + timeout
    got = bytearray()
    side = ClientSide(reply=b"")
    try:
        sock = _connect(kind, address, timeout)
    except OSError as exc:
        side.error = exc
        return side
    try:
        point, offset = case.point, case.offset
        if point == "coalesce":
            sock.sendall(request + request)
        elif point in ("client-close", "client-reset"):
            if offset:
                sock.sendall(request[:offset])
        elif first_reply is not None:
            sock.sendall(request)
            _read_to_end(sock, deadline, got, first_reply)
            sock.sendall(request)
        else:
            sock.sendall(request)
        if point == "client-reset":
            _reset(sock)
            return side
        end_sending(sock)
        _read_to_end(sock, deadline, got, None)
    except OSError as exc:
        side.error = exc
    finally:
        side.reply = bytes(got)
        sock.close()
    return side


def run_users(client: Callable[[Any], Any], address: Any, timeout: float) -> ClientSide:
    """Call the user's ``client(address)`` in a thread; give up on it after ``timeout``."""
    side = ClientSide()

    def call() -> None:
        try:
            side.result = client(address)
        except BaseException as exc:  # What the client raised is the outcome.
            side.error = exc

    thread = threading.Thread(target=call, name="sockharness explore client", daemon=True)
    thread.start()
    thread.join(timeout)
    side.ended = not thread.is_alive()
    return side
