"""Keep the garbage collector's full collections off the harness's measurements.

A full (oldest-generation) collection walks every tracked object of the
process. In a test process that has run a few hundred tests, that is a heap
of 100 000 to 200 000 objects spread over a fragmented 100 MB, and one full
collection was measured here at 40-180 ms, over 300 ms beside a second
pytest worker: time in which no thread of the process runs, which a
steady-state probe, a latency invariant or a shutdown bound would read as the
subject's slowness.

Within :func:`old_objects_left_alone`, the objects that were there before are
frozen (``gc.freeze()``): collections go on as usual for everything made
during the block, so a cycle made by the run is still collected, but none of
them walks the old heap. When the block ends they are unfrozen, and the next
full collection sees them again.

If something else froze objects first (a pre-forking application, an outer
block), the block changes nothing: it must not unfreeze what it did not
freeze. What the interpreter freezes by itself does not count as "something
else": CPython 3.12 starts with a few hundred of its static tuples frozen
(375 on 3.12.1), so a non-zero count alone proves nothing. The count a bare
interpreter starts with is read once, from a child ``python -I -S``, and only
when the count is non-zero.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import subprocess
import sys
from collections.abc import Iterator

__all__ = ["old_objects_left_alone"]

_PROBE = "import gc; print(gc.get_freeze_count())"
_PROBE_TIMEOUT = 10.0


@functools.cache
def _frozen_by_the_interpreter() -> int:
    """How many objects a bare interpreter of this executable starts with frozen.

    0 when that cannot be learned (no executable, a failed or slow child): the
    block then treats every frozen object as someone else's and stays out.
    """
    if not sys.executable:
        return 0
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT,
            check=True,
        )
        return int(done.stdout.strip())
    except (OSError, subprocess.SubprocessError, ValueError):
        return 0


def _someone_else_froze() -> bool:
    frozen = gc.get_freeze_count()
    return frozen > 0 and frozen != _frozen_by_the_interpreter()


@contextlib.contextmanager
def old_objects_left_alone() -> Iterator[None]:
    """Within the block, garbage collections leave the objects made before it alone."""
    if not gc.isenabled() or _someone_else_froze():
        yield  # Someone else manages the collector: leave it as it is.
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
