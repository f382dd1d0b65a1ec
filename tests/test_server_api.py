"""sockharness.server presents the same API as the standard library's socketserver."""

from __future__ import annotations

import inspect
import pickle
import socketserver as stdlib
import subprocess
import sys
import types

import pytest

import sockharness.server as ours

# CPython 3.13's socketserver.__all__ on a platform with fork() and AF_UNIX.
ALL_OF_313 = [
    "BaseServer",
    "TCPServer",
    "UDPServer",
    "ThreadingUDPServer",
    "ThreadingTCPServer",
    "BaseRequestHandler",
    "StreamRequestHandler",
    "DatagramRequestHandler",
    "ThreadingMixIn",
    "ForkingUDPServer",
    "ForkingTCPServer",
    "ForkingMixIn",
    "UnixStreamServer",
    "UnixDatagramServer",
    "ThreadingUnixStreamServer",
    "ThreadingUnixDatagramServer",
    "ForkingUnixStreamServer",
    "ForkingUnixDatagramServer",
]

STDLIB_CLASSES = [name for name in stdlib.__all__ if isinstance(getattr(stdlib, name), type)]


def test_every_name_of_313_exists_on_every_python() -> None:
    assert sorted(ours.__all__) == sorted(ALL_OF_313)
    for name in ALL_OF_313:
        assert isinstance(getattr(ours, name), type), name


def test_public_names_are_exactly_all() -> None:
    # Submodules (sockharness.server.support, once imported) are not names of the API.
    public = [
        name
        for name in dir(ours)
        if not name.startswith("_") and not isinstance(getattr(ours, name), types.ModuleType)
    ]
    assert sorted(public) == sorted(ours.__all__)


@pytest.mark.parametrize("name", ALL_OF_313)
def test_classes_claim_the_public_module_and_pickle_by_reference(name: str) -> None:
    cls = getattr(ours, name)
    assert cls.__module__ == "sockharness.server"
    assert pickle.loads(pickle.dumps(cls)) is cls


@pytest.mark.parametrize("name", ALL_OF_313)
def test_same_class_hierarchy_as_313(name: str) -> None:
    expected_bases = {
        "BaseServer": ["object"],
        "TCPServer": ["BaseServer"],
        "UDPServer": ["TCPServer"],
        "UnixStreamServer": ["TCPServer"],
        "UnixDatagramServer": ["UDPServer"],
        "ThreadingMixIn": ["object"],
        "ForkingMixIn": ["object"],
        "ThreadingUDPServer": ["ThreadingMixIn", "UDPServer"],
        "ThreadingTCPServer": ["ThreadingMixIn", "TCPServer"],
        "ForkingUDPServer": ["ForkingMixIn", "UDPServer"],
        "ForkingTCPServer": ["ForkingMixIn", "TCPServer"],
        "ThreadingUnixStreamServer": ["ThreadingMixIn", "UnixStreamServer"],
        "ThreadingUnixDatagramServer": ["ThreadingMixIn", "UnixDatagramServer"],
        "ForkingUnixStreamServer": ["ForkingMixIn", "UnixStreamServer"],
        "ForkingUnixDatagramServer": ["ForkingMixIn", "UnixDatagramServer"],
        "BaseRequestHandler": ["object"],
        "StreamRequestHandler": ["BaseRequestHandler"],
        "DatagramRequestHandler": ["BaseRequestHandler"],
    }
    assert [base.__name__ for base in getattr(ours, name).__bases__] == expected_bases[name]


@pytest.mark.parametrize("name", STDLIB_CLASSES)
def test_same_mro_as_this_interpreters_stdlib(name: str) -> None:
    mine = [cls.__name__ for cls in getattr(ours, name).__mro__]
    theirs = [cls.__name__ for cls in getattr(stdlib, name).__mro__]
    assert mine == theirs


def _public_methods(cls: type) -> dict[str, object]:
    return {
        name: value
        for name in dir(cls)
        if not name.startswith("_") or name in ("__init__", "__enter__", "__exit__")
        for value in [inspect.getattr_static(cls, name)]
        if callable(value) or isinstance(value, (staticmethod, classmethod))
    }


@pytest.mark.parametrize("name", STDLIB_CLASSES)
def test_same_methods_and_signatures_as_the_stdlib(name: str) -> None:
    mine = _public_methods(getattr(ours, name))
    theirs = _public_methods(getattr(stdlib, name))
    assert sorted(set(theirs) - set(mine)) == []
    for method in theirs:
        expected = inspect.signature(getattr(getattr(stdlib, name), method))
        actual = inspect.signature(getattr(getattr(ours, name), method))
        # Our annotations are extra; parameter names, kinds and defaults must match.
        assert [(p.name, p.kind, p.default) for p in actual.parameters.values()] == [
            (p.name, p.kind, p.default) for p in expected.parameters.values()
        ], method


CLASS_ATTRIBUTES = [
    "address_family",
    "socket_type",
    "request_queue_size",
    "allow_reuse_address",
    "allow_reuse_port",
    "timeout",
    "daemon_threads",
    "block_on_close",
    "max_children",
    "active_children",
    "max_packet_size",
    "rbufsize",
    "wbufsize",
    "disable_nagle_algorithm",
]


@pytest.mark.parametrize("name", STDLIB_CLASSES)
def test_same_class_attributes_and_defaults(name: str) -> None:
    mine, theirs = getattr(ours, name), getattr(stdlib, name)
    for attribute in CLASS_ATTRIBUTES:
        if hasattr(theirs, attribute):
            assert getattr(mine, attribute) == getattr(theirs, attribute), attribute
        elif attribute == "allow_reuse_port" and issubclass(theirs, stdlib.TCPServer):
            # Older interpreters lack it; 3.13 has it, False.
            assert getattr(mine, attribute) is False
        else:
            assert not hasattr(mine, attribute), attribute


def test_importing_the_framework_does_not_import_the_stdlib_module() -> None:
    code = "import sys, sockharness.server; print('socketserver' in sys.modules)"
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "False"


def test_the_framework_imports_nothing_else_of_ours_nor_any_third_party_package() -> None:
    code = (
        "import sys; before = set(sys.modules); import sockharness.server; "
        "new = sorted(m.split('.')[0] for m in set(sys.modules) - before); "
        "print(' '.join(sorted(set(new))))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    stdlib_names = sys.stdlib_module_names
    assert [name for name in output if name not in stdlib_names] == ["sockharness"]
