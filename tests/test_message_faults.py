"""Framers, and faults that strike by message (``messages=``, ``after_messages=``)."""

from __future__ import annotations

import http.client
import http.server
import itertools
import socket
import ssl
import struct
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sockharness import UsageError, connect
from sockharness.faults import (
    FaultProxy,
    Framing,
    Latency,
    LengthPrefix,
    LimitData,
    ResetPeer,
    Stall,
    Timeout,
    TLSAbort,
    TLSStall,
    framers,
    parse_fault,
)
from sockharness.handlers import LineEchoHandler, RecordingHandler


def _messages(framer: Any, *chunks: bytes) -> list[bytes]:
    """The messages a framer finds in ``chunks``, fed one after the other."""
    framing = Framing(framer)
    found: dict[int, bytes] = {}
    for chunk in chunks:
        for index, piece in framing.split(chunk):
            found[index] = found.get(index, b"") + piece
    assert framing.failed is None
    return [found[index] for index in sorted(found)]


# -- the framers ----------------------------------------------------------------------------------


def test_lines_end_with_lf_or_crlf_across_any_chunks() -> None:
    assert _messages(framers.lines, b"one\ntw", b"o\r\nthr", b"ee") == [
        b"one\n",
        b"two\r\n",
        b"three",
    ]


@pytest.mark.parametrize(
    ("framer", "header"),
    [
        (LengthPrefix(), lambda n: struct.pack(">I", n)),
        (LengthPrefix(1), lambda n: struct.pack(">B", n)),
        (LengthPrefix(2, "little"), lambda n: struct.pack("<H", n)),
        (LengthPrefix(8), lambda n: struct.pack(">Q", n)),
        (LengthPrefix(4, includes_header=True), lambda n: struct.pack(">I", n + 4)),
    ],
)
def test_length_prefixes(framer: Any, header: Any) -> None:
    bodies = [b"abc", b"", b"x" * 200]
    stream = b"".join(header(len(body)) + body for body in bodies)
    expected = [header(len(body)) + body for body in bodies]
    assert _messages(framer, stream) == expected
    assert _messages(framer, *[stream[i : i + 1] for i in range(len(stream))]) == expected


def test_http_requests_and_responses_keep_alive_chunked_and_bodiless() -> None:
    get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    post = b"POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
    assert _messages(framers.http, get + post + get) == [get, post, get]
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: y\r\n\r\n"
    )
    no_content = b"HTTP/1.1 204 No Content\r\n\r\n"
    sized = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    assert _messages(framers.http, chunked[:30], chunked[30:] + no_content + sized) == [
        chunked,
        no_content,
        sized,
    ]
    until_close = b"HTTP/1.0 200 OK\r\n\r\nthe body runs to the end"
    assert _messages(framers.http, until_close, b" of the connection") == [
        until_close + b" of the connection"
    ]


def test_tls_records() -> None:
    records = [b"\x16\x03\x01\x00\x03abc", b"\x17\x03\x03\x00\x00", b"\x15\x03\x03\x00\x02xy"]
    assert _messages(framers.tls_records, b"".join(records)) == records


