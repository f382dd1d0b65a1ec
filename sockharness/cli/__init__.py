"""The ``sockharness`` command: ``main`` (the console entry point) and its parser.

One module per command (``serve``, ``proxy``, ``conform``, ``run``/``check``),
each a thin shell over the library.
"""

from ._main import build_parser, main

__all__ = ["build_parser", "main"]
