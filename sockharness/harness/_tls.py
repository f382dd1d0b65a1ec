"""TLS material from a trustme CA: server and client contexts that trust each other."""

from __future__ import annotations

import builtins
import errno
import os
import ssl
import time
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sockharness._core import ByteCounter

from ._tls_store import KeptMaterial, keep_material, load_kept, server_context_of

if TYPE_CHECKING:
    import trustme

__all__ = ["LOOPBACK_IDENTITIES", "CountingSSLSocket", "TLSMaterial", "counting_tls"]

#: The names a sockharness server certificate is valid for.
LOOPBACK_IDENTITIES = ("localhost", "127.0.0.1", "::1")

_PEM_END = b"-----END CERTIFICATE-----\n"


class CountingSSLSocket(ssl.SSLSocket):
    """An ``SSLSocket`` that counts what its application sends and reads (once given a
    counter), and closes itself when its peer is gone before it is made.

    ``SSLContext.wrap_socket()`` takes over the descriptor of a connection and
    checks whether it is up; when it is not, it reads a byte to be sure. A peer
    that reset the connection in between (a fault proxy going down, say) makes
    that read raise, and the half-made socket, which nobody can reach, keeps its
    descriptor until the garbage collector finds it (a ``ResourceWarning``).
    This one closes itself first. Listening and not yet connected sockets, and
    every socket once made, behave as an ordinary ``SSLSocket``.
    """

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        try:
            return super().recv(buflen, flags)
        except OSError as exc:
            # ``wrap_socket()`` sets ``_connected`` once this check is over: an
            # instance without it is still being made, and would be lost.
            if "_connected" not in self.__dict__ and exc.errno not in (
                errno.ENOTCONN,
                errno.EINVAL,
            ):
                self.close()
            raise

    # -- counting (once the harness gave the socket a counter) ------------------------------

    #: Set on each connection a harnessed server accepts: what its application sent and read.
    sockharness_bytes: ByteCounter | None = None

    def read(self, len: int = 1024, buffer: Any = None) -> Any:  # The stdlib names it len.
        data = super().read(len, buffer)
        if self.sockharness_bytes is not None:
            self.sockharness_bytes.received += data if isinstance(data, int) else builtins.len(data)
        return data

    def write(self, data: Any) -> int:
        size = super().write(data)
        if self.sockharness_bytes is not None:
            self.sockharness_bytes.sent += size
        return size

    def send(self, data: Any, flags: int = 0) -> int:
        # sendall() sends through send(); so do a file's writes.
        size = super().send(data, flags)
        if self.sockharness_bytes is not None:
            self.sockharness_bytes.sent += size
        return size


def counting_tls(context: ssl.SSLContext) -> None:
    """Make ``context`` give connections that count their bytes, when it makes plain ones.

    A context whose ``sslsocket_class`` is the user's own is left as it is
    (its connections are then not counted).
    """
    if context.sslsocket_class is ssl.SSLSocket:
        context.sslsocket_class = CountingSSLSocket


def _self_closing(context: ssl.SSLContext) -> ssl.SSLContext:
    """``context``, making :class:`CountingSSLSocket` sockets."""
    context.sslsocket_class = CountingSSLSocket
    return context


class TLSMaterial:
    """A certificate authority and one server certificate for the loopback names.

    Creating the CA and the certificate takes a few milliseconds after
    importing trustme (about 40 ms); contexts made from them are cheap, so a
    session keeps one ``TLSMaterial`` and each test gets fresh contexts it may
    change freely. :meth:`kept_in` keeps the material on disk for the next
    session, which then imports neither trustme nor ``cryptography``.
    """

    def __init__(self, ca: trustme.CA | None = None) -> None:
        if ca is None:
            import trustme

            ca = trustme.CA()
        self._ca: trustme.CA | None = ca
        self._kept: KeptMaterial | None = None

    @classmethod
    def kept_in(cls, directory: str | os.PathLike[str]) -> TLSMaterial:
        """This month's material kept under ``directory``: loaded when a whole copy is
        there (about 1 ms), made and kept there otherwise.

        Sessions may share ``directory`` at the same time; each sees a whole copy
        or makes its own. A directory that cannot be written gives fresh
        material that is not kept.
        """
        now = time.time()
        found = load_kept(Path(directory), now) or keep_material(
            Path(directory), LOOPBACK_IDENTITIES, now
        )
        if found is None:
            return cls()
        material = cls.__new__(cls)
        material._ca = None
        material._kept, server_context = found
        material.__dict__["shared_server_context"] = _self_closing(server_context)
        return material

    @property
    def ca(self) -> trustme.CA:
        """The ``trustme.CA`` (imports trustme when the material was loaded from disk)."""
        if self._ca is None:
            import trustme

            assert self._kept is not None
            self._ca = trustme.CA.from_pem(self._kept.ca_cert, self._kept.ca_key)
        return self._ca

    @cached_property
    def ca_cert_pem(self) -> bytes:
        """The CA's certificate, PEM-encoded: what a client trusts."""
        if self._kept is not None:
            return self._kept.ca_cert
        return self.ca.cert_pem.bytes()

    @cached_property
    def server_cert(self) -> Any:
        """The ``trustme.LeafCert`` for ``localhost``, ``127.0.0.1`` and ``::1``."""
        if self._kept is not None:
            import trustme

            leaf, _, rest = self._kept.server_chain.partition(_PEM_END)
            return trustme.LeafCert(
                self._kept.server_key,
                leaf + _PEM_END,
                [block + _PEM_END for block in rest.split(_PEM_END) if block.strip()],
            )
        return self.ca.issue_cert(*LOOPBACK_IDENTITIES)

    def server_context(self) -> ssl.SSLContext:
        """A new server-side context presenting :attr:`server_cert`."""
        if self._kept is not None:
            return _self_closing(server_context_of(self._kept))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_cert.configure_cert(context)
        return _self_closing(context)

    @cached_property
    def shared_server_context(self) -> ssl.SSLContext:
        """One server-side context for every server that does not need its own.

        Loading the certificate into a context costs about 1.3 ms; servers that
        only need to present it (``make_server(..., tls=True)``) share this one.
        Do not change it: take :meth:`server_context` for a context of your own.
        """
        return self.server_context()

    @cached_property
    def shared_client_context(self) -> ssl.SSLContext:
        """One client-side context for the harness's own clients (``server.connect()``).

        Do not change it: take :meth:`client_context` for a context of your own.
        """
        return self.client_context()

    def client_context(self) -> ssl.SSLContext:
        """A new client-side context that trusts this CA only (and verifies host names).

        Not ``ssl.create_default_context()``: that loads the system's trust
        store too, about 55 ms a context, for certificates a test never meets.
        """
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # Verifies, and checks host names.
        context.load_verify_locations(cadata=self.ca_cert_pem.decode("ascii"))
        return _self_closing(context)
