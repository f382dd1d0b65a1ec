"""A test CA and its loopback server certificate, kept on disk between sessions.

Making a CA takes about 45 ms, nearly all of it importing ``cryptography``
(through trustme); loading one that a previous session kept takes about 1 ms
and imports neither. The material of one calendar month lives in a directory of
its own, written once and never changed in place::

    <directory>/v1-2026-12/ca.pem  ca.key  server.pem  server.key

A session that finds this month's directory whole loads it; otherwise it makes
the material in a private temporary directory and renames it into place, so
that sessions running side by side (xdist workers, two terminals) never see
half of one. The first to rename wins, the others load what it wrote. Once a
new month's directory is in place, the directories of older months but the
last are removed. Keys are written readable by their owner only.

A session reads each file once and checks that what it read holds together
(each key its certificate's, the server's certificate issued by the CA, in an
in-memory handshake); from then on it uses only what it read, so a copy
replaced or removed under it (``--cache-clear`` in another terminal) changes
nothing for it. ``SSLContext.load_cert_chain()`` reads only files: each server
context is loaded from private copies in a 0700 temporary directory, removed
at once.
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

__all__ = ["KeptMaterial", "keep_material", "load_kept", "server_context_of"]

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
class KeptMaterial:
    """A kept CA and server certificate, as read (once) from their directory, PEM-encoded."""

    ca_cert: bytes
    ca_key: bytes
    server_chain: bytes
    server_key: bytes


def _month(now: float) -> str:
    return time.strftime("%Y-%m", time.gmtime(now))


def _previous_month(now: float) -> str:
    day = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).replace(day=1)
    return (day - datetime.timedelta(days=1)).strftime("%Y-%m")


def _load_chain(context: ssl.SSLContext, directory: str, chain: bytes, key: bytes) -> None:
    """Load ``chain`` and ``key`` into ``context`` (which reads only files: private copies)."""
    chain_path, key_path = os.path.join(directory, "chain.pem"), os.path.join(directory, "key")
    _write_private(Path(chain_path), chain)
    _write_private(Path(key_path), key)
    try:
        context.load_cert_chain(chain_path, key_path)
    finally:
        os.unlink(chain_path)
        os.unlink(key_path)


def server_context_of(material: KeptMaterial) -> ssl.SSLContext:
    """A new server-side context presenting ``material``'s server certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory(prefix="sockharness-tls-") as private:  # 0700
        _load_chain(context, private, material.server_chain, material.server_key)
    return context


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> None:
    """A TLS handshake between the two contexts in memory; raises ``ssl.SSLError`` if it fails."""
    client_in, client_out, server_in, server_out = (ssl.MemoryBIO() for _ in range(4))
    ends = [
        (
            client.wrap_bio(client_in, client_out, server_hostname="localhost"),
            client_out,
            server_in,
        ),
        (server.wrap_bio(server_in, server_out, server_side=True), server_out, client_in),
    ]
    for _ in range(8):  # TLS 1.3 takes two flights each way; 1.2 three.
        done = 0
        for end, sent, peer in ends:
            try:
                end.do_handshake()
                done += 1
            except ssl.SSLWantReadError:
                pass
            peer.write(sent.read())
        if done == len(ends):
            return
    raise ssl.SSLError("the handshake between the kept certificates did not complete")


def _verified(material: KeptMaterial) -> ssl.SSLContext | None:
    """A server context for ``material`` when all of it holds together, else ``None``.

    Checks that each key is its certificate's (the CA's too: ``tls_ca`` issues
    with it) and that a client trusting the CA accepts the server's
    certificate for ``localhost``, in an in-memory handshake (about 1 ms).
    """
    try:
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory(prefix="sockharness-tls-") as private:
            _load_chain(server, private, material.server_chain, material.server_key)
            _load_chain(
                ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), private, material.ca_cert, material.ca_key
            )
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.load_verify_locations(cadata=material.ca_cert.decode("ascii"))
        _handshake(server, client)
    except (OSError, ValueError, ssl.SSLError):
        return None
    return server


def load_kept(directory: Path, now: float) -> tuple[KeptMaterial, ssl.SSLContext] | None:
    """This month's material under ``directory`` and a server context presenting it.

    Each file is read once: the session goes on with what it read, whatever later
    happens to the directory. ``None`` when there is none, or what is there does
    not hold together (a key that is not its certificate's, a truncated file, a
    certificate of another CA): the caller makes new material.
    """
    files = directory / f"{FORMAT}-{_month(now)}"
    try:
        material = KeptMaterial(
            *((files / name).read_bytes() for name in (CA_CERT, CA_KEY, SERVER_CHAIN, SERVER_KEY))
        )
    except OSError:
        return None
    server = _verified(material)
    return None if server is None else (material, server)


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


#: A staging or set-aside directory older than this was left by a session that died.
ABANDONED_AFTER: Final = 600.0


def _remove_old_months(directory: Path, now: float) -> None:
    """Remove the months before the last, and what sessions that died while making left."""
    kept = {f"{FORMAT}-{_month(now)}", f"{FORMAT}-{_previous_month(now)}"}
    with contextlib.suppress(OSError):
        for entry in directory.iterdir():
            if entry.name.startswith(f"{FORMAT}-") and entry.name not in kept:
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.name.startswith((".making-", ".broken-")):
                with contextlib.suppress(OSError):
                    if now - entry.stat().st_mtime > ABANDONED_AFTER:
                        shutil.rmtree(entry, ignore_errors=True)


def keep_material(
    directory: Path, identities: tuple[str, ...], now: float
) -> tuple[KeptMaterial, ssl.SSLContext] | None:
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
