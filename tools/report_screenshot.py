"""Render a chaos HTML report to a PNG with headless Chromium, for the docs picture.

Usage::

    python tools/report_screenshot.py REPORT.html OUT.png
    python tools/report_screenshot.py REPORT.html OUT.png --width 1280 --height 2000

The browser runs headless with a throw-away profile and home directory, its
background networking switched off, and a bounded virtual-time budget; the
report itself fetches nothing (its Content-Security-Policy forbids it). The
picture is the top ``--width`` x ``--height`` pixels of the page. The exit
status is 0 only when the PNG was written; the browser is looked up as
``chromium`` or ``chromium-browser`` on PATH unless ``--browser`` names it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser")

# Flags that keep headless Chromium quiet, private and off the network on its own account.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=2000",
)


def find_browser(explicit: str | None) -> str | None:
    """The browser to run: ``explicit`` if given, else the first of BROWSERS on PATH."""
    if explicit:
        return explicit
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot(browser: str, report: Path, out: Path, width: int, height: int) -> None:
    """Render ``report`` into ``out`` (PNG); raise RuntimeError if the browser wrote none."""
    out.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="sh-shot-") as scratch:
        completed = subprocess.run(
            [
                browser,
                *FLAGS,
                f"--user-data-dir={scratch}/profile",
                f"--window-size={width},{height}",
                f"--screenshot={out}",
                report.as_uri(),
            ],
            env={**os.environ, "HOME": scratch},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    if completed.returncode != 0 or not out.is_file():
        raise RuntimeError(
            f"{browser} exited with {completed.returncode} and wrote no {out}:\n"
            f"{completed.stderr[-2000:]}"
        )


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and take the screenshot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="the HTML report to render")
    parser.add_argument("out", type=Path, help="where to write the PNG")
    parser.add_argument("--width", type=int, default=1280, help="window width in pixels")
    parser.add_argument("--height", type=int, default=2000, help="window height in pixels")
    parser.add_argument("--browser", help="the Chromium executable (default: found on PATH)")
    args = parser.parse_args(argv)

    if not args.report.is_file():
        parser.error(f"no such report: {args.report}")
    browser = find_browser(args.browser)
    if browser is None:
        print(f"no browser found: install one of {', '.join(BROWSERS)}", file=sys.stderr)
        return 2
    try:
        screenshot(browser, args.report.resolve(), args.out.resolve(), args.width, args.height)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
        print(error, file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
