"""Services for the chaos tests to judge: healthy ones, and ones that answer wrongly, slowly or not
at all. Real ``http.server`` handlers and a line protocol, imported by path from scenarios."""

from __future__ import annotations

import json
import random
import socket
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

from sockharness.server import StreamRequestHandler, ThreadingTCPServer


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # Keep-alive, as real apps do.

    def log_message(self, format: str, *args: Any) -> None:
        pass  # The scenario's report says what happened; stderr stays clean.

    def reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class HealthyApp(_Quiet):
    """``GET /items/<n>`` answers ``{"id": n, "ok": true}``; ``POST /echo`` its body."""

    def do_GET(self) -> None:
        if self.path.startswith("/items/"):
            item = self.path.removeprefix("/items/")
            body = json.dumps({"id": int(item) if item.isdigit() else item, "ok": True})
            self.reply(200, body.encode())
        else:
            self.reply(404, b'{"error": "not found"}')

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.reply(200, self.rfile.read(length), "text/plain")


class BadRequestApp(_Quiet):
    """Every request gets ``400 Bad Request``: a service that is broken."""

    def do_GET(self) -> None:
        self.reply(400, b'{"error": "bad request"}')

    def do_POST(self) -> None:
        self.do_GET()


class WrongJSONApp(_Quiet):
    """200 and JSON, but the wrong values: ``ok`` is false."""

    def do_GET(self) -> None:
        self.reply(200, b'{"id": 0, "ok": false}')


class SlowApp(_Quiet):
    """Answers after 1.5 s: later than the clients' timeout."""

    def do_GET(self) -> None:
        threading.Event().wait(1.5)
        self.reply(200, b'{"id": 0, "ok": true}')


class SilentApp(_Quiet):
    """Reads the request and never answers (until the client gives up)."""

    def do_GET(self) -> None:
        self.connection.settimeout(3.0)
        try:
            self.connection.recv(1)  # Until the client closes, or 3 s.
        except OSError:
            pass
        self.close_connection = True


class KeyValue(StreamRequestHandler):
    """``SET key value`` answers ``+OK``; ``GET key`` the value or ``$nil``, one line each."""

    store: dict[bytes, bytes] = {}
    lock = threading.Lock()

    def handle(self) -> None:
        for line in self.rfile:
            words = line.split(maxsplit=2)
            if len(words) == 3 and words[0] == b"SET":
                with self.lock:
                    self.store[words[1]] = words[2].rstrip(b"\r\n")
                self.wfile.write(b"+OK\n")
            elif len(words) == 2 and words[0] == b"GET":
                with self.lock:
                    value = self.store.get(words[1].strip(), b"$nil")
                self.wfile.write(value + b"\n")
            else:
                self.wfile.write(b"ERR unknown command\n")


class BrokenKeyValue(StreamRequestHandler):
    """Answers ``ERR unknown command`` to everything."""

    def handle(self) -> None:
        for _ in self.rfile:
            self.wfile.write(b"ERR unknown command\n")


class LengthPrefixedUpper(StreamRequestHandler):
    """Each 4-byte big-endian length and message gets the message upper-cased, framed so."""

    def handle(self) -> None:
        while header := self.rfile.read(4):
            size = int.from_bytes(header, "big")
            self.wfile.write(header + self.rfile.read(size).upper())


def set_and_get(address: Any, rng: random.Random, seq: int) -> None:
    """A workload with a client of its own: SET then GET a seeded key, checking the value."""
    key, value = f"k{rng.randrange(1000)}", f"v{seq}"
    with socket.create_connection(address, timeout=1.0) as sock:
        stream = sock.makefile("rwb")
        stream.write(f"SET {key} {value}\nGET {key}\n".encode())
        stream.flush()
        assert stream.readline() == b"+OK\n", "SET was not acknowledged"
        got = stream.readline().strip().decode()
        assert got == value, f"GET {key} gave {got!r}, expected {value!r}"


def always_fails(address: Any, rng: random.Random, seq: int) -> None:
    """A workload whose check never holds."""
    raise AssertionError("the service said no")


def works_three_times(address: Any, rng: random.Random, seq: int) -> None:
    """A steady-state probe of a service that breaks for good after its third answer."""
    with socket.create_connection(address, timeout=1.0) as sock:
        sock.sendall(b"ping\n")
        assert sock.recv(16) == b"ping\n", "no echo"
    assert seq < 3, "the service broke and stayed broken"


#: What the RecordingServer instances did, in order: ("start" | "stop", label).
SERVER_EVENTS: list[tuple[str, str]] = []


class RecordingServer(ThreadingTCPServer):
    """Records when it starts serving and when it closes (the order services start and stop)."""

    label = ""

    def server_activate(self) -> None:
        super().server_activate()
        SERVER_EVENTS.append(("start", self.label))

    def server_close(self) -> None:
        SERVER_EVENTS.append(("stop", self.label))
        super().server_close()