@settings(max_examples=80, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=20).map(lambda b: b.replace(b"\n", b"") + b"\n"), max_size=8),
    cuts=st.lists(st.integers(0, 200), max_size=10),
)
def test_any_chunking_finds_the_same_messages(lines: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(lines)
    points = sorted({cut for cut in cuts if cut < len(stream)} | {0, len(stream)})
    chunks = [stream[a:b] for a, b in itertools.pairwise(points)]
    assert _messages(framers.lines, *chunks) == lines


def test_a_broken_framer_is_reported_not_fatal() -> None:
    def broken(message: bytes) -> int | None:
        raise ValueError("no idea")

    framing = Framing(broken)
    assert framing.split(b"abc") == [(0, b"abc")]
    assert framing.failed == "the framer raised ValueError: no idea"
    assert Framing(lambda message: 0).split(b"ab") == [(0, b"ab")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("reset_peer,messages=1", r"messages need a framer .* add framer='lines'"),
        ("reset_peer,framer=lines", r"a framer cuts the stream into messages for messages="),
        ("reset_peer,framer=words,messages=1", r"framer='words' is not a framer: the built-in"),
        ("reset_peer,framer=length-prefix:3,messages=1", r"1, 2, 4 or 8 bytes"),
        ("reset_peer,framer=length-prefix:x,messages=1", r"length-prefix\[:SIZE"),
        ("reset_peer,framer=nosuch.module:f,messages=1", r"could not be imported"),
        (
            "reset_peer,framer=lines,messages=1,after_messages=2",
            "messages and after_messages both say where it strikes",
        ),
        ("refuse,framer=lines,messages=1", "strikes before any byte flows"),
    ],
)
def test_bad_message_triggers_are_clear(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        parse_fault(text)
    assert "\n" not in str(caught.value)


def test_message_triggers_from_text_and_their_repr() -> None:
    fault = parse_fault("reset_peer,framer=lines,messages=0,2,direction=upstream")
    assert fault == ResetPeer(framer="lines", messages=[0, 2], direction="upstream")
    assert repr(fault) == "ResetPeer(direction='upstream', framer='lines', messages='0,2')"
    own = ResetPeer(framer=_first_byte_framer, messages="1")
    assert "framer='tests.test_message_faults:_first_byte_framer'" in repr(own)
    assert parse_fault(f"reset_peer,framer={own.framer.__module__}:_first_byte_framer,messages=1")


def _first_byte_framer(message: bytes) -> int | None:
    """A user's framer: the first byte is the length of what follows."""
    return None if not message else 1 + message[0]


# -- faults by message, through the proxy ---------------------------------------------------------


def test_reset_instead_of_delivering_the_third_request(make_server: Any) -> None:
    server = make_server(RecordingHandler, "tcp")
    server.expect_errors(ConnectionResetError)  # "both": the server is reset too.
    fault = ResetPeer(framer="lines", messages="2")
    with FaultProxy(server.address, "tcp", [fault]) as proxy:
        with connect(proxy.address) as client:
            client.send(b"one\ntwo\nthree\nfour\n")
            with pytest.raises(ConnectionResetError):
                client.recv_all()
        (event,) = proxy.timeline.events
        assert event.effect.startswith("reset the connection at message 2 (")
    assert server.wait_received(1) == [b"one\ntwo\n"]


def test_drop_the_first_two_requests_then_the_connection_closes(make_server: Any) -> None:
    server = make_server(RecordingHandler, "tcp")
    fault = Timeout(0.2, framer="lines", messages="0-1", direction="upstream")
    with FaultProxy(server.address, "tcp", [fault]) as proxy:
        with connect(proxy.address) as client:
            client.send(b"one\ntwo\nthree\n")
            assert client.recv_all() == b""  # Closed after 0.2 s, nothing answered.
    assert server.wait_received(1) == [b""]


def test_after_messages_starts_with_the_next_message(make_server: Any) -> None:
    server = make_server(LineEchoHandler, "tcp")
    fault = ResetPeer(framer="lines", after_messages=2, direction="downstream")
    with FaultProxy(server.address, "tcp", [fault]) as proxy, connect(proxy.address) as client:
        assert client.request(b"a\n") == b"a\n"
        assert client.request(b"b\n") == b"b\n"
        client.send(b"c\n")
        with pytest.raises(ConnectionResetError):
            client.recv_all()
    server.expect_errors(ConnectionResetError, BrokenPipeError)


class _KeepAlive(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_delay_only_the_second_http_response(make_server: Any) -> None:
    server = make_server(_KeepAlive, "tcp", server_class=http.server.ThreadingHTTPServer)
    fault = Latency(0.4, framer="http", messages="1", direction="downstream")
    with FaultProxy(server.address, "tcp", [fault]) as proxy:
        connection = http.client.HTTPConnection(*proxy.address, timeout=5)
        took = []
        try:
            for path in ("/a", "/b", "/c"):
                started = time.monotonic()
                connection.request("GET", path)
                response = connection.getresponse()
                assert response.read() == path.encode()
                took.append(time.monotonic() - started)
        finally:
            connection.close()
        assert proxy.stats.connections == 1  # One keep-alive connection, three exchanges.
    assert took[1] >= 0.4
    assert took[0] < took[1]
    assert took[2] < took[1]
    events = proxy.timeline.events  # One per piece of the 2nd response (head, body).
    assert events
    assert all(event.effect.startswith("delayed ") for event in events)


def test_a_user_framer_in_a_scenario_file(tmp_path: Any) -> None:
    from sockharness.chaos import load_scenario

    path = tmp_path / "framed.toml"
    path.write_text(
        '[scenario]\nname = "x"\nduration = 1\n[server]\nhandler = "echo"\n'
        "[[clients]]\ncount = 1\n[[faults]]\n"
        'fault = "reset_peer"\nframer = "tests.test_message_faults:_first_byte_framer"\n'
        "messages = [1, 3]\n"
    )
    (window,) = load_scenario(path).faults
    assert window.fault == ResetPeer(framer=_first_byte_framer, messages="1,3")


def test_a_tls_handshake_reset_after_the_server_hello(make_server: Any) -> None:
    server = make_server(LineEchoHandler, "tcp", tls=True)
    server.expect_errors(ssl.SSLError, OSError)
    # The server's first record (its ServerHello) reaches the client; the next resets it.
    fault = ResetPeer(framer="tls-records", after_messages=1, direction="downstream")
    with FaultProxy(server.address, "tcp", [fault]) as proxy:
        with socket.create_connection(proxy.address, timeout=5) as raw:
            context = server.client_tls_context
            assert context is not None
            with pytest.raises((ConnectionResetError, ssl.SSLError)):
                context.wrap_socket(raw, server_hostname="localhost").close()
        (event,) = proxy.timeline.events
        assert event.effect.startswith("reset the connection after 1 messages")


# -- TLS handshake faults -----------------------------------------------------------------------


def _handshake(context: ssl.SSLContext, address: Any, timeout: float) -> float:
    """Seconds to a TLS connection made and one line echoed over it.

    The line matters: a TLS 1.3 server sends its session tickets after the
    handshake, and a client that closes before reading them has unread data,
    so its kernel resets the connection, and the server's handler meets the
    reset (an intermittent failure, seen under load). Reading the reply reads
    the tickets first.
    """
    started = time.monotonic()
    with socket.create_connection(address, timeout=timeout) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"hi\n")
            assert tls.recv(16) == b"hi\n"
    return time.monotonic() - started


def test_tls_stall_after_the_client_hello_for_good(make_server: Any) -> None:
    server = make_server(LineEchoHandler, "tcp", tls=True)
    server.expect_errors(ssl.SSLError, OSError)
    with FaultProxy(server.address, "tcp", [TLSStall()]) as proxy:
        context = server.client_tls_context
        assert context is not None
        with pytest.raises(TimeoutError):
            _handshake(context, proxy.address, timeout=0.5)
        assert proxy.timeline.events[0].effect.startswith("held back ")


def test_tls_stall_after_the_server_hello_for_a_while(make_server: Any) -> None:
    server = make_server(LineEchoHandler, "tcp", tls=True)
    with FaultProxy(server.address, "tcp", [TLSStall("server_hello", delay=0.3)]) as proxy:
        context = server.client_tls_context
        assert context is not None
        assert _handshake(context, proxy.address, timeout=5) >= 0.3
        assert _handshake(context, proxy.address, timeout=5) >= 0.3  # Every connection.
        assert proxy.unfired() == []


def test_tls_abort_resets_mid_handshake(make_server: Any) -> None:
    server = make_server(LineEchoHandler, "tcp", tls=True)
    server.expect_errors(ssl.SSLError, OSError)
    with FaultProxy(server.address, "tcp", [TLSAbort("server_hello", connections="0")]) as proxy:
        context = server.client_tls_context
        assert context is not None
        with pytest.raises((ConnectionResetError, ssl.SSLError)):
            _handshake(context, proxy.address, timeout=5)
        _handshake(context, proxy.address, timeout=5)  # Connection 1: not chosen.
        (event,) = proxy.timeline.events
        assert event.effect.startswith("reset the connection after the ServerHello")


def test_tls_faults_from_text_and_their_limits() -> None:
    assert parse_fault("tls_stall=server_hello,delay=1") == TLSStall("server_hello", delay=1)
    assert repr(TLSAbort()) == "TLSAbort()"
    with pytest.raises(UsageError, match=r"TLSStall\(after='finished'\): use 'client_hello'"):
        parse_fault("tls_stall=finished")
    with pytest.raises(UsageError, match=r"knows where it strikes \(after=\); leave framer out"):
        TLSAbort(framer="lines")
    with pytest.raises(UsageError, match="leave direction out"):
        TLSAbort(direction="upstream")


def test_a_stall_for_a_while_then_the_data_flows(make_server: Any) -> None:
    server = make_server(LineEchoHandler, "tcp")
    fault = Stall(0.3, after_bytes=3, direction="upstream")
    with FaultProxy(server.address, "tcp", [fault]) as proxy, connect(proxy.address) as client:
        started = time.monotonic()
        assert client.request(b"ab\n") == b"ab\n"  # 3 bytes: before the stall.
        assert client.request(b"cd\n") == b"cd\n"
        assert time.monotonic() - started >= 0.3
        started = time.monotonic()
        assert client.request(b"ef\n") == b"ef\n"
        assert time.monotonic() - started < 0.3  # Released: the data flows again.


# -- scanners: the built-in framers in linear time ------------------------------------------------


def _by_function(framer: Any, *chunks: bytes) -> list[bytes]:
    """What the framer function alone finds (Framing uses its scanner)."""

    def plain(message: bytes) -> int | None:
        return framer(message)

    return _messages(plain, *chunks)


_HTTP_MESSAGES = st.sampled_from(
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n1;x=y\r\nz\r\n0\r\nT: 1\r\n\r\n",
        b"PUT /q HTTP/1.1\nContent-Length: 2\n\nok",
    ]
)


