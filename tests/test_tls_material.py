"""The test CA kept between sessions: loaded whole or made again, never half, never stale."""

from __future__ import annotations

import shutil
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from sockharness import TLSMaterial
from tests.helpers import SUBPROCESSES_TIMEOUT


def _round_trip(material: TLSMaterial) -> bytes:
    """One TLS exchange over loopback between ``material``'s server and client contexts."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    server_context = material.server_context()

    def serve() -> None:
        connection, _ = listener.accept()
        with server_context.wrap_socket(connection, server_side=True) as tls:
            tls.sendall(tls.recv(64))

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        raw = socket.create_connection(listener.getsockname(), timeout=10)
        with material.client_context().wrap_socket(raw, server_hostname="localhost") as client:
            client.sendall(b"kept")
            return client.recv(64)
    finally:
        thread.join(10)
        listener.close()


def _month_directories(directory: Path) -> list[str]:
    return sorted(entry.name for entry in directory.iterdir())


def test_material_kept_in_a_directory_is_loaded_by_the_next_session(tmp_path: Path) -> None:
    made = TLSMaterial.kept_in(tmp_path)
    loaded = TLSMaterial.kept_in(tmp_path)
    assert loaded.ca_cert_pem == made.ca_cert_pem
    assert _round_trip(loaded) == b"kept"
    # What was kept is the CA that issued the server's certificate.
    assert loaded.ca.cert_pem.bytes() == made.ca_cert_pem
    [month] = _month_directories(tmp_path)
    assert month.startswith("v1-")
    keys = [tmp_path / month / name for name in ("ca.key", "server.key")]
    assert all(stat.S_IMODE(key.stat().st_mode) == 0o600 for key in keys)


def test_loading_kept_material_imports_neither_trustme_nor_cryptography(tmp_path: Path) -> None:
    TLSMaterial.kept_in(tmp_path)
    script = f"""
import sys
from sockharness import TLSMaterial
material = TLSMaterial.kept_in({str(tmp_path)!r})
material.shared_server_context, material.shared_client_context, material.server_context()
print(sorted(name for name in ("trustme", "cryptography") if name in sys.modules))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("damaged", "how"),
    [
        ("server.key", "truncated"),
        ("server.pem", "truncated"),
        ("ca.pem", "truncated"),
        ("ca.key", "truncated"),
        ("ca.key", "removed"),
    ],
)
def test_damaged_material_is_made_again_and_works(tmp_path: Path, damaged: str, how: str) -> None:
    first = TLSMaterial.kept_in(tmp_path)
    [month] = _month_directories(tmp_path)
    path = tmp_path / month / damaged
    if how == "removed":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[:40])
    again = TLSMaterial.kept_in(tmp_path)
    assert again.ca_cert_pem != first.ca_cert_pem
    assert _round_trip(again) == b"kept"
    # The damaged copy was replaced, not left beside the new one.
    assert _month_directories(tmp_path) == [month]
    assert TLSMaterial.kept_in(tmp_path).ca_cert_pem == again.ca_cert_pem


@pytest.mark.parametrize("replaced", [("server.key",), ("ca.pem", "ca.key")])
def test_material_of_two_cas_mixed_is_made_again(tmp_path: Path, replaced: tuple[str, ...]) -> None:
    first = TLSMaterial.kept_in(tmp_path)
    other = tmp_path.parent / f"{tmp_path.name}-other"
    TLSMaterial.kept_in(other)
    [month] = _month_directories(tmp_path)
    for name in replaced:
        (tmp_path / month / name).write_bytes((other / month / name).read_bytes())
    again = TLSMaterial.kept_in(tmp_path)
    assert again.ca_cert_pem not in (first.ca_cert_pem, (other / month / "ca.pem").read_bytes())
    assert _round_trip(again) == b"kept"


def test_a_session_keeps_its_material_when_the_copy_is_removed_under_it(tmp_path: Path) -> None:
    material = TLSMaterial.kept_in(tmp_path)
    for entry in tmp_path.iterdir():  # As --cache-clear in another terminal does.
        shutil.rmtree(entry)
    assert _round_trip(material) == b"kept"
    assert material.ca.cert_pem.bytes() == material.ca_cert_pem
    assert material.server_cert.private_key_pem.bytes().startswith(b"-----BEGIN")


