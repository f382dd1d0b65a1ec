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
    "DropsDatagramsServer",
    "ForgetfulThreadingServer",
    "HangingShutdownServer",
    "ImpatientCloseServer",
    "KeepsRefusedOpenServer",
    "LeaksSocketsServer",
    "NeverClosesServer",
    "ReRaisingHandleErrorServer",
    "SkipsFinishServer",
    "WrongPeerServer",
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


class NeverClosesServer(_server.TCPServer):
    """Never closes a connection once its handler is done (property ``close_semantics``).

    A client waiting for the end of the stream waits forever: every property
    that reads a reply to the end must still end, with a verdict.
    """

    def shutdown_request(self, request: Any) -> None:
        self.__dict__.setdefault("_kept", []).append(request)  # Neither shut down nor closed.

    def server_close(self) -> None:
        super().server_close()
        for request in self.__dict__.pop("_kept", []):
            request.close()


class DropsDatagramsServer(_server.UDPServer):
    """Drops every second datagram before its handler sees it (property ``datagram``)."""

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.__dict__["_seen"] = seen = self.__dict__.get("_seen", 0) + 1
        return seen % 2 == 1


class WrongPeerServer(_server.UDPServer):
    """Answers every datagram to the first client it ever heard from (property ``datagram``)."""

    def finish_request(self, request: Any, client_address: Any) -> None:
        first = self.__dict__.setdefault("_first_client", client_address)
        super().finish_request(request, first)


class ReRaisingHandleErrorServer(_server.TCPServer):
    """``handle_error()`` re-raises: the loop dies on a handler's error (``handler_lifecycle``)."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        raise  # noqa: PLE0704 - re-raises the handler's exception, on purpose


class KeepsRefusedOpenServer(_server.TCPServer):
    """Leaves the connection of a refused request open (property ``verify_request``)."""

    def process_request(self, request: Any, client_address: Any) -> None:
        self.__dict__.setdefault("_served", set()).add(id(request))
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        if id(request) in self.__dict__.get("_served", set()):
            super().shutdown_request(request)
        else:  # Refused by verify_request(): kept open.
            self.__dict__.setdefault("_kept", []).append(request)

    def server_close(self) -> None:
        super().server_close()
        for request in self.__dict__.pop("_kept", []):
            request.close()


class LeaksSocketsServer(_server.TCPServer):
    """Closes each connection but keeps a duplicate of its descriptor (``close_semantics``).

    The client sees the end of the stream (the connection is shut down), so
    only counting the process's sockets catches it.
    """

    def shutdown_request(self, request: Any) -> None:
        self.__dict__.setdefault("_kept", []).append(request.dup())
        super().shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        for kept in self.__dict__.pop("_kept", []):
            kept.close()
