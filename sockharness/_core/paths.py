"""Private directories: new, 0700, and short enough to hold Unix socket paths."""

from __future__ import annotations

import os
import tempfile

__all__ = ["private_directory"]

#: The longest base directory used as is: what a socket path adds inside stays
#: well within the platform's limit (107 bytes on Linux, 103 on the BSDs).
_SHORT_ENOUGH = 60


def private_directory(prefix: str) -> str:
    """A new directory only this user can enter, under ``$TMPDIR`` when it is short.

    ``$TMPDIR`` (``tempfile.gettempdir()``) is honoured where its path leaves
    room for socket names; a deeper one (macOS's, a CI runner's) gives way to
    ``/tmp``.
    """
    base = tempfile.gettempdir()
    if len(os.fsencode(base)) > _SHORT_ENOUGH and os.path.isdir("/tmp"):
        base = "/tmp"
    return tempfile.mkdtemp(prefix=prefix, dir=base)
