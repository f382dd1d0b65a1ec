"""An integration suite of the items API, as a project would have one: it finds the
service in SOCKHARNESS_SERVER_HOST/_PORT (set by a scenario's command workload), or
on its usual address when run on its own."""

from __future__ import annotations

import http.client
import json
import os


def request(method: str, path: str, body: object = None) -> tuple[int, object]:
    host = os.environ.get("SOCKHARNESS_SERVER_HOST", "127.0.0.1")
    port = int(os.environ.get("SOCKHARNESS_SERVER_PORT", "8000"))
    connection = http.client.HTTPConnection(host, port, timeout=2)
    try:
        payload = None if body is None else json.dumps(body)
        headers = {} if body is None else {"Content-Type": "application/json"}
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_health() -> None:
    assert request("GET", "/health") == (200, {"ok": True})


def test_an_item_has_its_id() -> None:
    for item in range(20):
        assert request("GET", f"/items/{item}") == (200, {"ok": True, "id": item})


def test_a_posted_item_comes_back() -> None:
    status, document = request("POST", "/items", {"name": "widget"})
    assert status == 201
    assert document == {"ok": True, "item": {"name": "widget"}}


def test_an_unknown_item_is_404() -> None:
    status, _ = request("GET", "/items/nope")
    assert status == 404
