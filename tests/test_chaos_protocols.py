"""Scenario clients that speak the service's protocol and judge its answers: HTTP, lines,
length-prefixed messages and workloads of the user's own; a wrong, slow or silent service is
broken, a healthy one holds."""

from __future__ import annotations

import textwrap

import pytest

from sockharness.chaos import ScenarioError, parse_scenario, run_scenario


def _scenario(body: str, *, duration: float = 0.6) -> str:
    return textwrap.dedent(
        f"""
        [scenario]
        name = "protocol"
        duration = {duration}
        seed = 7
        """
    ) + textwrap.dedent(body)


def _run(text: str) -> object:
    return run_scenario(parse_scenario(text, "protocol.toml"))


def _http(handler: str, checks: str = "", pattern: str = "persistent") -> str:
    return _scenario(
        f"""
        [server]
        handler = "tests.chaos_apps:{handler}"

        [[clients]]
        protocol = "http"
        pattern = "{pattern}"
        count = 2
        rate = 20
        timeout = 0.5
        path = "/items/{{seq}}"
        {checks}
        """
    )


# -- HTTP -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["persistent", "connect-per-request"])
def test_a_healthy_http_app_holds(pattern: str) -> None:
    checks = 'expect_status = 200\nexpect_body = \'"ok": true\'\nexpect_json = { "/ok" = true }'
    result = _run(_http("HealthyApp", checks, pattern))
    assert result.result == "held", result.failure_message()  # type: ignore[attr-defined]
    assert len(result.messages) >= 10  # type: ignore[attr-defined]
    assert {m.outcome for m in result.messages} == {"ok"}  # type: ignore[attr-defined]


def test_an_app_that_answers_400_to_everything_is_broken() -> None:
    """Before: this held, because any reply counted (reply = "any")."""
    result = _run(_http("BadRequestApp"))
    assert result.result == "broken"  # type: ignore[attr-defined]
    corrupt = [m for m in result.messages if m.outcome == "corrupt"]  # type: ignore[attr-defined]
    assert corrupt
    assert corrupt[0].detail.startswith("expected status below 400, got 400 Bad Request")


def test_wrong_json_values_are_wrong_answers() -> None:
    result = _run(_http("WrongJSONApp", 'expect_json = { "/ok" = true, "/id" = 0 }'))
    assert result.result == "broken"  # type: ignore[attr-defined]
    details = {m.detail for m in result.messages}  # type: ignore[attr-defined]
    assert details == {"expected /ok = True, got False"}


@pytest.mark.parametrize("handler", ["SlowApp", "SilentApp"])
def test_a_slow_or_silent_app_is_broken(handler: str) -> None:
    result = _run(_http(handler))
    assert result.result == "broken"  # type: ignore[attr-defined]
    assert {m.outcome for m in result.messages} == {"lost"}  # type: ignore[attr-defined]


def test_an_http_body_and_headers_are_sent() -> None:
    text = _scenario(
        """
        [server]
        handler = "tests.chaos_apps:HealthyApp"

        [[clients]]
        protocol = "http"
        method = "POST"
        path = "/echo"
        headers = { "X-Client" = "{client}" }
        body = '{"n": {seq}, "payload": "{payload}"}'
        payload = "text"
        rate = 20
        expect_json = { "/n" = 0 }
        """
    )
    result = _run(text)
    # Message 0 says n = 0; every later one says its own number: a wrong value.
    outcomes = [m.outcome for m in sorted(result.messages, key=lambda m: m.seq)]  # type: ignore[attr-defined]
    assert outcomes[0] == "ok"
    assert set(outcomes[1:]) == {"corrupt"}


def test_http_through_a_faulty_proxy_is_judged_inside_and_outside_the_window() -> None:
    text = _http("HealthyApp", 'expect_json = { "/ok" = true }') + textwrap.dedent(
        """
        [[faults]]
        fault = "latency"
        delay = 1.0
        at = 0.2
        until = 0.4

        [expect]
        max_error_rate = 1.0
        """
    )
    result = _run(text.replace("duration = 0.6", "duration = 1.0"))
    assert result.result == "held", result.failure_message()  # type: ignore[attr-defined]
    assert any(m.outcome == "lost" for m in result.messages)  # type: ignore[attr-defined]


# -- lines and length-prefixed ---------------------------------------------------------------------


def _kv(handler: str, expect: str) -> str:
    return _scenario(
        f"""
        [server]
        handler = "tests.chaos_apps:{handler}"

        [[clients]]
        protocol = "lines"
        request = "SET key{{client}} {{seq}}"
        {expect}
        rate = 20
        """
    )


def test_a_line_protocol_with_an_exact_reply_holds() -> None:
    result = _run(_kv("KeyValue", 'expect_reply = "+OK"'))
    assert result.result == "held", result.failure_message()  # type: ignore[attr-defined]


