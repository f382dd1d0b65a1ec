"""What a server fixture costs per test: sockharness, pytest-localserver, pytest-httpserver.

Each contender gets a generated test file of N tests; every test starts (or
reuses) a server through the fixture, makes one request, and lets teardown
stop it. Each file runs in its own pytest process, interleaved with the others
round by round, and a file of N empty tests run with the same plugins is the
baseline subtracted from it. Reported: milliseconds per test, median of the
rounds.

- ``sockharness <kind>-<concurrency>``: ``make_server(EchoHandler, kind,
  concurrency=...)`` and one request: a new server per test.
- ``sockharness stdlib ThreadingTCPServer``: the same, running the standard
  library's class through ``server_class=`` (it stops only when its poll
  interval, 0.05 s under sockharness, runs out).
- ``pytest-localserver httpserver``: a new WSGI server per test, one HTTP GET.
- ``pytest-httpserver httpserver``: one server for the whole session, cleared
  per test, one HTTP GET. Not a new server per test: its per-test cost is a
  lower bound for any fixture, not a like-for-like figure.

Usage: ``python benchmarks/bench_fixtures.py [--tests N] [--rounds R] [--json FILE]``
(needs ``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

NO_HTTPSERVER = ["-p", "no:pytest_httpserver"]
NO_LOCALSERVER = ["-p", "no:localserver"]

SOCKHARNESS = """
    import pytest
    from sockharness.handlers import EchoHandler

    @pytest.mark.parametrize("n", range({n}))
    def test_fixture(make_server, n):
        server = make_server(EchoHandler, {kind!r}, concurrency={concurrency!r})
        with server.connect() as client:
            client.send(b"ping\\n")
            assert client.recv_exactly(5) == b"ping\\n"
"""

SOCKHARNESS_STDLIB = """
    import socketserver
    import pytest
    from sockharness.handlers import EchoHandler

    @pytest.mark.parametrize("n", range({n}))
    def test_fixture(make_server, n):
        server = make_server(EchoHandler, server_class=socketserver.ThreadingTCPServer)
        with server.connect() as client:
            client.send(b"ping\\n")
            assert client.recv_exactly(5) == b"ping\\n"
"""

SOCKHARNESS_TLS = """
    import pytest
    from sockharness.handlers import EchoHandler

    @pytest.mark.parametrize("n", range({n}))
    def test_fixture(make_server, n):
        server = make_server(EchoHandler, "tcp", tls=True)
        with server.connect() as client:
            client.send(b"ping\\n")
            assert client.recv_exactly(5) == b"ping\\n"
"""

# The same, with a client context that also loads the system's trust store, as
# ssl.create_default_context() does (what sockharness's contexts did before).
SOCKHARNESS_TLS_DEFAULT_CONTEXT = """
    import ssl
    import pytest
    from sockharness.handlers import EchoHandler

    @pytest.mark.parametrize("n", range({n}))
    def test_fixture(make_server, make_client, tls_ca, n):
        server = make_server(EchoHandler, "tcp", tls=True)
        context = ssl.create_default_context()
        tls_ca.configure_trust(context)
        with make_client(server.address, tls=context) as client:
            client.send(b"ping\\n")
            assert client.recv_exactly(5) == b"ping\\n"
"""

LOCALSERVER = """
    import urllib.request
    import pytest

    OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({{}}))

    @pytest.mark.parametrize("n", range({n}))
    def test_fixture(httpserver, n):
        httpserver.serve_content("ping")
        assert OPENER.open(httpserver.url, timeout=5).read() == b"ping"
"""

HTTPSERVER = """
    import urllib.request
    import pytest

    OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({{}}))

    @pytest.mark.parametrize("n", range({n}))
    def test_fixture(httpserver, n):
        httpserver.expect_request("/").respond_with_data("ping")
        assert OPENER.open(httpserver.url_for("/"), timeout=5).read() == b"ping"
"""

BASELINE = """
    import pytest

    @pytest.mark.parametrize("n", range({n}))
    def test_fixture(n):
        pass
"""


def contenders(n: int) -> list[tuple[str, str, list[str]]]:
    """(label, test source, pytest flags) for every contender."""
    found = [
        ("baseline (sockharness plugins)", BASELINE.format(n=n), NO_HTTPSERVER),
        ("baseline (pytest-httpserver plugins)", BASELINE.format(n=n), NO_LOCALSERVER),
    ]
    for kind in ("tcp", "udp", "unix", "unix_dgram"):
        for concurrency in ("sync", "threading", "forking"):
            source = SOCKHARNESS.format(n=n, kind=kind, concurrency=concurrency)
            found.append((f"sockharness {kind}-{concurrency}", source, NO_HTTPSERVER))
    found.append(
        ("sockharness stdlib ThreadingTCPServer", SOCKHARNESS_STDLIB.format(n=n), NO_HTTPSERVER)
    )
    found.append(("sockharness tcp-threading tls", SOCKHARNESS_TLS.format(n=n), NO_HTTPSERVER))
    found.append(
        (
            "sockharness tls, system trust store",
            SOCKHARNESS_TLS_DEFAULT_CONTEXT.format(n=n),
            NO_HTTPSERVER,
        )
    )
    found.append(("pytest-localserver httpserver", LOCALSERVER.format(n=n), NO_HTTPSERVER))
    found.append(("pytest-httpserver httpserver", HTTPSERVER.format(n=n), NO_LOCALSERVER))
    return found


def run_file(directory: str, name: str, flags: list[str]) -> float:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *flags, name]
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=directory, capture_output=True, text=True, check=False)
    took = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(
            f"{name} failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-2000:]}"
        )
    return took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=300, help="tests per file (default 300)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="TEXT",
        help="only the contenders whose label contains TEXT (repeat for more; baselines always)",
    )
    args = parser.parse_args(argv)

    directory = tempfile.mkdtemp(prefix="sockharness-bench-")
    try:
        entries = [
            entry
            for entry in contenders(args.tests)
            if not args.only
            or entry[0].startswith("baseline")
            or any(text in entry[0] for text in args.only)
        ]
        files = {}
        for index, (label, source, flags) in enumerate(entries):
            name = f"test_{index:02d}.py"
            with open(os.path.join(directory, name), "w") as f:
                f.write(textwrap.dedent(source))
            files[label] = (name, flags)
        samples: dict[str, list[float]] = {label: [] for label in files}
        for round_ in range(args.rounds):
            order = list(files) if round_ % 2 == 0 else list(reversed(files))
            for label in order:
                name, flags = files[label]
                samples[label].append(run_file(directory, name, flags))
    finally:
        shutil.rmtree(directory, ignore_errors=True)

    medians = {label: statistics.median(values) for label, values in samples.items()}
    results = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "tests_per_file": args.tests,
        "rounds": args.rounds,
        "per_test_ms": {},
    }
    print(
        f"fixture cost per test (ms; {args.tests} tests per file, median of {args.rounds} "
        f"rounds; Python {results['python']}, {results['cpus']} CPUs)"
    )
    for label, median in medians.items():
        if label.startswith("baseline"):
            continue
        base_label = (
            "baseline (pytest-httpserver plugins)"
            if label.startswith("pytest-httpserver")
            else "baseline (sockharness plugins)"
        )
        per_test = (median - medians[base_label]) / args.tests * 1e3
        results["per_test_ms"][label] = per_test
        print(f"  {label:40} {per_test:8.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
