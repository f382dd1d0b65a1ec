"""Small helpers shared by the project's own tests of the server framework."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import sockharness.server as ss

# A test that runs whole pytest sessions (or long scenarios) in subprocesses pays an
# interpreter start and the plugin's import for each: beside the suite -n 2 and a CPU
# burner such tests took up to 66 s (flake loops 11-13, 2026-12-07), past the suite's
# 60 s per test. They get this bound instead, each with its own figures next to it.
SUBPROCESSES_TIMEOUT = pytest.mark.timeout(180)

WAIT = 10.0  # The bound on every wait in these tests; a hang fails, it never blocks CI.

HAS_FORK = hasattr(os, "fork")
HAS_UNIX = hasattr(socket, "AF_UNIX")

KINDS = ["tcp", "udp", "unix", "unix_dgram"]
CONCURRENCIES = ["sync", "threading", "forking"]

_CLASSES = {
    ("tcp", "sync"): "TCPServer",
    ("tcp", "threading"): "ThreadingTCPServer",
    ("tcp", "forking"): "ForkingTCPServer",
    ("udp", "sync"): "UDPServer",
    ("udp", "threading"): "ThreadingUDPServer",
    ("udp", "forking"): "ForkingUDPServer",
    ("unix", "sync"): "UnixStreamServer",
    ("unix", "threading"): "ThreadingUnixStreamServer",
    ("unix", "forking"): "ForkingUnixStreamServer",
    ("unix_dgram", "sync"): "UnixDatagramServer",
    ("unix_dgram", "threading"): "ThreadingUnixDatagramServer",
    ("unix_dgram", "forking"): "ForkingUnixDatagramServer",
}


def server_class(kind: str, concurrency: str, module: Any = ss) -> type:
    """The class of ``module`` serving ``kind`` with ``concurrency``."""
    return getattr(module, _CLASSES[(kind, concurrency)])


def is_stream(kind: str) -> bool:
    return kind in ("tcp", "unix")


def is_unix(kind: str) -> bool:
    return kind.startswith("unix")


def address_for(kind: str, directory: str) -> Any:
    if is_unix(kind):
        return os.path.join(directory, f"{kind}.sock")
    return ("127.0.0.1", 0)


def wait_for(predicate: Callable[[], bool], timeout: float = WAIT, what: str = "") -> None:
    """Poll ``predicate`` until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


@contextlib.contextmanager
def serving(server: Any, poll_interval: float = 0.5) -> Iterator[threading.Thread]:
    """Run ``server.serve_forever`` in a thread; shut down, join and close on exit."""
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": poll_interval}, daemon=True
    )
    thread.start()
    try:
        yield thread
    finally:
        server.shutdown()
        thread.join(WAIT)
        assert not thread.is_alive(), "serve_forever did not return after shutdown()"
        server.server_close()


class Client:
    """A blocking test client for one server, stream or datagram, with timeouts."""

    def __init__(self, kind: str, address: Any, directory: str | None = None) -> None:
        self.kind = kind
        self.address = address
        family = socket.AF_UNIX if is_unix(kind) else socket.AF_INET
        sock_type = socket.SOCK_STREAM if is_stream(kind) else socket.SOCK_DGRAM
        self.sock = socket.socket(family, sock_type)
        self.sock.settimeout(WAIT)
        self._bound_path: str | None = None
        try:
            if kind == "unix_dgram":
                assert directory is not None
                path = _unique_path(directory)
                self._bound_path = path
                self.sock.bind(path)
            if is_stream(kind):
                connect_retrying(self.sock, address)
        except BaseException:
            self.close()
            raise

    def request(self, data: bytes) -> bytes:
        """Send ``data``; return the reply (up to EOF for streams, one datagram otherwise)."""
        if is_stream(self.kind):
            self.sock.sendall(data)
            # A forked child holds copies of this socket: only SHUT_WR is EOF to it.
            self.sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := self.sock.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)
        self.sock.sendto(data, self.address)
        return self.sock.recv(65536)

    def close(self) -> None:
        self.sock.close()
        if self._bound_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._bound_path)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def connect_retrying(sock: socket.socket, address: Any, timeout: float = WAIT) -> None:
    """Connect, retrying while a Unix listener's backlog is full.

    A Unix stream socket in timeout mode gets ``EAGAIN`` instead of waiting
    when the backlog is full, where TCP would queue the SYN.
    """
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            sock.connect(address)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


_counter = 0
_counter_lock = threading.Lock()


def _unique_path(directory: str) -> str:
    global _counter
    with _counter_lock:
        _counter += 1
        n = _counter
    return os.path.join(directory, f"c{os.getpid()}-{n}.sock")


def open_fds() -> set[int]:
    """The descriptors open in this process (Linux and the BSDs)."""
    for directory in ("/proc/self/fd", "/dev/fd"):
        if os.path.isdir(directory):
            fds = set()
            for name in os.listdir(directory):
                fd = int(name)
                with contextlib.suppress(OSError):
                    os.fstat(fd)
                    fds.add(fd)
            return fds
    raise RuntimeError("no way to list open descriptors here")


def child_is_zombie_or_gone(pid: int) -> bool:
    """Whether ``pid`` has ended (a zombie still counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")


def load_tool(name: str) -> Any:
    """The script ``tools/<name>.py`` as a module (with ``tools/`` importable, as when run)."""
    if TOOLS not in sys.path:
        sys.path.append(TOOLS)
    spec = importlib.util.spec_from_file_location(f"_{name}", os.path.join(TOOLS, f"{name}.py"))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module
