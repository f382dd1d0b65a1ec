"""Sockets a forked child must not keep: closed in every child right after ``fork()``.

A forking server's child inherits every descriptor of the process, including
the fault proxy's relay sockets and the harness's own clients. While a child
holds such a copy, closing the socket in the parent sends no FIN and a reset
sends no RST: the peer waits for an end that never comes. Sockets registered
here are closed in the child as soon as it exists (the parent's copies are
untouched), so closes and resets behave as they do without forking.

Two races make "register, and close in the child" not enough, both seen under
load as a forked handler that never met its client's reset:

- A socket closing in one thread while another forks: ``close()`` forgets its
  descriptor before the kernel closes it (and lets other threads run in
  between), so the child finds an object that says "closed" over a
  descriptor it still holds. Each registration records the descriptor and
  its inode; the child closes a descriptor that still has the inode it was
  registered with, whatever the object says.
- A fork between a socket's creation and its registration: the child's copy
  is not known to be ours. :func:`socket_out_of_children` and
  :func:`accept_out_of_children` create and register with forks held off
  (:func:`forks_held` for other ways of making one).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import weakref
from collections.abc import Iterator
from typing import Any, NamedTuple

__all__ = [
    "accept_out_of_children",
    "forks_held",
    "keep_out_of_children",
    "socket_out_of_children",
]


class _Inode(NamedTuple):
    device: int
    number: int


class _Registered(NamedTuple):
    sock: weakref.ref[socket.socket]
    fd: int
    inode: _Inode


#: Registered descriptors, by descriptor and inode (an open socket's identity).
_REGISTERED: dict[tuple[int, _Inode], _Registered] = {}
#: Held while a socket is made and registered; a fork waits for it.
_FORKS = threading.RLock()
#: How many entries to let accumulate before the next prune (it doubles with the live ones).
_prune_at = 64


def _inode(fd: int) -> _Inode | None:
    try:
        status = os.fstat(fd)
    except OSError:
        return None
    return _Inode(status.st_dev, status.st_ino)


def _prune() -> None:
    """Forget the descriptors of sockets gone whose descriptor is closed (or reused).

    Amortised: it runs when the entries have doubled since the last prune.
    """
    global _prune_at
    if len(_REGISTERED) < _prune_at:
        return
    for key, entry in list(_REGISTERED.items()):
        if entry.sock() is None and _inode(entry.fd) != entry.inode:
            _REGISTERED.pop(key, None)
    _prune_at = max(64, 2 * len(_REGISTERED))


def keep_out_of_children(sock: socket.socket) -> socket.socket:
    """Close ``sock`` in every child forked from now on; returns ``sock``.

    A socket that replaces ``sock`` on the same descriptor (a TLS or fault
    wrapper) is kept out too: the descriptor is what is registered.
    """
    fd = sock.fileno()
    inode = _inode(fd) if fd >= 0 else None
    if inode is None:
        return sock  # Closed already: nothing to keep out.
    with _FORKS:
        _prune()
        _REGISTERED[(fd, inode)] = _Registered(weakref.ref(sock), fd, inode)
    return sock


@contextlib.contextmanager
def forks_held() -> Iterator[None]:
    """No ``os.fork()`` in this process starts inside the block (it waits for its end).

    For making a socket and registering it before any child can copy it;
    keep the block short and never block in it.
    """
    with _FORKS:
        yield


def socket_out_of_children(family: int, type: int = socket.SOCK_STREAM) -> socket.socket:
    """A new socket, kept out of children from its first instant."""
    with _FORKS:
        return keep_out_of_children(socket.socket(family, type))


def accept_out_of_children(listener: socket.socket) -> tuple[socket.socket, Any]:
    """``listener.accept()``, the new socket kept out of children from its first instant.

    For a non-blocking listener, or one known to be ready: forks wait while it runs.
    """
    with _FORKS:
        sock, address = listener.accept()
        return keep_out_of_children(sock), address


def _before_fork() -> None:
    _FORKS.acquire()


def _after_fork_in_parent() -> None:
    _FORKS.release()


def _after_fork_in_child() -> None:
    global _FORKS
    _FORKS = threading.RLock()  # The parent's is held by the fork: the child's starts free.
    _close_in_child()


def _close_in_child() -> None:
    for entry in list(_REGISTERED.values()):
        sock = entry.sock()
        if sock is not None and sock.fileno() == entry.fd:
            # The object forgets the descriptor too (a makefile() reader would keep it open).
            with contextlib.suppress(OSError):
                os.close(socket.socket.detach(sock))
        elif _inode(entry.fd) == entry.inode:
            # Closing (or detached) in the parent as it forked: the descriptor is still ours.
            with contextlib.suppress(OSError):
                os.close(entry.fd)
    _REGISTERED.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
