"""A self-pipe that lets one thread interrupt another thread's ``select()``.

PYTEST_DONT_REWRITE: a drop-in for the stdlib module, left as written when
pytest loads the sockharness plugin.
"""

from __future__ import annotations

import socket


class WakeUpPair:
    """A connected pair of non-blocking sockets used as a wake-up signal.

    The serving thread registers :meth:`fileno` with its selector; any other
    thread calls :meth:`wake` to make that selector return at once. A socket
    pair rather than ``os.pipe()`` keeps this portable to platforms whose
    ``select()`` only accepts sockets.
    """

    __slots__ = ("_reader", "_writer")

    def __init__(self) -> None:
        self._reader, self._writer = socket.socketpair()
        try:
            self._reader.setblocking(False)
            self._writer.setblocking(False)
        except BaseException:
            self.close()
            raise

    def fileno(self) -> int:
        """The descriptor to watch for readability."""
        return self._reader.fileno()

    def wake(self) -> None:
        """Make a pending or future ``select()`` on :meth:`fileno` return."""
        try:
            self._writer.send(b"\0")
        except (BlockingIOError, InterruptedError):
            pass  # The buffer is full: a wake-up is already pending.
        except OSError:
            pass  # Closed under us: the loop is ending anyway.

    def drain(self) -> None:
        """Consume every pending wake-up byte."""
        try:
            while self._reader.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            pass

    def close(self) -> None:
        """Release both descriptors. Idempotent."""
        self._reader.close()
        self._writer.close()
