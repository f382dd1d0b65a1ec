"""Sockets kept out of forked children stay out, whatever state the parent's object is in.

Each test forks a child that reports, through a pipe, whether it still holds
the descriptor in question (the same descriptor with the same inode). The
races these pin down were seen under load: a forked handler never met its
client's reset, because the child had copied the client's socket while the
parent's ``close()`` was under way.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

import pytest

from sockharness import connect, start_server
from sockharness._core import (
    accept_out_of_children,
    forks_held,
    keep_out_of_children,
    socket_out_of_children,
)
from sockharness.handlers import EchoHandler

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")


def identity(fd: int) -> tuple[int, int] | None:
    try:
        status = os.fstat(fd)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def in_child(probe: Callable[[], bool]) -> bool:
    """Fork; the child answers ``probe()`` and exits. Bounded: the child only checks."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.write(writer, b"1" if probe() else b"0")
        finally:
            os._exit(0)
    os.close(writer)
    try:
        answer = os.read(reader, 1)
    finally:
        os.close(reader)
        os.waitpid(pid, 0)
    assert answer in (b"0", b"1"), "the child died before it answered"
    return answer == b"1"


def holds(fd: int, inode: tuple[int, int] | None) -> Callable[[], bool]:
    return lambda: inode is not None and identity(fd) == inode


def test_a_registered_socket_is_closed_in_the_child_and_open_in_the_parent() -> None:
    sock = socket_out_of_children(socket.AF_INET)
    try:
        fd, inode = sock.fileno(), identity(sock.fileno())
        assert not in_child(holds(fd, inode))
        assert identity(fd) == inode  # The parent's copy is untouched.
    finally:
        sock.close()


def test_an_unregistered_socket_is_inherited() -> None:
    # The check can fail: a child does hold what is not registered.
    with socket.socket() as sock:
        assert in_child(holds(sock.fileno(), identity(sock.fileno())))


def test_a_descriptor_the_object_no_longer_names_is_still_closed_in_the_child() -> None:
    # What close() looks like to a child forked in the middle of it: the object
    # says closed (fileno -1), the descriptor is still open.
    sock = socket_out_of_children(socket.AF_INET)
    fd = sock.detach()
    try:
        inode = identity(fd)
        assert not in_child(holds(fd, inode))
    finally:
        os.close(fd)


def test_a_descriptor_reused_by_another_socket_is_left_to_it() -> None:
    sock = socket_out_of_children(socket.AF_INET)
    fd = sock.fileno()
    sock.close()  # The object stays alive, its descriptor free for the next socket.
    with socket.socket() as other:
        if other.fileno() != fd:
            pytest.skip("the descriptor was not reused")
        assert in_child(holds(fd, identity(fd)))


def test_a_socket_with_a_reader_open_is_closed_in_the_child() -> None:
    # close() alone leaves the descriptor open while a makefile() reader lives.
    sock = socket_out_of_children(socket.AF_INET)
    reader = sock.makefile("rb")
    try:
        assert not in_child(holds(sock.fileno(), identity(sock.fileno())))
    finally:
        reader.close()
        sock.close()


def test_a_wrapper_on_the_same_descriptor_is_kept_out_too() -> None:
    sock = keep_out_of_children(socket.socket())
    wrapper = socket.socket(fileno=sock.detach())  # As TLS and fault wrappers do.
    del sock
    try:
        assert not in_child(holds(wrapper.fileno(), identity(wrapper.fileno())))
    finally:
        wrapper.close()


def test_an_accepted_socket_is_kept_out_of_children() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        with socket.create_connection(listener.getsockname(), timeout=5):
            accepted, _ = accept_out_of_children(listener)
            with accepted:
                assert not in_child(holds(accepted.fileno(), identity(accepted.fileno())))


def test_a_fork_inside_forks_held_in_the_same_thread_does_not_deadlock() -> None:
    with forks_held():
        assert not in_child(lambda: False)
    sock = socket_out_of_children(socket.AF_INET)  # The lock works after it, in the parent.
    sock.close()


def test_a_child_can_make_kept_out_sockets_and_fork_again() -> None:
    def grandchild_is_clean() -> bool:
        sock = socket_out_of_children(socket.AF_INET)
        return not in_child(holds(sock.fileno(), identity(sock.fileno())))

    assert in_child(grandchild_is_clean)


def test_a_harness_client_is_not_held_by_a_forking_handler() -> None:
    # A client made while a forking server runs: neither the server's children
    # nor any other fork may hold its socket (its close would send no FIN).
    with start_server(EchoHandler, concurrency="forking") as server:
        for _ in range(5):
            with connect(server.address) as client:
                assert client.request(b"ping\n") == b"ping\n"
                fd, inode = client.sock.fileno(), identity(client.sock.fileno())
                assert not in_child(holds(fd, inode))
        stats = server.wait_stats(lambda s: s.connections_done == 5)
        assert stats.connections == 5
