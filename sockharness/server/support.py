"""What the rest of sockharness uses of the server framework beyond the socketserver API.

Not part of the drop-in: ``import sockharness.server as socketserver`` gives
exactly the standard library's names. This module is the one seam through
which sockharness's other layers (and tools) reach the framework's own pieces:

- :class:`WakeUpPair`: a socket pair that wakes a ``select()`` from another
  thread (the fault proxy's event loop uses it, as ``serve_forever()`` does);
- :func:`unix_path_limit`: the longest Unix socket path this platform binds.

PYTEST_DONT_REWRITE
"""

from ._sockets import unix_path_limit
from ._wakeup import WakeUpPair

__all__ = ["WakeUpPair", "unix_path_limit"]
