"""Progress of a scenario run: a bar redrawn in place on a terminal, plain lines otherwise."""

from __future__ import annotations

import time
from typing import TextIO

__all__ = ["ProgressDisplay"]

_WIDTH = 24


class ProgressDisplay:
    """Shows one scenario at a time; :meth:`update` is the runner's progress callback."""

    def __init__(self, out: TextIO, *, interactive: bool | None = None) -> None:
        self.out = out
        if interactive is None:
            isatty = getattr(out, "isatty", None)
            interactive = bool(isatty and isatty())
        self.interactive = interactive
        self.name = ""
        self.last_line = 0.0

    def begin(self, name: str, index: int, total: int) -> None:
        """A scenario starts."""
        self.name = f"[{index}/{total}] {name}"
        self.last_line = time.monotonic()
        if not self.interactive:
            self.out.write(f"{self.name}: running\n")
            self.out.flush()

    def update(self, elapsed: float, duration: float, ok: int, failed: int) -> None:
        """The runner's progress callback: redraw the bar (terminal only)."""
        if not self.interactive:
            return
        share = min(1.0, elapsed / duration) if duration > 0 else 1.0
        filled = int(share * _WIDTH)
        bar = "#" * filled + "-" * (_WIDTH - filled)
        text = f"\r{self.name} [{bar}] {elapsed:4.1f}/{duration:g} s  {ok} ok  {failed} failed"
        self.out.write(text + "\x1b[K")
        self.out.flush()

    def end(self, result: str, messages: int, ok: int, elapsed: float) -> None:
        """The scenario ended with ``result``."""
        line = f"{self.name}: {result} ({ok}/{messages} messages ok, {elapsed:.1f} s)"
        self.out.write(("\r" + line + "\x1b[K\n") if self.interactive else line + "\n")
        self.out.flush()
