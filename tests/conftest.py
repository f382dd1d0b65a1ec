from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sockharness.faults import FaultProxy


@pytest.fixture
def sock_dir() -> Iterator[str]:
    """A private, short directory for Unix socket paths (``tmp_path`` can be too long)."""
    directory = tempfile.mkdtemp(prefix="sh-", dir="/tmp")
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def proxies() -> Iterator[Callable[..., FaultProxy]]:
    """Make ``FaultProxy`` objects, every one closed after the test."""
    made: list[FaultProxy] = []

    def make(*args: Any, **kwargs: Any) -> FaultProxy:
        proxy = FaultProxy(*args, **kwargs)
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()
