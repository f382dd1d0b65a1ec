"""A socketserver-compatible server framework, written for testing.

``import sockharness.server as socketserver`` is a drop-in replacement for the
standard library module: the same classes, class attributes, constructor
signatures and overridable methods, called in the same order. It differs where
the classic module is weak:

* ``shutdown()`` returns at once instead of after up to ``poll_interval``;
* ``ThreadingMixIn`` forgets each handler thread as it ends;
* ``ForkingMixIn`` reaps only its own children and never runs more than
  ``max_children``, whichever loop drives it;
* Unix socket servers remove the socket file they created on
  ``server_close()``, and a too-long socket path is an error naming the limit.

This package depends on nothing else in sockharness and on nothing outside
the standard library.

PYTEST_DONT_REWRITE: a drop-in for the stdlib module, left as written when
pytest loads the sockharness plugin.
"""

import os
import socket

from ._base import BaseServer
from ._combined import ThreadingTCPServer, ThreadingUDPServer
from ._handlers import BaseRequestHandler, DatagramRequestHandler, StreamRequestHandler
from ._sockets import TCPServer, UDPServer
from ._threading import ThreadingMixIn

__all__ = [
    "BaseRequestHandler",
    "BaseServer",
    "DatagramRequestHandler",
    "StreamRequestHandler",
    "TCPServer",
    "ThreadingMixIn",
    "ThreadingTCPServer",
    "ThreadingUDPServer",
    "UDPServer",
]

if hasattr(os, "fork"):
    from ._combined import ForkingTCPServer, ForkingUDPServer
    from ._forking import ForkingMixIn

    __all__ += ["ForkingMixIn", "ForkingTCPServer", "ForkingUDPServer"]

if hasattr(socket, "AF_UNIX"):
    from ._combined import ThreadingUnixDatagramServer, ThreadingUnixStreamServer
    from ._sockets import UnixDatagramServer, UnixStreamServer

    __all__ += [
        "ThreadingUnixDatagramServer",
        "ThreadingUnixStreamServer",
        "UnixDatagramServer",
        "UnixStreamServer",
    ]
    if hasattr(os, "fork"):
        from ._combined import ForkingUnixDatagramServer, ForkingUnixStreamServer

        __all__ += ["ForkingUnixDatagramServer", "ForkingUnixStreamServer"]

# Tracebacks, reprs and pickles name the public module, not the private one.
for _name in __all__:
    globals()[_name].__module__ = __name__
del _name

# Not public names of this module: keep ``dir()`` to the socketserver API.
del os, socket
