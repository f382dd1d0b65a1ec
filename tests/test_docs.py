"""The documentation's examples are real programs, run here, and every one is shown in the docs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: An example in a page: a marker line naming it, then its code, shown whole.
EXAMPLE = re.compile(
    r"^<!-- example: (?P<name>[\w.]+) -->\n```python\n(?P<code>.*?)^```$", re.M | re.S
)


def _examples() -> dict[str, str]:
    found: dict[str, str] = {}
    for page in sorted((ROOT / "docs").glob("*.md")):
        for match in EXAMPLE.finditer(page.read_text()):
            name = match.group("name")
            assert name not in found, f"two examples are called {name}"
            found[name] = match.group("code")
    return found


EXAMPLES = _examples()
SCRIPTS = sorted(name for name in EXAMPLES if not name.startswith("test_"))
TEST_FILES = sorted(name for name in EXAMPLES if name.startswith("test_"))


def test_there_are_examples() -> None:
    assert len(SCRIPTS) >= 3
    assert len(TEST_FILES) >= 3


def test_pages_show_their_code_when_read_raw() -> None:
    """No page includes code from elsewhere: on GitHub a snippet include shows nothing."""
    for page in (ROOT / "docs").glob("*.md"):
        assert "--8<--" not in page.read_text(), page.name


@pytest.mark.parametrize("name", SCRIPTS)
def test_example_script_runs(name: str, tmp_path: Path) -> None:
    script = tmp_path / name
    script.write_text(EXAMPLES[name])
    completed = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip(), "each example prints what it showed"
    assert "Traceback" not in completed.stderr


@pytest.mark.parametrize("name", TEST_FILES)
def test_example_test_file_passes_as_a_downstream_project_runs_it(
    name: str, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(**{name.removesuffix(".py"): EXAMPLES[name]})
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--sockharness-leaks=fail")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0, result.stdout.str()
    assert outcomes.get("errors", 0) == 0, result.stdout.str()
    assert outcomes.get("passed", 0) >= 2


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
