"""What a test that uses no faults pays for: never the fault layer's import (about 60 ms)."""

from __future__ import annotations

import subprocess
import sys

import pytest

CYCLE = """
import sys
from sockharness import start_server
from sockharness.handlers import EchoHandler

for kind, concurrency in [("tcp", "threading"), ("udp", "sync"), ("unix", "forking")]:
    with start_server(EchoHandler, kind, concurrency=concurrency) as server:
        with server.connect() as client:
            assert client.request(b"ping\\n") == b"ping\\n"
        assert server.unfired_faults() == []
        assert server.faults == ()
print(sorted(name for name in sys.modules if name.startswith("sockharness.faults")))
"""


def test_a_server_without_faults_never_imports_the_fault_layer() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CYCLE], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_fault_layer_comes_in_when_a_server_or_a_client_brings_faults() -> None:
    script = """
import sys
from sockharness import start_server
from sockharness.faults import Slicer
from sockharness.handlers import EchoHandler

with start_server(EchoHandler, "tcp") as server:
    with server.connect(faults=[Slicer(1)]) as client:
        assert client.request(b"ping\\n") == b"ping\\n"
    assert server.unfired_faults() == []
    assert "Slicer" in server.fault_timeline.format()
with start_server(EchoHandler, "tcp", faults=[Slicer(1)]) as server:
    with server.connect() as client:
        assert client.request(b"ping\\n") == b"ping\\n"
    assert "Slicer" in server.fault_timeline.format()
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_the_make_server_fixture_without_faults_never_imports_the_fault_layer(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import sys
        from sockharness.handlers import EchoHandler

        def test_one(make_server):
            server = make_server(EchoHandler, "tcp")
            with server.connect() as client:
                assert client.request(b"ping\\n") == b"ping\\n"

        def test_after_the_teardown():
            assert not [m for m in sys.modules if m.startswith("sockharness.faults")]
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
