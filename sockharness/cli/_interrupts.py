"""Ctrl-C, remembered, for the commands that end with the results so far.

A ``KeyboardInterrupt`` raised in the middle of a library's own bookkeeping can
come out as another error (Hypothesis, interrupted between two of its steps,
fails one of its own assertions), or be taken for a failure of the subject
and swallowed. The run must still end as interrupted, not go on and report a
failure that was never the subject's: the handler remembers the Ctrl-C, and
the commands check.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["ctrl_c_caught", "ctrl_c_seen", "raise_if_interrupted"]

_seen = threading.Event()


def _on_ctrl_c(signum: int, frame: Any) -> None:
    _seen.set()
    raise KeyboardInterrupt


@contextlib.contextmanager
def ctrl_c_caught() -> Iterator[None]:
    """Within the block, Ctrl-C (SIGINT) raises ``KeyboardInterrupt`` and is remembered,
    even when the shell that started the command ignored SIGINT (a background job does);
    the handler before it is put back after. Main thread only."""
    _seen.clear()
    previous = signal.signal(signal.SIGINT, _on_ctrl_c)
    try:
        yield
    finally:
        _seen.clear()  # Outside the block, no Ctrl-C is anyone's to remember.
        if previous is not None:  # None: a handler not set from Python, which cannot return.
            signal.signal(signal.SIGINT, previous)


def ctrl_c_seen() -> bool:
    """Whether Ctrl-C came since :func:`ctrl_c_caught` began."""
    return _seen.is_set()


def raise_if_interrupted() -> None:
    """Raise ``KeyboardInterrupt`` if Ctrl-C came, whatever became of the first one."""
    if _seen.is_set():
        raise KeyboardInterrupt
