"""What a stopped server left behind: threads, sockets, child processes, socket files.

The checks look only at what the server itself made, so a test's own threads,
files or a session-wide server started meanwhile are never blamed on it:

- threads: the threads that ran ``process_request_thread``, and every thread
  handler code started (see ``_attribution.py``), still running once the
  server stopped;
- sockets: descriptors opened since the server started whose local address is
  the server's, and every socket handler code opened and never closed (to
  anywhere); those are closed here once reported;
- children: the pids the server forked;
- socket files: the server's own, for classes that promise to remove it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sockharness._core import Creations, child_state, open_descriptors

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
    if isinstance(address, tuple) or isinstance(local, tuple):
        # An inet address is never a path's match, nor a path an inet address's.
        both_inet = isinstance(address, tuple) and isinstance(local, tuple)
        return both_inet and tuple(local[:2]) == tuple(address[:2])
    return bool(local) and os.fsencode(local) == os.fsencode(address)


#: How long threads that handlers started may take to end once the server stopped.
HANDLER_THREAD_GRACE = 1.0


def _describe_socket(sock: socket.socket) -> str:
    """``fd 12 tcp 127.0.0.1:5000 -> 127.0.0.1:80``: what a leaked socket is."""
    kind = {socket.SOCK_STREAM: "stream", socket.SOCK_DGRAM: "datagram"}.get(sock.type, "socket")
    parts = [f"fd {sock.fileno()} {sock.family.name} {kind}"]
    for label, call in (("", sock.getsockname), ("-> ", sock.getpeername)):
        try:
            address = call()
        except OSError:
            continue
        if address:
            parts.append(f"{label}{address!r}")
    return " ".join(parts)


def find_leaks(
    *,
    deadline: float,
    handler_threads: Iterable[threading.Thread],
    creations: Creations | None = None,
    serving_thread: threading.Thread | None,
    descriptors_before: set[int],
    server_address: Any,
    children: Iterable[int],
    socket_file: str | None,
) -> Leaks:
    """Wait (until ``deadline``) for what should end to end, then report what did not."""
    leaks = Leaks()
    leaks.threads += _still_running(handler_threads, deadline, ", a handler thread")
    if serving_thread is not None:
        leaks.threads += _still_running([serving_thread], deadline, "")
    if creations is not None:
        # A thread a handler started may still be finishing: a short grace, no more
        # (one left running for good must not hold the test for the whole deadline).
        grace = min(deadline, time.monotonic() + HANDLER_THREAD_GRACE)
        leaks.threads += _still_running(creations.threads, grace, ", started by a handler")
        for sock in creations.open_sockets():
            leaks.sockets.append(f"{_describe_socket(sock)}, opened by a handler (now closed)")
            with contextlib.suppress(OSError):
                sock.close()
    for fd in sorted(open_descriptors() - descriptors_before):
        if _socket_bound_to(fd, server_address):
            leaks.sockets.append(f"fd {fd} bound to {server_address!r}")
    leaks.children += [
        f"pid {pid} ({state})"
        for pid in sorted(children)
        if (state := _wait_for_child(pid, deadline)) is not None
    ]
    if socket_file is not None and os.path.lexists(socket_file):
        leaks.socket_files.append(socket_file)
    return leaks


def _still_running(threads: Iterable[threading.Thread], deadline: float, note: str) -> list[str]:
    """Join each of ``threads`` until ``deadline``; describe those still running."""
    running = []
    for thread in threads:
        if thread is threading.current_thread():
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            running.append(f"{thread.name!r} (daemon={thread.daemon}){note}")
    return running


def _wait_for_child(pid: int, deadline: float) -> str | None:
    """Wait until ``deadline`` for a child to exit: its state then (``None``: reaped)."""
    state = child_state(pid)
    delay = 0.001
    while state == "running" and time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
        state = child_state(pid)
    return state


def reap(children: Iterable[int], *, wait: float = 1.0) -> list[int]:
    """Reap children the server left as zombies; kill those still running; return those.

    A child still running once the stop's deadline has passed (a hung
    handler) would outlive the test, holding its sockets and the run's output
    (a CI job then waits on it for good): it is killed (``SIGKILL``) and
    reaped, waiting ``wait`` seconds at most. Only our own children are
    touched (a pid reused by a stranger is left alone).
    """
    killed = []
    for pid in children:
        if child_state(pid) == "running":
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    deadline = time.monotonic() + wait
    for pid in children:
        with contextlib.suppress(ChildProcessError, OSError):
            while os.waitpid(pid, os.WNOHANG) == (0, 0) and time.monotonic() < deadline:
                time.sleep(0.001)  # Killed: gone in a moment; no event says when.
    return killed
