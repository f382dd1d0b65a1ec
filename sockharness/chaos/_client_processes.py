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
    """Whether ``sock`` has something to read within ``timeout`` (``poll``: a runner with
    more than 1024 descriptors open is no problem, as it would be for ``select``)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(max(0.0, timeout) * 1000))


#: What a client process runs (not ``-m``, which would import this module twice).
_ENTRY = "import sys; from sockharness.chaos._client_processes import main; main(sys.argv[1:])"


def _environment() -> dict[str, str]:
    """The runner's environment, with its import path: the process imports what it does."""
    paths = [entry for entry in sys.path if entry and os.path.isdir(entry)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


class _Frames:
    """The runner's end of a control socket: frames sent and received within deadlines."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @property
    def closed(self) -> bool:
        return self.sock.fileno() == -1

    def send(self, value: Any, timeout: float) -> None:
        """Send ``value``; raises ``OSError`` (``TimeoutError`` included) when it cannot."""
        self.sock.settimeout(max(0.001, timeout))
        _send(self.sock, value)

    def readable(self, timeout: float) -> bool:
        return not self.closed and _readable(self.sock, timeout)

    def receive(self, timeout: float) -> Any:
        """The next frame, whole, within ``timeout``; raises ``EOFError`` or ``OSError``."""
        self.sock.settimeout(max(0.001, timeout))
        return _receive(self.sock)


class ClientProcess:
    """Some clients of one group, run as threads of a process of their own.

    To :class:`~sockharness.chaos._traffic.Traffic` it is one more client: it
    starts, counts, stops, and hands over its messages. Every exchange with the
    process has a deadline: a process that hangs is killed and said to have.
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
        self._job_sent = False
        self._reported = False
        self._killed = False
        self._final: tuple[int, int] | None = None
        self._job = _Job(
            group,
            tuple(ids),
            tuple(bodies),
            route.address,
            route.kind,
            _PortableTrust.of(route.tls) if route.tls is not None else None,
            traffic.seed,
            traffic.duration,
        )
        ours, theirs = socket.socketpair()
        self._control = _Frames(ours)
        try:
            # Read when the process fails; closed with the control socket.
            self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
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
            self._close()
            raise
        finally:
            theirs.close()

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
        if self._stderr.closed:
            return ""
        self._stderr.seek(0)
        said = self._stderr.read().decode(errors="replace").strip()
        return f":\n{said[-2000:]}" if said else ""

    def _failed_to_start(self, why: str) -> RuntimeError:
        self.abort()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(5.0)
        return RuntimeError(
            f"the process of {self.who} {why} (exit code {self._process.returncode})"
            f"{self._what_it_said()}"
        )

    def wait_ready(self) -> None:
        """Give the process its job and wait until it has its clients made (before the
        run's clock starts): :data:`READY_WITHIN` for both."""
        deadline = time.monotonic() + READY_WITHIN
        try:
            self._control.send(self._job, READY_WITHIN)
            self._job_sent = True
        except TimeoutError:
            raise self._failed_to_start(f"did not take its job within {READY_WITHIN:g} s") from None
        except OSError:
            raise self._failed_to_start("ended before it was ready") from None
        if not self._control.readable(deadline - time.monotonic()):
            raise self._failed_to_start(f"was not ready within {READY_WITHIN:g} s")
        try:
            ready = self._control.receive(deadline - time.monotonic())
        except (EOFError, OSError):
            raise self._failed_to_start("ended before it was ready") from None
        if ready != "ready":
            self._take_report(ready)
            raise self._failed_to_start("failed: " + "; ".join(self._problems))

    def start(self) -> None:
        with contextlib.suppress(OSError):
            self._control.send(("start", self.traffic.started, self.traffic.boundaries), 5.0)

    def ask_to_stop(self, timeout: float) -> None:
        if self._control.closed:
            return
        if not self._job_sent:  # Stopped before it had clients (another failed to start).
            self._reported = True
            self._killed = True
            self._process.kill()
            return
        with contextlib.suppress(OSError):  # Gone already: it ended by itself.
            self._control.send(("stop", timeout), max(0.001, min(timeout, 5.0)))

    def ended(self) -> bool:
        return self._reported or self._process.poll() is not None or self._control.readable(0)

    def join(self, timeout: float) -> None:
        """Take the process's report (its messages) and wait for it to end, ``timeout`` in all."""
        if self._control.closed:
            return
        deadline = time.monotonic() + timeout
        while not self._reported and self._control.readable(deadline - time.monotonic()):
            try:
                report = self._control.receive(deadline - time.monotonic())
            except (EOFError, OSError, pickle.UnpicklingError):
                self._lost()
                break
            if report != "ready":  # A process stopped before it was asked to start says so.
                self._take_report(report)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(max(0.0, deadline - time.monotonic()))
        if self._process.returncode is not None:
            self._close()

    def _lost(self) -> None:
        """The process ended (or broke off) without its report."""
        self._reported = True
        if self._killed:
            return  # Traffic.stop says it did not stop in time.
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(1.0)
        self._problems.append(
            f"the process of {self.who} ended before it reported (exit code "
            f"{self._process.returncode}): its messages are lost{self._what_it_said()}"
        )

    def _close(self) -> None:
        if self._final is None and getattr(self, "_counts", None) is not None:
            with contextlib.suppress(ValueError):
                self._final = self._counted()
        self._control.sock.close()
        stderr = getattr(self, "_stderr", None)
        if stderr is not None:
            stderr.close()
        counts = getattr(self, "_counts", None)
        if counts is not None:
            with contextlib.suppress(BufferError):
                counts.close()

    def _take_report(self, report: Any) -> None:
        self.messages, problems = report
        self._problems += problems
        self._reported = True

    def is_alive(self) -> bool:
        if self._control.closed:
            return False
        return not self._reported or self._process.poll() is None

    def abort(self) -> None:
        if not self._reported:
            self._problems.append(f"{self.who}: the process was killed, its messages are lost")
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
    # Within the runner's own wait: the clients' stop takes up to its timeout and a second
    # more for stuck ones, and the runner needs time to take the report.
    _send(control, traffic.stop(max(0.1, timeout - 2.0)))


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
