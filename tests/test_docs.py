"""The documentation's examples are real programs, run here, and every one is shown in the docs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "docs" / "examples").glob("*.py"))


def test_there_are_examples() -> None:
    assert len(SCRIPTS) >= 3
    assert len(TEST_FILES) >= 2


SCRIPTS = [p for p in EXAMPLES if not p.name.startswith("test_")]
TEST_FILES = [p for p in EXAMPLES if p.name.startswith("test_")]


@pytest.mark.parametrize("example", SCRIPTS, ids=lambda p: p.name)
def test_example_script_runs(example: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(example)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip(), "each example prints what it showed"
    assert "Traceback" not in completed.stderr


@pytest.mark.parametrize("example", TEST_FILES, ids=lambda p: p.name)
def test_example_test_file_passes_as_a_downstream_project_runs_it(
    example: Path, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(**{example.stem: example.read_text()})
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--sockharness-leaks=fail")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0, result.stdout.str()
    assert outcomes.get("errors", 0) == 0, result.stdout.str()
    assert outcomes.get("passed", 0) >= 2


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_is_included_in_a_page(example: Path) -> None:
    pages = "\n".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    assert f'--8<-- "examples/{example.name}"' in pages


def test_readme_quick_start_has_exactly_two_commands_and_ci_runs_the_second() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- quick-start.*?-->\n```sh\n(.*?)```", readme, re.S)
    assert block is not None
    commands = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(commands) == 2
    assert commands[0].endswith("sockharness run scenarios/")
    assert "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "quick-start" in ci
    assert "grep -m1 'pytest'" in ci


def test_the_main_job_scenarios_are_valid() -> None:
    """The README's first command runs scenarios/; each file there must at least be valid."""
    result = subprocess.run(
        [sys.executable, "-m", "sockharness", "check", "scenarios/"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(re.findall(r"^ok: ", result.stdout, re.M)) >= 10
