"""``sockharness serve``: run one server in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from typing import Any, TextIO

from . import handlers
from ._errors import UsageError
from ._kinds import Kind, parse_concurrency, parse_kind, server_class_for

HANDLERS: dict[str, type] = {
    "echo": handlers.EchoHandler,
    "upper": handlers.UpperHandler,
    "discard": handlers.DiscardHandler,
    "line-echo": handlers.LineEchoHandler,
}


class _Stop(Exception):
    """Raised from the SIGTERM handler to leave serve_forever() like Ctrl-C does."""


def format_address(kind: Kind, address: Any) -> str:
    """``host:port`` (``[host]:port`` for IPv6) or the socket path."""
    if kind.unix:
        return os.fsdecode(address)
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@contextlib.contextmanager
def _bind_address(kind: Kind, host: str | None, port: int, path: str | None) -> Iterator[Any]:
    if kind.unix:
        if host is not None:
            raise UsageError(f"--host is for network kinds; a {kind.name} server takes --path.")
        if path is not None:
            yield path
            return
        directory = tempfile.mkdtemp(prefix="sockharness-", dir=_short_temp_root())
        try:
            yield os.path.join(directory, f"{kind.name}.sock")
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return
    if path is not None:
        raise UsageError(f"--path is for unix kinds; a {kind.name} server takes --host and --port.")
    yield (host or kind.loopback, port)


def _short_temp_root() -> str | None:
    """``/tmp`` where it exists: ``$TMPDIR`` can be too deep for a socket path."""
    return "/tmp" if os.path.isdir("/tmp") else None


def _stop_children(server: Any) -> None:
    children = getattr(server, "active_children", None) or set()
    for pid in list(children):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)


def serve(
    kind_name: str,
    concurrency: str,
    handler_name: str,
    *,
    host: str | None = None,
    port: int = 0,
    path: str | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Serve until interrupted; return the exit status."""
    kind = parse_kind(kind_name)
    parse_concurrency(concurrency)
    handler = HANDLERS[handler_name]
    base = server_class_for(kind, concurrency)
    # Interactive use: Ctrl-C must not wait for clients that are still connected.
    attributes = {"daemon_threads": True, "block_on_close": False}
    server_class = type(f"Serve{base.__name__}", (base,), attributes)
    with _bind_address(kind, host, port, path) as address:
        server = server_class(address, handler)
        previous = signal.signal(signal.SIGTERM, _raise_stop)
        try:
            print(
                f"sockharness: serving {handler_name} over {kind.name} ({concurrency}) "
                f"at {format_address(kind, server.server_address)}; Ctrl-C stops",
                file=out,
                flush=True,
            )
            server.serve_forever()
        except (KeyboardInterrupt, _Stop):
            print("sockharness: stopped", file=out, flush=True)
        finally:
            signal.signal(signal.SIGTERM, previous)
            _stop_children(server)
            server.server_close()
            children = getattr(server, "active_children", None) or set()
            for pid in list(children):
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
    return 0


def _raise_stop(signum: int, frame: Any) -> None:
    raise _Stop
