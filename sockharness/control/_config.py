"""The config file: named proxies and their toxics, made at start-up and on reload.

JSON as Toxiproxy's ``-config`` (a list of proxies, or ``{"proxies": [...]}``),
or TOML (``[[proxies]]`` tables, each with ``[[proxies.toxics]]``). An entry
may list its ``toxics`` as ``POST /proxies/{name}/toxics`` takes them, which
Toxiproxy's file cannot.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from sockharness._core import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found, no-redef, unused-ignore]

__all__ = ["read_config"]


def read_config(path: str | os.PathLike[str]) -> list[Any]:
    """The proxies of the config file at ``path``; a bad file is one clear UsageError."""
    file = os.fspath(path)
    try:
        with open(file, "rb") as stream:
            raw = stream.read()
    except OSError as exc:
        raise UsageError(f"--config {file}: cannot be read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"--config {file}: is not UTF-8 text ({exc.reason})") from None
    if file.endswith(".toml"):
        try:
            document: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"--config {file}: is not valid TOML: {exc}") from None
    else:
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise UsageError(
                f"--config {file}: is not valid JSON: {exc} (a .toml file is read as TOML)"
            ) from None
    if isinstance(document, dict):
        unknown = sorted(set(document) - {"proxies"})
        if unknown:
            raise UsageError(f"--config {file}: {unknown[0]}: unknown key (known: proxies)")
        document = document.get("proxies", [])
    if not isinstance(document, list):
        raise UsageError(f"--config {file}: expected a list of proxies (or a 'proxies' key)")
    return document
