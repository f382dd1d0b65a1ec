"""CI plumbing for scenarios: ``${NAME}`` variables (environment, ``--var``, ``--var-file``),
selection by ``--name`` and ``--tag``, and the Markdown summary ($GITHUB_STEP_SUMMARY)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sockharness.chaos import ScenarioError, markdown_report, parse_scenario, run_scenario

ROOT = Path(__file__).resolve().parents[1]

SCENARIO = """
[scenario]
name = "{name}"
duration = 0.3
tags = {tags}

[server]
handler = "echo"

[[clients]]
rate = 20
"""


def write(directory: Path, name: str, tags: str = "[]", file: str | None = None) -> Path:
    path = directory / (file or f"{name.replace(' ', '_')}.toml")
    path.write_text(textwrap.dedent(SCENARIO.format(name=name, tags=tags)))
    return path


def sockharness(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sockharness", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


# -- variables --------------------------------------------------------------------------------


HTTP_TARGET = """
[scenario]
name = "to ${SERVICE}"
duration = 0.3

[server]
kind = "tcp"
target = "${HOST}:${PORT}"

[[clients]]
protocol = "http"
path = "/${PREFIX}/items"
"""


def test_variables_fill_in_strings_from_the_mapping_then_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOST", "127.0.0.1")
    monkeypatch.setenv("PORT", "8080")
    monkeypatch.setenv("SERVICE", "from the environment")
    given = {"SERVICE": "api", "PREFIX": "v1"}
    scenario = parse_scenario(HTTP_TARGET, "vars.toml", variables=given)
    assert scenario.name == "to api"  # Given beats the environment.
    assert scenario.server.target == "127.0.0.1:8080"
    assert scenario.clients[0].path == "/v1/items"


def test_an_undefined_variable_is_an_error_at_its_key_and_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HOST", "PORT", "SERVICE", "PREFIX"):
        monkeypatch.delenv(name, raising=False)
    given = {"SERVICE": "api", "HOST": "127.0.0.1", "PORT": "1"}
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(HTTP_TARGET, "vars.toml", variables=given)
    assert caught.value.key == "clients[0].path"
    assert caught.value.line == 12
    assert "${PREFIX} is not defined" in caught.value.reason
    assert "--var PREFIX=VALUE" in caught.value.reason


def test_a_literal_dollar_brace_is_written_twice_and_a_bad_name_is_an_error() -> None:
    text = SCENARIO.format(name="costs $${PRICE}", tags="[]")
    assert parse_scenario(text, "x.toml", variables={}).name == "costs ${PRICE}"
    with pytest.raises(ScenarioError, match="is not a variable name"):
        parse_scenario(SCENARIO.format(name="${1X}", tags="[]"), "x.toml", variables={})


def test_run_takes_var_and_var_file_and_says_what_is_undefined(tmp_path: Path) -> None:
    path = write(tmp_path, "run by ${OWNER}")
    empty = sockharness("run", str(path), env={"OWNER": ""})
    assert empty.returncode == 0  # Defined, if empty, in the environment.
    env = {k: v for k, v in os.environ.items() if k != "OWNER"}
    done = subprocess.run(
        [sys.executable, "-m", "sockharness", "run", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env=env,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0  # One line, no traceback.
    assert "${OWNER} is not defined" in done.stderr
    assert f"{path}:3: scenario.name" in done.stderr
    var_file = tmp_path / "ci.env"
    var_file.write_text("# from the CI job\nOWNER=the file\n\n")
    from_file = sockharness("run", str(path), "--var-file", str(var_file))
    assert from_file.returncode == 0, from_file.stdout + from_file.stderr
    assert "run by the file" in from_file.stdout
    overridden = sockharness("run", str(path), "--var-file", str(var_file), "--var", "OWNER=me")
    assert "run by me" in overridden.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--var", "NOEQUALS"], "--var: expected NAME=VALUE"),
        (["--var", "1X=2"], "--var: expected NAME=VALUE"),
        (["--var-file", "/nonexistent/ci.env"], "--var-file /nonexistent/ci.env: cannot be read"),
    ],
)
def test_bad_variables_on_the_command_line_are_one_line_and_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    path = write(tmp_path, "plain")
    for command in ("run", "check"):
        done = sockharness(command, str(path), *args)
        assert done.returncode == 2
        assert message in done.stderr
        assert "Traceback" not in done.stderr


def test_a_bad_line_in_a_var_file_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "plain")
    var_file = tmp_path / "bad.env"
    var_file.write_text("GOOD=1\nnot a variable\n")
    done = sockharness("check", str(path), "--var-file", str(var_file))
    assert done.returncode == 2
    assert f"--var-file {var_file}:2: expected NAME=VALUE" in done.stderr


# -- selection --------------------------------------------------------------------------------


def test_name_and_tag_select_the_scenarios_that_run(tmp_path: Path) -> None:
    write(tmp_path, "api latency", '["api", "nightly"]')
    write(tmp_path, "api resets", '["api"]')
    write(tmp_path, "db failover", '["db", "nightly"]')

    def ran(*args: str) -> list[str]:
        done = sockharness("run", str(tmp_path), *args)
        assert done.returncode == 0, done.stdout + done.stderr
        return sorted(
            line.split(": held")[0].split("] ")[1]
            for line in done.stdout.splitlines()
            if ": held" in line
        )

    assert ran("--tag", "nightly") == ["api latency", "db failover"]
    assert ran("--name", "api*") == ["api latency", "api resets"]
    assert ran("--name", "api*", "--tag", "nightly") == ["api latency"]
    assert ran("--tag", "db", "--tag", "api") == ["api latency", "api resets", "db failover"]
    none = sockharness("run", str(tmp_path), "--tag", "weekly")
    assert none.returncode == 2
    assert "no scenario matches --tag 'weekly'" in none.stderr


def test_a_bad_tag_is_an_error_at_its_key() -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(SCENARIO.format(name="x", tags='["two words"]'), "x.toml")
    assert caught.value.key == "scenario.tags"
    with pytest.raises(ScenarioError, match="expected an array of strings"):
        parse_scenario(SCENARIO.format(name="x", tags='"api"'), "x.toml")


# -- the Markdown summary ---------------------------------------------------------------------


def test_the_markdown_summary_names_each_failure_and_its_phase() -> None:
    held = run_scenario(parse_scenario(SCENARIO.format(name="fine | piped", tags="[]"), "a.toml"))
    broken = run_scenario(
        parse_scenario(
            SCENARIO.format(name="slow", tags="[]") + "\n[expect]\nmax_p50_latency = 0.000001\n",
            "b.toml",
        )
    )
    text = markdown_report([held, broken])
    assert text.startswith("## sockharness chaos: 1 of 2 scenarios held\n")
    assert "| fine \\| piped | ✅ held |" in text
    assert "| slow | ❌ broken |" in text
    assert "### ❌ slow: broken" in text
    assert "- **during** `max_p50_latency`: p50 latency" in text
    assert "fine" not in text.split("### ")[1]  # Only failures get a section.


def test_markdown_goes_to_the_file_and_is_added_to_the_github_step_summary(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "summarised")
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n")
    markdown = tmp_path / "chaos.md"
    done = sockharness(
        "run", str(path), "--markdown", str(markdown), env={"GITHUB_STEP_SUMMARY": str(summary)}
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| summarised | ✅ held |" in markdown.read_text()
    assert summary.read_text().startswith("earlier step\n## sockharness chaos: 1 of 1")
    unwritable = sockharness(
        "run", str(path), env={"GITHUB_STEP_SUMMARY": str(tmp_path / "no" / "such.md")}
    )
    assert unwritable.returncode == 2
    assert "$GITHUB_STEP_SUMMARY" in unwritable.stderr


# -- under pytest -----------------------------------------------------------------------------

VARIABLE_SCENARIO = """\
[scenario]
name = "${NAME:-unnamed}"
duration = 0.3

[server]
handler = "${HANDLER}"

[[clients]]
reply = "upper"
"""


def test_pytest_fills_in_variables_from_sockharness_var(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", vars=VARIABLE_SCENARIO)
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "-v",
        "--sockharness-var", "HANDLER=upper", "--sockharness-var", "NAME=from the command line",
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*vars.toml::from the command line PASSED*"])
    # The wrong handler is a wrong answer: the variable is what decides.
    result = pytester.runpytest("-p", "no:cacheprovider", "--sockharness-var", "HANDLER=echo")
    result.assert_outcomes(failed=1)


def test_pytest_names_an_undefined_variable_at_its_key(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HANDLER", raising=False)
    pytester.makefile(".toml", vars=VARIABLE_SCENARIO)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*invalid scenario: *vars.toml:6: server.handler: ${HANDLER}*"])


def test_a_bad_sockharness_var_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", vars=VARIABLE_SCENARIO)
    result = pytester.runpytest("-p", "no:cacheprovider", "--sockharness-var", "1X=2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--sockharness-var: expected NAME=VALUE*found '1X=2'*"])
    assert "Traceback" not in result.stderr.str()
