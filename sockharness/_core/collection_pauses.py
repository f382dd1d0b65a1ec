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
full collection sees them again. If something else froze objects first (a
pre-forking application, an outer block), the block changes nothing: it must
not unfreeze what it did not freeze.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["old_objects_left_alone"]


@contextlib.contextmanager
def old_objects_left_alone() -> Iterator[None]:
    """Within the block, garbage collections leave the objects made before it alone."""
    if gc.get_freeze_count() or not gc.isenabled():
        yield  # Someone else manages the collector: leave it as it is.
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
