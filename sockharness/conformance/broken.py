"""Deliberately broken server classes: each the suite must catch, under the right property.

They are shipped so that anyone can see the suite fail on purpose
(``sockharness conform sockharness.conformance.broken``), and the project's
own tests check that each one is reported under its property with a useful
message.
"""

from __future__ import annotations

import threading
from typing import Any

from sockharness import server as _server

__all__ = [
    "ForgetfulThreadingServer",
    "HangingShutdownServer",
    "ImpatientCloseServer",
    "SkipsFinishServer",
    "ZombieForkingServer",
]


class ImpatientCloseServer(_server.ThreadingTCPServer):
    """``server_close()`` does not wait for its handler threads (property ``block_on_close``)."""

    def server_close(self) -> None:
        self.socket.close()  # Skips the wait for in-flight handlers.


class HangingShutdownServer(_server.TCPServer):
    """``shutdown()`` never returns (property ``shutdown``)."""

    def shutdown(self) -> None:
        threading.Event().wait(3600)


class SkipsFinishServer(_server.TCPServer):
    """A handler whose ``handle()`` raises gets no ``finish()`` (property ``handler_lifecycle``)."""

    def finish_request(self, request: Any, client_address: Any) -> None:
        handler = self.RequestHandlerClass.__new__(self.RequestHandlerClass)
        handler.request, handler.client_address, handler.server = request, client_address, self
        handler.setup()
        handler.handle()  # No try/finally: finish() is skipped when handle() raises.
        handler.finish()


if hasattr(_server, "ForkingTCPServer"):

    class ZombieForkingServer(_server.ForkingTCPServer):
        """Never reaps its children: they stay zombies (property ``forking``)."""

        def collect_children(self, *, blocking: bool = False) -> None:
            pass


class ForgetfulThreadingServer(_server.ThreadingTCPServer):
    """Keeps every handler thread it ever started, finished or not (property ``threading``)."""

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address)
        )
        thread.daemon = self.daemon_threads
        self.__dict__.setdefault("_threads", []).append(thread)  # Never pruned.
        thread.start()

    def server_close(self) -> None:
        self.socket.close()
        for thread in list(self.__dict__.get("_threads", [])):
            thread.join()
