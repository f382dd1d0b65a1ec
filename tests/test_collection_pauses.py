"""Full garbage collections leave the caller's old heap alone while the harness measures.

In this suite's workers a full collection took 40-180 ms (over 300 ms beside the other
worker): a steady-state probe took it for the server's latency and judged a healthy app
"not steady". Chaos runs and conformance properties now run with the objects made before
them frozen, so a collection during them walks only what they made.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import weakref
from typing import Any

import pytest

from sockharness._core import old_objects_left_alone
from sockharness.chaos import parse_scenario, run_scenario
from sockharness.server import StreamRequestHandler


@pytest.fixture(autouse=True)
def only_the_interpreters_own_frozen() -> None:
    """Each test starts as a fresh process does: frozen, only what the interpreter froze.

    (CPython 3.12 starts with some of its static tuples frozen: 375 on 3.12.1.)"""
    frozen = gc.get_freeze_count()
    if frozen and frozen != _frozen_at_start():
        gc.unfreeze()  # An earlier test's freeze: not the state these tests describe.


def _frozen_at_start() -> int:
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", "import gc; print(gc.get_freeze_count())"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return int(done.stdout)


class _Node:
    def __init__(self) -> None:
        self.other: Any = self


def test_the_old_objects_are_out_of_the_collectors_sight_within_the_block() -> None:
    old = [_Node() for _ in range(20_000)]
    before = len(gc.get_objects())
    with old_objects_left_alone():
        assert gc.get_freeze_count() >= len(old)
        assert len(gc.get_objects()) < before - len(old)
    assert len(gc.get_objects()) >= before - 100


def test_a_cycle_made_within_the_block_is_still_collected() -> None:
    with old_objects_left_alone():
        node = _Node()
        gone = weakref.ref(node)
        del node
        gc.collect()
        assert gone() is None


def test_a_cycle_dropped_within_the_block_is_collected_after_it() -> None:
    node = _Node()
    gone = weakref.ref(node)
    with old_objects_left_alone():
        del node
        gc.collect()
        assert gone() is not None  # Frozen: not walked, not freed.
    gc.collect()
    assert gone() is None


def test_what_someone_else_froze_stays_frozen() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with old_objects_left_alone():
            pass
        assert gc.get_freeze_count() >= frozen
    finally:
        gc.unfreeze()


def test_a_disabled_collector_is_left_as_it_is() -> None:
    frozen = gc.get_freeze_count()
    gc.disable()
    try:
        with old_objects_left_alone():
            assert gc.get_freeze_count() == frozen
        assert not gc.isenabled()
    finally:
        gc.enable()


class SeesTheFreeze(StreamRequestHandler):
    """An echo that notes, per line, whether the old heap was frozen while it served."""

    frozen: list[bool] = []  # What the handlers saw, for the test to read.
    frozen_outside = 0  # The count outside any block, set by the test.

    def handle(self) -> None:
        for line in self.rfile:
            type(self).frozen.append(gc.get_freeze_count() > self.frozen_outside)
            self.wfile.write(line)


def test_a_chaos_run_leaves_the_old_heap_alone_and_restores_it() -> None:
    SeesTheFreeze.frozen.clear()
    SeesTheFreeze.frozen_outside = outside = gc.get_freeze_count()
    scenario = parse_scenario(
        textwrap.dedent(
            """
            [scenario]
            name = "frozen"
            seed = 1
            duration = 0.3

            [server]
            kind = "tcp"
            handler = "tests.test_collection_pauses:SeesTheFreeze"

            [[clients]]
            rate = 30
            size = 64
            """
        ),
        "<test>",
    )
    result = run_scenario(scenario)
    assert result.result == "held", result.failure_message()
    assert SeesTheFreeze.frozen
    assert all(SeesTheFreeze.frozen)
    assert gc.get_freeze_count() == outside
