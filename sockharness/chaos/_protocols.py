"""What a scenario's clients speak besides numbered echo lines, and how each answer is judged.

- ``http``: HTTP/1.1 requests (keep-alive, or a connection per request); the
  status, the body (a regular expression) and JSON values (by JSON pointer)
  are checked;
- ``lines``: a request line from a template, one reply line, checked exactly
  or by a regular expression;
- ``length-prefixed``: the same, each message behind a 4-byte big-endian length;
- a ``workload``: the user's own client code, called once per message.

Templates take ``{payload}`` (a seeded body of the group's ``size`` and
``payload`` kind), ``{seq}`` (the message's number) and ``{client}`` (the
client's); nothing else is substituted, so JSON braces need no escaping.

Every exchange ends as an :data:`~sockharness._core.Outcome`: ``ok``;
``corrupt`` (an answer, but a wrong one: a status, a body, a value, a
check that raised ``AssertionError``); ``lost`` (no answer in time) or
``error`` (the connection failed). The caller turns ``TimeoutError`` into
``lost`` and ``OSError`` into ``error``.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import struct
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from sockharness._core import ConnectionClosed, Outcome
from sockharness.harness import Client

from ._schema import ClientSpec

__all__ = ["Speaker", "Workload", "json_pointer", "render", "speak"]

#: The answer to one message: its outcome and, when it is not ``ok``, why.
Judged = tuple[Outcome, str]

#: A user's workload: called with the address, a seeded generator and the message number.
Workload = Callable[[Any, random.Random, int], object]

_LENGTH = struct.Struct(">I")
#: The longest reply a length-prefixed client accepts (a bigger prefix is a wrong answer).
_MAX_REPLY = 16 * 1024 * 1024


class Speaker(Protocol):
    """What an exchange needs of the client thread that makes it."""

    spec: ClientSpec
    client_id: int
    random: random.Random

    def body(self, seq: int) -> bytes: ...

    def connection(self) -> Client: ...

    def connect(self) -> Client: ...

    def disconnect(self) -> None: ...

    @property
    def address(self) -> Any: ...

    @property
    def workload(self) -> Workload | None: ...


def render(template: str, speaker: Speaker, seq: int) -> bytes:
    """``template`` (UTF-8) with ``{payload}``, ``{seq}`` and ``{client}`` put in."""
    return (
        template.encode("utf-8")
        .replace(b"{payload}", speaker.body(seq))
        .replace(b"{seq}", str(seq).encode())
        .replace(b"{client}", str(speaker.client_id).encode())
    )


def speak(speaker: Speaker, seq: int) -> Judged:
    """One message of the speaker's protocol (or workload), judged."""
    spec = speaker.spec
    if spec.workload is not None:
        return _workload(speaker, seq)
    if spec.protocol == "http":
        return _http(speaker, seq)
    if spec.protocol in ("lines", "length-prefixed"):
        return _message(speaker, seq)
    raise AssertionError(f"not a protocol with its own exchange: {spec.protocol!r}")


# -- HTTP ---------------------------------------------------------------------------------------


def _http_request(speaker: Speaker, seq: int, *, close: bool) -> bytes:
    spec = speaker.spec
    host = speaker.address
    host_header = f"{host[0]}:{host[1]}" if isinstance(host, tuple) else "localhost"
    body = render(spec.body, speaker, seq) if spec.body is not None else b""
    path = render(spec.path, speaker, seq).decode("utf-8")
    lines = [f"{spec.method} {path} HTTP/1.1", f"Host: {host_header}"]
    given = {name.lower() for name in spec.headers}
    lines += [f"{name}: {value}" for name, value in spec.headers.items()]
    sends_body = body or spec.method in ("POST", "PUT", "PATCH")
    if sends_body and "content-length" not in given:
        lines.append(f"Content-Length: {len(body)}")
    if close and "connection" not in given:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _http(speaker: Speaker, seq: int) -> Judged:
    spec = speaker.spec
    per_request = spec.pattern == "connect-per-request"
    client = speaker.connect() if per_request else speaker.connection()
    try:
        client.send(_http_request(speaker, seq, close=per_request))
        response = http.client.HTTPResponse(client.sock, method=spec.method)
        try:
            response.begin()
            body = response.read()
        except http.client.RemoteDisconnected as exc:
            raise ConnectionClosed(f"the server closed the connection: {exc}") from None
        except http.client.IncompleteRead as exc:
            raise ConnectionClosed(
                f"the response ended after {len(exc.partial)} bytes of its body"
            ) from None
        except http.client.HTTPException as exc:
            speaker.disconnect()
            return "corrupt", f"not an HTTP response: {type(exc).__name__}: {exc}"[:200]
        if response.will_close and not per_request:
            speaker.disconnect()
    finally:
        if per_request:
            client.close()
    return judge_http(
        spec,
        response.status,
        response.reason,
        body,
        fill=lambda text: render(text, speaker, seq).decode("utf-8", "replace"),
    )


