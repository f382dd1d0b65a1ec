"""Sockets a forked child must not keep: closed in every child right after ``fork()``.

A forking server's child inherits every descriptor of the process, including
the fault proxy's relay sockets and the harness's own clients. While a child
holds such a copy, closing the socket in the parent sends no FIN and a reset
sends no RST: the peer waits for an end that never comes. Sockets registered
here are closed in the child as soon as it exists (the parent's copies are
untouched), so closes and resets behave as they do without forking.
"""

from __future__ import annotations

import contextlib
import os
import socket
import weakref

__all__ = ["keep_out_of_children"]

_REGISTERED: weakref.WeakSet[socket.socket] = weakref.WeakSet()


def keep_out_of_children(sock: socket.socket) -> socket.socket:
    """Close ``sock`` in every child forked from now on; returns ``sock``."""
    _REGISTERED.add(sock)
    return sock


def _close_in_child() -> None:
    for sock in list(_REGISTERED):
        with contextlib.suppress(OSError):
            socket.socket.close(sock)
    _REGISTERED.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)
