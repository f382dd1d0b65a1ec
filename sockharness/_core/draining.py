"""Waiting until what a TCP socket sent has reached its peer, before an abortive close.

A reset (``SO_LINGER`` 0, then close) throws away what the socket has not
sent yet, and on loopback a segment sent from one CPU and the reset sent from
another after a thread moved can arrive in either order: the peer then loses
bytes that were "sent" before the reset. Waiting until the kernel's send
queue is empty (every byte sent and acknowledged: on loopback, a few
microseconds) makes "K bytes, then the reset" exact.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import socket
import termios
import time

__all__ = ["wait_until_sent"]

_TCP_FAMILIES = (socket.AF_INET, socket.AF_INET6)


def _unsent(sock: socket.socket) -> int:
    """Bytes in the send queue not yet acknowledged by the peer (``SIOCOUTQ``)."""
    count = array.array("i", [0])
    fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, count, True)
    return count[0]


def wait_until_sent(sock: socket.socket, timeout: float = 0.2) -> bool:
    """Wait, at most ``timeout`` seconds, until the peer has acknowledged all ``sock`` sent.

    Returns whether it has (``True`` at once for a socket that is not TCP, or
    whose queue cannot be read). A peer that stopped reading keeps its window
    shut: the wait then ends at ``timeout``, and the reset goes out anyway.
    """
    if sock.family not in _TCP_FAMILIES or sock.type != socket.SOCK_STREAM:
        return True
    deadline = time.monotonic() + timeout
    delay = 0.0001
    with contextlib.suppress(OSError):
        while _unsent(sock) > 0:
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)  # No event says "acknowledged": a short, bounded poll.
            delay = min(delay * 2, 0.005)
    return True