def judge_http(
    spec: ClientSpec,
    status: int,
    reason: str,
    body: bytes,
    fill: Callable[[str], str] = lambda text: text,
) -> Judged:
    """Whether a response meets the group's ``expect_*`` checks.

    ``fill`` puts the message's ``{seq}``, ``{client}`` and ``{payload}`` into
    the string values ``expect_json`` expects.
    """
    expected = spec.expected_statuses
    if status not in expected:
        wanted = _statuses(expected)
        return "corrupt", f"expected status {wanted}, got {status} {reason}; body {body[:80]!r}"
    text = body.decode("utf-8", "replace")
    if spec.expect_body is not None and re.search(spec.expect_body, text) is None:
        return "corrupt", f"the body does not match {spec.expect_body!r}: {body[:80]!r}"
    if spec.expect_json:
        expected_json = {
            pointer: fill(value) if isinstance(value, str) else value
            for pointer, value in spec.expect_json.items()
        }
        return _judge_json(expected_json, text)
    return "ok", ""


def _statuses(expected: frozenset[int]) -> str:
    if expected == frozenset(range(100, 400)):
        return "below 400"
    return " or ".join(str(code) for code in sorted(expected))


def _judge_json(expected: Mapping[str, Any], text: str) -> Judged:
    try:
        document = json.loads(text)
    except ValueError as exc:
        return "corrupt", f"the body is not JSON ({exc}): {text[:80]!r}"
    for pointer, value in expected.items():
        try:
            found = json_pointer(document, pointer)
        except LookupError as exc:
            return "corrupt", f"the JSON has no {pointer!r} ({exc})"
        if found != value or type(found) is not type(value):
            if not (isinstance(found, (int, float)) and isinstance(value, (int, float))):
                return "corrupt", f"expected {pointer} = {value!r}, got {found!r}"
            if found != value:
                return "corrupt", f"expected {pointer} = {value!r}, got {found!r}"
    return "ok", ""


def json_pointer(document: Any, pointer: str) -> Any:
    """The value at ``pointer`` (RFC 6901: ``""``, ``/a/0/b``, ``~0`` for ``~``, ``~1``
    for ``/``); :class:`LookupError` where it leads nowhere."""
    if pointer == "":
        return document
    if not pointer.startswith("/"):
        raise LookupError(f"a JSON pointer starts with '/': {pointer!r}")
    found = document
    for raw in pointer[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(found, dict):
            if token not in found:
                raise LookupError(f"no key {token!r}")
            found = found[token]
        elif isinstance(found, list):
            if not token.isdigit() or int(token) >= len(found):
                raise LookupError(f"no item {token!r} in a list of {len(found)}")
            found = found[int(token)]
        else:
            raise LookupError(f"{token!r} goes into a {type(found).__name__}")
    return found


# -- lines and length-prefixed messages ---------------------------------------------------------


def _message(speaker: Speaker, seq: int) -> Judged:
    spec = speaker.spec
    request = render(spec.request, speaker, seq)
    per_request = spec.pattern == "connect-per-request"
    client = speaker.connect() if per_request else speaker.connection()
    try:
        if spec.protocol == "lines":
            client.send(request if request.endswith(b"\n") else request + b"\n")
            reply = client.recv_line().rstrip(b"\r\n")
        else:
            client.send(_LENGTH.pack(len(request)) + request)
            (size,) = _LENGTH.unpack(client.recv_exactly(_LENGTH.size))
            if size > _MAX_REPLY:
                speaker.disconnect()
                return "corrupt", f"a reply length of {size} bytes (a wrong prefix?)"
            reply = client.recv_exactly(size)
    finally:
        if per_request:
            client.close()
    exact = None if spec.expect_reply is None else render(spec.expect_reply, speaker, seq)
    return judge_reply(spec, reply, exact)


def judge_reply(spec: ClientSpec, reply: bytes, exact: bytes | None) -> Judged:
    """Whether a reply is the expected one (exactly, or matching ``expect_match``)."""
    if exact is not None and reply != exact.rstrip(b"\r\n"):
        return "corrupt", f"expected {exact[:60]!r}, got {reply[:60]!r}"
    if spec.expect_match is not None:
        text = reply.decode("utf-8", "replace")
        if re.search(spec.expect_match, text) is None:
            return "corrupt", f"the reply does not match {spec.expect_match!r}: {reply[:60]!r}"
    return "ok", ""


# -- the user's own workload ---------------------------------------------------------------------


def _workload(speaker: Speaker, seq: int) -> Judged:
    workload = speaker.workload
    assert workload is not None
    try:
        workload(speaker.address, speaker.random, seq)
    except AssertionError as exc:
        return "corrupt", f"the workload's check failed: {exc}"[:200]
    except (TimeoutError, OSError, EOFError):
        raise  # Lost or failed, as for the built-in clients.
    except Exception as exc:  # A client library's own error: the call failed ...
        if "timeout" in type(exc).__name__.lower():  # ... or timed out (redis, requests).
            return "lost", f"{type(exc).__name__}: {exc}"[:200]
        return "error", f"{type(exc).__name__}: {exc}"[:200]
    return "ok", ""
