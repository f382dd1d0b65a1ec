"""pytest --sockharness-seeds N: marked tests and scenarios under N seeds, the same under xdist."""

from __future__ import annotations

import re

import pytest

SWEPT = """
import pytest

@pytest.mark.sockharness_sweep
def test_swept(sockharness_seed):
    print("SEED", sockharness_seed)
    assert sockharness_seed % 3 != 0, "a seed the code under test cannot take"

def test_once(sockharness_seed):
    print("ONCE", sockharness_seed)
"""

SCENARIO = """
[scenario]
name = "small"
duration = 0.2

[server]
kind = "tcp"

[[clients]]
rate = 20
"""


def _seeds(result: pytest.RunResult, word: str) -> list[str]:
    return re.findall(rf"{word} (\d+)", result.stdout.str())


def test_a_marked_test_runs_under_each_seed_and_an_unmarked_one_once(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_sweep=SWEPT)
    serial = pytester.runpytest("-p", "no:randomly", "-s", "-v", "--sockharness-seed", "5",
                                "--sockharness-seeds", "8")  # fmt: skip
    serial.stdout.fnmatch_lines(["*test_swept?sweep0? *", "*test_swept?sweep7? *"])
    swept = _seeds(serial, "SEED")
    assert len(swept) == 8
    assert len(set(swept)) == 8
    assert len(_seeds(serial, "ONCE")) == 1
    failed = [seed for seed in swept if int(seed) % 3 == 0]
    outcomes = serial.parseoutcomes()
    assert outcomes.get("failed", 0) == len(failed)
    assert outcomes["passed"] == 8 - len(failed) + 1
    # Under xdist: the same items, the same seeds, the same verdicts.
    parallel = pytester.runpytest("-p", "no:randomly", "-n", "2", "-v", "--sockharness-seed",
                                  "5", "--sockharness-seeds", "8")  # fmt: skip
    assert parallel.parseoutcomes() == outcomes | {"passed": outcomes["passed"]}
    names = sorted(re.findall(r"test_swept\[sweep\d\] (?:PASSED|FAILED)", parallel.stdout.str()))
    assert names == sorted(re.findall(r"test_swept\[sweep\d\] (?:PASSED|FAILED)",
                                      serial.stdout.str()))  # fmt: skip


def test_a_failed_sweep_item_replays_from_its_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_sweep="""
        import pytest
        from sockharness.faults import ResetPeer
        from sockharness.handlers import LineEchoHandler

        @pytest.mark.sockharness_sweep
        def test_swept(make_server, _sockharness_sweep):
            server = make_server(LineEchoHandler, faults=[
                ResetPeer(direction="downstream", connections=str(_sockharness_sweep))])
            for _ in range(3):
                with server.connect() as client:
                    assert client.request(b"hi\\n") == b"hi\\n"
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "--sockharness-seeds", "3")
    result.assert_outcomes(failed=3)  # Each sweep resets another connection.
    line = next(x for x in result.stdout.lines if x.startswith("replay with: pytest"))
    path = line.split("--sockharness-replay ", 1)[1]
    replay = pytester.runpytest("-p", "no:randomly", "--sockharness-replay", path)
    replay.assert_outcomes(failed=1, deselected=2)
    replay.stdout.fnmatch_lines(["*the 1 recorded fault decisions came again, in order"])


def test_a_scenario_runs_under_each_seed(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", small=SCENARIO)
    result = pytester.runpytest("-p", "no:randomly", "-v", "small.toml", "--sockharness-seeds", "3")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*small.toml::small?sweep0? PASSED*", "*small?sweep2? PASSED*"])


def test_a_bad_count_of_seeds_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    for value, message in [("0", "0 seeds: give from 1 to 10000"), ("x", "'x' is not a number")]:
        result = pytester.runpytest("--sockharness-seeds", value)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"*{message}*"])


def test_a_scenario_runs_with_the_last_seed_as_a_number(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", small=SCENARIO)
    pytester.runpytest("-p", "no:randomly", "small.toml", "--sockharness-seed", "21")
    for extra in ([], ["-n", "2"]):  # The workers read the controller's seed, not 'last'.
        result = pytester.runpytest(
            "-p", "no:randomly", "small.toml", "--sockharness-seed", "last", *extra
        )
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(["sockharness: seed 21 *"])
