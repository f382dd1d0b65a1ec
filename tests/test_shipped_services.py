"""The shipped scenarios against real programs: an http.server app, a Redis server driven by
redis-py, and an integration suite run as a command. Each holds against the healthy service,
and a service that answers wrongly, slowly or not at all makes its scenario fail."""

from __future__ import annotations

import contextlib
import shutil
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sockharness import start_server
from sockharness.chaos import ScenarioResult, load_scenario, parse_scenario, run_scenario
from tests.helpers import SUBPROCESSES_TIMEOUT

ROOT = Path(__file__).resolve().parents[1]
HTTP_APP = ROOT / "scenarios" / "http_app_steady_state.toml"
REDIS = ROOT / "examples" / "services" / "redis.toml"
INTEGRATION = ROOT / "examples" / "services" / "integration.toml"


def _with_handler(path: Path, handler: str) -> ScenarioResult:
    text = path.read_text().replace("items_app:ItemsApp", f"items_app:{handler}")
    assert f"items_app:{handler}" in text
    return run_scenario(parse_scenario(text, str(path), variables={"PYTHON": sys.executable}))


# -- the http.server app ----------------------------------------------------------------------


def test_the_http_app_scenario_holds_against_the_healthy_app() -> None:
    result = run_scenario(load_scenario(HTTP_APP))
    assert result.result == "held", result.failure_message()
    assert result.steady is not None
    assert result.steady.recovery_time is not None


def test_the_http_app_scenario_is_broken_by_an_app_that_answers_wrongly() -> None:
    result = _with_handler(HTTP_APP, "WrongItemsApp")
    assert result.result == "broken", result.failure_message()
    assert "intact_outside_faults" in {invariant.name for invariant in result.broken}
    assert "expected status 200, got 500" in result.failure_message()


@pytest.mark.parametrize(("handler", "why"), [("SlowApp", "took longer"), ("SilentApp", "lost")])
def test_the_http_app_scenario_is_not_steady_for_a_slow_or_silent_app(
    handler: str, why: str
) -> None:
    result = _with_handler(HTTP_APP, handler)
    assert result.result == "not steady", result.failure_message()
    assert why in result.broken[0].detail
    assert result.messages == []


# -- an integration suite as the command -------------------------------------------------------


# Two scenarios, each running a pytest suite in a subprocess: 18 s quiet, 30-38 s loaded.
@SUBPROCESSES_TIMEOUT
def test_the_integration_suite_scenario_holds_and_fails_with_the_service() -> None:
    healthy = run_scenario(load_scenario(INTEGRATION, variables={"PYTHON": sys.executable}))
    assert healthy.result == "held", healthy.failure_message()
    assert [message.outcome for message in healthy.messages] == ["ok"]
    broken = _with_handler(INTEGRATION, "WrongItemsApp")
    assert broken.result == "broken", broken.failure_message()
    assert "test_an_item_has_its_id" in broken.messages[0].detail


# -- Redis and redis-py -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_pong(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
            s.sendall(b"PING\r\n")
            if s.recv(16).startswith(b"+PONG"):
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"redis-server did not answer PING within {timeout:g} s")
        threading.Event().wait(0.05)  # Between connection attempts; bounded by the deadline.


@pytest.fixture(scope="module")
def redis_port() -> Iterator[int]:
    pytest.importorskip("redis", reason="redis-py is not installed (pip install redis)")
    program = shutil.which("redis-server")
    if program is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    port = _free_port()
    process = subprocess.Popen(
        [program, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for_pong(port, 10.0)
        yield port
    finally:
        process.terminate()
        process.wait(10)


class _FakeRedis(socketserver.StreamRequestHandler):
    """Speaks RESP well enough for redis-py: PING and SET answer right, GET answers wrong."""

    def handle(self) -> None:
        while line := self.rfile.readline():
            if not line.startswith(b"*"):
                continue
            words = []
            for _ in range(int(line[1:])):
                size = int(self.rfile.readline()[1:])
                words.append(self.rfile.read(size + 2)[:-2].upper())
            command = words[0] if words else b""
            if command == b"HELLO":  # RESP3, as redis-py asks for: a map.
                self.wfile.write(b"%1\r\n$5\r\nproto\r\n:3\r\n")
            elif command == b"PING":
                self.wfile.write(b"+PONG\r\n")
            elif command == b"GET":
                self.wfile.write(b"$5\r\nwrong\r\n")
            else:
                self.wfile.write(b"+OK\r\n")


class _SilentRedis(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        while self.rfile.readline():
            pass


def test_the_redis_scenario_holds_against_a_real_redis_server(redis_port: int) -> None:
    result = run_scenario(load_scenario(REDIS, variables={"REDIS_PORT": str(redis_port)}))
    assert result.result == "held", result.failure_message()
    assert len(result.ok) >= 20
    assert all(result.fired)  # The latency and the resets both struck.


def test_the_redis_scenario_is_broken_by_a_server_that_answers_wrongly() -> None:
    pytest.importorskip("redis", reason="redis-py is not installed (pip install redis)")
    with start_server(_FakeRedis, "tcp") as server:
        server.expect_errors(ConnectionError)  # The scenario's resets.
        port = str(server.address[1])
        result = run_scenario(load_scenario(REDIS, variables={"REDIS_PORT": port}))
    assert result.result == "broken", result.failure_message()
    assert "GET sockharness:" in result.failure_message()


def test_the_redis_scenario_is_not_steady_against_a_server_that_never_answers() -> None:
    pytest.importorskip("redis", reason="redis-py is not installed (pip install redis)")
    with start_server(_SilentRedis, "tcp") as server:
        server.expect_errors(ConnectionError)  # The scenario's resets.
        port = str(server.address[1])
        result = run_scenario(load_scenario(REDIS, variables={"REDIS_PORT": port}))
    assert result.result == "not steady", result.failure_message()
    assert "lost" in result.broken[0].detail
