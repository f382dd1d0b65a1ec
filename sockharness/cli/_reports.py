"""Report files the commands write (JUnit XML, JSON, HTML): checked before a run, written after."""

from __future__ import annotations

import os

from sockharness._core import UsageError

__all__ = ["check_writable", "write_report"]


def check_writable(path: str, option: str) -> None:
    """Raise a clear :class:`UsageError` now if ``path`` cannot be written later.

    Found before the run starts, so that a long run is not lost to a typo in
    a report path.
    """
    if os.path.isdir(path):
        raise UsageError(f"{option} {path!r} is a directory; give a file name")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"{option} {path!r}: the directory {directory!r} does not exist")
    existed = os.path.exists(path)
    try:  # Trying is the one sure test (permissions, read-only mounts, root or not).
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as error:
        raise UsageError(f"{option} {path!r} cannot be written: {error.strerror}") from None
    if not existed:
        os.unlink(path)


def write_report(path: str, text: str) -> None:
    """Write a report file (UTF-8), whole or not at all."""
    temporary = f"{path}.tmp-{os.getpid()}"
    try:
        with open(temporary, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
