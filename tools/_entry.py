"""How every tool runs as a script: Ctrl-C always ends it, with one line and no traceback."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable


def run_as_script(main: Callable[[], int]) -> None:
    """Exit with ``main()``'s status; Ctrl-C exits with "<tool>: interrupted".

    SIGINT gets its default Python handler first: a shell that starts a
    background job makes it ignore SIGINT, and Ctrl-C would then do nothing.
    A tool that reports what ran on Ctrl-C catches ``KeyboardInterrupt`` itself.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # What ran is printed above; no traceback.
        sys.exit(f"{sys.argv[0]}: interrupted")
