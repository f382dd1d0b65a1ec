"""A scenario workload that is an outside command: an integration suite run under the faults.

``command = ["pytest", "tests/integration", "-x", "--junit-xml={junit_xml}"]``
in ``[[clients]]`` runs the program (no shell) once per client, or again and
again with ``repeat = true``, each run one message of the load. It finds the
service in its environment:

- ``SOCKHARNESS_SERVER_HOST``, ``_PORT`` and ``_ADDRESS`` (``host:port``, or the
  socket path for a Unix kind): where the load goes, through the fault proxy
  when there is one;
- ``SOCKHARNESS_SERVER_UPSTREAM_HOST``, ``_PORT``, ``_ADDRESS``: the server
  itself, past the proxy;
- ``SOCKHARNESS_JUNIT_XML``: a fresh path for a JUnit XML report, also put in
  for ``{junit_xml}`` in the arguments (with ``{seq}`` and ``{client}``).

A run is judged by its exit status and, if it wrote one, its JUnit report:
``ok`` (status 0, no test failed), ``corrupt`` (a non-zero status or a failed
test: the service answered wrongly), ``lost`` (killed at its ``timeout``).
Each run's process group is killed when it times out or the run is cut
short, so no child it started outlives the scenario.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any

from sockharness._core import Outcome

from ._schema import address_parts

__all__ = ["CommandRunner", "address_environment"]

#: How much of a failed run's output its detail keeps (the end, where the summary is).
_TAIL = 300


def address_environment(name: str, address: Any) -> dict[str, str]:
    """``SOCKHARNESS_<NAME>_HOST``, ``_PORT`` and ``_ADDRESS`` for ``address``."""
    host, port, shown = address_parts(address)
    prefix = f"SOCKHARNESS_{name.upper()}"
    return {f"{prefix}_HOST": host, f"{prefix}_PORT": port, f"{prefix}_ADDRESS": shown}


def _junit_verdict(path: str) -> tuple[int, list[str]] | None:
    """``(tests, the failed ones)`` from a JUnit XML report, or ``None`` if there is none."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    cases = list(root.iter("testcase"))
    failed = [
        f"{case.get('classname', '')}::{case.get('name', '?')}".lstrip(":")
        for case in cases
        if case.find("failure") is not None or case.find("error") is not None
    ]
    return len(cases), failed


def _tail(path: str) -> str:
    try:
        with open(path, "rb") as stream:
            stream.seek(0, os.SEEK_END)
            stream.seek(max(0, stream.tell() - 4 * _TAIL))
            text = stream.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line for line in text.splitlines() if line.strip()]
    return " / ".join(lines[-3:])[-_TAIL:]


class CommandRunner:
    """Runs one client's command: :meth:`run` once per message, :meth:`kill` to cut it short."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        environment: Mapping[str, str],
        timeout: float,
        client_id: int,
    ) -> None:
        self.command = tuple(command)
        self.environment = dict(environment)
        self.timeout = timeout
        self.client_id = client_id
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._killed = False

    def run(self, seq: int) -> tuple[Outcome, str]:
        """One run of the command, judged."""
        with tempfile.TemporaryDirectory(prefix="sockharness-command-") as scratch:
            junit = os.path.join(scratch, "junit.xml")
            output = os.path.join(scratch, "output.txt")
            values = {"{junit_xml}": junit, "{seq}": str(seq), "{client}": str(self.client_id)}
            arguments = [_render(argument, values) for argument in self.command]
            environment = {**os.environ, **self.environment, "SOCKHARNESS_JUNIT_XML": junit}
            with open(output, "wb") as sink:
                status = self._wait(arguments, environment, sink)
            if status is None:
                return "lost", f"{self.command[0]} did not end within {self.timeout:g} s: killed"
            return self._judge(status, junit, output)

    def _wait(self, arguments: list[str], environment: dict[str, str], sink: Any) -> int | None:
        """Start the command and wait for it (``None``: killed, at its timeout or by kill)."""
        with self._lock:
            if self._killed:
                return None
            process = subprocess.Popen(
                arguments,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=environment,
                start_new_session=True,  # Its own process group: killed whole.
            )
            self._process = process
        try:
            status = process.wait(self.timeout)
        except subprocess.TimeoutExpired:
            self._kill_group(process)
            return None
        finally:
            with self._lock:
                self._process = None
        return None if self._killed else status

    def _judge(self, status: int, junit: str, output: str) -> tuple[Outcome, str]:
        report = _junit_verdict(junit)
        name = os.path.basename(self.command[0])
        if report is not None:
            tests, failed = report
            if failed:
                shown = ", ".join(failed[:3]) + (", ..." if len(failed) > 3 else "")
                return "corrupt", f"{len(failed)} of {tests} tests failed: {shown}"[:_TAIL]
        if status != 0:
            what = f"killed by signal {-status}" if status < 0 else f"exited with status {status}"
            tail = _tail(output)
            return "corrupt", f"{name} {what}" + (f": {tail}" if tail else "")
        return "ok", ""

    def kill(self) -> None:
        """End the run in hand (and refuse new ones): the scenario is stopping."""
        with self._lock:
            self._killed = True
            process = self._process
        if process is not None:
            self._kill_group(process)

    @staticmethod
    def _kill_group(process: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5.0)


def _render(argument: str, values: Mapping[str, str]) -> str:
    for placeholder, value in values.items():
        argument = argument.replace(placeholder, value)
    return argument
