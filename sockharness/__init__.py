"""sockharness: a socketserver-compatible framework and a harness for testing network code.

The server framework lives in :mod:`sockharness.server`. Importing this package
is cheap and needs nothing beyond the standard library.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

__all__ = ["__version__"]
