"""Waiting for descriptors to become readable, with as little overhead as the platform allows.

The serve loop waits once per request, so this sits on the hot path. ``poll()``
is used directly where it exists (no selector objects, no key lookups, no
descriptor of its own as epoll would need); ``select()`` elsewhere.

PYTEST_DONT_REWRITE: a drop-in for the stdlib module, left as written when
pytest loads the sockharness plugin.
"""

from __future__ import annotations

import math
import select

__all__ = ["ReadWaiter", "to_milliseconds"]


def to_milliseconds(timeout: float | None) -> int | None:
    """A timeout in seconds as whole milliseconds, rounded up (so it never becomes 0 early)."""
    if timeout is None:
        return None
    return max(0, math.ceil(timeout * 1e3))


if hasattr(select, "poll"):

    class ReadWaiter:
        """Waits until one of a fixed set of descriptors is readable (or in error)."""

        __slots__ = ("_poll",)

        def __init__(self, *fds: int) -> None:
            self._poll = select.poll()
            for fd in fds:
                self._poll.register(fd, select.POLLIN | select.POLLPRI)

        def wait(self, timeout_ms: int | None) -> list[tuple[int, int]]:
            """``(fd, events)`` for each ready descriptor; waits at most ``timeout_ms``."""
            return self._poll.poll(timeout_ms)

else:  # pragma: no cover - Windows

    class ReadWaiter:  # type: ignore[no-redef]
        """Waits until one of a fixed set of descriptors is readable (or in error)."""

        __slots__ = ("_fds",)

        def __init__(self, *fds: int) -> None:
            self._fds = list(fds)

        def wait(self, timeout_ms: int | None) -> list[tuple[int, int]]:
            """``(fd, events)`` for each ready descriptor; waits at most ``timeout_ms``."""
            timeout = None if timeout_ms is None else timeout_ms / 1e3
            readable, _, errored = select.select(self._fds, [], self._fds, timeout)
            return [(fd, 1) for fd in dict.fromkeys(readable + errored)]
