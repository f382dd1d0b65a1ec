"""Relaying datagrams through their fault plans, one flow per client address.

Each client address seen on the proxy's socket gets its own socket towards the
upstream (so replies find their way back) and its own pair of plans, seeded by
the flow's index: flows are to datagrams what connections are to streams.
"""

from __future__ import annotations

import contextlib
import functools
import os
import selectors
import socket
import tempfile
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sockharness._core import socket_out_of_children

from ._plans import Action, DatagramPlan

if TYPE_CHECKING:
    from ._loop import EventLoop

__all__ = ["DatagramFlow", "Outbox"]

MAX_DATAGRAM = 65536
#: Datagrams waiting for a full receiver (a Unix datagram socket's queue is short).
OUTBOX_LIMIT = 10_000


class Outbox:
    """Datagrams for one socket that could not be sent yet, kept in order.

    A Unix datagram receiver with a full queue makes a non-blocking sender get
    ``EAGAIN``; dropping then would be a loss nobody asked for. So the datagram
    waits here, and goes when the socket is writable again.
    """

    def __init__(
        self, loop: EventLoop, sock: socket.socket, on_readable: Callable[[int], None]
    ) -> None:
        self.loop = loop
        self.sock = sock
        self.on_readable = on_readable
        self.queue: deque[tuple[bytes, Any]] = deque()
        self.overflowed = 0

    def send(self, data: bytes, to: Any = None) -> None:
        if self.queue:
            self._enqueue(data, to)
            return
        if not self._try(data, to):
            self._enqueue(data, to)

    def _try(self, data: bytes, to: Any) -> bool:
        try:
            if to is None:
                self.sock.send(data)
            else:
                self.sock.sendto(data, to)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True  # Unreachable peer and the like: the datagram is gone, as on a network.
        return True

    def _enqueue(self, data: bytes, to: Any) -> None:
        if len(self.queue) >= OUTBOX_LIMIT:
            self.overflowed += 1
            return
        self.queue.append((data, to))
        self.watch()

    def watch(self) -> None:
        if self.sock.fileno() < 0:
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.queue else 0)
        self.loop.watch(self.sock, events, self._on_events)

    def _on_events(self, events: int) -> None:
        if events & selectors.EVENT_WRITE:
            while self.queue:
                data, to = self.queue[0]
                if not self._try(data, to):
                    break
                self.queue.popleft()
            self.watch()
        if events & selectors.EVENT_READ:
            self.on_readable(events)


class DatagramFlow:
    """The datagrams of one client address, both ways."""

    def __init__(
        self,
        *,
        loop: EventLoop,
        listener: Outbox,
        peer: Any,
        upstream_address: Any,
        family: int,
        plans: tuple[DatagramPlan, DatagramPlan],
        on_datagram: Callable[[str, int, bool], None],
        private_dir: str | None,
    ) -> None:
        self.loop = loop
        self.listener = listener
        self.peer = peer
        self.plans = plans
        self.on_datagram = on_datagram
        self.closed = False
        self.sock = socket_out_of_children(family, socket.SOCK_DGRAM)
        self._path: str | None = None
        try:
            self.sock.setblocking(False)
            if family == getattr(socket, "AF_UNIX", None):
                assert private_dir is not None
                fd, self._path = tempfile.mkstemp(prefix="f", suffix=".sock", dir=private_dir)
                os.close(fd)
                os.unlink(self._path)
                self.sock.bind(self._path)
            self.sock.connect(upstream_address)
        except BaseException:
            self.close()
            raise
        self.outbox = Outbox(loop, self.sock, self._on_upstream)
        self.outbox.watch()

    def from_client(self, data: bytes) -> None:
        """A datagram from the client: through the upstream plan, then to the upstream."""
        actions = self.plans[0].datagram(self.loop.now(), data)
        self._schedule(actions, self._send_upstream, "upstream")

    def _on_upstream(self, events: int) -> None:
        try:
            data = self.sock.recv(MAX_DATAGRAM)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # ICMP unreachable and the like: the upstream is not there (yet).
        actions = self.plans[1].datagram(self.loop.now(), data)
        self._schedule(actions, self._send_to_client, "downstream")

    def _schedule(
        self, actions: list[Action], send: Callable[[bytes], None], direction: str
    ) -> None:
        for action in actions:
            if action.kind == "drop":
                self.on_datagram(direction, 0, False)
                continue
            if action.at <= self.loop.now():
                send(action.data)
            else:
                self.loop.at(action.at, functools.partial(send, action.data))
            self.on_datagram(direction, len(action.data), True)

    def _send_upstream(self, data: bytes) -> None:
        if not self.closed:
            self.outbox.send(data)

    def _send_to_client(self, data: bytes) -> None:
        if not self.closed and self.peer:
            self.listener.send(data, self.peer)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.forget(self.sock)
        self.sock.close()
        if self._path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._path)
