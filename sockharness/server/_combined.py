"""The ready-made combinations of a concurrency mix-in and a socket server.

PYTEST_DONT_REWRITE: a drop-in for the stdlib module, left as written when
pytest loads the sockharness plugin.
"""

from __future__ import annotations

import os
import socket

from ._sockets import TCPServer, UDPServer
from ._threading import ThreadingMixIn

__all__ = ["ThreadingTCPServer", "ThreadingUDPServer"]


class ThreadingTCPServer(ThreadingMixIn, TCPServer):
    """A TCP server that handles each connection in a new thread."""


class ThreadingUDPServer(ThreadingMixIn, UDPServer):
    """A UDP server that handles each datagram in a new thread."""


if hasattr(os, "fork"):
    from ._forking import ForkingMixIn

    __all__ += ["ForkingTCPServer", "ForkingUDPServer"]

    class ForkingTCPServer(ForkingMixIn, TCPServer):
        """A TCP server that handles each connection in a forked child process."""

    class ForkingUDPServer(ForkingMixIn, UDPServer):
        """A UDP server that handles each datagram in a forked child process."""


if hasattr(socket, "AF_UNIX"):
    from ._sockets import UnixDatagramServer, UnixStreamServer

    __all__ += ["ThreadingUnixDatagramServer", "ThreadingUnixStreamServer"]

    class ThreadingUnixStreamServer(ThreadingMixIn, UnixStreamServer):
        """A Unix stream server that handles each connection in a new thread."""

    class ThreadingUnixDatagramServer(ThreadingMixIn, UnixDatagramServer):
        """A Unix datagram server that handles each datagram in a new thread."""

    if hasattr(os, "fork"):
        __all__ += ["ForkingUnixDatagramServer", "ForkingUnixStreamServer"]

        class ForkingUnixStreamServer(ForkingMixIn, UnixStreamServer):
            """A Unix stream server that handles each connection in a forked child."""

        class ForkingUnixDatagramServer(ForkingMixIn, UnixDatagramServer):
            """A Unix datagram server that handles each datagram in a forked child."""
