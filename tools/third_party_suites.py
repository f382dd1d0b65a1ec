"""Run the own test suites of third-party packages built on socketserver against sockharness.server.

Packages (pinned, so a result can be reproduced; ``--latest`` takes PyPI's newest):

* **werkzeug** — its development server is ``http.server.HTTPServer`` with
  ``socketserver.ThreadingMixIn``/``ForkingMixIn`` (``werkzeug.serving``).
  Its suite (``tests/`` of the sdist) starts that server both in the test
  process and, for ``test_serving.py``, as a *separate Python process* (the
  ``dev_server`` fixture runs ``sys.executable`` with its own ``PYTHONPATH``),
  and runs the reloader, which re-executes the interpreter.
* **dnslib** — ``dnslib.server`` subclasses ``socketserver.ThreadingMixIn``
  with ``socketserver.UDPServer`` and ``socketserver.TCPServer``. Its suite is
  ``run_tests.sh``: each module run as a script (doctests, one Python process
  each; ``server.py``'s doctests serve and query DNS over UDP and TCP on
  localhost ports 8053-8055) and ``test_decode.py``. ``fuzz.py``, which the
  shell script also runs, is left out: it sends queries to 8.8.8.8.
* **pytest-localserver** — a pytest plugin whose HTTP(S) servers are werkzeug's
  ``ThreadedWSGIServer`` in a thread of the test process; one test runs a
  server in a child Python process. Its SMTP server is aiosmtpd (asyncio, not
  socketserver), so its extra is not installed and those tests skip, on both
  runs alike.

For each package the script makes a throwaway virtual environment under a
temporary directory (never in the repository), downloads the sdist with pip,
installs it and its test requirements there, and runs the suite twice: with
``socketserver`` swapped to ``sockharness.server`` and with the real
socketserver. The swap is made and checked by the hook of
``tools/cpython_suite.py`` (a ``.pth`` file of the venv): it holds in the test
process and in every Python child (``-I``, ``-E`` and a child's own
``PYTHONPATH`` included), every server built is reported with the classes it
was built from, and any attempt to reach a non-loopback address is refused.
Proxy variables are removed from the environment: loopback only.

A test that fails (or errors) only on sockharness.server is re-run once on
both; one that then passes everywhere is reported as flaky, one that fails
again only on ours counts against sockharness.server. Failures that the stdlib
run has too are environment matters and are reported as such.

Usage::

    python tools/third_party_suites.py                     # every package
    python tools/third_party_suites.py --package dnslib    # one (repeatable)
    python tools/third_party_suites.py --python /path/to/python3.12 --keep

The last line is ``SOCKHARNESS-THIRD-PARTY {json}``. Exit status: 0 when every
package passed; 1 when a package failed because of sockharness.server (or the
swap could not be shown to hold); 3 when nothing failed but a package could
not be downloaded or installed (no access to PyPI, say).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location(
    "_sockharness_cpython_suite", TOOLS / "cpython_suite.py"
)
assert _spec is not None
assert _spec.loader is not None
cpython_suite = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = cpython_suite  # dataclasses look their module up by name
_spec.loader.exec_module(cpython_suite)

RESULT_PREFIX = "SOCKHARNESS-THIRD-PARTY "
EXIT_FAILED = 1
EXIT_UNAVAILABLE = 3
PIP_TIMEOUT = 600.0
PER_TEST_TIMEOUT = 20  # werkzeug's slowest test takes 4 s here; a hanging one costs no more

#: A pytest plugin, written into the venv beside the hook: one repr'd line per test outcome.
RESULTS_PLUGIN = r'''
"""Records each test's outcome (written by tools/third_party_suites.py)."""
import os

_PATH = os.environ.get("SOCKHARNESS_RESULTS")


def _write(**fields):
    if _PATH:
        with open(_PATH, "a", encoding="utf-8") as out:
            out.write(repr(fields) + "\n")


def pytest_runtest_logreport(report):
    outcome = report.outcome
    if hasattr(report, "wasxfail"):
        outcome = "xfailed" if report.skipped else "xpassed"
    reason = ""
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2])
    _write(nodeid=report.nodeid, when=report.when, outcome=outcome, reason=reason)


def pytest_collectreport(report):
    if report.failed:
        _write(nodeid=report.nodeid or "<collection>", when="collect", outcome="error", reason="")
