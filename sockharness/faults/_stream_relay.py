"""Relaying one stream connection through its fault plans, on the proxy's event loop.

Each connection is two pipes, client-to-upstream and upstream-to-client. A pipe
reads from its source, asks its :class:`StreamPlan` what becomes of the bytes
and when, keeps the timed actions in a heap, and writes to its destination
when they fall due.

Faithful where nothing is injected:

- a half-close is forwarded as a half-close: the end of one direction becomes
  ``shutdown(SHUT_WR)`` on the other side once everything before it was
  delivered, and the other direction goes on;
- a reset from one peer is passed on as a reset to the other;
- closes are graceful: a fault that closes the connection (``LimitData``,
  ``Timeout``) sends FIN both ways and then reads and discards until each peer
  has closed too, so no peer gets a reset for data still in flight. Only
  ``ResetPeer`` (and ``Down``, for the client) reset.

Reading pauses while a pipe holds more than ``HIGH_WATER`` bytes not yet
written, so a slow destination (or a bandwidth fault) slows the source
instead of filling memory.

A direction with no fault on it (and nothing of a fault's still queued) moves
its bytes inside the kernel where it can (``os.splice`` through a
:class:`~._kernel_pipe.KernelPipe`, on Linux), and copies them through Python
otherwise. A fault added later applies from the next read on: what the kernel
pipe holds by then was read before it, and is written first.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import itertools
import selectors
import socket
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sockharness._core import socket_out_of_children

from ._kernel_pipe import KernelPipe, SpliceUnsupported, open_kernel_pipe, splice_available
from ._plans import Action, StreamPlan

if TYPE_CHECKING:
    from ._loop import EventLoop

__all__ = ["StreamRelay", "reset"]

HIGH_WATER = 1 << 21
CHUNK = 1 << 18
#: How long a gracefully closed connection may take for its peers to close too.
DRAIN_TIMEOUT = 10.0


def reset(sock: socket.socket) -> None:
    """Close ``sock`` with an RST (``SO_LINGER`` of zero), so its peer sees a reset.

    Unix stream sockets have no RST: their peer sees a reset only when data it
    sent was still unread here; otherwise an end of stream.
    """
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class _Pipe:
    def __init__(
        self, relay: StreamRelay, src: socket.socket, dst: socket.socket, plan: StreamPlan
    ) -> None:
        self.relay = relay
        self.src = src
        self.dst = dst
        self.plan = plan
        self.direction = plan.direction
        self.heap: list[tuple[float, int, Action]] = []
        self.queued = 0
        self.out = bytearray()
        self.read_done = False  # The source ended (or is gone).
        self.eof_due = False  # The end reached the destination's turn.
        self.shut = False  # The destination was shut down for writing.
        self.close_after_flush = False
        self.counter = itertools.count()
        self.armed_for: float | None = None
        #: Where spliced bytes wait for the destination (opened on the first splice).
        self.kernel: KernelPipe | None = None

    @property
    def held(self) -> int:
        """Bytes in the kernel pipe: they go out before :attr:`out`."""
        return self.kernel.held if self.kernel is not None else 0

    @property
    def backlog(self) -> int:
        return len(self.out) + self.queued + self.held

    def wants_read(self) -> bool:
        if self.read_done:
            return False
        if self.relay.draining:
            return True
        return self.backlog < HIGH_WATER and not (self.kernel is not None and self.kernel.full)

    def wants_write(self) -> bool:
        return bool(self.out or self.held) and not self.shut

    def push(self, actions: list[Action]) -> None:
        for action in actions:
            heapq.heappush(self.heap, (action.at, next(self.counter), action))
            self.queued += len(action.data)
        self.arm()

    def arm(self) -> None:
        """Make sure the loop wakes when the earliest queued action is due."""
        if self.heap and (self.armed_for is None or self.heap[0][0] < self.armed_for):
            self.armed_for = self.heap[0][0]
            self.relay.loop.at(self.armed_for, self.relay.run_due)

    def discard(self) -> None:
        self.heap.clear()
        self.queued = 0
        self.out.clear()
        self.release_kernel()

    def release_kernel(self) -> None:
        """Close the kernel pipe (dropping what it holds), if there is one."""
        if self.kernel is not None:
            self.kernel.close()
            self.kernel = None


class StreamRelay:
    """One client connection relayed to the upstream address, faults applied."""

    def __init__(
        self,
        *,
        loop: EventLoop,
        client: socket.socket,
        upstream_address: Any,
        family: int,
        plans: tuple[StreamPlan, StreamPlan],
        on_bytes: Callable[[str, int], None],
        on_closed: Callable[[StreamRelay], None],
    ) -> None:
        self.loop = loop
        self.client = client
        self.on_bytes = on_bytes
        self.on_closed = on_closed
        self.closed = False
        self.connected = False
        self.draining = False
        #: Whether fault-free directions splice (off for good once splicing fails).
        self.splicing = splice_available()
        self.client.setblocking(False)
        self.upstream = socket_out_of_children(family, socket.SOCK_STREAM)
        self.upstream.setblocking(False)
        if family != getattr(socket, "AF_UNIX", None):
            for sock in (self.client, self.upstream):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        up_plan, down_plan = plans
        self.up = _Pipe(self, client, self.upstream, up_plan)
        self.down = _Pipe(self, self.upstream, client, down_plan)
        self.arm_timers()
        code = self.upstream.connect_ex(upstream_address)
        if code in (0, errno.EISCONN):
            self._on_connected()
        elif code in (errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK):
            loop.watch(self.upstream, selectors.EVENT_WRITE, self._on_connecting)
        else:
            self.close()

    @property
    def plans(self) -> tuple[StreamPlan, StreamPlan]:
        return self.up.plan, self.down.plan

    def arm_timers(self) -> None:
        """Wake for the plans' time-triggered faults (again, after the faults changed)."""
        for plan in self.plans:
            for when in plan.timers():
                self.loop.at(when, self.run_timers)

    # -- events ----------------------------------------------------------------------------

    def _on_connecting(self, events: int) -> None:
        if self.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            self.close()  # The upstream refused: the client sees its connection closed.
            return
        self._on_connected()

    def _on_connected(self) -> None:
        self.connected = True
        self.run_due()

    def _on_client(self, events: int) -> None:
        self._on_socket(events, reading=self.up, writing=self.down)

    def _on_upstream(self, events: int) -> None:
        self._on_socket(events, reading=self.down, writing=self.up)

    def _on_socket(self, events: int, *, reading: _Pipe, writing: _Pipe) -> None:
        if not self.closed and events & selectors.EVENT_READ and reading.wants_read():
            self._read(reading)
        if not self.closed and events & selectors.EVENT_WRITE:
            self._write(writing)
        self._rewatch()

    def _read(self, pipe: _Pipe) -> None:
        if self._may_splice(pipe) and self._splice_in(pipe):
            return
        try:
            data = pipe.src.recv(CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionResetError:
            self._pass_on_reset(pipe)
            return
        except OSError:
            self.close()
            return
        if self.draining:
            if not data:
                pipe.read_done = True
                if self.up.read_done and self.down.read_done:
                    self.close()
            return
        if data:
            self.on_bytes(pipe.direction, len(data))
        if self._straight_through(pipe, data):
            return
        now = self.loop.now()
        if data:
            pipe.push(pipe.plan.data(now, data))
        else:
            pipe.read_done = True
            pipe.push(pipe.plan.eof(now))
        self._rearm(pipe)
        self.run_due()

    def _may_splice(self, pipe: _Pipe) -> bool:
        """Whether ``pipe``'s next bytes may go through the kernel: no fault on the
        direction, nothing of one queued, nothing copied waiting."""
        return (
            self.splicing
            and self.connected
            and not self.draining
            and not pipe.plan.stages
            and not pipe.heap
            and not pipe.out
        )

    def _splice_in(self, pipe: _Pipe) -> bool:
        """Read from ``pipe``'s source into its kernel pipe and pass it on; ``False`` when
        it cannot be spliced (the caller copies instead; nothing was read)."""
        kernel = pipe.kernel
        if kernel is None:
            kernel = pipe.kernel = open_kernel_pipe()
            if kernel is None:  # No descriptor for a pipe: copy for now.
                return False
        try:
            moved = kernel.fill_from(pipe.src.fileno())
        except (BlockingIOError, InterruptedError):
            return True
        except SpliceUnsupported:
            self.splicing = False
            if not kernel.held:
                pipe.release_kernel()
            return False
        except ConnectionResetError:
            self._pass_on_reset(pipe)
            return True
        except OSError:
            self.close()
            return True
        if moved:
            self.on_bytes(pipe.direction, moved)
            pipe.plan.passed += moved
            self._write(pipe)
        else:
            self._straight_through(pipe, b"")
        return True

    def _straight_through(self, pipe: _Pipe, data: bytes) -> bool:
        """No fault on this direction (or none that strikes yet): send ``data`` on as it
        is, no timed actions. Whether it did."""
        if pipe.heap or not self.connected:
            return False
        if pipe.plan.stages and not (data and pipe.plan.passes(data)):
            return False
        if not pipe.plan.stages:
            pipe.plan.passed += len(data)
        if data:
            pipe.out += data
            self._write(pipe)
        else:
            pipe.read_done = True
            pipe.plan.ended = True
            pipe.eof_due = True
            self._after_flush(pipe)
        return True

    def _rearm(self, pipe: _Pipe) -> None:
        if pipe.plan.rearm:  # A trigger armed a timed fault: wake for it.
            pipe.plan.rearm = False
            self.arm_timers()

    def _write(self, pipe: _Pipe) -> None:
        """Write what ``pipe`` holds, the kernel pipe's bytes first, as far as the
        destination takes them now."""
        while (pipe.held or pipe.out) and not pipe.shut:
            try:
                if pipe.kernel is not None and pipe.kernel.held:
                    pipe.kernel.empty_into(pipe.dst.fileno())
                else:
                    del pipe.out[: pipe.dst.send(pipe.out)]
            except (BlockingIOError, InterruptedError):
                return
            except (ConnectionResetError, BrokenPipeError):
                # The destination went away hard: the other peer learns it the same way.
                self._pass_on_reset(self.down if pipe is self.up else self.up)
                return
            except OSError:
                self.close()
                return
        self._after_flush(pipe)

    def _after_flush(self, pipe: _Pipe) -> None:
        if pipe.out or pipe.held or self.closed:
            return
        if pipe.close_after_flush:
            self.close_gracefully()
            return
        if pipe.eof_due and not pipe.shut:
            pipe.shut = True
            pipe.release_kernel()  # Done with: its descriptors go back now.
            with contextlib.suppress(OSError):
                pipe.dst.shutdown(socket.SHUT_WR)
            if self.up.shut and self.down.shut:
                self.close()

    # -- timed actions -------------------------------------------------------------------------

    def run_due(self) -> None:
        if self.closed or self.draining:
            return
        now = self.loop.now()
        for pipe in (self.up, self.down):
            if pipe.armed_for is not None and pipe.armed_for <= now:
                pipe.armed_for = None
            while pipe.heap and pipe.heap[0][0] <= now:
                _, _, action = heapq.heappop(pipe.heap)
                pipe.queued -= len(action.data)
                self._act(pipe, action)
                if self.closed or self.draining:
                    return
            if self.connected:
                self._write(pipe)
                if self.closed or self.draining:
                    return
            pipe.arm()
        self._rewatch()

    def run_timers(self) -> None:
        if self.closed or self.draining:
            return
        now = self.loop.now()
        due = [(pipe, action) for pipe in (self.up, self.down) for action in pipe.plan.due(now)]
        resetting = {pipe for pipe, action in due if action.kind == "reset"}
        if resetting == {self.up, self.down} or any(a.kind == "reset_both" for _, a in due):
            # A reset due on both directions at once (``direction="both"``): each
            # peer receives data, so each is reset.
            self.reset_both()
            return
        for pipe, action in due:
            self._act(pipe, action)
            if self.closed or self.draining:
                return

    def _act(self, pipe: _Pipe, action: Action) -> None:
        if action.kind == "data":
            pipe.out += action.data
        elif action.kind == "eof":
            pipe.eof_due = True
        elif action.kind == "close":
            pipe.close_after_flush = True
            if self.connected:
                self._write(pipe)
        elif action.kind in ("reset", "reset_both"):
            if self.connected:
                self._write(pipe)  # What came before the reset goes out first (as the OS lets).
                if self.closed or self.draining:
                    return
            if action.kind == "reset":
                self.reset_receiver(pipe)
            else:
                self.reset_both()

    # -- ending -----------------------------------------------------------------------------------

    def close_gracefully(self) -> None:
        """FIN both ways, then discard what comes until both peers have closed too."""
        if self.closed or self.draining:
            return
        self.draining = True
        for pipe in (self.up, self.down):
            pipe.discard()
            pipe.shut = True
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
        self.loop.at(self.loop.now() + DRAIN_TIMEOUT, self.close)
        self._rewatch()

    def reset_receiver(self, pipe: _Pipe) -> None:
        """Reset the side that receives ``pipe``'s data; close the other side gracefully."""
        if self.closed:
            return
        self._drop(pipe.dst, hard=True)
        self._drain_one(pipe.src)

    def reset_both(self) -> None:
        """Reset both peers: each sees ``ConnectionResetError``."""
        if self.closed:
            return
        self.closed = True
        self._release_kernel_pipes()
        for sock in (self.client, self.upstream):
            self.loop.forget(sock)
            reset(sock)
        self.on_closed(self)

    def cut_client(self) -> None:
        """The proxy went down: reset the client; close the upstream side gracefully."""
        if self.closed:
            return
        self._drop(self.client, hard=True)
        self._drain_one(self.upstream)

    def _pass_on_reset(self, pipe: _Pipe) -> None:
        """The source of ``pipe`` reset the connection: reset its destination too."""
        if self.closed:
            return
        self.closed = True
        self._release_kernel_pipes()
        for sock in (self.client, self.upstream):
            self.loop.forget(sock)
        reset(pipe.dst)
        pipe.src.close()
        self.on_closed(self)

    def _drop(self, sock: socket.socket, *, hard: bool) -> None:
        self.loop.forget(sock)
        if hard:
            reset(sock)
        else:
            sock.close()

    def _drain_one(self, sock: socket.socket) -> None:
        """Only ``sock`` is left: FIN it, and close once its peer closed (or time is up)."""
        self.draining = True
        for pipe in (self.up, self.down):
            pipe.discard()
            pipe.shut = True
            pipe.read_done = pipe.src is not sock
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        self.loop.at(self.loop.now() + DRAIN_TIMEOUT, self.close)
        self._rewatch()

    def _rewatch(self) -> None:
        if self.closed or not self.connected:
            return
        for sock, reading, writing, callback in (
            (self.client, self.up, self.down, self._on_client),
            (self.upstream, self.down, self.up, self._on_upstream),
        ):
            if sock.fileno() < 0:
                continue
            events = 0
            if reading.wants_read():
                events |= selectors.EVENT_READ
            if writing.wants_write():
                events |= selectors.EVENT_WRITE
            self.loop.watch(sock, events, callback)

    def _release_kernel_pipes(self) -> None:
        for pipe in (self.up, self.down):
            pipe.release_kernel()

    def close(self) -> None:
        """Close both sides now (FIN for a peer that has not closed). Idempotent."""
        if self.closed:
            return
        self.closed = True
        self._release_kernel_pipes()
        for sock in (self.client, self.upstream):
            self.loop.forget(sock)
            sock.close()
        self.on_closed(self)