@settings(max_examples=150, deadline=None)
@given(
    framer=st.sampled_from(["lines", "http", "tls-records", "length-prefix"]),
    http_messages=st.lists(_HTTP_MESSAGES, max_size=5),
    bodies=st.lists(st.binary(max_size=40), max_size=5),
    cuts=st.lists(st.integers(0, 400), max_size=8),
)
def test_a_scanner_finds_what_its_framer_function_finds(
    framer: str, http_messages: list[bytes], bodies: list[bytes], cuts: list[int]
) -> None:
    if framer == "http":
        stream = b"".join(http_messages)
    elif framer == "lines":
        stream = b"".join(body.replace(b"\n", b"") + b"\n" for body in bodies)
    elif framer == "tls-records":
        stream = b"".join(b"\x17\x03\x03" + len(b).to_bytes(2, "big") + b for b in bodies)
    else:
        stream = b"".join(len(b).to_bytes(4, "big") + b for b in bodies)
    points = sorted({cut for cut in cuts if cut < len(stream)} | {0, len(stream)})
    chunks = [stream[a:b] for a, b in itertools.pairwise(points)]
    function = framers.FRAMERS[framer]
    assert _messages(function, *chunks) == _by_function(function, *chunks)


def test_a_long_message_is_framed_in_linear_time() -> None:
    # 16 MB without a newline, 64 kB at a time: each byte is looked at once
    # (a framer shown the whole message each time would take hours here).
    framing = Framing(framers.lines)
    piece = b"x" * 65536
    for _ in range(256):
        assert framing.split(piece) == [(0, piece)]
    assert framing.split(b"end\nnext") == [(0, b"end\n"), (1, b"next")]


