"""The steady-state part of a scenario's HTML section: the lifecycle in a line and a plot.

The plot puts every probe exchange (its latency; failed ones in red) on the
run's clock, with the phases behind them: the check before the faults (before
0 s), the faults (from 0 s until they ended, or until ``abort_when`` cut them
short) and the recovery (until the steady state held again). Every text comes
from the report's JSON and is escaped; a malformed ``steady_state`` shows as
nothing rather than as an error.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["steady_state_section"]

_WIDTH, _HEIGHT = 900, 220
_LEFT, _RIGHT, _TOP, _BOTTOM = 60, 20, 28, 34
_PHASES = (
    ("before", "#dbeafe", "steady state checked"),
    ("faults", "#fde68a", "faults"),
    ("recovery", "#dcfce7", "recovery"),
)
_OK, _FAILED, _ABORT = "#15803d", "#b91c1c", "#7f1d1d"


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def steady_state_section(scenario: Mapping[str, Any]) -> str:
    """The "Steady state" heading, its verdict line and its plot ("" without one)."""
    steady = scenario.get("steady_state")
    if not isinstance(steady, Mapping):
        return ""
    samples = _samples(steady)
    parts = ["<h3>Steady state</h3>", f'<p class="steady-verdict">{_esc(_verdict(steady))}</p>']
    if samples:
        parts.append(
            '<figure class="plot-figure"><figcaption>Steady-state probe: latency of each '
            "exchange, by phase</figcaption>" + _plot(scenario, steady, samples) + "</figure>"
        )
    return "\n".join(parts)


def _samples(steady: Mapping[str, Any]) -> list[tuple[float, float, bool]]:
    """(t, latency, ok) of each well-formed sample."""
    found = []
    raw = steady.get("samples")
    for sample in raw if isinstance(raw, list) else []:
        if not isinstance(sample, Mapping):
            continue
        t, latency = _number(sample.get("t")), _number(sample.get("latency"))
        if t is not None and latency is not None:
            found.append((t, max(0.0, latency), sample.get("outcome") == "ok"))
    return found


def _verdict(steady: Mapping[str, Any]) -> str:
    if steady.get("not_steady"):
        return f"Not steady before the faults: {steady['not_steady']}. No fault was injected."
    parts = ["Held before the faults."]
    if steady.get("aborted"):
        at = _number(steady.get("aborted_at"))
        when = f" at {at:.2f} s" if at is not None else ""
        parts.append(f"Aborted{when}: {steady['aborted']}.")
    recovery = _number(steady.get("recovery_time"))
    if steady.get("not_recovered"):
        parts.append(f"Not recovered: {steady['not_recovered']}.")
    elif recovery is not None:
        parts.append(f"Held again {recovery:.2f} s after the faults ended.")
    return " ".join(parts)


def _plot(
    scenario: Mapping[str, Any],
    steady: Mapping[str, Any],
    samples: list[tuple[float, float, bool]],
) -> str:
    times = [t for t, _, _ in samples]
    ended = _number(steady.get("faults_ended"))
    recovered = _number(steady.get("recovered_at"))
    marks = [value for value in (ended, recovered) if value is not None]
    low = min([*times, 0.0])
    high = max([*times, *marks, _number(scenario.get("duration")) or 0.0, low + 1e-3])
    peak = max([latency for _, latency, _ in samples] + [1e-3])

    def x(seconds: float) -> float:
        return _LEFT + (_WIDTH - _LEFT - _RIGHT) * (seconds - low) / (high - low)

    def y(seconds: float) -> float:
        return _HEIGHT - _BOTTOM - (_HEIGHT - _TOP - _BOTTOM) * seconds / (peak * 1.1)

    label = (
        f"Steady-state probe of scenario {scenario.get('name', '')}: the latency of each "
        f"exchange over time, with the phases shaded"
    )
    parts = [
        f'<svg class="plot steady" role="img" aria-label="{_esc(label)}" '
        f'viewBox="0 0 {_WIDTH} {_HEIGHT}" width="{_WIDTH}" height="{_HEIGHT}" '
        f'font-family="system-ui, sans-serif" font-size="12">'
    ]
    spans = {"before": (low, 0.0), "faults": (0.0, ended), "recovery": (ended, recovered)}
    legend_x = float(_LEFT)
    for phase, colour, text in _PHASES:
        start, end = spans[phase]
        if start is None or end is None or end <= start:
            continue
        parts.append(
            f'<rect class="phase phase-{phase}" x="{x(start):.1f}" y="{_TOP}" '
            f'width="{max(x(end) - x(start), 1.0):.1f}" height="{_HEIGHT - _TOP - _BOTTOM}" '
            f'fill="{colour}"><title>{_esc(text)}: {start:.2f} s to {end:.2f} s</title></rect>'
        )
        parts.append(
            f'<rect x="{legend_x:.1f}" y="8" width="12" height="12" fill="{colour}"/>'
            f'<text x="{legend_x + 16:.1f}" y="18">{_esc(text)}</text>'
        )
        legend_x += 30 + 7 * len(text)
    aborted = _number(steady.get("aborted_at"))
    if aborted is not None:
        parts.append(
            f'<line class="aborted" x1="{x(aborted):.1f}" x2="{x(aborted):.1f}" y1="{_TOP}" '
            f'y2="{_HEIGHT - _BOTTOM}" stroke="{_ABORT}" stroke-width="2" '
            f'stroke-dasharray="5 3"><title>aborted at {aborted:.2f} s</title></line>'
        )
    for t, latency, ok in samples:
        colour = _OK if ok else _FAILED
        state = "ok" if ok else "failed"
        parts.append(
            f'<circle class="sample {state}" cx="{x(t):.1f}" cy="{y(latency):.1f}" r="3" '
            f'fill="{colour}"><title>{t:.2f} s: {state}, {_ms(latency)}</title></circle>'
        )
    bottom = _HEIGHT - _BOTTOM
    parts += [
        f'<line x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" y1="{bottom}" y2="{bottom}" stroke="#374151"/>',
        f'<line x1="{_LEFT}" x2="{_LEFT}" y1="{_TOP}" y2="{bottom}" stroke="#374151"/>',
        f'<text x="{_LEFT}" y="{bottom + 16}">{low:.2f} s</text>',
        f'<text x="{_WIDTH - _RIGHT}" y="{bottom + 16}" text-anchor="end">{high:.2f} s</text>',
        f'<text x="{_LEFT - 6}" y="{_TOP + 10}" text-anchor="end">{_ms(peak * 1.1)}</text>',
        f'<text x="{_LEFT - 6}" y="{bottom}" text-anchor="end">0</text>',
        "</svg>",
    ]
    return "\n".join(parts)
