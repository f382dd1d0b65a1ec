"""A scenario sweep and a seeded suite spread over xdist workers (standing in for hosts).

The recipe of docs/plugin.md ("Across machines"): the verdicts and the seeds of a
run split over workers with ``--tx``/``--dist`` are those of the serial run.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.helpers import SUBPROCESSES_TIMEOUT

SCENARIO = """
[scenario]
name = "{name}"
seed = {seed}
duration = 0.3

[server]
handler = "echo"

[[clients]]
count = 2
rate = 40
size = 64

[[faults]]
{fault}
at = 0.05
until = 0.2

[expect]
max_error_rate = {max_error_rate}
"""

SEEDED_TESTS = """
import pytest

@pytest.mark.parametrize("index", range(6))
def test_seeded(index, sockharness_seed, payloads, record_property):
    record_property("sockharness_seed", sockharness_seed)
    record_property("payload", payloads.text(16))
    assert (sockharness_seed + index) % 5 != 0  # Some fail: verdicts must match too.
"""


def _outcomes(path: Path) -> dict[str, tuple[str, dict[str, str]]]:
    """Each test case's outcome and recorded properties, by its name."""
    found = {}
    for case in ET.parse(path).iter("testcase"):
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            if case.find(tag) is not None:
                outcome = tag
        properties = {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
        found[f"{case.get('classname')}::{case.get('name')}"] = (outcome, properties)
    return found


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    faults = [
        'fault = "latency"\ndelay = 0.02\njitter = 0.01',  # Holds, with seeded jitter.
        'fault = "reset_peer"\ntoxicity = 0.5',  # The seed picks the connections reset.
        'fault = "reset_peer"',  # Breaks max_error_rate = 0 under any seed.
    ]
    for index, fault in enumerate(faults):
        pytester.makefile(
            ".toml",
            **{
                f"scenario_{index}": SCENARIO.format(
                    name=f"s{index}", seed=10 + index, fault=fault, max_error_rate=0.0
                )
            },
        )
    pytester.makepyfile(test_seeded=SEEDED_TESTS)
    return pytester


# A serial and an xdist session in subprocesses: 30-60 s beside a CPU burner.
@SUBPROCESSES_TIMEOUT
def test_workers_give_the_serial_runs_verdicts_and_seeds(project: pytest.Pytester) -> None:
    common = ["-p", "no:cacheprovider", "--sockharness-seed", "4242", "--sockharness-seeds", "2"]
    serial = project.runpytest_subprocess(*common, "-p", "no:xdist", "--junitxml", "serial.xml")
    spread = project.runpytest_subprocess(
        *common, "--tx", "2*popen", "--dist", "load", "--junitxml", "spread.xml"
    )
    assert "2 workers" in spread.stdout.str() or "gw1" in spread.stdout.str()
    alone = _outcomes(project.path / "serial.xml")
    together = _outcomes(project.path / "spread.xml")
    assert len(alone) == 6 + 3 * 2, sorted(alone)
    assert together == alone
    outcomes = {outcome for outcome, _ in alone.values()}
    assert "passed" in outcomes
    assert "failure" in outcomes  # The comparison covers broken verdicts as well.
    assert all("sockharness_seed" in properties for _, properties in alone.values())
    assert serial.ret == spread.ret == pytest.ExitCode.TESTS_FAILED
