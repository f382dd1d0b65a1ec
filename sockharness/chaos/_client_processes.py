"""Client groups in processes of their own (``processes = N``): load one interpreter cannot drive.

The runner's clients are threads of one interpreter, which its in-process
servers share: with several busy clients, the interpreter is the limit, not
the service. A group with ``processes = N`` spreads its clients over N
processes (threads in each): new interpreters running this module, started
before the run's clock starts (not forked from the runner, which has threads,
and not through ``multiprocessing``, which would import the user's main
module again). Each process builds its clients from what the runner sends it
(the group, the client numbers, the bodies, the address, the TLS trust), waits
for the start and the clock's origin (``time.monotonic()`` is one clock for
every process of a machine), runs the same clients as the runner would, and
sends back every message when it stops. Client-side faults and the timeline
stay with the runner: a scenario that puts ``side = "client"`` faults on such
a group is refused when it is read.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import pickle
import select
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Final

from ._schema import ClientSpec

if TYPE_CHECKING:
    from ._traffic import Message, Route, Traffic

__all__ = ["ClientProcess", "shares"]

#: How often a process reports its counts (for progress displays) while it runs.
REPORT_EVERY: Final = 0.1
#: How long a new process may take to import and say it is ready.
READY_WITHIN: Final = 60.0


def shares(ids: Sequence[int], processes: int) -> Iterator[list[int]]:
    """``ids`` dealt into ``processes`` runs of consecutive numbers, as even as can be."""
    count = len(ids)
    for index in range(processes):
        part = list(ids[count * index // processes : count * (index + 1) // processes])
        if part:
            yield part


@dataclass(frozen=True)
class _PortableTrust:
    """What a client context trusts, in a form that crosses processes (contexts do not)."""

    ca_certs: tuple[bytes, ...]
    check_hostname: bool
    verify_mode: ssl.VerifyMode

    @classmethod
    def of(cls, context: ssl.SSLContext) -> _PortableTrust:
        return cls(
            tuple(context.get_ca_certs(binary_form=True)),
            context.check_hostname,
            context.verify_mode,
        )

    def context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = self.check_hostname
        context.verify_mode = self.verify_mode
        for certificate in self.ca_certs:
            context.load_verify_locations(cadata=certificate)
        if not self.ca_certs and self.verify_mode != ssl.CERT_NONE:
            context.load_default_certs()  # The system's store: what a default context trusts.
        return context


@dataclass(frozen=True)
class _Job:
    """What a client process is given: everything but the start, which comes later."""

    group: ClientSpec
    ids: tuple[int, ...]
    bodies: tuple[bytes, ...]
    address: Any
    kind: str
    trust: _PortableTrust | None
    seed: int
    duration: float


#: A frame on the control socket: its length (4 bytes, big-endian), then a pickle.
_LENGTH = struct.Struct(">I")
#: The shared counts (ok, failed): two 8-byte integers in a memory-mapped file.
_COUNTS = struct.Struct("=qq")


def _send(sock: socket.socket, value: Any) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_LENGTH.pack(len(data)) + data)


def _receive_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the control socket")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _receive(sock: socket.socket) -> Any:
    (size,) = _LENGTH.unpack(_receive_exactly(sock, _LENGTH.size))
    return pickle.loads(_receive_exactly(sock, size))


def _readable(sock: socket.socket, timeout: float) -> bool:
    return bool(select.select([sock], [], [], max(0.0, timeout))[0])


#: What a client process runs (not ``-m``, which would import this module twice).
_ENTRY = "import sys; from sockharness.chaos._client_processes import main; main(sys.argv[1:])"


def _environment() -> dict[str, str]:
    """The runner's environment, with its import path: the process imports what it does."""
    paths = [entry for entry in sys.path if entry and os.path.isdir(entry)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


class ClientProcess:
    """Some clients of one group, run as threads of a process of their own.

    To :class:`~sockharness.chaos._traffic.Traffic` it is one more client: it
    starts, counts, stops, and hands over its messages.
    """

    def __init__(
        self,
        traffic: Traffic,
        group: ClientSpec,
        ids: list[int],
        bodies: list[bytes],
        *,
        route: Route,
    ) -> None:
        self.traffic = traffic
        self.ids = ids
        self.messages: list[Message] = []
        self._problems: list[str] = []
        self._reported = False
        self._killed = False
        job = _Job(
            group,
            tuple(ids),
            tuple(bodies),
            route.address,
            route.kind,
            _PortableTrust.of(route.tls) if route.tls is not None else None,
            traffic.seed,
            traffic.duration,
        )
        self._control, theirs = socket.socketpair()
        # Read when the process fails, closed with the control socket.
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            with tempfile.TemporaryFile() as counts_file:
                counts_file.write(bytes(_COUNTS.size))
                counts_file.flush()
                self._counts = mmap.mmap(counts_file.fileno(), _COUNTS.size)
                self._process = subprocess.Popen(
                    [sys.executable, "-c", _ENTRY, str(theirs.fileno()), str(counts_file.fileno())],
                    pass_fds=(theirs.fileno(), counts_file.fileno()),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=self._stderr,
                    env=_environment(),
                )
        except BaseException:
            self._control.close()
            self._stderr.close()
            raise
        finally:
            theirs.close()
        self._final: tuple[int, int] | None = None
        # A process that could not start is gone already: wait_ready() says why.
        with contextlib.suppress(OSError):
            _send(self._control, job)

    @property
    def who(self) -> str:
        first, last = self.ids[0], self.ids[-1]
        return f"client {first}" if first == last else f"clients {first}-{last}"

    @property
    def launched(self) -> bool:
        return True

    def _counted(self) -> tuple[int, int]:
        if self._final is not None:
            return self._final
        ok, failed = _COUNTS.unpack_from(self._counts)
        return ok, failed

    @property
    def ok(self) -> int:
        return self._counted()[0]

    @property
    def failed(self) -> int:
        return self._counted()[1]

    def _what_it_said(self) -> str:
        self._stderr.seek(0)
        said = self._stderr.read().decode(errors="replace").strip()
        return f":\n{said[-2000:]}" if said else ""

    def wait_ready(self) -> None:
        """Wait until the process has its clients made (before the run's clock starts)."""
        if not _readable(self._control, READY_WITHIN):
            raise RuntimeError(f"the process of {self.who} was not ready within {READY_WITHIN:g} s")
        try:
            ready = _receive(self._control)
        except (EOFError, OSError):
            self._process.wait(5.0)
            raise RuntimeError(
                f"the process of {self.who} ended before it was ready (exit code "
                f"{self._process.returncode}){self._what_it_said()}"
            ) from None
        if ready != "ready":
            self._take_report(ready)
            raise RuntimeError("; ".join(self._problems))

    def start(self) -> None:
        with contextlib.suppress(OSError):
            _send(self._control, ("start", self.traffic.started, self.traffic.boundaries))

    def ask_to_stop(self, timeout: float) -> None:
        with contextlib.suppress(OSError):  # Gone already: it ended by itself.
            _send(self._control, ("stop", timeout))

    def ended(self) -> bool:
        return self._reported or self._process.poll() is not None or _readable(self._control, 0)

    def join(self, timeout: float) -> None:
        """Take the process's report (its messages) and wait for it to end, ``timeout`` in all."""
        deadline = time.monotonic() + timeout
        if not self._reported and _readable(self._control, timeout):
            try:
                self._take_report(_receive(self._control))
            except (EOFError, OSError, pickle.UnpicklingError):
                if not self._killed:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self._process.wait(max(0.0, deadline - time.monotonic()))
                    self._reported = True
                    self._problems.append(
                        f"the process of {self.who} ended before it reported (exit code "
                        f"{self._process.returncode}): its messages are lost"
                        f"{self._what_it_said()}"
                    )
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(max(0.0, deadline - time.monotonic()))
        if self._process.returncode is not None:
            self._close()

    def _close(self) -> None:
        if self._final is None:
            self._final = self._counted()
        self._control.close()
        self._stderr.close()
        with contextlib.suppress(BufferError):
            self._counts.close()

    def _take_report(self, report: Any) -> None:
        self.messages, problems = report
        self._problems += problems
        self._reported = True

    def is_alive(self) -> bool:
        return not self._reported or self._process.poll() is None

    def abort(self) -> None:
        self._killed = True
        self._process.kill()

    def problems(self) -> list[str]:
        return list(self._problems)


def _run(control: socket.socket, counts: mmap.mmap) -> None:
    """A client process: make the clients, say ready, run them from the start, report."""
    job: _Job = _receive(control)
    try:
        from sockharness.faults import Timeline

        from ._traffic import Route, Traffic

        route = Route(job.address, job.kind, tls=job.trust.context() if job.trust else None)
        traffic = Traffic([], routes=[], seed=job.seed, duration=job.duration, timeline=Timeline())
        traffic.add_threads(job.group, job.ids, list(job.bodies), route)
    except Exception:
        failure = f"the process of clients {list(job.ids)} failed:\n{traceback.format_exc()}"
        _send(control, ([], [failure]))
        return
    _send(control, "ready")
    order = _receive(control)
    if order[0] == "stop":
        _send(control, ([], []))
        return
    _, started, boundaries = order
    traffic.start(started, boundaries)
    timeout = 5.0
    try:
        while not traffic.finished():
            _COUNTS.pack_into(counts, 0, *traffic.counts())
            if _readable(control, REPORT_EVERY):
                order = _receive(control)
                if order[0] == "stop":
                    timeout = order[1]
                    break
    except EOFError:
        traffic.stop(1.0)  # The runner is gone: stop the clients; nobody takes a report.
        return
    _COUNTS.pack_into(counts, 0, *traffic.counts())
    # Within the runner's own wait, leaving it time to take the report.
    _send(control, traffic.stop(max(0.1, timeout - 1.0)))


def main(argv: Sequence[str]) -> None:
    """A client process's entry point (:data:`_ENTRY`): the control socket's and the
    counts file's descriptors."""
    # Ctrl-C reaches the whole process group: the runner decides how a run ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    control = socket.socket(fileno=int(argv[0]))
    with open(int(argv[1]), "r+b") as file:
        counts = mmap.mmap(file.fileno(), _COUNTS.size)
    try:
        _run(control, counts)
    except (EOFError, BrokenPipeError, ConnectionResetError):
        pass  # The runner is gone; there is nobody to tell.
    finally:
        control.close()
