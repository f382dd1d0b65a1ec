"""TLS material from a trustme CA: server and client contexts that trust each other."""

from __future__ import annotations

import ssl
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import trustme

__all__ = ["LOOPBACK_IDENTITIES", "TLSMaterial"]

#: The names a sockharness server certificate is valid for.
LOOPBACK_IDENTITIES = ("localhost", "127.0.0.1", "::1")


class TLSMaterial:
    """A certificate authority and one server certificate for the loopback names.

    Creating the CA and the certificate takes a few milliseconds; contexts
    made from them are cheap, so a session keeps one ``TLSMaterial`` and each
    test gets fresh contexts it may change freely.
    """

    def __init__(self, ca: trustme.CA | None = None) -> None:
        if ca is None:
            import trustme

            ca = trustme.CA()
        self.ca = ca

    @cached_property
    def server_cert(self) -> Any:
        """The ``trustme.LeafCert`` for ``localhost``, ``127.0.0.1`` and ``::1``."""
        return self.ca.issue_cert(*LOOPBACK_IDENTITIES)

    def server_context(self) -> ssl.SSLContext:
        """A new server-side context presenting :attr:`server_cert`."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_cert.configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A new client-side context that trusts this CA (and verifies host names)."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ca.configure_trust(context)
        return context
