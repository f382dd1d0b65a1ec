"""The scenario format: defaults, shipped files, errors that point at the file, line and key.

Every error case checks the whole address of the mistake: the file named, the
line the offending key is written on (found in the test's own TOML text, not
hard-coded), the dotted key, and what was expected and what was found.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from sockharness.chaos import (
    ClientSpec,
    Expectations,
    FaultWindow,
    Scenario,
    ScenarioError,
    ServerSpec,
    SpecError,
    find_scenario_files,
    load_scenario,
    parse_scenario,
)
from sockharness.faults import Latency, Loss

SCENARIOS_DIR = Path(__file__).resolve().parent.parent / "scenarios"
SHIPPED = sorted(SCENARIOS_DIR.glob("*.toml"))

FILE = "case.toml"

MINIMAL = """\
[scenario]
name = "minimal"
duration = 2

[[clients]]
"""


def toml(text: str) -> str:
    """A scenario text written indented in the test, dedented."""
    return textwrap.dedent(text).lstrip("\n")


def line_with(text: str, marker: str) -> int:
    """The line (from 1) of ``text`` whose stripped content starts with ``marker``; unique."""
    found = [
        number
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip().startswith(marker)
    ]
    assert len(found) == 1, f"marker {marker!r} is on lines {found}, want exactly one"
    return found[0]


def parse_error(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, FILE)
    return info.value


def with_server(server: str, clients: str = "[[clients]]\n", faults: str = "") -> str:
    """A scenario of two seconds with this ``[server]`` body, clients and faults."""
    return (
        '[scenario]\nname = "case"\nduration = 2\n\n[server]\n'
        + toml(server)
        + "\n"
        + toml(clients)
        + ("\n" + toml(faults) if faults else "")
    )


# -- defaults ---------------------------------------------------------------------------------


def test_minimal_scenario_takes_the_documented_defaults() -> None:
    scenario = parse_scenario(MINIMAL, FILE)

    assert scenario.name == "minimal"
    assert scenario.file == FILE
    assert scenario.duration == 2.0
    assert isinstance(scenario.duration, float)
    assert scenario.description == ""
    assert scenario.seed == 0
    assert scenario.faults == ()
    assert scenario.fault_sides == set()

    server = scenario.server
    assert (server.kind, server.concurrency, server.handler) == ("tcp", "threading", "echo")
    assert server.tls is False
    assert server.handler_delay == 0.05
    assert server.attributes == {}
    assert server.server_class is None
    assert server.target is None
    assert server.stream is True
    assert server.describe() == "echo (threading) over tcp"

    assert len(scenario.clients) == 1
    client = scenario.clients[0]
    assert client == ClientSpec(
        count=1,
        pattern="persistent",
        rate=20.0,
        size=64,
        payload="random",
        timeout=2.0,
        reply="echo",
        start=0.0,
        service="server",
    )
    assert [service.name for service in scenario.services] == ["server"]
    assert scenario.short_form

    expect = scenario.expect
    assert expect.intact_outside_faults is True
    assert expect.grace == 0.5
    assert expect.max_error_rate is None
    assert expect.max_p50_latency is None
    assert expect.max_p99_latency is None
    assert expect.min_messages == 1
    assert expect.serving_after_faults is True
    assert expect.shutdown_within == 2.0
    assert expect.no_leaks is True
    assert expect.faults_fired is True
    assert expect.max_handler_errors is None


@pytest.mark.parametrize("kind", ["udp", "udp6", "unix_dgram"])
def test_datagram_kinds_default_to_the_datagram_pattern(kind: str) -> None:
    scenario = parse_scenario(with_server(f'kind = "{kind}"'), FILE)
    assert scenario.server.stream is False
    assert scenario.clients[0].pattern == "datagram"


@pytest.mark.parametrize("kind", ["tcp6", "unix"])
def test_stream_kinds_default_to_persistent_clients(kind: str) -> None:
    scenario = parse_scenario(with_server(f'kind = "{kind}"'), FILE)
    assert scenario.server.stream is True
    assert scenario.clients[0].pattern == "persistent"


@pytest.mark.parametrize(
    ("server", "reply"),
    [
        pytest.param('handler = "echo"', "echo", id="echo"),
        pytest.param('handler = "line-echo"', "echo", id="line-echo"),
        pytest.param('handler = "upper"', "upper", id="upper"),
        pytest.param('handler = "discard"', "none", id="discard"),
        pytest.param('handler = "slow"', "echo", id="slow"),
        pytest.param('handler = "crash"', "none", id="crash"),
        pytest.param('handler = "mypkg.handlers:Custom"', "any", id="handler-import-path"),
        pytest.param('server_class = "mypkg.servers:Custom"', "any", id="server_class"),
        pytest.param(
            'server_class = "mypkg.servers:Custom"\nhandler = "upper"',
            "any",
            id="server_class-with-upper",
        ),
        pytest.param('kind = "tcp"\ntarget = "127.0.0.1:9000"', "any", id="target"),
    ],
)
def test_the_reply_default_follows_the_server(server: str, reply: str) -> None:
    scenario = parse_scenario(with_server(server), FILE)
    assert scenario.clients[0].reply == reply


def test_an_explicit_reply_overrides_the_handler_default() -> None:
    text = with_server('handler = "upper"', '[[clients]]\nreply = "none"\n')
    assert parse_scenario(text, FILE).clients[0].reply == "none"


def test_a_full_scenario_reads_every_section() -> None:
    text = toml(
        """
        [scenario]
        name = "full"
        description = "every section"
        seed = 7
        duration = 3

        [server]
        kind = "tcp"
        concurrency = "forking"
        handler = "slow"
        handler_delay = 0.2
        tls = true

        [server.attributes]
        request_queue_size = 16

        [[clients]]
        count = 3
        rate = 40
        size = 256
        payload = "json"

        [[clients]]
        pattern = "connect-per-request"
        timeout = 0.5
        start = 1

        [[faults]]
        fault = "latency"
        delay = 0.1
        at = 0.5
        until = 1.5

        [[faults]]
        fault = "down"

        [expect]
        max_error_rate = 0.25
        max_p99_latency = 1
        min_messages = 10
        no_leaks = false
        """
    )
    scenario = parse_scenario(text, FILE)

    assert (scenario.name, scenario.description, scenario.seed) == ("full", "every section", 7)
    assert scenario.server == ServerSpec(
        kind="tcp",
        concurrency="forking",
        handler="slow",
        handler_delay=0.2,
        tls=True,
        attributes={"request_queue_size": 16},
    )
    assert scenario.server.describe() == "slow (forking) over tcp with TLS"
    first, second = scenario.clients
    assert (first.count, first.rate, first.size, first.payload) == (3, 40.0, 256, "json")
    assert (second.pattern, second.timeout, second.start) == ("connect-per-request", 0.5, 1.0)
    assert second.count == 1
    latency, down = scenario.faults
    assert latency == FaultWindow(
        fault=Latency(0.1), side="proxy", at=0.5, until=1.5, service="server"
    )
    assert latency.covers(1.0, 1.2)
    assert not latency.covers(1.6, 2.0)
    assert (down.side, down.at, down.until) == ("proxy", 0.0, 3.0)
    assert scenario.fault_sides == {"proxy"}
    assert scenario.expect == Expectations(
        max_error_rate=0.25, max_p99_latency=1.0, min_messages=10, no_leaks=False
    )


def test_a_server_side_datagram_fault_may_cover_the_whole_run() -> None:
    text = with_server(
        'kind = "udp"',
        faults='[[faults]]\nfault = "loss"\nprobability = 0.1\nside = "server"\n',
    )
    (window,) = parse_scenario(text, FILE).faults
    assert window == FaultWindow(
        fault=Loss(0.1), side="server", at=0.0, until=2.0, service="server"
    )


def test_fault_names_are_normalised() -> None:
    text = with_server("", faults='[[faults]]\nfault = "Slow-Close"\ndelay = 0.1\n')
    (window,) = parse_scenario(text, FILE).faults
    assert type(window.fault).__name__ == "SlowClose"


def test_a_datagram_of_the_largest_size_is_allowed() -> None:
    text = with_server('kind = "udp"', "[[clients]]\nsize = 8192\n")
    assert parse_scenario(text, FILE).clients[0].size == 8192


# -- shipped scenarios ------------------------------------------------------------------------


def test_scenarios_are_shipped() -> None:
    assert len(SHIPPED) >= 1, f"no scenario files in {SCENARIOS_DIR}"


@pytest.mark.parametrize("path", SHIPPED, ids=[path.name for path in SHIPPED])
def test_every_shipped_scenario_loads(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.file == str(path)
    assert scenario.name.strip()
    assert 0 < scenario.duration <= 300
    assert scenario.clients
    for window in scenario.faults:
        assert 0 <= window.at < window.until <= scenario.duration
        # Whether a shipped scenario's fault fires must not depend on the seed: a
        # toxicity below 1 left it to chance (one seed in eight, with three clients,
        # picked no connection and the scenario "tested nothing"). Select by ordinal.
        assert window.fault.toxicity == 1.0, (
            f"{path.name}: {window.fault!r} fires or not by the seed; use connections = "
            f'"every 2" (or another selector) instead of a toxicity'
        )


# -- errors with file, line and key -----------------------------------------------------------

ERROR_CASES = [
    pytest.param(
        """
        [scenario]
        name = "typo"
        duraton = 2

        [[clients]]
        """,
        "scenario.duraton",
        "duraton",
        ["unknown key", "did you mean 'duration'?", "known here: description, duration"],
        id="unknown-key-with-suggestion",
    ),
    pytest.param(
        """
        [scenario]
        name = "typo"
        duration = 2

        [server]
        kind = "tcp"
        handlr = "echo"

        [[clients]]
        """,
        "server.handlr",
        "handlr",
        ["unknown key", "did you mean 'handler'?"],
        id="unknown-server-key",
    ),
    pytest.param(
        """
        [scenario]
        name = "typo"
        duration = 2

        [[clients]]

        [[faults]]
        fault = "latency"
        delya = 0.1
        """,
        "faults[0].delya",
        "delya",
        ["unknown key", "did you mean 'delay'?"],
        id="unknown-fault-parameter",
    ),
    pytest.param(
        """
        [scenario]
        name = "types"
        duration = 2

        [[clients]]
        count = 2
        rate = 5

        [[clients]]
        # the second group
        rate = "fast"
        """,
        "clients[1].rate",
        'rate = "fast"',
        ["expected a number", "found a string ('fast')"],
        id="string-for-number-in-second-group",
    ),
    pytest.param(
        """
        [scenario]
        name = "types"
        duration = 2

        [[clients]]
        count = true
        """,
        "clients[0].count",
        "count",
        ["expected an integer", "found a boolean (true)"],
        id="boolean-for-integer",
    ),
    pytest.param(
        """
        [scenario]
        name = "types"
        duration = 2
        seed = 1.5

        [[clients]]
        """,
        "scenario.seed",
        "seed",
        ["expected an integer", "found a number (1.5)"],
        id="float-for-integer",
    ),
    pytest.param(
        """
        [scenario]
        name = "types"
        duration = 2

        [server]
        tls = "yes"

        [[clients]]
        """,
        "server.tls",
        "tls",
        ["expected true or false", "found a string ('yes')"],
        id="string-for-boolean",
    ),
    pytest.param(
        """
        [scenario]
        name = "types"
        duration = 2

        [[clients]]

        [expect]
        no_leaks = 1
        """,
        "expect.no_leaks",
        "no_leaks",
        ["expected true or false", "found an integer (1)"],
        id="integer-for-boolean",
    ),
    pytest.param(
        """
        [scenario]
        name = "range"
        duration = 0

        [[clients]]
        """,
        "scenario.duration",
        "duration",
        ["expected a number in (0, 300]", "found 0"],
        id="duration-zero",
    ),
    pytest.param(
        """
        [scenario]
        name = "range"
        duration = 301

        [[clients]]
        """,
        "scenario.duration",
        "duration",
        ["expected a number in (0, 300]", "found 301"],
        id="duration-too-long",
    ),
    pytest.param(
        """
        [scenario]
        name = "range"
        duration = 2

        [[clients]]

        [[faults]]
        fault = "latency"
        delay = 0.1
        at = 1
        until = 1
        """,
        "faults[0].until",
        "until",
        ["expected an end after the start (at = 1 s)", "found 1"],
        id="until-equal-to-at",
    ),
    pytest.param(
        """
        [scenario]
        name = "range"
        duration = 2

        [[clients]]

        [[faults]]
        fault = "latency"
        delay = 0.1
        at = 1.5
        until = 0.5
        """,
        "faults[0].until",
        "until",
        ["expected an end after the start (at = 1.5 s)", "found 0.5"],
        id="until-before-at",
    ),
    pytest.param(
        """
        [scenario]
        name = "range"
        duration = 2

        [[clients]]

        [[faults]]
        fault = "latency"
        delay = 0.1
        until = 3
        """,
        "faults[0].until",
        "until",
        ["expected a number in (0, 2]", "found 3"],
        id="until-after-duration",
    ),
    pytest.param(
        """
        [scenario]
        name = "range"
        duration = 2

        [[clients]]

        [[faults]]
        fault = "latency"
        delay = 0.1
        toxicity = 2
        """,
        "faults[0].toxicity",
        "toxicity",
        ["Latency(toxicity=2) is out of range", "probability from 0 to 1"],
        id="toxicity-above-one",
    ),
    pytest.param(
        """
        [scenario]
        name = "range"
        duration = 2

        [[clients]]
        count = 0
        """,
        "clients[0].count",
        "count",
        ["expected an integer in [1, 256]", "found 0"],
        id="count-zero",
    ),
    pytest.param(
        """
        [scenario]
        name = "range"
        duration = 2

        [server]
        kind = "udp"

        [[clients]]
        size = 8193
        """,
        "clients[0].size",
        "size",
        ["expected an integer in [32, 8192]", "found 8193"],
        id="datagram-size-too-large",
    ),
    pytest.param(
        """
        [scenario]
        name = "range"
        duration = 2

        [[clients]]

        [expect]
        max_error_rate = 2
        """,
        "expect.max_error_rate",
        "max_error_rate",
        ["expected a number in [0, 1]", "found 2"],
        id="error-rate-above-one",
    ),
    pytest.param(
        """
        [scenario]
        name = "fault"
        duration = 2

        [[clients]]

        [[faults]]
        fault = "latency"
        jitter = 0.01
        delay = -1
        """,
        "faults[0].delay",
        "delay",
        ["Latency(delay=-1) is out of range", "delay must be a finite number >= 0"],
        id="invalid-fault-parameter",
    ),
    pytest.param(
        """
        [scenario]
        name = "fault"
        duration = 2

        [[clients]]

        [[faults]]
        fault = "latency"
        delay = "soon"
        """,
        "faults[0].delay",
        "delay",
        ["Latency(delay=...) must be a number", "'soon'"],
        id="fault-parameter-of-wrong-type",
    ),
    pytest.param(
        """
        [scenario]
        name = "fault"
        duration = 2

        [[clients]]

        [[faults]]
        fault = "latency"
        delay = 0.1
        direction = "sideways"
        """,
        "faults[0].direction",
        "direction",
        ["Latency(direction='sideways') is not a direction", "'upstream'"],
        id="invalid-direction",
    ),
    pytest.param(
        """
        [scenario]
        name = "fault"
        duration = 2

        [[clients]]

        [[faults]]
        fault = "latncy"
        delay = 0.1
        """,
        "faults[0].fault",
        "fault",
        ["expected a fault name (latency, bandwidth", "found 'latncy'", "did you mean 'latency'?"],
        id="unknown-fault-with-suggestion",
    ),
    pytest.param(
        """
        [scenario]
        name = "fault"
        duration = 2

        [[clients]]

        [[faults]]
        delay = 0.1
        """,
        "faults[0]",
        "[[faults]]",
        ["the key 'fault' is required"],
        id="fault-without-name",
    ),
    pytest.param(
        """
        [scenario]
        name = "fault"
        duration = 2

        [[clients]]

        [[faults]]
        fault = "latency"
        """,
        "faults[0].fault",
        "fault",
        ["Latency", "missing", "'delay'"],
        id="fault-missing-its-parameter",
    ),
    pytest.param(
        """
        [scenario]
        name = "fault"
        duration = 2

        [server]
        kind = "udp"

        [[clients]]

        [[faults]]
        fault = "slicer"
        average_size = 4
        """,
        "faults[0].fault",
        "fault",
        ["Slicer does not apply to a datagram server (udp)"],
        id="stream-fault-on-datagram-kind",
    ),
    pytest.param(
        """
        [scenario]
        name = "fault"
        duration = 2

        [server]
        kind = "unix"

        [[clients]]

        [[faults]]
        fault = "loss"
        probability = 0.1
        """,
        "faults[0].fault",
        "fault",
        ["Loss does not apply to a stream server (unix)"],
        id="datagram-fault-on-stream-kind",
    ),
    pytest.param(
        """
        [scenario]
        name = "fault"
        duration = 2

        [[clients]]

        [[faults]]
        fault = "down"
        side = "server"
        """,
        "faults[0].side",
        "side",
        ["Down takes the proxy down", "use side = 'proxy'"],
        id="down-on-server-side",
    ),
    pytest.param(
        """
        [scenario]
        name = "fault"
        duration = 2

        [[clients]]

        [[faults]]
        fault = "latency"
        delay = 0.1
        side = "middle"
        """,
        "faults[0].side",
        "side",
        ["expected one of 'proxy', 'server', 'client'", "found 'middle'"],
        id="unknown-side",
    ),
    pytest.param(
        """
        [scenario]
        name = "fault"
        duration = 2

        [server]
        tls = true

        [[clients]]

        [[faults]]
        fault = "latency"
        delay = 0.1
        side = "client"
        """,
        "faults[0].side",
        "side",
        ["cannot reach the bytes under TLS", "use side = 'proxy'"],
        id="in-process-fault-under-tls",
    ),
    pytest.param(
        """
        [scenario]
        name = "fault"
        duration = 2

        [server]
        kind = "udp"

        [[clients]]

        [[faults]]
        fault = "loss"
        probability = 0.1
        side = "server"
        at = 0.5
        """,
        "faults[0].at",
        "at",
        ["a datagram server's faults apply to its one socket for the whole run"],
        id="server-side-datagram-fault-with-window",
    ),
    pytest.param(
        """
        [scenario]
        name = "fault"
        duration = 2

        [server]
        kind = "udp"

        [[clients]]

        [[faults]]
        fault = "loss"
        probability = 0.1
        side = "server"
        until = 1.5
        """,
        "faults[0].until",
        "until",
        ["leave at/until out, or use side = 'proxy' for a window"],
        id="server-side-datagram-fault-ending-early",
    ),
    pytest.param(
        """
        [scenario]
        name = "fault"
        duration = 2

        [server]
        kind = "tcp"
        target = "127.0.0.1:9000"

        [[clients]]

        [[faults]]
        fault = "latency"
        delay = 0.1
        side = "server"
        """,
        "faults[0].side",
        "side",
        ["an outside server (target = ...) runs elsewhere"],
        id="server-side-fault-on-outside-server",
    ),
    pytest.param(
        """
        [scenario]
        name = "server"
        duration = 2

        [server]
        kind = "udp"
        tls = true

        [[clients]]
        """,
        "server.tls",
        "tls",
        ["TLS needs a stream kind", "'udp' is a datagram kind"],
        id="tls-on-udp",
    ),
    pytest.param(
        """
        [scenario]
        name = "server"
        duration = 2

        [server]
        kind = "tcpp"

        [[clients]]
        """,
        "server.kind",
        "kind",
        ["expected one of 'tcp', 'tcp6'", "found 'tcpp'", "did you mean 'tcp'?"],
        id="unknown-kind",
    ),
    pytest.param(
        """
        [scenario]
        name = "server"
        duration = 2

        [server]
        handler = "uper"

        [[clients]]
        """,
        "server.handler",
        "handler",
        ["'package.module:HandlerClass'", "found 'uper'", "did you mean 'upper'?"],
        id="unknown-handler-with-suggestion",
    ),
    pytest.param(
        """
        [scenario]
        name = "server"
        duration = 2

        [server]
        handler = "echo"
        handler_delay = 0.5

        [[clients]]
        """,
        "server.handler_delay",
        "handler_delay",
        ["applies only to handler = 'slow'"],
        id="handler-delay-without-slow",
    ),
    pytest.param(
        """
        [scenario]
        name = "server"
        duration = 2

        [server]
        server_class = "no_colon_here"

        [[clients]]
        """,
        "server.server_class",
        "server_class",
        ["expected 'package.module:ClassName'", "found 'no_colon_here'"],
        id="malformed-server-class",
    ),
    pytest.param(
        """
        [scenario]
        name = "server"
        duration = 2

        [server]
        server_class = "mypkg.servers:Custom"
        concurrency = "forking"

        [[clients]]
        """,
        "server.concurrency",
        "concurrency",
        ["a server_class has its own concurrency"],
        id="server-class-with-concurrency",
    ),
    pytest.param(
        """
        [scenario]
        name = "server"
        duration = 2

        [server]
        kind = "tcp"
        target = "127.0.0.1:9000"
        handler = "echo"

        [[clients]]
        """,
        "server.handler",
        "handler",
        ["does not apply to an outside server (target = ...)", "leave the key out"],
        id="target-with-handler",
    ),
    pytest.param(
        """
        [scenario]
        name = "server"
        duration = 2

        [server]
        target = "127.0.0.1:9000"

        [[clients]]
        """,
        "server.target",
        "target",
        ["an outside server needs its kind"],
        id="target-without-kind",
    ),
    pytest.param(
        """
        [scenario]
        name = "server"
        duration = 2

        [server]
        kind = "tcp"
        target = "localhost"

        [[clients]]
        """,
        "server.target",
        "target",
        ["the target 'localhost' is not host:port (for example 127.0.0.1:8080)"],
        id="target-without-port",
    ),
    pytest.param(
        """
        [scenario]
        name = "server"
        duration = 2

        [server]
        kind = "udp6"
        target = "[::1]:70000"

        [[clients]]
        """,
        "server.target",
        "target",
        ["the target '[::1]:70000': 70000 is not a port number (0-65535)"],
        id="target-port-out-of-range",
    ),
    pytest.param(
        """
        [scenario]
        name = "server"
        duration = 2

        [server]
        kind = "unix"
        target = ""

        [[clients]]
        """,
        "server.target",
        "target",
        ["the target needs a socket path (unix is a Unix kind)"],
        id="empty-unix-target",
    ),
    pytest.param(
        """
        [scenario]
        name = "clients"
        duration = 2

        [[clients]]
        pattern = "datagram"
        """,
        "clients[0].pattern",
        "pattern",
        ["'datagram' needs a datagram kind", "'tcp' is a stream"],
        id="datagram-pattern-on-tcp",
    ),
    pytest.param(
        """
        [scenario]
        name = "clients"
        duration = 2

        [server]
        kind = "unix_dgram"

        [[clients]]
        pattern = "persistent"
        """,
        "clients[0].pattern",
        "pattern",
        ["a 'unix_dgram' server takes datagrams", "use pattern = 'datagram'"],
        id="stream-pattern-on-datagram-kind",
    ),
    pytest.param(
        """
        [scenario]
        name = "clients"
        duration = 2

        [clients]
        count = 2
        """,
        "clients",
        "[clients]",
        ["expected [[clients]] tables"],
        id="clients-as-a-plain-table",
    ),
    pytest.param(
        """
        # a comment first
        [scenario]
        duration = 2

        [[clients]]
        """,
        "scenario",
        "[scenario]",
        ["the key 'name' is required"],
        id="missing-name",
    ),
    pytest.param(
        """
        [scenario]
        name = "   "
        duration = 2

        [[clients]]
        """,
        "scenario.name",
        "name",
        ["expected a name, found an empty string"],
        id="blank-name",
    ),
    pytest.param(
        """
        # no duration below

        [scenario]
        name = "no duration"

        [[clients]]
        """,
        "scenario",
        "[scenario]",
        ["the key 'duration'", "is required"],
        id="missing-duration",
    ),
]


@pytest.mark.parametrize(("text", "key", "marker", "fragments"), ERROR_CASES)
def test_errors_name_the_file_line_key_expected_and_found(
    text: str, key: str, marker: str, fragments: list[str]
) -> None:
    source = toml(text)
    error = parse_error(source)
    line = line_with(source, marker)

    assert error.file == FILE
    assert error.key == key
    assert error.line == line
    for fragment in fragments:
        assert fragment in error.reason
    assert str(error) == f"{FILE}:{line}: {key}: {error.reason}"
    assert isinstance(error, ValueError)


def test_a_missing_scenario_table_is_named() -> None:
    error = parse_error("[[clients]]\ncount = 1\n")
    assert error.file == FILE
    assert error.key == "scenario"
    assert error.line is None
    assert "a [scenario] table is required" in error.reason
    assert str(error) == f"{FILE}: scenario: a [scenario] table is required"


def test_an_empty_file_lacks_the_scenario_table() -> None:
    assert parse_error("").key == "scenario"


def test_missing_clients_are_named() -> None:
    error = parse_error('[scenario]\nname = "x"\nduration = 2\n')
    assert error.file == FILE
    assert error.key is None
    assert "at least one [[clients]] table is required" in error.reason
    assert str(error).startswith(f"{FILE}: at least one [[clients]]")


def test_invalid_toml_gives_the_parser_line() -> None:
    source = toml(
        """
        [scenario]
        name = "broken"
        duration = 2

        [[clients]]
        count =
        rate = 5
        """
    )
    error = parse_error(source)
    assert error.file == FILE
    assert error.line == line_with(source, "count =")
    assert error.key is None
    assert error.reason.startswith("is not valid TOML: ")
    assert "(at line" not in error.reason  # the line is in the address, not repeated
    assert str(error).startswith(f"{FILE}:{error.line}: is not valid TOML")


def test_a_duplicate_key_is_invalid_toml_on_its_line() -> None:
    source = '[scenario]\nname = "a"\nduration = 2\nname = "b"\n\n[[clients]]\n'
    error = parse_error(source)
    assert error.line == 4
    assert "is not valid TOML" in error.reason


def test_a_non_utf8_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[scenario]\nname = "caf\xe9"\nduration = 2\n\n[[clients]]\n')
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.file == str(path)
    assert "is not UTF-8 text" in info.value.reason
    assert str(info.value).startswith(f"{path}: is not UTF-8 text")


def test_a_nonexistent_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.file == str(path)
    assert info.value.line is None
    assert "cannot be read" in info.value.reason
    assert "No such file or directory" in info.value.reason


def test_load_scenario_reports_errors_against_the_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    source = '[scenario]\nname = "x"\nduration = 2\n\n[[clients]]\nrate = -1\n'
    path.write_text(source, encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load_scenario(str(path))
    assert info.value.file == str(path)
    assert info.value.line == 6
    assert info.value.key == "clients[0].rate"
    assert str(info.value).startswith(f"{path}:6: clients[0].rate: expected a number in [0, ")


# -- regressions: the parameter a fault's error is about, empty windows, root keys ---------------


@pytest.mark.parametrize(
    ("faults", "key", "marker"),
    [
        pytest.param(
            'fault = "loss"\nprobability = 0.2\ncorrelation = 2\n',
            "faults[0].correlation",
            "correlation",
            id="loss-correlation",
        ),
        pytest.param(
            'fault = "duplicate"\nprobability = 0.2\ntoxicity = 2\n',
            "faults[0].toxicity",
            "toxicity",
            id="duplicate-toxicity",
        ),
        pytest.param(
            # Same order, but the message does not mention 'probability': blamed right.
            'fault = "loss"\nprobability = 0.2\ncorrelation = -1\ndirection = "sideways"\n',
            "faults[0].direction",
            "direction",
            id="loss-direction",
        ),
    ],
)
def test_an_invalid_fault_parameter_is_blamed_by_name(faults: str, key: str, marker: str) -> None:
    source = with_server('kind = "udp"', faults="[[faults]]\n" + faults)
    error = parse_error(source)
    assert error.key == key
    assert error.line == line_with(source, marker)


def test_slicer_size_variation_is_blamed_on_size_variation() -> None:
    source = with_server(
        "", faults='[[faults]]\nfault = "slicer"\naverage_size = 4\nsize_variation = 4\n'
    )
    error = parse_error(source)
    assert "Slicer(size_variation=4) is out of range" in error.reason
    assert error.key == "faults[0].size_variation"


def test_a_fault_starting_at_the_end_of_the_run_is_rejected() -> None:
    source = with_server("", faults='[[faults]]\nfault = "latency"\ndelay = 0.1\nat = 2\n')
    error = parse_error(source)
    assert error.key == "faults[0].at"
    assert error.line == line_with(source, "at = 2")


def test_an_unknown_root_key_has_its_line() -> None:
    source = "typo = 1\n" + MINIMAL
    error = parse_error(source)
    assert error.key == "typo"
    assert "unknown key" in error.reason
    assert error.line == 1


# -- finding files ----------------------------------------------------------------------------


def test_find_scenario_files_passes_over_non_scenarios_and_hidden_dirs(tmp_path: Path) -> None:
    (tmp_path / "a_scenario.toml").write_text(MINIMAL, encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[scenario]\nname = "not one"\n', encoding="utf-8"
    )
    (tmp_path / "plain.toml").write_text('[tool]\nname = "x"\n', encoding="utf-8")
    (tmp_path / "nested_table.toml").write_text("[scenario.extra]\nx = 1\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text(MINIMAL, encoding="utf-8")
    hidden = tmp_path / ".hidden"
    hidden.mkdir()
    (hidden / "secret.toml").write_text(MINIMAL, encoding="utf-8")
    nested = tmp_path / "more"
    nested.mkdir()
    (nested / "b_scenario.toml").write_text(MINIMAL, encoding="utf-8")

    found = find_scenario_files([tmp_path])

    assert found == [str(tmp_path / "a_scenario.toml"), str(nested / "b_scenario.toml")]


def test_find_scenario_files_keeps_a_named_file(tmp_path: Path) -> None:
    plain = tmp_path / "plain.toml"
    plain.write_text('[tool]\nname = "x"\n', encoding="utf-8")
    named = tmp_path / "named.txt"
    named.write_text("anything", encoding="utf-8")
    assert find_scenario_files([str(plain), named]) == [str(plain), str(named)]


def test_find_scenario_files_raises_for_a_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "gone"
    with pytest.raises(ScenarioError) as info:
        find_scenario_files([tmp_path, missing])
    assert info.value.file == str(missing)
    assert "no such file or directory" in info.value.reason


def test_find_scenario_files_of_an_empty_directory_is_empty(tmp_path: Path) -> None:
    assert find_scenario_files([tmp_path]) == []


# -- sockharness check ------------------------------------------------------------------------


def run_check(*paths: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sockharness", "check", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


def test_check_accepts_a_valid_directory(tmp_path: Path) -> None:
    (tmp_path / "one.toml").write_text(MINIMAL, encoding="utf-8")
    (tmp_path / "two.toml").write_text(
        with_server('kind = "udp"\nhandler = "upper"'), encoding="utf-8"
    )
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n', encoding="utf-8")

    done = run_check(tmp_path, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    ok_lines = [line for line in done.stdout.splitlines() if line.startswith("ok:")]
    assert ok_lines == [
        f"ok: {tmp_path / 'one.toml'} (minimal)",
        f"ok: {tmp_path / 'two.toml'} (case)",
    ]
    assert "2 of 2 scenario files valid" in done.stdout
    assert done.stderr == ""


def test_check_accepts_the_shipped_scenarios(tmp_path: Path) -> None:
    done = run_check(SCENARIOS_DIR, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    ok_lines = [line for line in done.stdout.splitlines() if line.startswith("ok:")]
    assert len(ok_lines) == len(SHIPPED)


def test_check_rejects_a_directory_with_an_invalid_file(tmp_path: Path) -> None:
    (tmp_path / "good.toml").write_text(MINIMAL, encoding="utf-8")
    bad = tmp_path / "bad.toml"
    source = toml(
        """
        [scenario]
        name = "bad"
        duration = 2

        [[clients]]
        count = 2
        rate = "fast"
        """
    )
    bad.write_text(source, encoding="utf-8")

    done = run_check(tmp_path, cwd=tmp_path)

    assert done.returncode == 2
    line = line_with(source, "rate =")
    assert f"invalid: {bad}:{line}: clients[0].rate: expected a number" in done.stderr
    assert f"ok: {tmp_path / 'good.toml'}" in done.stdout
    assert "1 of 2 scenario files valid" in done.stdout


def test_check_rejects_a_handler_that_does_not_import(tmp_path: Path) -> None:
    path = tmp_path / "import.toml"
    path.write_text(with_server('handler = "no_such_module_xyz:Handler"'), encoding="utf-8")

    done = run_check(path, cwd=tmp_path)

    assert done.returncode == 2
    assert str(path) in done.stderr
    assert "server.handler" in done.stderr
    assert "cannot import module 'no_such_module_xyz'" in done.stderr
    assert "ok:" not in done.stdout


def test_check_rejects_a_server_class_without_that_class(tmp_path: Path) -> None:
    path = tmp_path / "class.toml"
    path.write_text(with_server('server_class = "socketserver:NoSuchServer"'), encoding="utf-8")

    done = run_check(path, cwd=tmp_path)

    assert done.returncode == 2
    assert "server.server_class" in done.stderr
    assert "'socketserver' has no class 'NoSuchServer'" in done.stderr


def test_check_rejects_a_directory_without_scenarios(tmp_path: Path) -> None:
    (tmp_path / "plain.toml").write_text('[tool]\nname = "x"\n', encoding="utf-8")

    done = run_check(tmp_path, cwd=tmp_path)

    assert done.returncode == 2
    assert f"no scenario files under {tmp_path}" in done.stderr
    assert "ok:" not in done.stdout


def test_check_rejects_a_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    done = run_check(missing, cwd=tmp_path)
    assert done.returncode == 2
    assert f"sockharness check: {missing}: no such file or directory" in done.stderr


def _check_dir(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "s.toml").write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "sockharness", "check", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


_HEAD = '[scenario]\nname = "x"\nduration = 1\n\n'


def test_check_rejects_an_attribute_the_server_class_lacks(tmp_path: Path) -> None:
    text = _HEAD + '[server]\nkind = "tcp"\nattributes = { daemon_thread = true }\n\n[[clients]]\n'
    result = _check_dir(tmp_path, text)
    assert result.returncode == 2
    assert "s.toml:7: server.attributes.daemon_thread:" in result.stderr
    assert "did you mean 'daemon_threads'?" in result.stderr


def test_check_rejects_a_server_class_of_another_kind(tmp_path: Path) -> None:
    text = (
        _HEAD
        + '[server]\nkind = "tcp"\nserver_class = "sockharness.server:ThreadingUDPServer"\n\n'
        + "[[clients]]\n"
    )
    result = _check_dir(tmp_path, text)
    assert result.returncode == 2
    assert "s.toml:6: server.kind: ThreadingUDPServer serves 'udp'" in result.stderr
    assert "write kind = 'udp'" in result.stderr


def test_an_empty_clients_array_is_rejected() -> None:
    text = 'clients = []\n\n[scenario]\nname = "x"\nduration = 1\n'
    with pytest.raises(ScenarioError, match=r":1: clients: expected at least one \[\[clients\]\]"):
        parse_scenario(text)


def test_overlapping_windows_of_the_same_fault_are_rejected() -> None:
    faults = (
        '[[faults]]\nfault = "latency"\ndelay = 0.1\nat = 0.1\nuntil = 0.6\n\n'
        '[[faults]]\nfault = "latency"\ndelay = 0.1\nat = 0.5\nuntil = 0.9\n'
    )
    with pytest.raises(ScenarioError, match=r"faults\[1\]: .*overlapping window"):
        parse_scenario(_HEAD + '[server]\nkind = "tcp"\n\n[[clients]]\n\n' + faults)


def test_unix_dgram_may_be_written_as_on_the_command_line() -> None:
    scenario = parse_scenario(_HEAD + '[server]\nkind = "unix-dgram"\n\n[[clients]]\n')
    assert scenario.server.kind == "unix_dgram"


# -- the models, without a file ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "key", "fragment"),
    [
        (lambda: ServerSpec(kind="bogus"), "kind", "expected one of 'tcp'"),
        (lambda: ServerSpec(concurrency="async"), "concurrency", "found 'async'"),
        (lambda: ServerSpec(handler="echoo"), "handler", "did you mean 'echo'?"),
        (lambda: ServerSpec(kind="udp", tls=True), "tls", "TLS needs a stream kind"),
        (lambda: ServerSpec(target="127.0.0.1:9", handler="upper"), "handler", "outside server"),
        (lambda: ClientSpec(count=0), "count", "expected an integer in [1, 256], found 0"),
        (lambda: ClientSpec(pattern="sometimes"), "pattern", "found 'sometimes'"),
        (lambda: FaultWindow(Latency(0.1), at=2, until=1), "until", "an end after the start"),
        (lambda: FaultWindow(Latency(0.1), side="elsewhere"), "side", "found 'elsewhere'"),
        (lambda: Expectations(max_error_rate=2), "max_error_rate", "in [0, 1], found 2"),
    ],
)
def test_a_model_with_a_bad_value_does_not_construct(make: Any, key: str, fragment: str) -> None:
    with pytest.raises(SpecError) as raised:
        make()
    assert raised.value.key == (key,)
    assert fragment in raised.value.reason
    assert isinstance(raised.value, ValueError)


def test_models_are_hashable_and_resolve_their_defaults_from_the_server() -> None:
    scenario = Scenario(
        name="built in Python",
        file="<python>",
        duration=2,
        server=ServerSpec(kind="udp", handler="upper", attributes={"max_packet_size": 4096}),
        clients=(ClientSpec(count=2),),
        faults=(FaultWindow(Loss(0.1), at=0.5),),
    )
    assert hash(scenario) == hash(dataclasses.replace(scenario))
    (client,) = scenario.clients
    assert (client.pattern, client.reply) == ("datagram", "upper")  # From the server.
    (window,) = scenario.faults
    assert window.until == 2.0  # The end of the run.
    assert scenario.server.attributes == {"max_packet_size": 4096}
    with pytest.raises(TypeError):
        scenario.server.attributes["max_packet_size"] = 1  # type: ignore[index]
    with pytest.raises(SpecError) as raised:
        Scenario(
            name="x", file="<python>", duration=2, server=ServerSpec(),
            clients=(ClientSpec(pattern="datagram"),),
        )  # fmt: skip
    assert raised.value.key == ("clients", 0, "pattern")
