"""The layers stay as designed: imports go one way, through public seams, without cycles.

Every module of ``sockharness/`` is parsed and each of its imports (at the top
level, inside functions, and under ``TYPE_CHECKING``) is checked:

- against the allowed direction: ``server`` imports nothing of ours; the core
  (``_core``) only ``server``; ``handlers`` the server and the core;
  ``faults`` those; ``strategies`` and the harness ``faults``; the
  conformance suite and the chaos runner the harness; the shells (``cli``,
  ``pytest_plugin``, the package's ``__init__`` and ``__main__``) anything;
- for privacy: no module imports another package's private module (a name
  starting with ``_``); a package that others need exposes it in its
  ``__init__`` (the private core is imported as ``sockharness._core``, never
  its modules);
- for cycles: the imports that run when a module loads form no cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sockharness"

#: Each layer, and the layers it may import from (itself included).
ALLOWED: dict[str, set[str]] = {
    "server": {"server"},
    "core": {"server", "core"},
    "handlers": {"server", "core", "handlers"},
    "faults": {"server", "core", "faults"},
    "strategies": {"server", "core", "faults", "strategies"},
    "harness": {"server", "core", "faults", "handlers", "harness"},
    "conformance": {"server", "core", "faults", "handlers", "strategies", "harness",
                    "conformance"},
    "chaos": {"server", "core", "faults", "handlers", "harness", "chaos"},
    "explore": {"server", "core", "faults", "handlers", "harness", "explore"},
    "control": {"server", "core", "faults", "control"},
    "shell": {"server", "core", "faults", "handlers", "strategies", "harness", "conformance",
              "chaos", "explore", "control", "shell"},
}  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else ""
    layers = {
        "server": "server",
        "_core": "core",
        "handlers": "handlers",
        "faults": "faults",
        "strategies": "strategies",
        "harness": "harness",
        "conformance": "conformance",
        "chaos": "chaos",
        "explore": "explore",
        "control": "control",
    }
    return layers.get(top, "shell")


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
IS_PACKAGE = {name: path.name == "__init__.py" for name, path in MODULES.items()}


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if IS_PACKAGE[module] else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports(module: str) -> Iterator[tuple[str, int, bool]]:
    """``(imported module, line, at load time)`` for every import of ``module`` of ours."""
    tree = ast.parse(MODULES[module].read_text())

    def visit(node: ast.AST, at_load: bool) -> Iterator[tuple[str, int, bool]]:
        for child in ast.iter_child_nodes(node):
            deferred = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) or (
                isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test)
            )
            if deferred:
                yield from visit(child, False)
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.startswith("sockharness"):
                        yield alias.name, child.lineno, at_load
            elif isinstance(child, ast.ImportFrom):
                target = _absolute(module, child)
                if not target.startswith("sockharness"):
                    continue
                for alias in child.names:  # `from pkg import submodule` imports the submodule.
                    candidate = f"{target}.{alias.name}"
                    yield (candidate if candidate in MODULES else target), child.lineno, at_load
            else:
                yield from visit(child, at_load)

    yield from visit(tree, True)


def package_of(module: str) -> str:
    return module if IS_PACKAGE.get(module) else module.rsplit(".", 1)[0]


def _inside(module: str, package: str) -> bool:
    return package_of(module) == package or package_of(module).startswith(package + ".")


def private_violation(importer: str, imported: str) -> str | None:
    """Why importing ``imported`` from ``importer`` reaches into a private module, if it does.

    A private module belongs to its package: only that package (and its
    subpackages) may import it. A private *package* (the core) is imported
    whole, through its ``__init__``; its modules are its own.
    """
    parts = imported.split(".")
    for index in range(1, len(parts)):
        if not parts[index].startswith("_") or parts[index].startswith("__"):
            continue
        name = ".".join(parts[: index + 1])
        if IS_PACKAGE.get(name):
            if imported != name and not _inside(importer, name):
                return f"{imported} is inside the private package {name}; import {name}"
            continue
        owner = ".".join(parts[:index])
        if not _inside(importer, owner):
            return f"{imported} is private to {owner}"
    return None


ALL_IMPORTS = [
    (importer, imported, line, at_load)
    for importer in MODULES
    for imported, line, at_load in imports(importer)
]


def test_every_module_was_found_and_parsed() -> None:
    assert "sockharness.server" in MODULES
    assert "sockharness.faults._plans" in MODULES
    assert len(ALL_IMPORTS) > 100


def test_imports_go_the_allowed_direction() -> None:
    wrong = [
        f"{importer} (line {line}, layer {layer_of(importer)}) imports {imported} "
        f"(layer {layer_of(imported)})"
        for importer, imported, line, _ in ALL_IMPORTS
        if layer_of(imported) not in ALLOWED[layer_of(importer)]
    ]
    assert wrong == []


def test_no_module_imports_another_packages_private_module() -> None:
    wrong = [
        f"{importer} (line {line}) imports {imported}: {why}"
        for importer, imported, line, _ in ALL_IMPORTS
        if (why := private_violation(importer, imported)) is not None
    ]
    assert wrong == []


def test_no_import_cycle_at_load_time() -> None:
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for importer, imported, _, at_load in ALL_IMPORTS:
        if at_load and imported in MODULES and imported != importer:
            graph[importer].add(imported)
            # Importing a submodule runs its package's __init__ first.
            parent = imported.rsplit(".", 1)[0]
            if parent in MODULES and parent != importer and not importer.startswith(parent + "."):
                graph[importer].add(parent)
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                walk(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    assert cycles == [], "\n".join(" -> ".join(cycle) for cycle in cycles)


@pytest.mark.parametrize(
    ("importer", "imported", "why"),
    [
        ("sockharness.chaos._runner", "sockharness.faults._plans", "private to sockharness.faults"),
        ("sockharness.harness._running", "sockharness.server._sockets", "private to"),
        ("sockharness.faults._proxy", "sockharness._core.kinds", "private package"),
    ],
)
def test_the_privacy_check_catches_a_reach_into_another_package(
    importer: str, imported: str, why: str
) -> None:
    assert why in (private_violation(importer, imported) or "")


def test_the_privacy_check_lets_a_package_use_its_own_modules() -> None:
    assert private_violation("sockharness.faults._proxy", "sockharness.faults._plans") is None
    assert private_violation("sockharness.faults", "sockharness.faults._specs") is None
    assert private_violation("sockharness.harness._running", "sockharness._core") is None


def test_the_direction_check_catches_an_upward_import() -> None:
    assert layer_of("sockharness.harness._running") not in ALLOWED["faults"]
    assert layer_of("sockharness.chaos._runner") not in ALLOWED["harness"]
    assert "server" in ALLOWED["core"]
    assert ALLOWED["server"] == {"server"}


def test_imports_in_functions_and_under_type_checking_are_seen() -> None:
    found = {(importer, imported): at_load for importer, imported, _, at_load in ALL_IMPORTS}
    assert found[("sockharness.faults._loop", "sockharness.server.support")] is True
    # Inside a function (TLS material is made on first use).
    assert found[("sockharness.harness._running", "sockharness.harness._tls")] is False
    # Under TYPE_CHECKING.
    assert found[("sockharness.pytest_plugin", "sockharness.harness")] is False
