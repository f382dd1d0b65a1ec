"""CPython's own suites, and third-party ones, pass against sockharness.server.

``test_socketserver`` and the light consumer suites are checked on every
installed 3.10-3.13 (pyenv or ``python3.X`` on ``PATH``); the heavy consumer
suites on the interpreter running this suite (see ``HEAVY_SUITES``). ``python
tools/cpython_suite.py --all`` runs everything on every interpreter from a
shell, and ``python tools/third_party_suites.py`` the third-party suites.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .helpers import load_tool

ROOT = Path(__file__).resolve().parents[1]


cpython_suite = load_tool("cpython_suite")
third_party_suites = load_tool("third_party_suites")

INTERPRETERS = cpython_suite.find_interpreters()
CURRENT = f"3.{sys.version_info.minor}"

# Measured on two cores, a run on sockharness.server plus its stdlib baseline:
# test_imaplib takes 60-105 s per interpreter (four 10 s 'walltime' tests on
# 3.11 and 3.12, on the stdlib alike) and test_logging 45-50 s; the light three
# take under 8 s together. The heavy two on all four interpreters would add
# about six minutes of wall time to the suite, so they run on the current
# interpreter only; SOCKHARNESS_ALL_SUITES=1 runs them everywhere.
HEAVY_SUITES = ("test_logging", "test_imaplib")
LIGHT_SUITES = tuple(s for s in cpython_suite.CONSUMER_SUITES if s not in HEAVY_SUITES)
EVERYWHERE = os.environ.get("SOCKHARNESS_ALL_SUITES") == "1"
# The long profile (SOCKHARNESS_LONG=1, or SOCKHARNESS_ALL_SUITES=1) adds what does
# not fit the default suite's budget of a few minutes for outside suites:
# test_imaplib (60-105 s, mostly 'walltime' tests) and the third-party suites
# (about 140 s, downloads included).
LONG = EVERYWHERE or os.environ.get("SOCKHARNESS_LONG") == "1"
LONG_ONLY_SUITES = ("test_imaplib",)
long_profile = pytest.mark.skipif(
    not LONG, reason="long profile: run with SOCKHARNESS_LONG=1 (see docs/development.md)"
)


def _version_id(version: str) -> str:
    return f"{version}-current" if version == CURRENT else version


def _consumer_params():
    for version in INTERPRETERS:
        for suite in cpython_suite.CONSUMER_SUITES:
            if suite in HEAVY_SUITES and version != CURRENT and not EVERYWHERE:
                continue
            marks = [long_profile] if suite in LONG_ONLY_SUITES else []
            yield pytest.param(version, suite, id=f"{_version_id(version)}-{suite}", marks=marks)


def _assert_swap_held(summary: dict) -> None:
    hook = summary["hook"]
    assert summary["swapped"] is True
    assert summary["verified"] is True
    assert summary["socketserver_module"] == "sockharness.server"
    assert summary["stdlib_socketserver_loaded_before"] is False
    assert set(summary["consumers"].values()) == {"ours"}, summary["consumers"]
    assert hook["swap_held"] is True, hook
    assert hook["servers"]["built"] > 0
    assert hook["servers"]["ours"] == hook["servers"]["built"], hook["servers"]
    assert hook["modules_referring_to_stdlib"] == []
    assert hook["socketserver_imports"]["stdlib"] == 0
    assert hook["python_children_escaping_the_hook"] == []
    assert hook["blocked_network"] == [], hook["blocked_network"]
    # Python children started the ways the suites start them got ours too.
    probes = summary["child_probes"]
    assert len(probes) == len(cpython_suite.CHILD_PROBE_WAYS)
    assert all(probe["as_expected"] for probe in probes), probes


@pytest.mark.timeout(cpython_suite.HANG_TIMEOUT + 120)
@pytest.mark.parametrize("version", [pytest.param(v, id=_version_id(v)) for v in INTERPRETERS])
def test_cpython_test_socketserver_passes_against_sockharness_server(version: str) -> None:
    summary, output = cpython_suite.run_in_subprocess(INTERPRETERS[version])
    assert summary["python"].startswith(version + "."), output
    # The swap really happened: the suite's socketserver was ours, and its servers too.
    _assert_swap_held(summary)
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
    assert summary["left_processes"] == []
    assert summary["passed"] is True


@pytest.mark.timeout(1500)
@pytest.mark.parametrize(("version", "suite"), list(_consumer_params()))
def test_cpython_consumer_suite_passes_against_sockharness_server(version: str, suite: str) -> None:
    run = cpython_suite.run_suite(INTERPRETERS[version], suite)
    ours, stdlib, comparison = run["ours"], run["stdlib"], run["comparison"]
    assert ours["python"].startswith(version + "."), run["ours_output"]
    _assert_swap_held(ours)
    assert set(ours["consumers"]) == set(cpython_suite.SUITES[suite].consumers)
    # The baseline really ran on the standard library's socketserver.
    assert stdlib is not None
    assert stdlib["swapped"] is False
    assert stdlib["hook"]["stdlib_held"] is True
    assert stdlib["hook"]["servers"]["stdlib"] == stdlib["hook"]["servers"]["built"] > 0
    assert all(probe["as_expected"] for probe in stdlib["child_probes"])
    # No test network resource: whatever needs the internet skips, on both alike.
    assert "network" not in ours["resources"]
    assert ours["tests_run"] == stdlib["tests_run"] > 0
    assert comparison["same_skips"] is True, (comparison, ours["skip_reasons"])
    assert comparison["only_ours"] == {"failures": [], "errors": []}, run["ours_output"]
    assert ours["failures"] == [], run["ours_output"]
    assert ours["errors"] == [], run["ours_output"]
    assert ours["environment_altered"] is False, run["ours_output"]
    assert ours["left_processes"] == [], ours["left_processes"]
    assert comparison["ok"] is True
    if suite == "test_logging":
        # It starts Python children (script_helper's -I): each reported from our venv.
        hook = ours["hook"]
        assert hook["python_children_launched"] >= 1
        assert hook["child_processes"] >= hook["python_children_launched"]


def test_the_current_interpreter_is_always_among_those_checked() -> None:
    assert INTERPRETERS[CURRENT] == sys.executable


def test_heavy_suites_are_consumer_suites() -> None:
    assert set(HEAVY_SUITES) <= set(cpython_suite.CONSUMER_SUITES)
    assert "test_socketserver" not in cpython_suite.CONSUMER_SUITES


# -- the hook itself, in a venv of this interpreter ----------------------------


@pytest.fixture(scope="module")
def hooked_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cpython_suite.make_venv(sys.executable, tmp_path_factory.mktemp("venv") / "venv")


def _run_hooked(venv_python: Path, mode: str, report: Path, code: str, *flags: str):
    cpython_suite.configure_venv(venv_python, mode, report)
    try:
        completed = subprocess.run(
            [str(venv_python), *flags, "-c", textwrap.dedent(code)],
            capture_output=True,
            text=True,
            timeout=60,
            env=cpython_suite.clean_environment(),
            check=False,
        )
    finally:
        cpython_suite.configure_venv(venv_python, None, None)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout, cpython_suite.summarize_report(cpython_suite.read_report(report), mode)


def test_the_alias_gives_the_very_module_with_its_own_spec(
    hooked_venv: Path, tmp_path: Path
) -> None:
    code = """
        import sys
        assert "socketserver" not in sys.modules and "sockharness" not in sys.modules
        import socketserver
        import sockharness.server
        assert socketserver is sockharness.server
        assert socketserver.__spec__.name == "sockharness.server"
        assert ROOT not in sys.path
        print("ok")
    """.replace("ROOT", repr(str(ROOT)))
    out, hook = _run_hooked(hooked_venv, "sockharness", tmp_path / "r", code, "-I")
    assert out.strip() == "ok"
    assert hook["socketserver_imports"] == {"ours": 1, "stdlib": 0}
    assert hook["swap_held"] is True


def test_an_unarmed_venv_is_left_alone(hooked_venv: Path) -> None:
    completed = subprocess.run(
        [str(hooked_venv), "-c", "import socketserver; print(socketserver.__name__)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert completed.stdout.strip() == "socketserver"


def test_the_stdlib_mode_only_observes(hooked_venv: Path, tmp_path: Path) -> None:
    code = """
        import socketserver, http.server
        server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
        server.server_close()
        print(socketserver.__name__)
    """
    out, hook = _run_hooked(hooked_venv, "stdlib", tmp_path / "r", code)
    assert out.strip() == "socketserver"
    assert hook["stdlib_held"] is True
    assert hook["servers"]["stdlib"] == hook["servers"]["built"] == 1
    assert hook["swap_held"] is False


def test_a_stdlib_socketserver_that_sneaks_in_fails_the_verification(
    hooked_venv: Path, tmp_path: Path
) -> None:
    code = """
        import importlib.util, sys, unittest, os
        import socketserver
        path = os.path.join(os.path.dirname(unittest.__path__[0]), "socketserver.py")
        spec = importlib.util.spec_from_file_location("socketserver", path)
        real = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(real)
        leaky = type(sys)("leaky")
        leaky.socketserver = real
        sys.modules["leaky"] = leaky
        server = real.TCPServer(("127.0.0.1", 0), real.BaseRequestHandler)
        server.server_close()
    """
    _out, hook = _run_hooked(hooked_venv, "sockharness", tmp_path / "r", code)
    assert set(hook["modules_referring_to_stdlib"]) == {"__main__", "leaky"}
    assert hook["servers"]["stdlib"] == 1
    assert hook["swap_held"] is False


def test_a_child_that_escapes_the_hook_is_reported(hooked_venv: Path, tmp_path: Path) -> None:
    code = """
        import subprocess, sys
        subprocess.run([sys.executable, "-S", "-c", "pass"], check=True, timeout=60)
    """
    _out, hook = _run_hooked(hooked_venv, "sockharness", tmp_path / "r", code)
    assert hook["python_children_launched"] == 1
    assert len(hook["python_children_escaping_the_hook"]) == 1
    assert hook["swap_held"] is False


def test_the_guard_refuses_anything_but_loopback(hooked_venv: Path, tmp_path: Path) -> None:
    # The audit events are raised by hand: nothing is ever sent anywhere, even if the
    # guard were broken. Loopback names and addresses pass.
    code = """
        import errno, socket, sys
        sock = socket.socket()
        refused = []
        for event, args in [
            ("socket.connect", (sock, ("192.0.2.1", 80))),
            ("socket.sendto", (sock, ("2001:db8::1", 53, 0, 0))),
            ("socket.getaddrinfo", ("pypi.invalid", 443, 0, 0, 0)),
            ("socket.gethostbyname", ("pypi.invalid",)),
        ]:
            try:
                sys.audit(event, *args)
            except OSError as error:
                assert "only loopback" in str(error), error
                refused.append(event)
        for event, args in [
            ("socket.connect", (sock, ("127.0.0.1", 80))),
            ("socket.connect", (sock, ("localhost", 80))),
            ("socket.connect", (sock, ("::1", 80, 0, 0))),
            ("socket.getaddrinfo", ("localhost", 80, 0, 0, 0)),
            ("socket.getaddrinfo", ("10.1.2.3", 80, 0, 0, 0)),
            ("socket.getaddrinfo", (None, 80, 0, 0, 0)),
        ]:
            sys.audit(event, *args)
        sock.close()
        print(",".join(refused))
    """
    out, hook = _run_hooked(hooked_venv, "sockharness", tmp_path / "r", code)
    assert out.strip().split(",") == [
        "socket.connect",
        "socket.sendto",
        "socket.getaddrinfo",
        "socket.gethostbyname",
    ]
    assert len(hook["blocked_network"]) == 4


def test_run_bounded_reports_and_ends_what_a_run_leaves_behind(tmp_path: Path) -> None:
    # The child blocks until a signal comes: run_bounded's SIGKILL to the group.
    code = (
        "import subprocess, sys; "
        "subprocess.Popen([sys.executable, '-c', 'import signal; signal.pause()'])"
    )
    completed = cpython_suite.run_bounded(
        [sys.executable, "-c", code],
        timeout=60,
        cwd=tmp_path,
        env=cpython_suite.clean_environment(),
        log=tmp_path / "log",
        grace=0.5,
    )
    assert completed.returncode == 0
    assert len(completed.left_processes) == 1
    assert "signal.pause()" in completed.left_processes[0]


def test_the_comparison_tells_our_failures_from_the_environment() -> None:
    base = {"tests_run": 3, "failures": [], "errors": [], "skipped": [], "verified": True}
    stdlib = {**base, "failures": ["t.env"], "skipped": ["t.net"]}
    ours = {**base, "failures": ["t.env"], "skipped": ["t.net"], "passed": False}
    assert cpython_suite.compare_with_baseline(ours, stdlib)["ok"] is True
    ours_too = {**ours, "errors": ["t.ours"]}
    comparison = cpython_suite.compare_with_baseline(ours_too, stdlib)
    assert comparison["ok"] is False
    assert comparison["only_ours"]["errors"] == ["t.ours"]
    assert comparison["also_on_stdlib"] == ["t.env"]
    more_skips = {**ours, "skipped": ["t.net", "t.other"]}
    assert cpython_suite.compare_with_baseline(more_skips, stdlib)["same_skips"] is False
    assert cpython_suite.compare_with_baseline(more_skips, stdlib)["ok"] is False


# -- third-party suites ----------------------------------------------------------


def _pypi_unreachable_reason(tmp_path: Path) -> str | None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "-d",
            str(tmp_path / "probe"),
            "dnslib==" + third_party_suites.PACKAGES["dnslib"].version,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=third_party_suites.pip_environment(),
        check=False,
    )
    if completed.returncode == 0:
        return None
    return "PyPI cannot be reached from here: " + completed.stderr.strip()[-300:]


@long_profile
@pytest.mark.timeout(2400)
def test_third_party_suites_pass_against_sockharness_server(tmp_path: Path) -> None:
    """werkzeug's test_serving.py, dnslib's run_tests and pytest-localserver's suite."""
    try:
        reason = _pypi_unreachable_reason(tmp_path)
    except subprocess.TimeoutExpired:
        reason = "PyPI did not answer within 180 s"
    if reason:
        pytest.skip(reason)
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "third_party_suites.py"),
            "--quick",
        ],
        capture_output=True,
        text=True,
        timeout=2200,
        cwd=tmp_path,
        check=False,
    )
    output = completed.stdout + completed.stderr
    lines = [
        line
        for line in completed.stdout.splitlines()
        if line.startswith(third_party_suites.RESULT_PREFIX)
    ]
    assert lines, output
    summary = json.loads(lines[-1][len(third_party_suites.RESULT_PREFIX) :])
    assert summary["failed"] == [], output
    results = {result["package"]: result for result in summary["packages"]}
    assert set(results) == set(third_party_suites.PACKAGES)
    available = {name: r for name, r in results.items() if r["status"] != "unavailable"}
    for name, result in available.items():
        assert result["status"] == "ok", (name, output)
        assert result["swap_verified"] is True, (name, output)
        assert result["failures_only_on_sockharness"] == [], (name, output)
        assert result["same_skips"] is True, (name, output)
        hook = result["sockharness"]["hook"]
        assert hook["servers"]["built"] == hook["servers"]["ours"] > 0, (name, hook)
        assert hook["python_children_escaping_the_hook"] == [], (name, hook)
        assert result["stdlib"]["hook"]["stdlib_held"] is True, name
        assert result["sockharness"]["counts"]["passed"] > 0, name
    if "werkzeug" in available:
        # Its dev server runs in child processes: the swap held there.
        hook = available["werkzeug"]["sockharness"]["hook"]
        assert hook["servers"]["in_children"] > 0
        assert hook["children_importing_socketserver"] > 0
        assert hook["socketserver_imports"]["stdlib"] == 0
    if summary["unavailable"]:
        pytest.skip(f"could not be downloaded or installed: {summary['unavailable']}")
    assert completed.returncode == 0, output