'''


@dataclasses.dataclass(frozen=True)
class Package:
    """A third-party package and how its own suite is run."""

    name: str
    version: str
    #: Test requirements; ``{src}`` is the unpacked sdist (installed from there).
    install: tuple[str, ...]
    #: "pytest" (``args`` are given to pytest) or "scripts" (each file of ``args`` run as a script).
    runner: str
    args: tuple[str, ...]
    #: Modules that must refer to sockharness.server in the run (the socketserver
    #: consumers); ``a|b``: either will do.
    consumers: tuple[str, ...]
    timeout: float = 900.0
    #: ``--quick`` runs these instead of ``args`` (the part of a long suite that serves).
    quick_args: tuple[str, ...] = ()


PACKAGES: dict[str, Package] = {
    package.name: package
    for package in (
        Package(
            "werkzeug",
            "3.1.9",
            # The sdist's "tests" dependency group.
            (
                "{src}",
                "pytest",
                "pytest-timeout",
                "ephemeral-port-reserve",
                "watchdog",
                "cryptography",
                "cffi",
            ),
            "pytest",
            ("tests",),
            ("werkzeug.serving",),
            quick_args=("tests/test_serving.py",),
        ),
        Package(
            "dnslib",
            "0.9.26",
            (),
            "scripts",
            # run_tests.sh's list, without fuzz.py (it queries 8.8.8.8).
            tuple(
                f"dnslib/{name}.py"
                for name in (
                    "__init__",
                    "bimap",
                    "bit",
                    "buffer",
                    "label",
                    "dns",
                    "lex",
                    "server",
                    "digparser",
                    "ranges",
                    "test_decode",
                )
            ),
            # run_tests.sh runs server.py as a script: there the module is __main__.
            ("dnslib.server|__main__",),
            timeout=300.0,
        ),
        Package(
            "pytest-localserver",
            "0.10.0.post0",
            ("{src}", "werkzeug==3.1.9", "requests", "pytest", "pytest-timeout"),
            "pytest",
            ("tests",),
            ("werkzeug.serving",),
            timeout=600.0,
        ),
    )
}


class Unavailable(Exception):
    """The package could not be downloaded or installed here."""


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def pip_environment() -> dict[str, str]:
    """pip reaches PyPI the way this machine is set up to (proxies kept); the tests never do."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def _pip(venv_python: Path, *args: str, log: Path) -> None:
    completed = cpython_suite.run_bounded(
        [str(venv_python), "-m", "pip", "--disable-pip-version-check", *args],
        timeout=PIP_TIMEOUT,
        cwd=log.parent,
        env=pip_environment(),
        log=log,
    )
    if completed.timed_out or completed.returncode != 0:
        raise Unavailable(f"pip {args[0]} failed: {_tail(completed.output)}")


def _unpack(archive: Path, into: Path) -> Path:
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(into, filter="data")
        else:  # interpreters without the extraction filters
            tar.extractall(into)
    (top,) = [path for path in into.iterdir() if path.is_dir()]
    return top


def prepare(package: Package, python: str, work: Path, *, latest: bool) -> tuple[Path, Path]:
    """The venv (hook installed) and the unpacked sdist of ``package``."""
    venv_python = cpython_suite.make_venv(python, work / "venv", with_pip=True)
    site_packages = cpython_suite._venv_site_packages_cached(venv_python)
    (site_packages / "_sockharness_results.py").write_text(RESULTS_PLUGIN, encoding="utf-8")
    downloads = work / "download"
    requirement = package.name if latest else f"{package.name}=={package.version}"
    _pip(
        venv_python,
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "-d",
        str(downloads),
        requirement,
        log=work / "pip-download.log",
    )
    archives = sorted(downloads.glob("*.tar.gz"))
    if not archives:
        raise Unavailable(f"pip downloaded no sdist of {requirement}")
    source = _unpack(archives[0], work / "src")
    requirements = [item.replace("{src}", str(source)) for item in package.install]
    if requirements:
        _pip(venv_python, "install", *requirements, log=work / "pip-install.log")
    return venv_python, source


def _outcomes_from_plugin(path: Path) -> dict[str, dict]:
    """Each test's final outcome: error/failed beat skipped beat passed."""
    rank = {"passed": 0, "xfailed": 0, "xpassed": 1, "skipped": 2, "failed": 3, "error": 4}
    results: dict[str, dict] = {}
    for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
        try:
            item = ast.literal_eval(line)
        except (ValueError, SyntaxError):
            continue
        outcome = item["outcome"]
        if outcome == "failed" and item["when"] != "call":
            outcome = "error"
        current = results.get(item["nodeid"])
        if current is None or rank[outcome] > rank[current["outcome"]]:
            results[item["nodeid"]] = {"outcome": outcome, "reason": item["reason"]}
    return results


def run_once(
    package: Package,
    venv_python: Path,
    source: Path,
    mode: str,
    work: Path,
    *,
    only: list[str] | None = None,
    quick: bool = False,
) -> dict:
    """Run the package's suite (or ``only`` those tests) once in ``mode``; return what happened."""
    selected = list(only or (package.quick_args if quick and package.quick_args else package.args))
    tag = f"{mode}{'-rerun' if only else ''}"
    report = work / f"{tag}.report"
    report.unlink(missing_ok=True)
    cpython_suite.configure_venv(venv_python, mode, report)
    started = time.monotonic()
    outcomes: dict[str, dict] = {}
    logs = []
    try:
        if package.runner == "pytest":
            results = work / f"{tag}.results"
            results.unlink(missing_ok=True)
            command = [
                str(venv_python),
                "-m",
                "pytest",
                "-p",
                "_sockharness_results",
                "-p",
                "no:cacheprovider",
                "-q",
                "-ra",
                f"--timeout={PER_TEST_TIMEOUT}",
                "--durations=10",
                *selected,
            ]
            completed = cpython_suite.run_bounded(
                command,
                timeout=package.timeout,
                cwd=source,
                env=cpython_suite.clean_environment({"SOCKHARNESS_RESULTS": str(results)}),
                log=work / f"{tag}.log",
            )
            outcomes = _outcomes_from_plugin(results)
            logs.append(completed)
            if completed.timed_out:
                outcomes["<run>"] = {"outcome": "error", "reason": "timed out"}
            elif not outcomes or completed.returncode not in (0, 1):
                outcomes["<run>"] = {
                    "outcome": "error",
                    "reason": f"pytest exited {completed.returncode}: {_tail(completed.output, 5)}",
                }
        else:
            deadline = time.monotonic() + package.timeout
            for script in selected:
                completed = cpython_suite.run_bounded(
                    [str(venv_python), script],
                    timeout=max(1.0, deadline - time.monotonic()),
                    cwd=source,
                    env=cpython_suite.clean_environment({"PYTHONPATH": str(source)}),
                    log=work / f"{tag}-{Path(script).stem}.log",
                )
                logs.append(completed)
                ok = completed.returncode == 0 and not completed.timed_out
                outcomes[script] = {
                    "outcome": "passed" if ok else "failed",
                    "reason": "" if ok else _tail(completed.output, 8),
                }
    finally:
        cpython_suite.configure_venv(venv_python, None, None)
    records = cpython_suite.read_report(report)
    main_pid = None
    if package.runner == "pytest":
        main_pid = next(
            (r["pid"] for r in records if r["event"] == "start" and "pytest" in r["argv"]), None
        )
    hook = cpython_suite.summarize_report(records, mode, main_pid)
    left = [entry for completed in logs for entry in completed.left_processes]
    return {
        "mode": mode,
        "outcomes": outcomes,
        "counts": _counts(outcomes),
        "hook": hook,
        "left_processes": left,
        "seconds": round(time.monotonic() - started, 1),
        "output_tail": _tail("\n".join(c.output for c in logs), 40),
    }


def _counts(outcomes: dict[str, dict]) -> dict[str, int]:
    counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0, "xfailed": 0, "xpassed": 0}
    for result in outcomes.values():
        counts[result["outcome"]] += 1
    counts["total"] = len(outcomes)
    return counts


def _bad(run: dict) -> set[str]:
    return {test for test, r in run["outcomes"].items() if r["outcome"] in ("failed", "error")}


def _skipped(run: dict) -> set[str]:
    return {test for test, r in run["outcomes"].items() if r["outcome"] == "skipped"}


def evaluate(package: Package, ours: dict, stdlib: dict, reruns: dict | None) -> dict:
    """Sort the failures of the run on sockharness.server by their cause."""
    only_ours = _bad(ours) - _bad(stdlib)
    confirmed = set(only_ours)
    flaky: set[str] = set()
    if reruns is not None and only_ours:
        again_ours = _bad(reruns["sockharness"]) | {
            t for t in only_ours if t not in reruns["sockharness"]["outcomes"]
        }
        again_stdlib = _bad(reruns["stdlib"])
        confirmed = (only_ours & again_ours) - again_stdlib
        flaky = only_ours - confirmed
    hook = ours["hook"]
    consumers_seen = {
        module: any(m in hook["modules_referring_to_ours"] for m in module.split("|"))
        for module in package.consumers
    }
    swap_verified = (
        hook["swap_held"]
        and all(consumers_seen.values())
        and hook["servers"]["built"] > 0
        and hook["servers"]["ours"] == hook["servers"]["built"]
        and stdlib["hook"]["stdlib_held"]
    )
    skips_same = _skipped(ours) == _skipped(stdlib)
    ok = swap_verified and not confirmed and skips_same and not ours["left_processes"]
    return {
        "status": "ok" if ok else "failed",
        "swap_verified": swap_verified,
        "consumers_referring_to_ours": consumers_seen,
        "failures_only_on_sockharness": sorted(confirmed),
        "flaky_only_on_sockharness_then_passed": sorted(flaky),
        "failures_on_stdlib_too": sorted(_bad(ours) & _bad(stdlib)),
        "failures_only_on_stdlib": sorted(_bad(stdlib) - _bad(ours)),
        "same_skips": skips_same,
        "skips_only_on_sockharness": sorted(_skipped(ours) - _skipped(stdlib)),
        "skips_only_on_stdlib": sorted(_skipped(stdlib) - _skipped(ours)),
    }


def run_package(
    package: Package, python: str, work: Path, *, latest: bool, quick: bool = False
) -> dict:
    """Prepare, run on both, re-run what failed only on ours, and judge."""
    started = time.monotonic()
    try:
        venv_python, source = prepare(package, python, work, latest=latest)
    except (Unavailable, subprocess.SubprocessError, OSError) as error:
        return {
            "package": package.name,
            "status": "unavailable",
            "reason": str(error),
            "seconds": round(time.monotonic() - started, 1),
        }
    prepared = time.monotonic()
    ours = run_once(package, venv_python, source, "sockharness", work, quick=quick)
    stdlib = run_once(package, venv_python, source, "stdlib", work, quick=quick)
    reruns = None
    only_ours = sorted((_bad(ours) - _bad(stdlib)) - {"<run>"})
    if only_ours:
        reruns = {
            mode: run_once(package, venv_python, source, mode, work, only=only_ours)
            for mode in cpython_suite.MODES
        }
    verdict = evaluate(package, ours, stdlib, reruns)
    version = source.name.rsplit("-", 1)[-1]
    return {
        "package": package.name,
        "version": version,
        "python": _python_version(venv_python),
        **verdict,
        "sockharness": {k: v for k, v in ours.items() if k != "outcomes"},
        "stdlib": {k: v for k, v in stdlib.items() if k != "outcomes"},
        "skip_reasons": {
            test: r["reason"] for test, r in ours["outcomes"].items() if r["outcome"] == "skipped"
        },
        "failure_details": {
            test: ours["outcomes"][test]["reason"]
            for test in verdict["failures_only_on_sockharness"]
            if test in ours["outcomes"]
        },
        "reruns": None
        if reruns is None
        else {mode: run["outcomes"] for mode, run in reruns.items()},
        "prepare_seconds": round(prepared - started, 1),
        "seconds": round(time.monotonic() - started, 1),
    }


def _python_version(venv_python: Path) -> str:
    completed = subprocess.run(
        [str(venv_python), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return completed.stdout.strip()


def describe(result: dict) -> list[str]:
    """Readable lines on one package's result."""
    if result["status"] == "unavailable":
        return [f"{result['package']:<20} UNAVAILABLE: {_tail(result['reason'], 3)}"]
    ours, stdlib = result["sockharness"], result["stdlib"]
    oc, sc = ours["counts"], stdlib["counts"]
    hook = ours["hook"]
    lines = [
        f"{result['package'] + ' ' + result['version']:<28} py{result['python']:<8} "
        f"{oc['total']:>5} {oc['passed']:>5} {oc['failed'] + oc['error']:>5} {oc['skipped']:>5}  "
        f"{sc['passed']:>5} {sc['failed'] + sc['error']:>5} {sc['skipped']:>5}  "
        f"{'yes' if result['same_skips'] else 'NO':>4} {ours['seconds']:>6.1f} "
        f"{stdlib['seconds']:>6.1f}  {'ok' if result['status'] == 'ok' else 'FAILED'}",
        f"  swap {'verified' if result['swap_verified'] else 'NOT VERIFIED'}: servers built "
        f"{hook['servers']['built']} ({hook['servers']['ours']} on sockharness.server, "
        f"{hook['servers']['in_children']} in children), classes {hook['servers']['classes']}",
        f"  consumers referring to sockharness.server: {result['consumers_referring_to_ours']}; "
        f"children: {hook['child_processes']} Python processes reported, "
        f"{hook['children_importing_socketserver']} imported socketserver "
        f"{hook['socketserver_imports']}",
    ]
    if hook["python_children_escaping_the_hook"]:
        lines.append(f"  children escaping the hook: {hook['python_children_escaping_the_hook']}")
    if hook["blocked_network"]:
        lines.append(f"  refused non-loopback: {hook['blocked_network']}")
    for key, label in (
        ("failures_only_on_sockharness", "FAILS ON SOCKHARNESS.SERVER ONLY"),
        ("flaky_only_on_sockharness_then_passed", "failed once on ours, passed on re-run"),
        ("failures_on_stdlib_too", "fails on the stdlib too (environment)"),
        ("failures_only_on_stdlib", "fails on the stdlib only"),
        ("skips_only_on_sockharness", "SKIPPED ON SOCKHARNESS.SERVER ONLY"),
        ("skips_only_on_stdlib", "skipped on the stdlib only"),
    ):
        for test in result[key]:
            lines.append(f"  {label}: {test}")
    for test, detail in result["failure_details"].items():
        lines.append(f"  --- {test}\n" + "\n".join("    " + x for x in detail.splitlines()[-12:]))
    if ours["left_processes"]:
        lines.append(f"  left processes behind: {ours['left_processes']}")
    return lines


HEADER = (
    f"{'package':<28} {'python':<10} {'tests':>5} {'pass':>5} {'fail':>5} {'skip':>5}  "
    f"{'s-pas':>5} {'s-fai':>5} {'s-ski':>5}  {'same':>4} {'time':>6} {'s-time':>6}  result"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--package", action="append", choices=sorted(PACKAGES), help="repeatable; default: all"
    )
    parser.add_argument("--python", default=sys.executable, help="the interpreter to test under")
    parser.add_argument("--latest", action="store_true", help="PyPI's newest, not the pins")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--quick", action="store_true", help="of werkzeug's suite, only tests/test_serving.py"
    )
    parser.add_argument("--work-dir", type=Path, help="where to work (default: a temporary one)")
    args = parser.parse_args(argv)
    names = args.package or list(PACKAGES)

    with contextlib.ExitStack() as stack:
        if args.work_dir is not None:
            base = args.work_dir.resolve()
            if cpython_suite.ROOT in (base, *base.parents):
                parser.error("the work directory must be outside the repository")
            base.mkdir(parents=True, exist_ok=True)
        else:
            base = Path(tempfile.mkdtemp(prefix="shx-3p-"))
            if not args.keep:
                stack.callback(shutil.rmtree, base, ignore_errors=True)
        print(f"work directory: {base}", flush=True)
        print(HEADER, flush=True)
        results = []
        for name in names:
            work = base / re.sub(r"[^A-Za-z0-9_.-]", "_", name)
            work.mkdir(parents=True, exist_ok=True)
            result = run_package(
                PACKAGES[name], args.python, work, latest=args.latest, quick=args.quick
            )
            results.append(result)
            for line in describe(result):
                print(line, flush=True)

    failed = [r["package"] for r in results if r["status"] == "failed"]
    unavailable = [r["package"] for r in results if r["status"] == "unavailable"]
    summary = {
        "passed": not failed and not unavailable,
        "failed": failed,
        "unavailable": unavailable,
        "quick": args.quick,
        "packages": results,
    }
    print(RESULT_PREFIX + json.dumps(summary), flush=True)
    if failed:
        return EXIT_FAILED
    return EXIT_UNAVAILABLE if unavailable else 0


if __name__ == "__main__":
    sys.exit(main())