def test_a_framer_function_that_never_answers_stops_at_max_head() -> None:
    framing = Framing(lambda message: None)
    piece = b"y" * 65536
    for _ in range(framers.MAX_HEAD // len(piece) + 2):
        framing.split(piece)
    assert framing.failed == f"the framer found no end within the first {framers.MAX_HEAD} bytes"


def test_an_http_head_that_never_ends_stops_the_framing() -> None:
    framing = Framing(framers.http)
    framing.split(b"GET / HTTP/1.1\r\n")
    framing.split(b"X: " + b"y" * framers.MAX_HTTP_HEAD)
    assert framing.failed is not None
    assert "no end of an HTTP head" in framing.failed


@settings(max_examples=150, deadline=None)
@given(
    trigger=st.one_of(
        st.fixed_dictionaries(
            {"framer": st.just("lines"), "messages": st.sampled_from(["1", "3-"])}
        ),
        st.fixed_dictionaries({"framer": st.just("lines"), "after_messages": st.integers(0, 4)}),
        st.fixed_dictionaries({"after_bytes": st.integers(0, 30)}),
    ),
    writes=st.lists(st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"") + b"\n"),
                    max_size=8),
)  # fmt: skip
def test_the_relays_fast_path_decides_as_the_plan_does(
    trigger: dict[str, Any], writes: list[bytes]
) -> None:
    from sockharness.faults._plans import StreamPlan

    fault = LimitData(5, **trigger)
    slow = StreamPlan([fault], seed=0, connection=0, direction="upstream", started=0.0)
    fast = StreamPlan([fault], seed=0, connection=0, direction="upstream", started=0.0)
    through_slow, through_fast = b"", b""
    for n, data in enumerate(writes):
        through_slow += b"".join(a.data for a in slow.data(float(n), data) if a.kind == "data")
        if fast.passes(data):
            through_fast += data
        else:
            through_fast += b"".join(a.data for a in fast.data(float(n), data) if a.kind == "data")
    assert through_fast == through_slow
    assert fast.usage() == slow.usage()
