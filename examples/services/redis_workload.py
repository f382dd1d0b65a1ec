"""Workloads that drive a real Redis server with its own Python client (redis-py).

Each call opens a client to the address the scenario gives (the fault proxy in
front of Redis), does its work and checks the answer: a wrong value is an
``AssertionError`` (``corrupt``); redis-py's ``TimeoutError`` counts as
``lost`` and its ``ConnectionError`` as ``error``, as the runner judges any
workload.
"""

from __future__ import annotations

import random
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = ["ping", "set_then_get"]


def _client(address: Any, *, retries: int) -> redis.Redis:
    host, port = address[0], address[1]
    return redis.Redis(
        host=host,
        port=port,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        single_connection_client=True,
        retry=Retry(NoBackoff(), retries),
    )


def set_then_get(address: Any, rng: random.Random, seq: int) -> None:
    """SET a seeded key to this message's value, GET it back, and check it."""
    key, value = f"sockharness:{rng.randrange(10_000)}", f"value {seq}"
    client = _client(address, retries=3)  # As an application would: a reset is retried.
    try:
        assert client.set(key, value, ex=60) is True, "SET was not acknowledged"
        got = client.get(key)
        assert got == value.encode(), f"GET {key} gave {got!r}, expected {value!r}"
    finally:
        client.close()


def ping(address: Any, rng: random.Random, seq: int) -> None:
    """PING, once: the steady-state probe (no retry hides what the server did)."""
    client = _client(address, retries=0)
    try:
        assert client.ping() is True, "PING was not answered with PONG"
    finally:
        client.close()
