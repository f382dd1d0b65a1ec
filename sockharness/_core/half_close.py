"""Ending one's side of a stream connection, when the peer may have ended it all already.

On a loaded machine a peer can answer and reset (or close with unread data,
which resets) before this side sends its FIN: ``shutdown(SHUT_WR)`` then fails
with ``ENOTCONN``, though the peer's bytes are still queued to be read before
the reset is reported. There is nothing left to end, and no error to report.
"""

from __future__ import annotations

import errno
import socket
import ssl

__all__ = ["end_sending"]


def end_sending(sock: socket.socket) -> None:
    """Send FIN (``shutdown(SHUT_WR)``); a connection the peer already reset is left as it is.

    Under TLS the FIN goes on the TCP socket itself: the TLS layer's own
    shutdown would end the session, not only this direction. Every error but
    ``ENOTCONN`` is raised.
    """
    try:
        if isinstance(sock, ssl.SSLSocket):
            socket.socket.shutdown(sock, socket.SHUT_WR)
        else:
            sock.shutdown(socket.SHUT_WR)
    except OSError as exc:
        if exc.errno != errno.ENOTCONN:
            raise
