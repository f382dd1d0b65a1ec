"""The Toxiproxy-compatible control API, over real HTTP: the stdlib's client, an existing
Toxiproxy client library (toxiproxy-python), and the command line as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sockharness import RunningServer, UsageError, connect, start_server
from sockharness.control import APIError, ProxyAPI, ProxyAPIServer
from sockharness.handlers import EchoHandler, LineEchoHandler


@pytest.fixture
def api() -> Iterator[ProxyAPIServer]:
    with ProxyAPIServer(seed=7) as server:
        yield server


@pytest.fixture
def echo() -> Iterator[RunningServer]:
    with start_server(LineEchoHandler) as server:
        yield server


def call(
    api: ProxyAPIServer, method: str, path: str, body: Any = None, headers: Any = None
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        api.url + path, data=data, method=method, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            raw = reply.read()
            if "json" not in reply.headers.get("Content-Type", ""):
                return reply.status, raw.decode() or None
            return reply.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        with error:
            raw = error.read()
        return error.code, json.loads(raw) if raw else None


#: A toxic latency far above any loopback round trip on a busy machine: with it a round trip
#: takes at least this long, without it less (an effect check with a wide margin).
SLOW = 0.6


def upstream(server: RunningServer) -> str:
    host, port = server.address
    return f"{host}:{port}"


def make(api: ProxyAPIServer, server: RunningServer, name: str = "echo", **extra: Any) -> Any:
    status, proxy = call(
        api, "POST", "/proxies", {"name": name, "upstream": upstream(server)} | extra
    )
    assert status == 201, proxy
    return proxy


def address(proxy: dict[str, Any]) -> tuple[str, int]:
    host, _, port = proxy["listen"].rpartition(":")
    return host, int(port)


def round_trip(where: tuple[str, int], payload: bytes = b"ping\n") -> float:
    began = time.monotonic()
    with connect(where, timeout=5) as client:
        assert client.request(payload) == payload
    return time.monotonic() - began


# -- proxies ----------------------------------------------------------------------------------


def test_version_is_json_as_toxiproxy_2_answers(api: ProxyAPIServer) -> None:
    status, body = call(api, "GET", "/version")
    assert status == 200
    assert body["version"].startswith("2.")


def test_a_proxy_is_created_listed_shown_and_deleted(
    api: ProxyAPIServer, echo: RunningServer
) -> None:
    proxy = make(api, echo, listen="127.0.0.1:0")
    assert proxy["enabled"] is True
    assert proxy["toxics"] == []
    assert address(proxy)[1] != 0  # Port 0 became the real one, here and later.
    assert call(api, "GET", "/proxies") == (200, {"echo": proxy})
    assert call(api, "GET", "/proxies/echo") == (200, proxy)
    round_trip(address(proxy))
    assert call(api, "DELETE", "/proxies/echo") == (204, None)
    assert call(api, "GET", "/proxies/echo")[0] == 404
    with pytest.raises(ConnectionRefusedError):
        round_trip(address(proxy))


@pytest.mark.parametrize(
    ("request_line", "body", "status", "message"),
    [
        ("POST /proxies", {"upstream": "127.0.0.1:1"}, 400, "missing required field: name"),
        ("POST /proxies", {"name": "x"}, 400, "missing required field: upstream"),
        ("POST /proxies", {"name": "x", "upstream": "nowhere"}, 400, "upstream 'nowhere'"),
        ("POST /proxies", {"name": "x", "upstream": "h:1", "colour": 1}, 400, "colour"),
        ("POST /proxies", {"name": "x", "upstream": "h:1", "enabled": "yes"}, 400, "enabled"),
        ("POST /proxies", [1], 400, "bad request body"),
        ("GET /proxies/ghost", None, 404, "proxy not found: ghost"),
        ("GET /proxies/ghost/toxics", None, 404, "proxy not found: ghost"),
        ("GET /nowhere", None, 404, "no such endpoint"),
        ("DELETE /proxies", None, 405, "DELETE is not allowed"),
        ("POST /populate", {"name": "x"}, 400, "a JSON array"),
        ("POST /populate", [{"name": "x"}], 400, "upstream at proxy 1"),
    ],
)
def test_a_bad_request_gets_toxiproxys_error_shape_naming_the_field(
    api: ProxyAPIServer, request_line: str, body: Any, status: int, message: str
) -> None:
    method, path = request_line.split(" ")
    got, error = call(api, method, path, body)
    assert got == status
    assert set(error) == {"error", "status"}
    assert error["status"] == status
    assert message in error["error"]
    assert call(api, "GET", "/proxies") == (200, {})  # Nothing half made.


def test_garbage_bodies_never_break_the_server(api: ProxyAPIServer) -> None:
    for raw in (b"{", b"\xff\xfe", b"null", b"[]", b'"text"', b"1e999999"):
        request = urllib.request.Request(api.url + "/proxies", data=raw, method="POST")
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        caught.value.close()
        assert caught.value.code == 400, raw
    assert call(api, "GET", "/version")[0] == 200


def test_a_second_proxy_of_the_same_name_is_a_conflict(
    api: ProxyAPIServer, echo: RunningServer
) -> None:
    make(api, echo)
    status, error = call(api, "POST", "/proxies", {"name": "echo", "upstream": upstream(echo)})
    assert (status, error["error"]) == (409, "proxy already exists: echo")


def test_a_browser_is_refused_as_toxiproxy_refuses_it(api: ProxyAPIServer) -> None:
    status, _ = call(api, "GET", "/proxies", headers={"User-Agent": "Mozilla/5.0 (X11)"})
    assert status == 403


def test_disabled_refuses_and_cuts_and_enabled_listens_again_at_the_same_address(
    api: ProxyAPIServer, echo: RunningServer
) -> None:
    proxy = make(api, echo)
    where = address(proxy)
    live = connect(where, timeout=5)
    assert live.request(b"before\n") == b"before\n"
    status, shown = call(api, "POST", "/proxies/echo", {"enabled": False})
    assert (status, shown["enabled"], shown["listen"]) == (200, False, proxy["listen"])
    with pytest.raises(ConnectionRefusedError):
        round_trip(where)
    assert live.recv_all() == b""  # The live connection was cut.
    live.close()
    status, shown = call(api, "PATCH", "/proxies/echo", {"enabled": True})
    assert (status, shown["enabled"], shown["listen"]) == (200, True, proxy["listen"])
    round_trip(where)


def test_an_update_that_moves_the_upstream_keeps_the_toxics(api: ProxyAPIServer) -> None:
    with start_server(LineEchoHandler) as first, start_server(LineEchoHandler) as second:
        made = make(api, first)
        call(
            api, "POST", "/proxies/echo/toxics", {"type": "latency", "attributes": {"latency": 50}}
        )
        status, moved = call(api, "POST", "/proxies/echo", {"upstream": upstream(second)})
        assert status == 200
        assert moved["upstream"] == upstream(second)
        assert moved["listen"] == made["listen"]  # Left out, the listen address stays.
        assert [toxic["name"] for toxic in moved["toxics"]] == ["latency_downstream"]
        assert round_trip(address(moved)) >= 0.05


def test_populate_creates_keeps_replaces_and_is_all_or_nothing(
    api: ProxyAPIServer, echo: RunningServer
) -> None:
    up = upstream(echo)
    status, body = call(api, "POST", "/populate", [{"name": "a", "upstream": up}])
    assert status == 201
    (first,) = body["proxies"]
    call(api, "POST", "/proxies/a/toxics", {"type": "latency", "attributes": {"latency": 1}})
    # The same place again: kept, toxics and all; a new one beside it.
    status, body = call(
        api, "POST", "/populate", [{"name": "a", "upstream": up}, {"name": "b", "upstream": up}]
    )
    assert status == 201
    kept, made = body["proxies"]
    assert made["name"] == "b"
    assert kept["listen"] == first["listen"]
    assert len(kept["toxics"]) == 1
    # A bad entry anywhere: nothing changes.
    status, error = call(
        api, "POST", "/populate", [{"name": "c", "upstream": up}, {"name": "d", "upstream": "x"}]
    )
    assert status == 400
    assert "at proxy 2" in error["error"]
    assert sorted(call(api, "GET", "/proxies")[1]) == ["a", "b"]


def test_reset_enables_every_proxy_and_removes_every_toxic(
    api: ProxyAPIServer, echo: RunningServer
) -> None:
    proxy = make(api, echo)
    call(api, "POST", "/proxies/echo/toxics", {"type": "latency", "attributes": {"latency": 600}})
    call(api, "POST", "/proxies/echo", {"enabled": False})
    assert call(api, "POST", "/reset") == (204, None)
    shown = call(api, "GET", "/proxies/echo")[1]
    assert (shown["enabled"], shown["toxics"]) == (True, [])
    assert round_trip(address(proxy)) < SLOW


# -- toxics -----------------------------------------------------------------------------------


def test_a_latency_toxic_in_toxiproxys_units_delays_and_its_update_takes_effect(
    api: ProxyAPIServer, echo: RunningServer
) -> None:
    where = address(make(api, echo))
    status, toxic = call(
        api, "POST", "/proxies/echo/toxics", {"type": "latency", "attributes": {"latency": 600}}
    )
    assert status == 200
    assert toxic == {
        "attributes": {"latency": 600, "jitter": 0},
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1.0,
    }
    assert round_trip(where) >= SLOW
    status, toxic = call(
        api, "POST", "/proxies/echo/toxics/latency_downstream", {"attributes": {"latency": 0}}
    )
    assert (status, toxic["attributes"]["latency"]) == (200, 0)
    assert round_trip(where) < SLOW
    assert call(api, "GET", "/proxies/echo/toxics") == (200, [toxic])
    assert call(api, "DELETE", "/proxies/echo/toxics/latency_downstream") == (204, None)
    assert call(api, "GET", "/proxies/echo/toxics/latency_downstream")[0] == 404


@pytest.mark.parametrize(
    ("toxic", "status", "message"),
    [
        ({"type": "latency", "stream": "sideways"}, 400, "stream was invalid"),
        ({"type": "gremlin"}, 400, "invalid toxic type: 'gremlin'"),
        ({"stream": "upstream"}, 400, "missing required field: type"),
        ({"type": "latency", "attributes": {"latency": "x"}}, 400, "attributes.latency"),
        ({"type": "latency", "attributes": {"latency": -1}}, 400, "attributes.latency"),
        ({"type": "latency", "attributes": {"lag": 1}}, 400, "attributes.lag"),
        ({"type": "latency", "toxicity": 1.5}, 400, "toxicity"),
        ({"type": "bandwidth"}, 400, "attributes.rate"),
        ({"type": "slicer", "attributes": {"average_size": 0}}, 400, "attributes.average_size"),
        ({"type": "loss", "attributes": {"probability": 0.5}}, 400, "is a datagram fault"),
        ({"type": "accept_delay", "attributes": {"delay": "soon"}}, 400, "attributes.delay"),
    ],
)
def test_a_bad_toxic_is_a_400_naming_the_field_and_nothing_is_added(
    api: ProxyAPIServer, echo: RunningServer, toxic: dict[str, Any], status: int, message: str
) -> None:
    make(api, echo)
    got, error = call(api, "POST", "/proxies/echo/toxics", toxic)
    assert (got, error["status"]) == (status, status)
    assert message in error["error"]
    assert call(api, "GET", "/proxies/echo/toxics") == (200, [])


def test_a_toxic_name_is_unique_per_proxy(api: ProxyAPIServer, echo: RunningServer) -> None:
    make(api, echo)
    body = {"type": "latency", "attributes": {"latency": 1}}
    assert call(api, "POST", "/proxies/echo/toxics", body)[0] == 200
    status, error = call(api, "POST", "/proxies/echo/toxics", body)
    assert (status, error["error"]) == (409, "toxic already exists: latency_downstream")


def test_limit_data_and_timeout_zero_in_toxiproxys_units(
    api: ProxyAPIServer,
) -> None:
    with start_server(EchoHandler) as server:
        where = address(make(api, server))
        call(
            api, "POST", "/proxies/echo/toxics", {"type": "limit_data", "attributes": {"bytes": 4}}
        )
        with connect(where, timeout=5) as client:
            client.send(b"abcdefgh")
            assert client.recv_all() == b"abcd"
        call(api, "DELETE", "/proxies/echo/toxics/limit_data_downstream")
        # timeout 0: the data is held and the connection never closed.
        call(api, "POST", "/proxies/echo/toxics", {"type": "timeout", "attributes": {"timeout": 0}})
        with connect(where, timeout=0.3) as client:
            client.send(b"held\n")
            with pytest.raises(TimeoutError):
                client.recv_line()


def test_reset_peer_at_toxicity_zero_never_resets(api: ProxyAPIServer, echo: RunningServer) -> None:
    where = address(make(api, echo))
    call(
        api,
        "POST",
        "/proxies/echo/toxics",
        {"type": "reset_peer", "toxicity": 0, "attributes": {"timeout": 0}},
    )
    for _ in range(5):
        round_trip(where)


def test_a_half_close_is_passed_on(api: ProxyAPIServer) -> None:
    with start_server(EchoHandler) as server:
        where = address(make(api, server))
        with connect(where, timeout=5) as client:
            client.send(b"all of it")
            client.shutdown_write()
            assert client.recv_all() == b"all of it"


def test_our_own_faults_are_toxic_types_with_their_own_attributes(
    api: ProxyAPIServer, echo: RunningServer
) -> None:
    where = address(make(api, echo))
    status, toxic = call(
        api, "POST", "/proxies/echo/toxics", {"type": "refuse", "attributes": {"connections": "0-"}}
    )
    assert status == 200, toxic
    with pytest.raises((ConnectionError, OSError)):
        round_trip(where)


def test_a_udp_proxy_which_toxiproxy_cannot_make() -> None:
    from sockharness.handlers import EchoHandler as Echo

    with start_server(Echo, "udp") as server, ProxyAPIServer() as api:
        status, proxy = call(
            api,
            "POST",
            "/proxies",
            {"name": "dns", "upstream": upstream(server), "protocol": "udp"},
        )
        assert status == 201, proxy
        assert proxy["protocol"] == "udp"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(5)
            client.sendto(b"datagram", address(proxy))
            assert client.recv(100) == b"datagram"
        status, toxic = call(
            api, "POST", "/proxies/dns/toxics", {"type": "loss", "attributes": {"probability": 1}}
        )
        assert status == 200, toxic
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(0.3)
            client.sendto(b"lost", address(proxy))
            with pytest.raises(TimeoutError):
                client.recv(100)


def test_metrics_count_connections_bytes_and_toxic_events(
    api: ProxyAPIServer, echo: RunningServer
) -> None:
    where = address(make(api, echo))
    call(api, "POST", "/proxies/echo/toxics", {"type": "latency", "attributes": {"latency": 1}})
    for _ in range(3):
        round_trip(where, b"12345\n")
    with urllib.request.urlopen(api.url + "/metrics", timeout=10) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    assert 'sockharness_proxy_connections_total{proxy="echo"} 3' in text
    assert 'sockharness_proxy_bytes_total{proxy="echo",direction="upstream"} 18' in text
    assert 'sockharness_proxy_bytes_total{proxy="echo",direction="downstream"} 18' in text
    assert "# TYPE sockharness_proxy_active_connections gauge" in text
    events = [line for line in text.splitlines() if line.startswith("sockharness_proxy_toxic")]
    (line,) = events
    assert 'toxic="latency_downstream"' in line
    assert int(line.rsplit(" ", 1)[1]) > 0


def test_the_api_stays_on_loopback_unless_told() -> None:
    with pytest.raises(UsageError, match="--api-any-host"):
        ProxyAPIServer("0.0.0.0")


# -- an existing Toxiproxy client, unchanged --------------------------------------------------


def test_the_toxiproxy_python_client_drives_it_unchanged(
    api: ProxyAPIServer, echo: RunningServer
) -> None:
    toxiproxy = pytest.importorskip("toxiproxy")
    server = toxiproxy.Toxiproxy()
    host, port = api.address
    server.update_api_consumer(host, port)
    assert server.running()
    proxy = server.create(upstream=upstream(echo), name="echo")
    where = address({"listen": proxy.listen})
    assert round_trip(where) < SLOW
    proxy.add_toxic(type="latency", attributes={"latency": 600})
    assert list(proxy.toxics()) == ["latency_downstream"]
    assert round_trip(where) >= SLOW
    with proxy.down(), pytest.raises(ConnectionRefusedError):
        round_trip(where)
    round_trip(where)
    proxy.destroy_toxic("latency_downstream")
    assert round_trip(where) < SLOW
    with pytest.raises(toxiproxy.exceptions.ProxyExists):
        server.create(upstream=upstream(echo), name="echo")
    server.reset()
    server.destroy(proxy)
    assert server.proxies() == {}


# -- the command line -------------------------------------------------------------------------


def test_sockharness_proxy_api_serves_until_interrupted(echo: RunningServer) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "sockharness", "proxy", "--api", "127.0.0.1:0", "--seed", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "proxy API at http://127.0.0.1:" in line, line
        url = line.split(" at ", 1)[1].split(" ", 1)[0]
        request = urllib.request.Request(
            url + "/proxies",
            data=json.dumps({"name": "echo", "upstream": upstream(echo)}).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            proxy = json.load(reply)
        round_trip(address(proxy))
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "stopped, with 1 proxy" in out


def test_sockharness_proxy_api_refuses_bad_options_in_one_line() -> None:
    for arguments, message in [
        (["--api", "10.1.2.3:8474"], "--api-any-host"),
        (["--api", "127.0.0.1:port"], "is not HOST:PORT"),
        (["--api", "127.0.0.1:0", "--upstream", "127.0.0.1:1"], "does not go with --api"),
        ([], "--upstream is required"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "sockharness", "proxy", *arguments],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 2, arguments
        assert message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


# -- the config file --------------------------------------------------------------------------


def _config(path: Any, proxies: list[dict[str, Any]]) -> None:
    path.write_text(json.dumps(proxies))


def test_populate_takes_toxics_and_makes_them_exactly_so(
    api: ProxyAPIServer, echo: RunningServer
) -> None:
    up = upstream(echo)
    latency = {"type": "latency", "attributes": {"latency": 600}}
    status, body = call(
        api, "POST", "/populate", [{"name": "a", "upstream": up, "toxics": [latency]}]
    )
    assert status == 201, body
    (proxy,) = body["proxies"]
    assert [toxic["name"] for toxic in proxy["toxics"]] == ["latency_downstream"]
    assert round_trip(address(proxy)) >= SLOW
    # The same place, other toxics: those, and only those, on the same relay.
    slow_close = {"type": "slow_close", "attributes": {"delay": 1}}
    status, body = call(
        api, "POST", "/populate", [{"name": "a", "upstream": up, "toxics": [slow_close]}]
    )
    (again,) = body["proxies"]
    assert again["listen"] == proxy["listen"]
    assert [toxic["name"] for toxic in again["toxics"]] == ["slow_close_downstream"]
    assert round_trip(address(again)) < SLOW
    status, error = call(
        api, "POST", "/populate", [{"name": "a", "upstream": up, "toxics": [{"type": "nope"}]}]
    )
    assert status == 400
    assert "(toxics[0] at proxy 1)" in error["error"]


def test_the_config_file_makes_proxies_with_their_toxics_and_reloads(
    tmp_path: Any, echo: RunningServer
) -> None:
    config = tmp_path / "proxies.json"
    up = upstream(echo)
    latency = {"type": "latency", "attributes": {"latency": 600}}
    _config(
        config,
        [{"name": "db", "upstream": up, "toxics": [latency]}, {"name": "old", "upstream": up}],
    )
    with ProxyAPIServer(config=config) as api:
        proxies = call(api, "GET", "/proxies")[1]
        assert sorted(proxies) == ["db", "old"]
        where = address(proxies["db"])
        assert round_trip(where) >= SLOW
        make(api, echo, name="mine")  # Made through the API: a reload leaves it alone.
        _config(
            config, [{"name": "db", "upstream": up, "toxics": []}, {"name": "new", "upstream": up}]
        )
        assert api.reload() == ["db", "new"]
        proxies = call(api, "GET", "/proxies")[1]
        assert sorted(proxies) == ["db", "mine", "new"]
        assert proxies["db"]["listen"] == f"{where[0]}:{where[1]}"
        assert round_trip(where) < SLOW
        config.write_text("[{")
        with pytest.raises(UsageError, match="is not valid JSON"):
            api.reload()
        assert sorted(call(api, "GET", "/proxies")[1]) == ["db", "mine", "new"]


def test_a_toml_config_file(tmp_path: Any, echo: RunningServer) -> None:
    config = tmp_path / "proxies.toml"
    config.write_text(
        f'[[proxies]]\nname = "db"\nupstream = "{upstream(echo)}"\n\n'
        '[[proxies.toxics]]\ntype = "latency"\nattributes = { latency = 60 }\n'
    )
    with ProxyAPIServer(config=config) as api:
        proxy = call(api, "GET", "/proxies/db")[1]
        assert proxy["toxics"][0]["attributes"]["latency"] == 60
        assert round_trip(address(proxy)) >= 0.06


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[{", "is not valid JSON"),
        ('{"proxy": []}', "proxy: unknown key"),
        ('[{"name": "x"}]', "missing required field: upstream at proxy 1"),
        ('[{"name": "x", "upstream": "127.0.0.1:1", "toxics": [{"type": "lag"}]}]', "'lag'"),
    ],
)
def test_a_bad_config_file_is_one_line_naming_the_file_and_leaves_nothing(
    tmp_path: Any, text: str, message: str
) -> None:
    config = tmp_path / "bad.json"
    config.write_text(text)
    with pytest.raises(UsageError) as caught:
        ProxyAPIServer(config=config)
    assert str(config) in str(caught.value)
    assert message in str(caught.value)
    done = subprocess.run(
        _api_command(config), capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


#: Each stream's queue of lines (weak: a new process's stream may reuse an old one's id).
_READERS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _line(stream: Any, timeout: float = 20.0) -> str:
    """The next line of a process's output, within ``timeout`` (or a failure, never a hang).

    A thread per stream reads its lines into a queue: a select() on the pipe would miss
    lines already read into the stream's buffer.
    """
    import queue

    lines = _READERS.get(stream)
    if lines is None:
        lines = _READERS[stream] = queue.Queue()
        threading.Thread(target=_pump, args=(stream, lines), daemon=True).start()
    try:
        return str(lines.get(timeout=timeout))
    except queue.Empty:
        raise AssertionError(f"no line within {timeout} s") from None


def _rest(stream: Any, timeout: float = 20.0) -> str:
    """Every line left until the stream ends (the process exited), within ``timeout``."""
    deadline = time.monotonic() + timeout
    rest = []
    while (line := _line(stream, max(0.1, deadline - time.monotonic()))) != "":
        rest.append(line)
    return "".join(rest)


def _finish(process: subprocess.Popen[str]) -> tuple[str, str]:
    """Wait for the process (killed if it outlives 20 s): what is left of its output; its
    pipes closed."""
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=20)
    out, err = _rest(process.stdout), _rest(process.stderr)
    for stream in (process.stdout, process.stderr):
        assert stream is not None
        stream.close()
    return out, err


def _pump(stream: Any, lines: Any) -> None:
    for line in stream:
        lines.put(line)
    lines.put("")


def _api_command(config: Any) -> list[str]:
    return [sys.executable, "-m", "sockharness", "proxy", "--api", "127.0.0.1:0", "--config",
            str(config)]  # fmt: skip


def _start_api(config: Any) -> subprocess.Popen[str]:
    """``sockharness proxy --api 127.0.0.1:0 --config CONFIG``, its output piped, unbuffered."""
    return subprocess.Popen(
        _api_command(config),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


def test_sighup_reloads_the_config_file(tmp_path: Any, echo: RunningServer) -> None:
    config = tmp_path / "proxies.json"
    up = upstream(echo)
    _config(config, [{"name": "a", "upstream": up}])
    process = _start_api(config)
    try:
        first = _line(process.stdout)
        assert "1 proxy from" in first, first
        _config(config, [{"name": "a", "upstream": up}, {"name": "b", "upstream": up}])
        process.send_signal(signal.SIGHUP)
        line = _line(process.stdout)
        assert "reloaded" in line
        assert "a, b" in line
        config.write_text("nonsense")
        process.send_signal(signal.SIGHUP)
        assert "reload failed, nothing changed" in _line(process.stderr)
        process.send_signal(signal.SIGINT)
    finally:
        out, err = _finish(process)
    assert process.returncode == 0, err
    assert "stopped, with 2 proxies" in out


# -- the Python client and the fixture --------------------------------------------------------


def test_the_client_makes_proxies_and_toxics_as_context_managers(
    api: ProxyAPIServer, echo: RunningServer
) -> None:
    client = ProxyAPI(api.url)
    assert client.version().startswith("2.")
    proxy = client.create("echo", echo.address)
    assert round_trip(proxy.address) < SLOW
    with proxy.toxic("latency", latency=600) as toxic:
        assert toxic["name"] == "latency_downstream"
        assert round_trip(proxy.address) >= SLOW
        client.proxy("echo").update_toxic("latency_downstream", latency=0)
        assert round_trip(proxy.address) < SLOW
    assert proxy.toxics() == []
    with proxy.down(), pytest.raises(ConnectionRefusedError):
        round_trip(proxy.address)
    assert proxy.enabled
    round_trip(proxy.address)
    assert "sockharness_proxy_connections_total" in client.metrics()
    (again,) = client.populate([{"name": "echo", "upstream": upstream(echo)}])
    assert again.listen == proxy.listen
    (again,) = client.populate(
        [{"name": "echo", "upstream": upstream(echo), "listen": proxy.listen}]
    )
    assert again.listen == proxy.listen
    with pytest.raises(APIError) as caught:
        client.create("echo", echo.address)
    assert (caught.value.status, caught.value.message) == (409, "proxy already exists: echo")
    with pytest.raises(APIError, match="invalid toxic type"):
        proxy.add_toxic("gremlin")
    proxy.delete()
    assert client.proxies() == {}


def test_odd_proxy_names_travel_quoted() -> None:
    with start_server(LineEchoHandler) as server, ProxyAPIServer() as api:
        client = ProxyAPI(api.url)
        proxy = client.create("my db/1 ünïcode", server.address)
        assert client.proxy("my db/1 ünïcode").listen == proxy.listen
        proxy.add_toxic("latency", latency=1)
        assert [t["name"] for t in client.proxy("my db/1 ünïcode").toxics()] == [
            "latency_downstream"
        ]


def test_the_client_says_when_there_is_no_api() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(APIError, match="no proxy API at"):
        ProxyAPI(f"http://127.0.0.1:{port}").version()
    with pytest.raises(APIError, match="http://HOST:PORT"):
        ProxyAPI("127.0.0.1:8474")


def test_the_proxy_api_fixture_cleans_up_after_each_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import json, subprocess, sys, time
        from sockharness import connect
        from sockharness.handlers import LineEchoHandler

        def test_makes_a_proxy(proxy_api, make_server):
            server = make_server(LineEchoHandler)
            proxy = proxy_api.create("db", server.address)
            proxy.add_toxic("latency", latency=50)
            began = time.monotonic()
            with connect(proxy.address) as client:
                assert client.request(b"x\\n") == b"x\\n"
            assert time.monotonic() - began >= 0.05
            # The address goes to another process, as to a container.
            code = (
                "import json, sys, urllib.request;"
                "print(json.load(urllib.request.urlopen(sys.argv[1] + '/proxies'))['db']['name'])"
            )
            done = subprocess.run([sys.executable, "-c", code, proxy_api.url],
                                  capture_output=True, text=True, timeout=30)
            assert done.stdout.strip() == "db"

        def test_sees_none_of_it(proxy_api):
            assert proxy_api.proxies() == {}
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=2)


# -- -v: what the proxy does, as it happens ---------------------------------------------------


def test_a_watched_proxy_tells_each_connection_and_decision(echo: RunningServer) -> None:
    from sockharness.faults import FaultProxy, Latency

    lines: list[str] = []
    with FaultProxy(echo.address, faults=[Latency(0.001)]) as proxy:
        proxy.watch(lines.append)
        round_trip(proxy.address)
        deadline = time.monotonic() + 5
        while not any("closed" in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.01)  # The close is told on the proxy's own thread; bounded.
    assert lines[0].startswith("connection 0 opened from 127.0.0.1:")
    assert any(line.startswith("connection 0 ") and "Latency" in line for line in lines)
    assert lines[-1] == "connection 0 closed"


@pytest.mark.parametrize("api_mode", [False, True])
def test_proxy_verbose_prints_as_it_happens(echo: RunningServer, api_mode: bool) -> None:
    command = [sys.executable, "-m", "sockharness", "proxy", "-v"]
    command += (
        ["--api", "127.0.0.1:0"]
        if api_mode
        else ["--upstream", upstream(echo), "--fault", "latency=0.001"]
    )
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        first = _line(process.stdout)
        if api_mode:
            client = ProxyAPI(first.split(" at ", 1)[1].split(" ", 1)[0])
            proxy = client.create("echo", echo.address)
            proxy.add_toxic("latency", latency=1)
            where = proxy.address
        else:
            where = address({"listen": first.split(" at ", 1)[1].split(" ", 1)[0]})
        round_trip(where)
        prefix = "echo: " if api_mode else ""
        seen = [_line(process.stdout)]
        while "closed" not in seen[-1] and len(seen) < 10:
            seen.append(_line(process.stdout))
        assert f"{prefix}connection 0 opened from 127.0.0.1:" in seen[0], seen
        assert "Latency" in seen[1], seen
        assert seen[-1].rstrip().endswith(f"{prefix}connection 0 closed"), seen
        process.send_signal(signal.SIGINT)
    finally:
        _finish(process)
    assert process.returncode == 0


# -- past Toxiproxy: Unix sockets, seeds that work --------------------------------------------


def test_a_unix_socket_proxy(tmp_path: Any) -> None:
    with start_server(LineEchoHandler, "unix") as server, ProxyAPIServer() as api:
        listen = str(tmp_path / "proxy.sock")
        client = ProxyAPI(api.url)
        proxy = client.create("local", server.address, listen=listen)
        assert proxy.listen == listen
        with connect(listen, "unix", timeout=5) as connection:
            assert connection.request(b"over a path\n") == b"over a path\n"


def _reset_pattern(seed: int, server: RunningServer) -> list[bool]:
    """Which of 12 connections a reset_peer at toxicity 0.5 strikes, under ``seed``."""
    with ProxyAPIServer(seed=seed) as api:
        client = ProxyAPI(api.url)
        proxy = client.create("echo", server.address)
        proxy.add_toxic("reset_peer", toxicity=0.5, timeout=0)
        struck = []
        for _ in range(12):
            try:
                round_trip(proxy.address)
                struck.append(False)
            except (ConnectionError, EOFError, AssertionError):
                struck.append(True)
        return struck


def test_the_seed_decides_which_connections_a_toxicity_picks(echo: RunningServer) -> None:
    echo.expect_errors(ConnectionResetError, BrokenPipeError)
    first = _reset_pattern(11, echo)
    assert first == _reset_pattern(11, echo)
    assert any(first)
    assert not all(first)
    patterns = {tuple(_reset_pattern(seed, echo)) for seed in (12, 13, 14)}
    assert len(patterns | {tuple(first)}) > 1  # Another seed, other picks.


# -- nothing a client sends breaks it ---------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(max_size=6) | _JSON,
        "type": st.sampled_from(["latency", "bandwidth", "loss", "refuse", "x"]) | _JSON,
        "stream": st.sampled_from(["upstream", "downstream", "x"]),
        "toxicity": st.floats(-1, 2) | _JSON,
        "upstream": st.sampled_from(["127.0.0.1:9", "[::1]:9", "x", ""]) | _JSON,
        "listen": st.sampled_from(["127.0.0.1:0", "", "x:y"]) | _JSON,
        "enabled": st.booleans() | _JSON,
        "attributes": st.dictionaries(
            st.sampled_from(["latency", "rate", "jitter", "delay", "bytes", "x"]),
            st.integers(-5, 10**6) | _JSON,
            max_size=3,
        )
        | _JSON,
    },
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["GET", "POST", "PATCH", "DELETE"]),
    path=st.sampled_from(
        ["/proxies", "/proxies/p", "/proxies/p/toxics", "/proxies/p/toxics/latency_downstream",
         "/populate", "/reset", "/version", "/metrics", "/proxies/%00", "/x"]
    ),
    body=_FIELDS | _JSON | st.lists(_FIELDS, max_size=2),
)  # fmt: skip
def test_any_request_gets_an_answer_and_the_api_goes_on(
    api: ProxyAPIServer, method: str, path: str, body: Any
) -> None:
    status, answer = call(api, method, path, body)
    assert 200 <= status < 600
    if status >= 400:
        assert set(answer) == {"error", "status"}
        assert answer["status"] == status
        assert status != 500, answer
    assert call(api, "GET", "/version")[0] == 200


def _voluntary_switches(pid: int) -> int:
    """How often the process's main thread has gone to sleep (Linux ``/proc``)."""
    with open(f"/proc/{pid}/task/{pid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches in /proc status")


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="reads /proc (Linux)")
def test_the_api_command_sleeps_until_a_signal_comes(tmp_path: Any, echo: RunningServer) -> None:
    # It used to wake every 0.2 s to look for a SIGHUP or a stop; now the signal
    # itself wakes it. Its main thread does not go to sleep and wake up again
    # while nothing happens, and a SIGHUP still gets an answer.
    config = tmp_path / "proxies.json"
    _config(config, [{"name": "a", "upstream": upstream(echo)}])
    process = _start_api(config)
    try:
        assert "1 proxy from" in _line(process.stdout)
        before = _voluntary_switches(process.pid)
        time.sleep(1.0)  # The idle interval measured (polling every 0.2 s: 5 wake-ups).
        woken = _voluntary_switches(process.pid) - before
        assert woken <= 1, f"the idle command's main thread woke {woken} times in 1 s"
        process.send_signal(signal.SIGHUP)
        assert "reloaded" in _line(process.stdout)
        process.send_signal(signal.SIGTERM)
    finally:
        out, err = _finish(process)
    assert process.returncode == 0, err
    assert "stopped, with 1 proxy" in out
