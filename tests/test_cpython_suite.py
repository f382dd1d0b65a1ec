"""CPython's own test_socketserver passes against sockharness.server, on every installed 3.10-3.13.

The interpreter running this suite is always checked; the other supported
interpreters are checked where they are installed (pyenv or ``python3.X`` on
``PATH``). ``python tools/cpython_suite.py --all`` does the same from a shell.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("cpython_suite", ROOT / "tools" / "cpython_suite.py")
assert _spec is not None
assert _spec.loader is not None
cpython_suite = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cpython_suite)

INTERPRETERS = cpython_suite.find_interpreters()
CURRENT = f"3.{sys.version_info.minor}"


@pytest.mark.parametrize(
    "version",
    [pytest.param(v, id=f"{v}-current" if v == CURRENT else v) for v in INTERPRETERS],
)
def test_cpython_test_socketserver_passes_against_sockharness_server(version: str) -> None:
    summary, output = cpython_suite.run_in_subprocess(INTERPRETERS[version])
    assert summary["python"].startswith(version + ".")
    # The swap really happened: the suite's socketserver was ours, and its servers too.
    assert summary["swapped"] is True
    assert summary["socketserver_module"] == "sockharness.server"
    assert summary["stdlib_socketserver_loaded_before"] is False
    assert "<class 'sockharness.server." in output
    assert "<class 'socketserver." not in output
    # One test is re-aimed, and the output says so; everything else ran unmodified.
    assert summary["re_aimed"] == ["test.test_socketserver.MiscTestCase.test_all"]
    assert cpython_suite.RE_AIM_NOTE in output
    assert summary["tests_run"] >= 27
    assert summary["failures"] == [], output
    assert summary["errors"] == [], output
    assert summary["skipped"] == [], output
    assert summary["environment_altered"] is False, output
    assert summary["passed"] is True


def test_the_current_interpreter_is_always_among_those_checked() -> None:
    assert INTERPRETERS[CURRENT] == sys.executable
