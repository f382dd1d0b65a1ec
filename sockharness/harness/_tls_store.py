"""A test CA and its loopback server certificate, kept on disk between sessions.

Making a CA takes about 45 ms, nearly all of it importing ``cryptography``
(through trustme); loading one that a previous session kept takes about 1 ms
and imports neither. The material of one calendar month lives in a directory of
its own, written once and never changed::

    <directory>/v1-2026-12/ca.pem  ca.key  server.pem  server.key

A session that finds this month's directory whole loads it; otherwise it makes
the material in a private temporary directory and renames it into place, so
that sessions running side by side (xdist workers, two terminals) never see
half of one. The first to rename wins, the others load what it wrote. Once a
new month's directory is in place, the directories of older months but the
last are removed. Keys are written readable by their owner only.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import ssl
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["KeptFiles", "keep_material", "load_kept"]

#: The layout's version: a change to what is kept (names, identities) gets a new one.
FORMAT: Final = "v1"

#: How long a kept server certificate is valid for: its month and a margin for a
#: session that runs into the next one.
SERVER_CERT_DAYS: Final = 70

CA_CERT: Final = "ca.pem"
CA_KEY: Final = "ca.key"
SERVER_CHAIN: Final = "server.pem"
SERVER_KEY: Final = "server.key"


@dataclass(frozen=True)
class KeptFiles:
    """Where a kept CA and server certificate are, and the CA's certificate itself."""

    directory: Path
    ca_cert_pem: bytes

    @property
    def ca_key(self) -> Path:
        return self.directory / CA_KEY

    @property
    def server_chain(self) -> Path:
        return self.directory / SERVER_CHAIN

    @property
    def server_key(self) -> Path:
        return self.directory / SERVER_KEY


def _month(now: float) -> str:
    return time.strftime("%Y-%m", time.gmtime(now))


def _previous_month(now: float) -> str:
    day = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).replace(day=1)
    return (day - datetime.timedelta(days=1)).strftime("%Y-%m")


def load_kept(directory: Path, now: float) -> tuple[KeptFiles, ssl.SSLContext] | None:
    """This month's material under ``directory`` and a server context presenting it.

    ``None`` when there is none, or what is there does not load (a key that is
    not the certificate's, a truncated file): the caller makes new material.
    """
    files = directory / f"{FORMAT}-{_month(now)}"
    try:
        ca_cert_pem = (files / CA_CERT).read_bytes()
        if not (files / CA_KEY).is_file():
            return None
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(files / SERVER_CHAIN, files / SERVER_KEY)
        # The client side must load it too: a CA certificate that does not parse fails here.
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(
            cadata=ca_cert_pem.decode("ascii")
        )
    except (OSError, ValueError, ssl.SSLError):
        return None
    return KeptFiles(files, ca_cert_pem), server


def _write_private(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def _make_into(directory: Path, identities: tuple[str, ...], now: float) -> None:
    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert(
        *identities,
        not_after=datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
        + datetime.timedelta(days=SERVER_CERT_DAYS),
    )
    _write_private(directory / CA_CERT, ca.cert_pem.bytes())
    _write_private(directory / CA_KEY, ca.private_key_pem.bytes())
    _write_private(
        directory / SERVER_CHAIN, b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    )
    _write_private(directory / SERVER_KEY, leaf.private_key_pem.bytes())


def _remove_old_months(directory: Path, now: float) -> None:
    kept = {f"{FORMAT}-{_month(now)}", f"{FORMAT}-{_previous_month(now)}"}
    with contextlib.suppress(OSError):
        for entry in directory.iterdir():
            if entry.name.startswith(f"{FORMAT}-") and entry.name not in kept:
                shutil.rmtree(entry, ignore_errors=True)


def keep_material(
    directory: Path, identities: tuple[str, ...], now: float
) -> tuple[KeptFiles, ssl.SSLContext] | None:
    """Make this month's material under ``directory`` (or take what another session just
    put there) and load it; ``None`` when the directory cannot be written."""
    final = directory / f"{FORMAT}-{_month(now)}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".making-", dir=directory))
    except OSError:
        return None
    try:
        _make_into(staging, identities, now)
        os.chmod(staging, 0o755)  # Keys stay 0600; the directory is listed as any other.
        try:
            os.rename(staging, final)
        except OSError:
            # Another session put this month's material in place first, or what is there
            # does not load: set it aside, then put ours there (unless yet another won).
            if load_kept(directory, now) is None:
                aside = Path(tempfile.mkdtemp(prefix=".broken-", dir=directory))
                with contextlib.suppress(OSError):
                    os.rename(final, aside / "material")
                shutil.rmtree(aside, ignore_errors=True)
                with contextlib.suppress(OSError):
                    os.rename(staging, final)
    except OSError:
        return None
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # Gone already when it was renamed.
    _remove_old_months(directory, now)
    return load_kept(directory, now)
