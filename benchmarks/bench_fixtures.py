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
- ``floor: ...``: what stands under any server fixture, without the harness:
  a function-scoped yield fixture and nothing else (pytest's own cost); a
  ``sockharness.server.ThreadingTCPServer`` made, served in a thread, asked
  one request and shut down per test, with nothing checked (no leak check,
  no bounded stop, no captured errors): the floor of a new server per test
  with socketserver's semantics; and the same request to one server kept for
  the module (the floor of a request alone).

**First use** (``--first-use R``, default 15 rounds): a file of one
``make_server`` test against a file of one empty test, each in a new pytest
process, interleaved R times: what the first fixture of a session costs (the
lazy imports, the first server, its teardown), timed by pytest from the
test's setup to its teardown; median of the paired differences. The same for a
first ``make_server(..., tls=True)`` test, twice: with the test CA that an
earlier session kept in pytest's cache (the usual case), and with
``--cache-clear`` (a CA made in the session: trustme and ``cryptography``
imported).

Every pytest process may write and use bytecode caches, as an installed
package does (``PYTHONDONTWRITEBYTECODE`` is dropped from their environment):
otherwise each run would compile sockharness again and count it.

Usage: ``python benchmarks/bench_fixtures.py [--tests N] [--rounds R]
[--first-use R] [--json FILE]`` (needs ``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import argparse
import contextlib
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

# The floors: what pytest charges for any fixture; what a new server per test
# costs with socketserver's semantics and no harness (no leak checks, no
# bounded stop, no captured errors); and a request alone, to a server kept for
# the module.
FLOOR_YIELD_FIXTURE = """
    import pytest

    @pytest.fixture
    def resource():
        yield object()

    @pytest.mark.parametrize("n", range({n}))
    def test_fixture(resource, n):
        pass
"""

FLOOR_SERVER = """
    import socket
    import threading
    import pytest
    from sockharness.handlers import EchoHandler
    from sockharness.server import ThreadingTCPServer

    @pytest.fixture(scope={scope!r})
    def server():
        server = ThreadingTCPServer(("127.0.0.1", 0), EchoHandler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield server
        server.shutdown()
        server.server_close()
        thread.join()

    @pytest.mark.parametrize("n", range({n}))
    def test_fixture(server, n):
        with socket.create_connection(server.server_address, timeout=5) as client:
            client.sendall(b"ping\\n")
            assert client.recv(5) == b"ping\\n"
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
    floors = [
        ("floor: a yield fixture, no server", FLOOR_YIELD_FIXTURE.format(n=n)),
        (
            "floor: new server per test, no harness",
            FLOOR_SERVER.format(n=n, scope="function"),
        ),
        ("floor: a request, one server per module", FLOOR_SERVER.format(n=n, scope="module")),
    ]
    found.extend((label, source, NO_HTTPSERVER) for label, source in floors)
    found.append(("pytest-localserver httpserver", LOCALSERVER.format(n=n), NO_HTTPSERVER))
    found.append(("pytest-httpserver httpserver", HTTPSERVER.format(n=n), NO_LOCALSERVER))
    return found


FIRST_USE = """
    from sockharness.handlers import EchoHandler

    def test_fixture(make_server):
        server = make_server(EchoHandler, "tcp", concurrency="threading")
        with server.connect() as client:
            client.send(b"ping\\n")
            assert client.recv_exactly(5) == b"ping\\n"
"""

FIRST_USE_TLS = """
    from sockharness.handlers import EchoHandler

    def test_fixture(make_server):
        server = make_server(EchoHandler, "tcp", concurrency="threading", tls=True)
        with server.connect() as client:
            client.send(b"ping\\n")
            assert client.recv_exactly(5) == b"ping\\n"
"""

FIRST_USE_BASELINE = """
    def test_fixture():
        pass
"""

#: The children may cache bytecode, as an installed package's imports do.
ENVIRONMENT = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def run_file(directory: str, name: str, flags: list[str]) -> float:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *flags, name]
    started = time.perf_counter()
    completed = subprocess.run(
        command, cwd=directory, capture_output=True, text=True, check=False, env=ENVIRONMENT
    )
    took = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(
            f"{name} failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-2000:]}"
        )
    return took


#: Records each test's setup + call + teardown time, in the first-use directory only.
FIRST_USE_CONFTEST = """
    import os

    def pytest_runtest_logreport(report):
        with open(os.environ["BENCH_DURATIONS"], "a") as f:
            f.write(f"{report.nodeid} {report.when} {report.duration!r}\\n")
"""


#: How a first-use file runs with pytest's cache: none, the one kept so far, or a cleared one.
CACHE_FLAGS = {"none": ["-p", "no:cacheprovider"], "kept": [], "cleared": ["--cache-clear"]}


def _test_time(directory: str, name: str, cache: str = "none") -> float:
    """Seconds the one test of ``name`` took, its setup, call and teardown (pytest's timing)."""
    record = os.path.join(directory, "durations.txt")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(record)
    command = [sys.executable, "-m", "pytest", "-q", *CACHE_FLAGS[cache], *NO_HTTPSERVER, name]
    completed = subprocess.run(
        command,
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
        env={**ENVIRONMENT, "BENCH_DURATIONS": record},
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{completed.stdout[-3000:]}")
    with open(record) as f:
        return sum(float(line.split()[-1]) for line in f)


#: The first-use figures: label, test file, how it uses pytest's cache.
FIRST_USES = [
    ("make_server", "test_first.py", "none"),
    ("make_server tls=True, CA kept", "test_first_tls.py", "kept"),
    ("make_server tls=True, --cache-clear", "test_first_tls.py", "cleared"),
]


def _first_use(directory: str, rounds: int) -> dict[str, float]:
    """The first fixture's cost: median of paired (one test - one empty test), in ms.

    Timed by pytest itself, from the test's setup to its teardown: the fixture's
    lazy imports, its first server and request, its teardown; not the process's
    start, which moves by tens of ms from run to run.
    """
    if rounds <= 0:
        return {}
    first = os.path.join(directory, "first-use")
    os.mkdir(first)
    sources = {
        "conftest.py": FIRST_USE_CONFTEST,
        "test_first.py": FIRST_USE,
        "test_first_tls.py": FIRST_USE_TLS,
        "test_first_base.py": FIRST_USE_BASELINE,
    }
    for name, source in sources.items():
        with open(os.path.join(first, name), "w") as f:
            f.write(textwrap.dedent(source))
    for _, name, cache in FIRST_USES:
        _test_time(first, name, cache)  # Writes the bytecode caches (and keeps the CA).
    differences: dict[str, list[float]] = {label: [] for label, _, _ in FIRST_USES}
    for round_ in range(rounds):
        order = FIRST_USES if round_ % 2 == 0 else FIRST_USES[::-1]
        for label, name, cache in order:
            # The baseline runs beside each, in the same cache mode, in alternating order.
            pair = [(name, cache), ("test_first_base.py", cache)]
            if round_ % 2:
                pair.reverse()
            times = {file: _test_time(first, file, mode) for file, mode in pair}
            differences[label].append(times[name] - times["test_first_base.py"])
        # A --cache-clear baseline may have run last and taken the CA with it: keep one
        # again, so that every "kept" run finds the CA in place.
        _test_time(first, "test_first_tls.py", "kept")
    return {label: statistics.median(values) * 1e3 for label, values in differences.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=300, help="tests per file (default 300)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument(
        "--first-use",
        type=int,
        default=15,
        help="rounds of the first-use pair (default 15; 0: none)",
    )
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
        first_use = _first_use(directory, args.first_use)
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
    if first_use:
        results["first_use_ms"] = first_use
        print(
            f"first use in a session (ms; one test against one empty test, median of "
            f"{args.first_use} paired rounds)"
        )
        for label, cost in first_use.items():
            print(f"  {label:40} {cost:8.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
