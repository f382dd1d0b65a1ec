"""Unix-domain servers: path limits, and the socket file's life."""

from __future__ import annotations

import errno
import os
import socket
import sys

import pytest

import sockharness.server as ss
from tests.helpers import HAS_FORK, HAS_UNIX, WAIT, open_fds

pytestmark = pytest.mark.skipif(not HAS_UNIX, reason="no AF_UNIX here")

LIMIT = 107 if sys.platform.startswith("linux") else 103


@pytest.mark.parametrize("cls", [ss.UnixStreamServer, ss.UnixDatagramServer])
def test_a_path_over_the_limit_is_a_clear_oserror_and_leaks_nothing(
    cls: type, sock_dir: str
) -> None:
    path = os.path.join(sock_dir, "x" * (LIMIT + 1 - len(sock_dir) - 1))
    assert len(os.fsencode(path)) == LIMIT + 1
    before = open_fds()
    with pytest.raises(OSError) as raised:
        cls(path, ss.BaseRequestHandler)
    assert raised.value.errno == errno.ENAMETOOLONG
    message = str(raised.value)
    assert f"{LIMIT} bytes" in message
    assert f"{LIMIT + 1} bytes long" in message
    assert path in message
    assert "shorter path" in message
    assert open_fds() <= before


def test_a_path_at_the_limit_binds(sock_dir: str) -> None:
    path = os.path.join(sock_dir, "y" * (LIMIT - len(sock_dir) - 1))
    assert len(os.fsencode(path)) == LIMIT
    with ss.UnixStreamServer(path, ss.BaseRequestHandler) as server:
        assert server.server_address == path


@pytest.mark.parametrize("cls", [ss.UnixStreamServer, ss.UnixDatagramServer])
def test_server_close_removes_the_socket_file(cls: type, sock_dir: str) -> None:
    path = os.path.join(sock_dir, "s.sock")
    server = cls(path, ss.BaseRequestHandler)
    assert os.path.exists(path)
    server.server_close()
    assert not os.path.exists(path)
    server.server_close()  # Idempotent.


def test_a_bytes_path_works_and_is_removed(sock_dir: str) -> None:
    path = os.fsencode(os.path.join(sock_dir, "b.sock"))
    with ss.UnixStreamServer(path, ss.BaseRequestHandler) as server:
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(WAIT)
            client.connect(path)
            server.handle_request()
            assert client.recv(10) == b""
    assert not os.path.exists(path)


def test_a_file_that_replaced_the_socket_is_left_alone(sock_dir: str) -> None:
    path = os.path.join(sock_dir, "s.sock")
    server = ss.UnixStreamServer(path, ss.BaseRequestHandler)
    os.unlink(path)
    with open(path, "w") as f:
        f.write("somebody else's")
    server.server_close()
    with open(path) as f:
        assert f.read() == "somebody else's"


@pytest.mark.skipif(not HAS_FORK, reason="no os.fork() here")
def test_a_forked_child_closing_the_server_does_not_remove_the_file(sock_dir: str) -> None:
    path = os.path.join(sock_dir, "s.sock")
    with ss.UnixStreamServer(path, ss.BaseRequestHandler) as server:
        pid = os.fork()
        if pid == 0:
            try:
                server.server_close()
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        assert os.path.exists(path)
    assert not os.path.exists(path)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract namespace is Linux's")
def test_an_abstract_address_binds_and_has_no_file() -> None:
    name = f"\0sockharness-test-{os.getpid()}"
    with ss.UnixStreamServer(name, ss.BaseRequestHandler) as server:
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(WAIT)
            client.connect(name)
            server.handle_request()
    assert server.server_address == name.encode()
