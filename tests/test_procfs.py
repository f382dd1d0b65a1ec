"""Descriptors and children are counted the same with /proc and without it (the POSIX way)."""

from __future__ import annotations

import os
import socket

import pytest

from sockharness._core import procfs as _procfs

from .helpers import HAS_FORK, wait_for


@pytest.fixture(params=["with /proc", "without /proc"])
def procfs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "without /proc":
        monkeypatch.setattr(_procfs, "PROC", "/nonexistent-proc")
    elif not os.path.isdir("/proc/self/fd"):
        pytest.skip("this host has no /proc")
    return str(request.param)


def test_open_and_socket_descriptors(procfs: str) -> None:
    before = _procfs.open_descriptors()
    sockets_before = _procfs.socket_descriptors()
    with socket.socket() as sock, open(os.devnull) as f:
        assert {sock.fileno(), f.fileno()} <= _procfs.open_descriptors() - before
        assert _procfs.socket_descriptors() - sockets_before == {sock.fileno()}
    assert _procfs.open_descriptors() == before


@pytest.mark.skipif(not HAS_FORK, reason="needs os.fork()")
def test_a_child_is_running_then_a_zombie_then_gone(procfs: str) -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.read(read_end, 1)
        os._exit(0)
    try:
        assert _procfs.child_state(pid) == "running"
        os.write(write_end, b"x")
        wait_for(lambda: _procfs.child_state(pid) == "zombie", what="the child to exit")
        assert _procfs.child_state(pid) == "zombie", "asking must not reap it"
    finally:
        os.close(write_end)
        os.close(read_end)
        os.waitpid(pid, 0)
    assert _procfs.child_state(pid) is None
