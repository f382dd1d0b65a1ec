"""``sockharness serve`` as a user runs it: a subprocess, stopped with Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.helpers import HAS_FORK, WAIT, connect_retrying


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "sockharness", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_line(process: subprocess.Popen[str], timeout: float = WAIT) -> str:
    """The next line the process prints, waiting at most ``timeout`` seconds."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                process.kill()
                raise AssertionError(f"no line within {timeout}s; stderr: {process.stderr.read()}")
            return process.stdout.readline()


def bound_address(line: str, kind: str) -> Any:
    assert line.startswith("sockharness: serving "), line
    where = line.split(" at ", 1)[1].split(";", 1)[0]
    if kind.startswith("unix"):
        return where
    host, port = where.rsplit(":", 1)
    return host.strip("[]"), int(port)


def round_trip(kind: str, address: Any, message: bytes, tmp_dir: str) -> bytes:
    if kind in ("tcp", "unix"):
        family = socket.AF_UNIX if kind == "unix" else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as client:
            client.settimeout(WAIT)
            connect_retrying(client, address)
            client.sendall(message)
            client.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := client.recv(1024):
                chunks.append(chunk)
            return b"".join(chunks)
    family = socket.AF_UNIX if kind == "unix-dgram" else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as client:
        client.settimeout(WAIT)
        if kind == "unix-dgram":
            client.bind(os.path.join(tmp_dir, "client.sock"))
        client.sendto(message, address)
        return client.recv(1024)


def stop(process: subprocess.Popen[str], signum: int) -> tuple[str, str]:
    process.send_signal(signum)
    out, err = process.communicate(timeout=WAIT)
    return out, err


@pytest.mark.parametrize(
    ("kind", "concurrency"),
    [
        ("tcp", "threading"),
        ("udp", "sync"),
        ("unix", "threading"),
        ("unix-dgram", "sync"),
        pytest.param("tcp", "forking", marks=pytest.mark.skipif(not HAS_FORK, reason="no fork")),
    ],
)
def test_serve_prints_its_address_serves_and_stops_cleanly_on_ctrl_c(
    kind: str, concurrency: str, sock_dir: str
) -> None:
    process = start("--kind", kind, "--concurrency", concurrency, "--handler", "upper")
    address = bound_address(read_line(process), kind)
    assert round_trip(kind, address, b"hello cli", sock_dir) == b"HELLO CLI"
    out, err = stop(process, signal.SIGINT)
    assert process.returncode == 0
    assert "Traceback" not in err
    assert err == ""
    assert out.strip() == "sockharness: stopped"
    if kind.startswith("unix"):
        assert not os.path.exists(address)  # The private directory is gone too.
        assert not os.path.exists(os.path.dirname(address))


def test_sigterm_stops_it_cleanly_too() -> None:
    process = start("--handler", "echo")
    address = bound_address(read_line(process), "tcp")
    assert address[0] == "127.0.0.1"  # Loopback by default.
    _out, err = stop(process, signal.SIGTERM)
    assert process.returncode == 0
    assert err == ""


@pytest.mark.parametrize(
    "concurrency",
    [
        "sync",
        "threading",
        pytest.param("forking", marks=pytest.mark.skipif(not HAS_FORK, reason="no fork")),
    ],
)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_does_not_wait_for_a_connected_client(concurrency: str, signum: int) -> None:
    process = start("--handler", "echo", "--concurrency", concurrency)
    address = bound_address(read_line(process), "tcp")
    with socket.create_connection(address, timeout=WAIT) as client:
        client.sendall(b"still here")
        assert client.recv(100) == b"still here"
        out, err = stop(process, signum)  # The client has not left.
        assert client.recv(100) == b""  # It was hung up on.
    assert process.returncode == 0
    assert err == ""
    assert out.strip() == "sockharness: stopped"


def test_an_explicit_path_is_used(sock_dir: str) -> None:
    path = os.path.join(sock_dir, "explicit.sock")
    process = start("--kind", "unix", "--path", path)
    assert bound_address(read_line(process), "unix") == path
    assert round_trip("unix", path, b"x", sock_dir) == b"x"
    stop(process, signal.SIGINT)
    assert process.returncode == 0
    assert not os.path.exists(path)


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["--kind", "tcp", "--path", "/tmp/x.sock"], 2, "--path is for unix kinds"),
        (["--kind", "unix", "--host", "127.0.0.1"], 2, "--host is for network kinds"),
        (["--kind", "carrier-pigeon"], 2, "invalid choice: 'carrier-pigeon'"),
        (["--port", "70000"], 2, "70000 is not a port number"),
        (["--kind", "unix", "--path", "/tmp/" + "p" * 200], 1, "the platform limit"),
    ],
)
def test_bad_arguments_get_a_clear_error_and_no_traceback(
    args: list[str], status: int, message: str
) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "sockharness", "serve", *args],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert completed.returncode == status
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr


def test_the_console_script_is_installed() -> None:
    completed = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "sockharness"), "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=True,
    )
    assert "--concurrency" in completed.stdout
