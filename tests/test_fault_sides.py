"""docs/faults.md's table of what each side sees is true: through the proxy and in the process.

Every row of the table (marked ``fault-sides``) is expanded to each direction
it names and each place a fault can be applied (the proxy, the server's
socket, the client's socket), and one real exchange over loopback TCP is
observed for each: see ``tests/fault_sides.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from . import fault_sides

DOCS = Path(__file__).resolve().parents[1] / "docs" / "faults.md"
MARKER = "<!-- fault-sides: checked by tests/test_fault_sides.py -->"
IN_PROCESS_DIFFERENCE = re.compile(
    r"on the (client|server)'s socket, the (client|server) sees: (.+)"
)

Case = tuple[str, str, str, str, str]  # fault, direction, placement, client, server


def _fault_names(cell: str) -> list[str]:
    """The fault_sides names of a cell's faults: ``LimitData(500)`` is ``LimitData``."""
    names = []
    for code in re.findall(r"`([^`]+)`", cell):
        name = code if code in fault_sides.FAULTS else code.split("(", 1)[0]
        if code.startswith("Timeout("):
            name = "Timeout()" if code == "Timeout()" else "Timeout(after)"
        assert name in fault_sides.FAULTS, f"the table names {code!r}, which the test does not know"
        names.append(name)
    return names


def documented_cases() -> list[Case]:
    text = DOCS.read_text()
    assert MARKER in text, "docs/faults.md lost its table of what each side sees"
    lines = text.split(MARKER, 1)[1].strip().splitlines()
    rows = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    cases = []
    for faults, direction, client, server, in_process in rows:
        directions = fault_sides.DIRECTIONS if direction == "any" else (direction,)
        for name in _fault_names(faults):
            for each in directions:
                cases.append((name, each, "proxy", client, server))
                if in_process == "proxy only":
                    continue
                for placement in ("server", "client"):
                    expected = {"client": client, "server": server}
                    different = IN_PROCESS_DIFFERENCE.fullmatch(in_process)
                    if different is not None and different.group(1) == placement:
                        expected[different.group(2)] = different.group(3)
                    else:
                        assert in_process == "the same" or different, in_process
                    cases.append((name, each, placement, expected["client"], expected["server"]))
    return cases


CASES = documented_cases()


def test_the_table_covers_every_fault_direction_and_placement() -> None:
    covered = {(name, direction, placement) for name, direction, placement, _, _ in CASES}
    expected = {
        (name, direction, placement)
        for name, make in fault_sides.FAULTS.items()
        for direction in fault_sides.DIRECTIONS
        for placement in fault_sides.PLACEMENTS
        if placement == "proxy" or not make(direction).proxy_only
    }
    assert covered == expected
    assert len(CASES) == len(covered), "a case is in the table twice"


@pytest.mark.parametrize(
    ("fault", "direction", "placement", "client", "server"),
    CASES,
    ids=[f"{f}-{d}-{p}" for f, d, p, _, _ in CASES],
)
def test_each_side_sees_what_the_docs_say(
    fault: str, direction: str, placement: fault_sides.Placement, client: str, server: str
) -> None:
    observed = fault_sides.observe(fault_sides.FAULTS[fault](direction), placement)
    assert observed == (client, server), (
        f"{fault} direction={direction} applied on the {placement}: the client saw "
        f"{observed[0]!r} and the server {observed[1]!r}; docs/faults.md says {client!r} and "
        f"{server!r}"
    )