def test_a_server_that_answers_err_to_everything_is_broken() -> None:
    """Before: this held too."""
    result = _run(_kv("BrokenKeyValue", 'expect_match = "^\\\\+OK$"'))
    assert result.result == "broken"  # type: ignore[attr-defined]
    detail = result.messages[0].detail  # type: ignore[attr-defined]
    assert detail == "the reply does not match '^\\\\+OK$': b'ERR unknown command'"


def test_a_length_prefixed_protocol_is_framed_and_judged() -> None:
    text = _scenario(
        """
        [server]
        handler = "tests.chaos_apps:LengthPrefixedUpper"

        [[clients]]
        protocol = "length-prefixed"
        request = "message {seq} of {client}"
        expect_reply = "MESSAGE {seq} OF {client}"
        rate = 20
        """
    )
    result = _run(text)
    assert result.result == "held", result.failure_message()  # type: ignore[attr-defined]
    wrong = text.replace('expect_reply = "MESSAGE', 'expect_reply = "message')
    assert _run(wrong).result == "broken"  # type: ignore[attr-defined]


# -- workloads ------------------------------------------------------------------------------------


def test_a_workload_of_the_users_own_is_the_load() -> None:
    text = _scenario(
        """
        [server]
        handler = "tests.chaos_apps:KeyValue"

        [[clients]]
        workload = "tests.chaos_apps:set_and_get"
        count = 2
        rate = 20
        """
    )
    result = _run(text)
    assert result.result == "held", result.failure_message()  # type: ignore[attr-defined]
    assert len(result.messages) >= 10  # type: ignore[attr-defined]
    broken = _run(text.replace(":set_and_get", ":always_fails"))
    assert broken.result == "broken"  # type: ignore[attr-defined]
    assert broken.messages[0].detail == "the workload's check failed: the service said no"  # type: ignore[attr-defined]


def test_a_workload_against_a_broken_service_is_broken() -> None:
    text = _scenario(
        """
        [server]
        handler = "tests.chaos_apps:BrokenKeyValue"

        [[clients]]
        workload = "tests.chaos_apps:set_and_get"
        rate = 20
        """
    )
    result = _run(text)
    assert result.result == "broken"  # type: ignore[attr-defined]
    assert result.messages[0].detail == (  # type: ignore[attr-defined]
        "the workload's check failed: SET was not acknowledged"
    )


# -- strict keys -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("clients", "message"),
    [
        (
            'protocol = "lines"\nexpect_status = 200',
            "clients[0].expect_status: applies only to protocol = 'http', not 'lines'",
        ),
        (
            'protocol = "http"\nreply = "echo"',
            "clients[0].reply: applies only to protocol = 'echo'",
        ),
        (
            'protocol = "lines"',
            "clients[0].protocol: protocol = 'lines' needs expect_reply (the exact reply) or "
            "expect_match",
        ),
        (
            'workload = "tests.chaos_apps:set_and_get"\nprotocol = "http"',
            "clients[0].protocol: a workload is its own client",
        ),
        (
            'protocol = "http"\nexpect_body = "("',
            "clients[0].expect_body: expected a regular expression",
        ),
        (
            'protocol = "http"\nexpect_status = 99',
            "clients[0].expect_status: expected an integer in [100, 599]",
        ),
        ('protocol = "http"\nmethod = "get it"', "clients[0].method: expected an HTTP method"),
        (
            'protocol = "http"\nexpect_json = { "ok" = true }',
            "clients[0].expect_json.ok: expected a JSON pointer",
        ),
        ('protocol = "gopher"', "clients[0].protocol: expected one of 'echo', 'http'"),
        ('workload = "no_colon"', "clients[0].workload: "),
    ],
)
def test_contradictory_or_bad_client_keys_are_errors_with_line_and_key(
    clients: str, message: str
) -> None:
    text = _scenario(f'[server]\nhandler = "echo"\n\n[[clients]]\n{clients}\n')
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "bad.toml")
    assert message in str(caught.value)
    assert str(caught.value).startswith("bad.toml:")


def test_a_workload_that_does_not_import_is_an_error_before_the_run() -> None:
    text = _scenario('[server]\nhandler = "echo"\n\n[[clients]]\nworkload = "tests.nowhere:f"\n')
    with pytest.raises(ScenarioError, match=r"clients\[0\]\.workload: cannot import: "):
        _run(text)


def test_a_workload_cannot_have_client_side_faults() -> None:
    text = _scenario(
        """
        [server]
        handler = "echo"

        [[clients]]
        workload = "tests.chaos_apps:set_and_get"

        [[faults]]
        fault = "latency"
        delay = 0.1
        side = "client"
        """
    )
    message = r"faults\[0\]\.side: a workload or command makes its own"
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(text, "bad.toml")


def test_http_on_a_datagram_server_is_an_error() -> None:
    text = _scenario('[server]\nkind = "udp"\n\n[[clients]]\nprotocol = "http"\n')
    with pytest.raises(ScenarioError, match="runs over a stream"):
        parse_scenario(text, "bad.toml")
