"""pytest --sockharness-check-determinism: each test twice with one seed, decisions compared."""

from __future__ import annotations

import re

import pytest

TESTS = """
import dataclasses
import itertools

from sockharness.faults import STREAM, Fault, ResetPeer, StreamEffect
from sockharness.handlers import LineEchoHandler

DRAWS = itertools.count()


class _Draws(StreamEffect):
    def data(self, plan, stage, items):
        for at, data in items:
            plan.record(stage, at, f"drew {next(DRAWS)}")  # Not stage.rng: unseeded.
        return items, []


@dataclasses.dataclass(frozen=True, repr=False)
class Unseeded(Fault):
    transports = frozenset({STREAM})
    stream_effect = _Draws()


def exchange(server, count):
    for _ in range(count):
        try:  # A reset may strike as early as the connect: the test is about decisions.
            with server.connect() as client:
                client.request(b"hi\\n")
        except (OSError, EOFError):
            pass


def test_seeded(make_server):
    server = make_server(
        LineEchoHandler, faults=[ResetPeer(direction="downstream", connections="1")]
    )
    exchange(server, 2)


def test_unseeded(make_server):
    server = make_server(LineEchoHandler, faults=[Unseeded(direction="upstream")])
    exchange(server, 1)


def test_plain():
    pass
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]])
def test_the_check_passes_seeded_faults_and_fails_an_unseeded_one(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    pytester.makepyfile(test_decisions=TESTS)
    result = pytester.runpytest(
        "-p", "no:randomly", "--sockharness-check-determinism", "--sockharness-leaks=fail",
        *workers,
    )  # fmt: skip
    # Each test that uses the fixtures ran twice; the plain one once. All passed...
    result.assert_outcomes(passed=5)
    # ... but the run fails: one test's two runs decided differently.
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*- sockharness determinism -*",
            "deterministic: test_decisions.py::test_seeded: 1 fault decisions, twice",
            "NOT DETERMINISTIC: test_decisions.py::test_unseeded: the runs differ at server 0 "
            "conn 0 upstream, decision 0: first run Unseeded(direction='upstream'): drew *; "
            "second run Unseeded(direction='upstream'): drew *",
        ]
    )
    assert not (pytester.path / ".sockharness" / "determinism").exists()


def test_both_runs_of_a_test_have_one_seed_and_other_tests_their_own(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_seeds="""
        import pytest

        @pytest.mark.parametrize("n", [1, 2])
        def test_x(make_server, sockharness_seed, n):
            print("SEED", n, sockharness_seed)
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "-s", "--sockharness-check-determinism")
    result.assert_outcomes(passed=4)
    seeds = re.findall(r"SEED (\d) (\d+)", result.stdout.str())
    by_n: dict[str, set[str]] = {}
    for n, seed in seeds:
        by_n.setdefault(n, set()).add(seed)
    assert {n: len(found) for n, found in by_n.items()} == {"1": 1, "2": 1}
    assert by_n["1"] != by_n["2"]
    assert result.ret == pytest.ExitCode.OK
