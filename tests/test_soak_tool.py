"""tools/soak.py, run as a user runs it: it holds on sockharness, and it fails on a leak."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import load_tool

ROOT = Path(__file__).resolve().parents[1]
SOAK = str(ROOT / "tools" / "soak.py")
SHORT = ["--every", "20", "--proxy-every", "6", "--scenario-every", "1", "--api-every", "5"]


@pytest.fixture
def soak_env() -> Iterator[dict[str, str]]:
    """A TMPDIR of the soak's own (short, for socket paths): other tests' files not counted."""
    directory = tempfile.mkdtemp(prefix="sk", dir="/tmp")
    try:
        yield {**os.environ, "TMPDIR": directory}
        assert os.listdir(directory) == [], "the soak left files in its TMPDIR"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _soak(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, SOAK, *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_short_soak_of_every_phase_holds(soak_env: dict[str, str]) -> None:
    done = _soak(
        soak_env, "--cycles", "60", "--proxy-cycles", "18", "--scenario-runs", "2",
        "--api-cycles", "15", "--reload-every", "5", *SHORT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    for phase, cycles in (("servers", 60), ("proxies", 18), ("scenarios", 2), ("api", 15)):
        assert f"{phase}: {cycles} cycles in" in done.stdout
    assert done.stdout.count(": held") == 4, done.stdout
    assert "BROKEN" not in done.stdout


@pytest.mark.parametrize(
    ("leak", "count"),
    [("thread", "threads"), ("descriptor", "descriptors"), ("child", "zombies"), ("file", "temp")],
)
def test_the_soak_fails_on_what_accumulates(
    soak_env: dict[str, str], leak: str, count: str
) -> None:
    done = _soak(
        soak_env, "--cycles", "40", "--proxy-cycles", "0", "--scenario-runs", "0",
        "--api-cycles", "0", "--inject-leak", leak, *SHORT,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "BROKEN: " in done.stdout
    assert f"{count}" in done.stdout.split("BROKEN: ", 1)[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cycles", "many"], "argument --cycles: 'many' is not a whole number"),
        (["--every", "0"], "--every must be at least 1"),
        (["--reload-every", "0"], "--reload-every must be at least 1"),
        (["--cycles", "-3"], "-3 is negative"),
        (["--scenario", "/nonexistent.toml"], "--scenario /nonexistent.toml: no such file"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    soak_env: dict[str, str], args: list[str], message: str
) -> None:
    done = _soak(soak_env, *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_a_sample_of_another_process_counts_what_it_holds() -> None:
    """The API phase samples its child: the counts must be the child's, not zeros."""
    soak = load_tool("soak")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "holding\n"
        held = soak.sample(1, holder.pid)
    finally:
        holder.communicate("", timeout=10)
    assert held.descriptors >= 40
    assert held.threads >= 6
    assert held.rss_mb > 1.0


HOLDER = """
import socket, sys, threading
sockets = [socket.socket() for _ in range(40)]
ending = threading.Event()
threads = [threading.Thread(target=ending.wait) for _ in range(5)]
for thread in threads:
    thread.start()
print("holding", flush=True)
sys.stdin.read()
ending.set()
"""


SUBJECT = """
import sys, threading
release = threading.Event()
print("up", flush=True)
for line in sys.stdin:
    if line.strip() == "brief":
        # A thread that ends once told: as an API request's handler just after its reply.
        threading.Thread(target=release.wait).start()
    elif line.strip() == "end-brief":
        release.set()
    elif line.strip() == "stay":
        threading.Thread(target=threading.Event().wait, daemon=True).start()
    print("done", flush=True)
"""


def test_a_sample_of_another_process_waits_out_a_thread_that_is_ending() -> None:
    soak = load_tool("soak")
    with subprocess.Popen(
        [sys.executable, "-c", SUBJECT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as child:
        try:
            _watch_settling(soak, child)
        finally:
            child.kill()


def _watch_settling(soak: Any, child: subprocess.Popen[str]) -> None:
    orders, answers = child.stdin, child.stdout
    assert orders is not None
    assert answers is not None

    def tell(order: str) -> None:
        orders.write(order + "\n")
        orders.flush()
        assert answers.readline() == "done\n"

    assert answers.readline() == "up\n"
    before = soak.sample(1, child.pid)
    tell("brief")
    ending = threading.Timer(0.2, tell, args=("end-brief",))
    ending.start()
    # The brief thread is there when the sample starts and gone within the settling.
    settled = soak.sample(2, child.pid, before)
    ending.join(5)
    assert settled.threads == before.threads
    tell("stay")
    # A thread that stays is counted, after at most the settling time.
    assert soak.sample(3, child.pid, before).threads == before.threads + 1


def test_a_sample_of_this_process_waits_out_a_thread_and_a_descriptor_that_are_ending() -> None:
    # The proxy phase's echo server (in the soak's own process) still ends the handler
    # thread of the connection the closed proxy has just ended when the sample is taken:
    # a flake-loop run saw its thread count "grow from 4 to 5". Sampled like the API
    # child: what ends within the settling is not counted, what stays is.
    import socket

    soak = load_tool("soak")
    before = soak.sample(1)
    release = threading.Event()
    brief = threading.Thread(target=release.wait)
    brief.start()
    brief_socket = socket.socket()

    def end_both() -> None:
        brief_socket.close()
        release.set()

    ending = threading.Timer(0.2, end_both)
    ending.start()
    try:
        settled = soak.sample(2, None, before)
    finally:
        ending.join(5)
        brief.join(5)
    assert (settled.threads, settled.descriptors) == (before.threads, before.descriptors)
    stays = threading.Event()
    lasting = threading.Thread(target=stays.wait, daemon=True)
    lasting.start()
    try:
        assert soak.sample(3, None, before).threads == before.threads + 1
    finally:
        stays.set()
        lasting.join(5)
