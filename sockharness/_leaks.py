"""What a stopped server left behind: threads, sockets, child processes, socket files.

The checks look only at what the server itself made, so a test's own threads,
files or a session-wide server started meanwhile are never blamed on it:
handler threads are the threads that ran ``process_request_thread``; leaked
sockets are descriptors opened since the server started whose local address
is the server's; children are the pids the server forked.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Leaks", "find_leaks", "open_descriptors"]


@dataclass
class Leaks:
    """What one server left behind once stopped."""

    threads: list[str] = field(default_factory=list)
    sockets: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    socket_files: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.threads or self.sockets or self.children or self.socket_files)

    def describe(self) -> str:
        """One line per leak, grouped."""
        lines = []
        for label, items in (
            ("threads still running", self.threads),
            ("sockets still open", self.sockets),
            ("child processes not reaped", self.children),
            ("socket files left on disk", self.socket_files),
        ):
            lines += [f"  {label}: {item}" for item in items]
        return "\n".join(lines)


def open_descriptors() -> set[int]:
    """The descriptors open in this process, where the platform can list them."""
    for directory in ("/proc/self/fd", "/dev/fd"):
        try:
            listed = {int(name) for name in os.listdir(directory)}
        except OSError:
            continue
        # The listing itself used a descriptor, closed by now: keep only live ones.
        return {fd for fd in listed if _is_open(fd)}
    return set()


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _socket_bound_to(fd: int, address: Any) -> bool:
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            return False
        probe = socket.socket(fileno=os.dup(fd))
    except OSError:
        return False
    with probe:
        try:
            local = probe.getsockname()
        except OSError:
            return False
    if isinstance(address, tuple) and isinstance(local, tuple):
        return tuple(local[:2]) == tuple(address[:2])
    return bool(local) and os.fsencode(local) == os.fsencode(address)


def _child_state(pid: int) -> str | None:
    """``"running"``, ``"zombie"``, or ``None`` when the pid is gone (reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return "running"
        return "running"
    if int(fields[1]) != os.getpid():
        return None  # Reaped, and the pid reused by a stranger.
    return "zombie" if fields[0] == "Z" else "running"


def find_leaks(
    *,
    deadline: float,
    handler_threads: Iterable[threading.Thread],
    serving_thread: threading.Thread | None,
    descriptors_before: set[int],
    server_address: Any,
    children: Iterable[int],
    socket_file: str | None,
) -> Leaks:
    """Wait (until ``deadline``) for what should end to end, then report what did not."""
    leaks = Leaks()
    for thread in [*handler_threads, *([serving_thread] if serving_thread else [])]:
        if thread is threading.current_thread():
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            leaks.threads.append(f"{thread.name!r} (daemon={thread.daemon})")
    for fd in sorted(open_descriptors() - descriptors_before):
        if _socket_bound_to(fd, server_address):
            leaks.sockets.append(f"fd {fd} bound to {server_address!r}")
    for pid in sorted(children):
        state = _child_state(pid)
        delay = 0.001
        while state is not None and time.monotonic() < deadline:
            if state == "zombie":
                break
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
            state = _child_state(pid)
        if state is not None:
            leaks.children.append(f"pid {pid} ({state})")
    if socket_file is not None and os.path.lexists(socket_file):
        leaks.socket_files.append(socket_file)
    return leaks


def reap(children: Iterable[int]) -> None:
    """Reap children the server left as zombies (best effort, never blocks)."""
    for pid in children:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
