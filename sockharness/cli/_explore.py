"""``sockharness explore HANDLER --request ...``: one exchange at every point it can break."""

from __future__ import annotations

import builtins
import codecs
import sys
from typing import Any, TextIO

from sockharness._core import UsageError, import_object

__all__ = ["read_request", "run_explore"]


def _imported(path: str, what: str) -> Any:
    try:
        return import_object(path)
    except LookupError as exc:
        raise UsageError(f"{what} {path!r} could not be imported: {exc}") from None


def _handler(path: str) -> type:
    found = _imported(path, "handler")
    if not (isinstance(found, type) and callable(getattr(found, "handle", None))):
        raise UsageError(
            f"{path!r} is not a request handler class (a BaseRequestHandler subclass, with "
            f"handle()), it is {found!r}"
        )
    return found


def _exception(name: str) -> type[BaseException]:
    found = getattr(builtins, name, None) if ":" not in name else _imported(name, "exception")
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        raise UsageError(
            f"--expect-error {name!r} is not an exception class; give a built-in one "
            f"(OSError) or package.module:ClassName"
        )
    return found


def read_request(text: str | None, path: str | None, hex_text: str | None) -> bytes:
    r"""The request from exactly one of ``--request`` (with ``\r``, ``\n``, ``\xNN`` escapes),
    ``--request-file`` and ``--request-hex``."""
    options = (("--request", text), ("--request-file", path), ("--request-hex", hex_text))
    given = [option for option, value in options if value is not None]
    if len(given) != 1:
        raise UsageError(
            "give the request once: --request TEXT (escapes such as \\r\\n allowed), "
            "--request-file FILE or --request-hex HEX"
            + (f" (got {', '.join(given)})" if given else "")
        )
    if text is not None:
        try:
            return codecs.decode(text.encode(), "unicode_escape").encode("latin-1")
        except (UnicodeDecodeError, UnicodeEncodeError) as exc:
            raise UsageError(
                f"--request {text!r}: {exc.reason}; write bytes as \\xNN, a backslash as \\\\"
            ) from None
    if path is not None:
        with open(path, "rb") as f:
            return f.read()
    assert hex_text is not None
    try:
        return bytes.fromhex(hex_text)
    except ValueError:
        raise UsageError(f"--request-hex {hex_text!r} is not hexadecimal bytes") from None


def run_explore(
    handler_path: str,
    *,
    request: bytes,
    kind: str,
    concurrency: str | None,
    server_class_path: str | None,
    points: str | None,
    cases: list[str] | None,
    expect_errors: list[str] | None,
    timeout: float,
    out: TextIO | None = None,
) -> int:
    """Explore the exchange and print the report. Exit 0: every case held; 1: one failed."""
    out = sys.stdout if out is None else out
    from sockharness.explore import exchanges

    handler = _handler(handler_path)
    server_class = None
    if server_class_path is not None:
        server_class = _imported(server_class_path, "--server-class")
        if not isinstance(server_class, type):
            raise UsageError(f"--server-class {server_class_path!r} is not a class")
    expected = tuple(_exception(name) for name in expect_errors) if expect_errors else (OSError,)
    exploration = exchanges(
        handler,
        request,
        kind=kind,
        concurrency=concurrency if server_class is None else None,
        server_class=server_class,
        points=points,
        cases=cases,
        expected_errors=expected,
        timeout=timeout,
    )
    print(exploration.format(), file=out)
    return 0 if exploration.ok else 1
