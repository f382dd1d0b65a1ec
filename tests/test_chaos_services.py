"""Several services in one scenario ([services.NAME]): dependency order, a proxy per faulted
service, faults and clients by service name, and the addresses each service and command gets."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from sockharness.chaos import (
    ScenarioError,
    ScenarioResult,
    Service,
    parse_scenario,
    render_html,
    run_scenario,
)
from tests import chaos_apps

HEAD = '[scenario]\nname = "services"\nduration = 0.6\n\n'

STORE_AND_APP = """
[services.store]
handler = "examples.services.store:Store"

[services.app]
server_class = "examples.services.store_app:StoreAppServer"
handler = "examples.services.store_app:StoreApp"
after = ["store"]
attributes = { store_address = "{store.address}" }

[[clients]]
service = "app"
protocol = "http"
method = "POST"
path = "/items"
body = '{"name": "item {seq}"}'
expect_status = 201
expect_json = { "/item/name" = "item {seq}" }
rate = 30
timeout = 1.5
"""


def _parse(text: str) -> object:
    return parse_scenario(HEAD + textwrap.dedent(text), "services.toml")


def _run(text: str) -> ScenarioResult:
    return run_scenario(parse_scenario(HEAD + textwrap.dedent(text), "services.toml"))


def _broken(result: ScenarioResult) -> set[str]:
    return {invariant.name for invariant in result.broken}


# -- the file ---------------------------------------------------------------------------------


def test_services_start_after_what_they_need_whatever_the_order_written() -> None:
    scenario = parse_scenario(
        HEAD
        + textwrap.dedent("""
        [services.web]
        after = ["api"]
        [services.api]
        after = ["db", "cache"]
        [services.db]
        [services.cache]

        [[clients]]
        service = "web"
        """),
        "services.toml",
    )
    assert [service.name for service in scenario.services] == ["db", "cache", "api", "web"]
    assert not scenario.short_form
    assert scenario.clients[0].service == "web"
    assert scenario.service("api").after == ("db", "cache")


def test_the_short_form_is_one_service_named_server() -> None:
    scenario = parse_scenario(HEAD + "[[clients]]\n", "services.toml")
    assert scenario.short_form
    assert scenario.services == (Service("server", scenario.server),)


@pytest.mark.parametrize(
    ("body", "key", "message"),
    [
        (
            '[server]\n[services.db]\n[[clients]]\nservice = "db"\n',
            "services.db",
            "not both",
        ),
        (
            '[services.a]\nafter = ["b"]\n[services.b]\nafter = ["a"]\n'
            '[[clients]]\nservice = "a"\n',
            "services.a.after",
            "a cycle in after",
        ),
        (
            '[services.app]\nafter = ["dbb"]\n[services.db]\n[[clients]]\nservice = "app"\n',
            "services.app.after",
            "did you mean 'db'?",
        ),
        (
            '[services.app]\nafter = ["app"]\n[[clients]]\n',
            "services.app.after",
            "cannot start after itself",
        ),
        (
            "[services.app]\n[services.db]\n[[clients]]\n",
            "clients[0].service",
            "say which, service = one of 'app', 'db'",
        ),
        (
            '[services.app]\n[services.db]\n[[clients]]\nservice = "ap"\n',
            "clients[0].service",
            "did you mean 'app'?",
        ),
        (
            '[services.app]\n[services.db]\n[[clients]]\nservice = "app"\n'
            '[[faults]]\nfault = "latency"\ndelay = 0.1\n',
            "faults[0].service",
            "say which",
        ),
        (
            '[services.app]\nattributes = { timeout = "{db.port}" }\n[services.db]\n'
            '[[clients]]\nservice = "app"\n',
            "services.app.attributes.timeout",
            "add after = ['db']",
        ),
        (
            '[services.app]\nafter = []\nattributes = { timeout = "{cache.port}" }\n[[clients]]\n',
            "services.app.attributes.timeout",
            "not in after",
        ),
        ("[services.server]\n[[clients]]\n", "services.server", "write [server]"),
        (
            '[services.my-db]\n[services.my_db]\n[[clients]]\nservice = "my-db"\n',
            "services.my-db",
            "reads the same in commands' variables",
        ),
        ("[services.db]\nwhen = 1\n[[clients]]\n", "services.db.when", "unknown key"),
        ('[services.db]\nafter = "x"\n[[clients]]\n', "services.db.after", "an array"),
        ("[services.9lives]\n[[clients]]\n", "services.9lives", "starts with a letter"),
        (
            '[services.db]\nkind = "udp"\n[services.app]\n[[clients]]\nservice = "app"\n'
            '[[faults]]\nservice = "db"\nfault = "reset_peer"\n',
            "faults[0].fault",
            "does not apply to a datagram server",
        ),
    ],
)
def test_a_bad_services_table_is_an_error_at_its_key(body: str, key: str, message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(HEAD + body, "services.toml")
    assert caught.value.key == key, str(caught.value)
    assert message in caught.value.reason, str(caught.value)
    assert caught.value.line is not None


def test_a_service_outside_gets_its_target_checked_before_the_run() -> None:
    result = _run(
        """
        [services.db]
        kind = "tcp"
        target = "127.0.0.1:9"

        [services.app]
        after = ["db"]

        [[clients]]
        service = "app"
        """
    )
    assert result.result == "error"
    assert "[services.db] target" in (result.error or "")


# -- a run --------------------------------------------------------------------------------------


def test_the_app_and_its_store_hold_and_the_store_faults_reach_the_app() -> None:
    result = _run(
        STORE_AND_APP
        + """
        [[faults]]
        service = "store"
        fault = "latency"
        delay = 0.2
        at = 0.1
        until = 0.4

        [expect]
        max_error_rate = 0.0
        """
    )
    assert result.result == "held", result.failure_message()
    # The store's latency fired on the store's proxy, so the app went through it: the
    # requests in the window took twice the delay (a SET and a GET).
    assert result.fired == [True]
    slow = [m for m in result.messages if 0.1 <= m.sent < 0.2]
    assert slow
    assert min(m.latency for m in slow) >= 0.35
    assert result.recording is not None
    assert [plan["source"] for plan in result.recording.plans] == ["store proxy"]
    document = result.to_dict()
    assert [service["name"] for service in document["services"]] == ["store", "app"]
    assert document["services"][1]["after"] == ["store"]
    assert document["faults"][0]["service"] == "store"
    page = render_html([document])
    assert "<dt>Services</dt>" in page
    assert (
        "<code>app</code>: examples.services.store_app:StoreAppServer over tcp (after store)"
        in (page)
    )
    assert "on the proxy side of <code>store</code>" in page


def test_a_store_that_loses_what_it_is_given_breaks_the_app_scenario() -> None:
    result = _run(STORE_AND_APP.replace("store:Store", "store:ForgetfulStore"))
    assert result.result == "broken", result.failure_message()
    assert "intact_outside_faults" in _broken(result)
    assert "the store lost the item" in result.failure_message()


def test_resets_on_the_store_break_the_app_where_the_expectations_are_strict() -> None:
    result = _run(
        STORE_AND_APP
        + """
        [[faults]]
        service = "store"
        fault = "reset_peer"
        at = 0.2
        until = 0.4

        [expect]
        max_error_rate = 0.0
        """
    )
    assert result.result == "broken", result.failure_message()
    assert "max_error_rate" in _broken(result)
    failed = [m for m in result.messages if m.outcome != "ok"]
    assert failed
    assert all("503" in m.detail for m in failed), failed[0].detail


def test_services_start_in_dependency_order_and_stop_in_reverse() -> None:
    chaos_apps.SERVER_EVENTS.clear()
    result = _run(
        """
        [services.front]
        server_class = "tests.chaos_apps:RecordingServer"
        after = ["middle"]
        attributes = { label = "front" }
        [services.back]
        server_class = "tests.chaos_apps:RecordingServer"
        attributes = { label = "back" }
        [services.middle]
        server_class = "tests.chaos_apps:RecordingServer"
        after = ["back"]
        attributes = { label = "middle" }

        [[clients]]
        service = "front"
        """
    )
    assert result.result == "held", result.failure_message()
    assert chaos_apps.SERVER_EVENTS == [
        ("start", "back"),
        ("start", "middle"),
        ("start", "front"),
        ("stop", "front"),
        ("stop", "middle"),
        ("stop", "back"),
    ]


def test_a_fault_strikes_only_the_service_it_names() -> None:
    result = _run(
        """
        [services.echo]
        [services.upper]
        handler = "upper"

        [[clients]]
        service = "echo"
        rate = 40
        [[clients]]
        service = "upper"
        rate = 40

        [[faults]]
        service = "upper"
        fault = "down"
        at = 0.2
        until = 0.4

        [expect]
        intact_outside_faults = false
        """
    )
    assert result.result == "held", result.failure_message()
    # Client 0 talks to echo, client 1 to upper (behind the proxy that went down).
    in_window = [m for m in result.messages if 0.22 <= m.sent < 0.38]
    echo_failed = [m for m in in_window if m.client == 0 and m.outcome != "ok"]
    upper_failed = [m for m in in_window if m.client == 1 and m.outcome != "ok"]
    assert not echo_failed, echo_failed
    assert upper_failed


def test_a_client_fault_strikes_the_clients_of_its_service_only() -> None:
    result = _run(
        """
        [services.left]
        [services.right]

        [[clients]]
        service = "left"
        rate = 40
        [[clients]]
        service = "right"
        rate = 40

        [[faults]]
        service = "right"
        side = "client"
        fault = "refuse"

        [expect]
        intact_outside_faults = false
        """
    )
    assert result.result == "held", result.failure_message()
    left = [m for m in result.messages if m.client == 0]
    right = [m for m in result.messages if m.client == 1]
    assert left
    assert all(m.outcome == "ok" for m in left)
    assert right
    assert all(m.outcome != "ok" for m in right)


def test_a_command_finds_every_service_by_name() -> None:
    check = (
        "import os, sys\n"
        "e = os.environ\n"
        "want = ['SOCKHARNESS_STORE_ADDRESS', 'SOCKHARNESS_STORE_UPSTREAM_ADDRESS',\n"
        "        'SOCKHARNESS_APP_ADDRESS', 'SOCKHARNESS_SERVER_ADDRESS']\n"
        "missing = [k for k in want if not e.get(k)]\n"
        "if missing: sys.exit(f'missing {missing}')\n"
        "if e['SOCKHARNESS_SERVER_ADDRESS'] != e['SOCKHARNESS_APP_ADDRESS']:\n"
        "    sys.exit('SERVER is not the app')\n"
        "if e['SOCKHARNESS_STORE_ADDRESS'] == e['SOCKHARNESS_STORE_UPSTREAM_ADDRESS']:\n"
        "    sys.exit('the store has no proxy in front')\n"
        "import socket\n"
        "host, port = e['SOCKHARNESS_STORE_HOST'], int(e['SOCKHARNESS_STORE_PORT'])\n"
        "with socket.create_connection((host, port), timeout=5) as s:\n"
        "    s.sendall(b'PING\\n')\n"
        "    if s.makefile('rb').readline() != b'PONG\\n': sys.exit('no PONG')\n"
    )
    result = _run(
        f"""
        [services.store]
        handler = "examples.services.store:Store"
        [services.app]
        after = ["store"]

        [[clients]]
        service = "app"
        command = {json.dumps([sys.executable, "-c", check])}

        [[faults]]
        service = "store"
        fault = "latency"
        delay = 0.001

        [expect]
        faults_fired = false
        """.replace("duration = 0.6", "duration = 30")
    )
    assert result.messages, result.failure_message()
    assert result.messages[0].outcome == "ok", result.messages[0].detail