def test_older_months_but_the_last_are_removed_when_a_new_month_is_made(tmp_path: Path) -> None:
    for name in ("v1-2001-01", "v1-2001-02", "unrelated"):
        (tmp_path / name).mkdir()
    TLSMaterial.kept_in(tmp_path)
    names = _month_directories(tmp_path)
    assert "v1-2001-01" not in names
    assert "v1-2001-02" not in names
    assert "unrelated" in names
    assert len([name for name in names if name.startswith("v1-")]) == 1


def test_a_directory_that_cannot_be_written_gives_fresh_material(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    material = TLSMaterial.kept_in(blocker / "tls")
    assert _round_trip(material) == b"kept"
    assert blocker.read_text() == "not a directory"


def test_sessions_making_the_material_at_once_all_end_with_the_same_whole_copy(
    tmp_path: Path,
) -> None:
    results: list[bytes] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4, timeout=10)

    def session() -> None:
        try:
            start.wait()
            results.append(TLSMaterial.kept_in(tmp_path).ca_cert_pem)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=session) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(results) == 4
    # The first copy put in place is the one every session uses, and later ones load it.
    assert len(set(results)) == 1
    assert TLSMaterial.kept_in(tmp_path).ca_cert_pem == results[0]
    # No staging directory is left behind.
    assert len(_month_directories(tmp_path)) == 1


PLUGIN_SESSION = """
import ssl, sys
from sockharness.handlers import LineEchoHandler

def test_tls_server(make_server):
    server = make_server(LineEchoHandler, tls=True)
    with server.connect() as client:
        assert isinstance(client.sock, ssl.SSLSocket)
        assert client.request(b"hi\\n") == b"hi\\n"
    with open("imported.txt", "a") as out:
        out.write(f"{'trustme' in sys.modules}\\n")

def test_ca(tls_ca):
    with open("ca.txt", "a") as out:
        out.write(tls_ca.cert_pem.bytes().decode() + "@@\\n")
"""


def _sessions_cas(pytester: pytest.Pytester) -> list[str]:
    return [ca for ca in (pytester.path / "ca.txt").read_text().split("@@\n") if ca]


# Four pytest sessions in subprocesses: 12 s beside a burner alone, 44-66 s beside it
# and the suite (it ran out of the suite's 60 s once, flake loop 11).
@SUBPROCESSES_TIMEOUT
def test_the_plugin_keeps_the_ca_in_pytests_cache_between_sessions(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_session=PLUGIN_SESSION)
    for _ in range(2):
        pytester.runpytest_subprocess("-k", "tls_server").assert_outcomes(passed=1)
    pytester.runpytest_subprocess().assert_outcomes(passed=2)
    # The first session made the CA (and imported trustme); the next ones loaded it.
    assert (pytester.path / "imported.txt").read_text().split() == ["True", "False", "False"]
    [ca] = set(_sessions_cas(pytester))
    assert "BEGIN CERTIFICATE" in ca
    pytester.runpytest_subprocess("--cache-clear", "-k", "test_ca").assert_outcomes(passed=1)
    assert len(set(_sessions_cas(pytester))) == 2


@pytest.mark.parametrize("cache", ["cannot be written", "disabled"])
def test_without_a_cache_to_keep_it_each_session_has_a_ca_of_its_own(
    pytester: pytest.Pytester, cache: str
) -> None:
    pytester.makepyfile(test_session=PLUGIN_SESSION)
    blocker = pytester.path / "a-file"
    blocker.write_text("not a directory")
    # A cache directory under a file cannot be made; -p no:cacheprovider has none at all.
    option = ["-o", f"cache_dir={blocker}/cache"] if cache == "cannot be written" else []
    option = option or ["-p", "no:cacheprovider"]
    for _ in range(2):
        pytester.runpytest_subprocess(*option).assert_outcomes(passed=2)
    assert len(set(_sessions_cas(pytester))) == 2
    assert blocker.read_text() == "not a directory"
    if cache == "disabled":
        assert not (pytester.path / ".pytest_cache").exists()
