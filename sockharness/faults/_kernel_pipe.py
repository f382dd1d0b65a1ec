"""Bytes moved between two sockets inside the kernel (Linux ``splice``), for a direction
of a relayed connection that no fault touches.

``os.splice`` moves bytes from the source socket into a pipe and from the pipe
to the destination socket without copying them through Python: the fault
proxy's bulk throughput with no fault applying is then bounded by the kernel,
not by ``recv`` and ``send`` of Python ``bytes``. Where there is no
``os.splice`` (not Linux, or Python built without it), or a pipe cannot be
had (no descriptors left), :func:`open_kernel_pipe` says so with ``None`` and
the relay copies as before.
"""

from __future__ import annotations

import contextlib
import errno
import os

__all__ = ["KernelPipe", "SpliceUnsupported", "open_kernel_pipe", "splice_available"]

#: How much a pipe asks to hold (the kernel may grant less: it caps what one user's
#: pipes may hold; the default is 64 KiB).
PIPE_SIZE = 1 << 20
#: The errors of a splice the descriptors do not support (then the relay copies).
_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP})


class SpliceUnsupported(Exception):
    """These descriptors cannot be spliced (nothing was moved): copy instead."""


class KernelPipe:
    """A pipe that holds the bytes of one direction between its source and destination.

    :attr:`held` is what went in and has not come out yet; while it is not zero,
    those bytes go to the destination before anything else.
    """

    def __init__(self, read_fd: int, write_fd: int, capacity: int) -> None:
        self._read_fd = read_fd
        self._write_fd = write_fd
        #: How much the pipe holds at most.
        self.capacity = capacity
        #: Bytes in the pipe, not yet written to the destination.
        self.held = 0
        self._flags = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK

    @property
    def full(self) -> bool:
        return self.held >= self.capacity

    def fill_from(self, source: int) -> int:
        """Move what ``source`` (a non-blocking socket) has into the pipe, up to its room.

        Returns the bytes moved (0: the source's end of stream). Raises
        ``BlockingIOError`` when the source has nothing, the source's own errors
        (``ConnectionResetError``...), and :class:`SpliceUnsupported` when it cannot
        be spliced.
        """
        try:
            moved = os.splice(source, self._write_fd, self.capacity - self.held, flags=self._flags)
        except OSError as exc:
            if exc.errno in _UNSUPPORTED:
                raise SpliceUnsupported(str(exc)) from exc
            raise
        self.held += moved
        return moved

    def empty_into(self, destination: int) -> int:
        """Move what the pipe holds to ``destination`` (a non-blocking socket), as much as it
        takes now. Raises ``BlockingIOError`` when it takes nothing, and its own errors."""
        moved = os.splice(self._read_fd, destination, self.held, flags=self._flags)
        self.held -= moved
        return moved

    def close(self) -> None:
        """Close the pipe, dropping what it holds. Idempotent."""
        self.held = 0
        for fd in (self._read_fd, self._write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._read_fd = self._write_fd = -1


def splice_available() -> bool:
    """Whether this platform can splice (``os.splice``, Linux)."""
    return hasattr(os, "splice") and hasattr(os, "SPLICE_F_MOVE")


def open_kernel_pipe() -> KernelPipe | None:
    """A new pipe to splice through, or ``None`` when there is no splicing here or no
    descriptor left for one (the caller copies instead)."""
    if not splice_available():
        return None
    try:
        read_fd, write_fd = os.pipe()  # Not inherited over exec.
    except OSError:
        return None
    capacity = 1 << 16
    with contextlib.suppress(OSError, AttributeError):
        import fcntl

        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        capacity = fcntl.fcntl(write_fd, fcntl.F_GETPIPE_SZ)
    return KernelPipe(read_fd, write_fd, capacity)
