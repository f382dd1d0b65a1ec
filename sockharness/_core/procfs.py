"""What this process holds: its open descriptors and the state of its children.

One portable copy for the leak checks and the conformance suite. ``/proc``
(Linux) answers fastest; where it is missing (macOS, the BSDs, a container
without it) the same questions are answered the POSIX way: descriptors by
``fstat()`` over the descriptor table, children by ``waitid(WNOWAIT)``, which
tells a zombie from a running child without reaping it. No answer here is
ever "nothing" merely because ``/proc`` is absent.
"""

from __future__ import annotations

import os
import resource
import stat
from typing import Literal

__all__ = ["PROC", "ChildState", "child_state", "open_descriptors", "socket_descriptors"]

#: Where procfs is mounted (a test points it elsewhere to play a host without one).
PROC = "/proc"
#: The highest descriptor the portable scan looks at (beyond it: an absurd process).
_SCAN_LIMIT = 65536

ChildState = Literal["running", "zombie"]


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def open_descriptors() -> set[int]:
    """Every descriptor open in this process."""
    try:
        listed = {int(name) for name in os.listdir(os.path.join(PROC, "self", "fd"))}
    except OSError:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        limit = min(soft if soft != resource.RLIM_INFINITY else _SCAN_LIMIT, _SCAN_LIMIT)
        return {fd for fd in range(limit) if _is_open(fd)}
    # The listing itself used a descriptor, closed by now: keep only live ones.
    return {fd for fd in listed if _is_open(fd)}


def socket_descriptors() -> set[int]:
    """The descriptors open in this process that are sockets."""
    found = set()
    for fd in open_descriptors():
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                found.add(fd)
        except OSError:
            continue
    return found


def child_state(pid: int) -> ChildState | None:
    """``"running"``, ``"zombie"`` (exited, not reaped) or ``None`` (not a child of ours now).

    Never reaps: the answer leaves the child as it was.
    """
    try:
        with open(os.path.join(PROC, str(pid), "stat")) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return _child_state_by_waitid(pid)
    if int(fields[1]) != os.getpid():
        return None  # Reaped, and the pid reused by a stranger.
    return "zombie" if fields[0] == "Z" else "running"


def _child_state_by_waitid(pid: int) -> ChildState | None:
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return None  # Reaped already, or never ours.
    return "running" if info is None else "zombie"
