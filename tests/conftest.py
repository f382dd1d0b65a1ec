from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator

import pytest


@pytest.fixture
def sock_dir() -> Iterator[str]:
    """A private, short directory for Unix socket paths (``tmp_path`` can be too long)."""
    directory = tempfile.mkdtemp(prefix="sh-", dir="/tmp")
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)
