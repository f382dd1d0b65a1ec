"""A self-contained HTML report of chaos-scenario results.

:func:`render_html` turns the JSON form of scenario results into one HTML page
that needs nothing else: the plots are inline SVG, the styles are inline, and
the page's Content-Security-Policy forbids fetching any script, font,
stylesheet or image, so opening the file makes no request at all.

The page holds a summary table (one row per scenario) and, per scenario, a
section with its details, its invariants, its faults and two plots over time:
latency (p50 and p99 per bucket) and throughput (ok and failed messages per
second), each with every fault window shaded.

>>> page = render_html([{"name": "demo", "result": "held"}])
>>> page.startswith("<!DOCTYPE html>")
True
>>> 'id="scenario-demo"' in page
True
"""

from __future__ import annotations

import html
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._html_steady import steady_state_section

__all__ = ["render_html"]

# Shown for a missing value, and between the ends of a fault window.
DASH = "\u2013"

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

RESULTS = ("held", "broken", "aborted", "not steady", "error", "skipped")

# Plot geometry, in SVG user units (the SVG scales to the page width).
WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 18, 36, 46

# Colours: presentation attributes, so a plot copied out of the page keeps them.
P50_COLOUR = "#2563eb"
P99_COLOUR = "#c026d3"
OK_COLOUR = "#60a5fa"
FAILED_COLOUR = "#dc2626"
FAULT_COLOUR = "#f59e0b"
FAULT_OPACITY = "0.22"
UNFIRED_COLOUR = "#6b7280"
GRID_COLOUR = "#e5e7eb"
AXIS_COLOUR = "#374151"

STYLE = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: #111827; background: #f9fafb; margin: 0; padding: 24px; }
main { max-width: 1100px; margin: 0 auto; }
h1 { font-size: 1.6em; margin: 0 0 4px; }
h2 { font-size: 1.25em; margin: 0 0 8px; display: flex; gap: 10px; align-items: baseline;
  flex-wrap: wrap; }
h2 .name, td.name, dd, .invariants li, .faults li { overflow-wrap: anywhere; }
h3 { font-size: 1em; margin: 18px 0 6px; }
.verdict { color: #4b5563; margin: 0 0 16px; }
table.summary { border-collapse: collapse; width: 100%; background: #fff;
  box-shadow: 0 1px 2px rgba(0,0,0,.08); }
table.summary th, table.summary td { padding: 6px 10px; border-bottom: 1px solid #e5e7eb;
  text-align: left; vertical-align: top; }
table.summary th { background: #f3f4f6; font-weight: 600; white-space: nowrap; }
table.summary td.num { text-align: right; font-variant-numeric: tabular-nums;
  white-space: nowrap; }
table.summary td.name { max-width: 320px; }
a { color: #1d4ed8; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: .85em;
  font-weight: 600; color: #fff; white-space: nowrap; }
.badge.result-held { background: #15803d; }
.badge.result-broken, .badge.result-aborted { background: #b91c1c; }
.badge.result-not-steady { background: #7c2d12; }
.badge.result-error { background: #b45309; }
.badge.result-unknown { background: #6b7280; }
.badge.result-skipped { background: #9ca3af; }
section.scenario { background: #fff; margin: 24px 0; padding: 16px 20px;
  box-shadow: 0 1px 2px rgba(0,0,0,.08); border-left: 6px solid #6b7280; }
section.scenario.result-held { border-left-color: #15803d; }
section.scenario.result-broken, section.scenario.result-aborted { border-left-color: #b91c1c; }
section.scenario.result-not-steady { border-left-color: #7c2d12; }
section.scenario.result-error { border-left-color: #b45309; }
dl.details { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
dl.details dt { color: #4b5563; }
dl.details dd { margin: 0; }
.error-text { background: #fef3c7; border: 1px solid #f59e0b; padding: 8px 12px;
  white-space: pre-wrap; overflow-wrap: anywhere; margin: 12px 0 0; }
ul.invariants, ol.faults { margin: 0; padding-left: 1.4em; }
ul.invariants { list-style: none; padding-left: 0; }
.invariant .mark { display: inline-block; width: 1.4em; font-weight: 700; }
.invariant.held .mark { color: #15803d; }
.invariant.broken .mark { color: #b91c1c; }
.invariant.vacuous .mark { color: #6b7280; }
.invariant.vacuous code { color: #6b7280; }
.fault-item.unfired { color: #6b7280; }
.fault-item .unfired-note { color: #b91c1c; font-weight: 600; }
.invariant .detail { color: #4b5563; }
.none { color: #6b7280; font-style: italic; }
figure.plot-figure { margin: 12px 0 0; }
figure.plot-figure figcaption { font-weight: 600; margin-bottom: 2px; }
svg.plot { width: 100%; height: auto; max-width: 900px; display: block; background: #fff; }
code { font-size: .92em; }
"""


@dataclass(frozen=True)
class _Series:
    """One scenario's time series, aligned: index i is the bucket starting at ``t[i]``."""

    bucket: float
    t: list[float]
    ok: list[float | None]
    failed: list[float | None]
    p50: list[float | None]
    p99: list[float | None]


@dataclass(frozen=True)
class _Fault:
    """A fault window, clipped to the plot's time axis.

    ``lane``: windows that overlap in time get different lanes, so that their
    numbers and outlines do not cover each other. ``fired``: ``False`` for a
    fault that never did anything (drawn as an empty dashed outline).
    """

    number: int
    start: float
    end: float
    tooltip: str
    lane: int = 0
    fired: bool = True


@dataclass(frozen=True)
class _Axes:
    """Maps data values to SVG coordinates inside the plot area."""

    x_max: float
    y_max: float

    def x(self, seconds: float) -> float:
        """The horizontal position of ``seconds`` from the scenario start."""
        return LEFT + (WIDTH - LEFT - RIGHT) * seconds / self.x_max

    def y(self, value: float) -> float:
        """The vertical position of ``value`` on the y axis."""
        return HEIGHT - BOTTOM - (HEIGHT - TOP - BOTTOM) * value / self.y_max


def render_html(results: list[dict[str, Any]], *, title: str = "sockharness chaos report") -> str:
    """Render scenario results (their JSON form) as one self-contained HTML page.

    Every text taken from ``results`` is escaped; missing optional keys are
    shown as a dash or left out. The output depends only on the arguments.
    """
    slugs = _slugs([_name(scenario, index) for index, scenario in enumerate(results)])
    body = [
        f"<h1>{_esc(title)}</h1>",
        _verdict(results),
        _summary_table(results, slugs),
        *(
            _scenario_section(scenario, index, slug)
            for index, (scenario, slug) in enumerate(zip(results, slugs, strict=True))
        ),
    ]
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_esc(CSP)}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            # An empty data: icon, so the browser does not look for /favicon.ico.
            '<link rel="icon" href="data:,">',
            f"<title>{_esc(title)}</title>",
            f"<style>{STYLE}</style>",
            "</head>",
            "<body>",
            "<main>",
            *body,
            "</main>",
            "</body>",
            "</html>",
            "",
        ]
    )


# -- reading the input -------------------------------------------------------------------------


def _esc(value: object) -> str:
    """``value`` as text escaped for HTML content and attribute values."""
    return html.escape(str(value), quote=True)


def _mapping(value: object) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def _sequence(value: object) -> Sequence[Any]:
    """``value`` if it is a list or tuple, else an empty list."""
    return value if isinstance(value, (list, tuple)) else []


def _number(value: object) -> float | None:
    """``value`` as a finite float, or None for anything else (None, NaN, text, bools)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _count(value: object) -> int:
    """``value`` as a count, 0 when missing."""
    number = _number(value)
    return int(number) if number is not None else 0


def _name(scenario: Mapping[str, Any], index: int) -> str:
    """The scenario's name, or a stand-in for a nameless one."""
    name = scenario.get("name")
    return str(name) if name not in (None, "") else f"scenario {index + 1}"


def _result(scenario: Mapping[str, Any]) -> str:
    """The scenario's result if it is a known one, else ``"unknown"`` (used in CSS classes)."""
    result = scenario.get("result")
    return result if result in RESULTS else "unknown"


def _css(result: str) -> str:
    """A result as a CSS class name (``not steady``: ``not-steady``)."""
    return result.replace(" ", "-")


def _slugs(names: list[str]) -> list[str]:
    """A unique, URL-safe slug per name, for the section ids."""
    seen: set[str] = set()
    slugs = []
    for index, name in enumerate(names):
        base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60].strip("-")
        base = base or f"scenario-{index + 1}"
        slug, suffix = base, 2
        while slug in seen:
            slug, suffix = f"{base}-{suffix}", suffix + 1
        seen.add(slug)
        slugs.append(slug)
    return slugs


def _broken_invariants(scenario: Mapping[str, Any]) -> list[str]:
    """The names of the invariants that did not hold."""
    return [
        str(_mapping(invariant).get("name", "?"))
        for invariant in _sequence(scenario.get("invariants"))
        if _mapping(invariant).get("held") is False
    ]


def _describe_services(services: Sequence[Mapping[str, Any]]) -> str:
    """The services in their start order, each with what it starts after (HTML)."""
    items = []
    for service in services:
        after = [str(name) for name in _sequence(service.get("after"))]
        needs = f" (after {', '.join(after)})" if after else ""
        items.append(
            f"<code>{_esc(service.get('name', '?'))}</code>: "
            f"{_esc(_describe_server(service))}{_esc(needs)}"
        )
    return "; ".join(items)


def _describe_server(server: Mapping[str, Any]) -> str:
    """One line about the server under test.

    The result's own ``description`` wins; without one the line is built from
    the other keys, e.g. ``tcp, threading, handler echo, TLS``.
    """
    if isinstance(server.get("description"), str) and server["description"]:
        return str(server["description"])
    parts = [str(server[key]) for key in ("kind", "concurrency") if server.get(key)]
    if server.get("handler"):
        parts.append(f"handler {server['handler']}")
    if server.get("tls"):
        parts.append("TLS")
    if server.get("server_class"):
        parts.append(f"server class {server['server_class']}")
    if server.get("target"):
        parts.append(f"target {server['target']}")
    known = {"kind", "concurrency", "handler", "tls", "server_class", "target"}
    parts += [f"{key} {value}" for key, value in server.items() if key not in known and value]
    return ", ".join(parts)


# -- formatting numbers ------------------------------------------------------------------------


def _fmt_ms(seconds: object) -> str:
    """A latency in seconds as milliseconds with sensible precision, or a dash."""
    value = _number(seconds)
    if value is None:
        return DASH
    ms = value * 1000
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    if ms >= 1:
        return f"{ms:.2f}"
    return f"{ms:.3f}"


def _fmt_seconds(value: float) -> str:
    """Seconds, rounded to centiseconds, without trailing zeros."""
    return f"{value:.0f}" if value >= 100 else f"{round(value, 2):g}"


def _fmt_coord(value: float) -> str:
    """An SVG coordinate with one decimal."""
    return f"{value:.1f}"


def _fmt_tick(value: float, step: float) -> str:
    """A tick label with just enough decimals for ``step``."""
    decimals = 0 if step >= 1 else min(6, -math.floor(math.log10(step)))
    return f"{value:.{decimals}f}"


# -- the page ----------------------------------------------------------------------------------


def _verdict(results: list[dict[str, Any]]) -> str:
    """A line counting the scenarios by result."""
    if not results:
        return '<p class="verdict none">No scenarios were run.</p>'
    counts = dict.fromkeys((*RESULTS, "unknown"), 0)
    for scenario in results:
        counts[_result(scenario)] += 1
    noun = "scenario" if len(results) == 1 else "scenarios"
    parts = [f"{count} {result}" for result, count in counts.items() if count]
    return f'<p class="verdict">{len(results)} {noun}: {", ".join(parts)}.</p>'


def _badge(scenario: Mapping[str, Any]) -> str:
    """The coloured result label."""
    text = scenario.get("result") or "unknown"
    return f'<span class="badge result-{_css(_result(scenario))}">{_esc(text)}</span>'


def _summary_table(results: list[dict[str, Any]], slugs: list[str]) -> str:
    """The table with one row per scenario."""
    headers = [
        "Scenario",
        "Result",
        "Messages (ok / sent)",
        "Failed",
        "Handler errors",
        "p50 (ms)",
        "p99 (ms)",
        "Broken invariants",
        "Seed",
    ]
    rows = [
        _summary_row(scenario, index, slug)
        for index, (scenario, slug) in enumerate(zip(results, slugs, strict=True))
    ]
    head = "".join(f'<th scope="col">{_esc(header)}</th>' for header in headers)
    return (
        '<table class="summary">\n'
        f"<thead><tr>{head}</tr></thead>\n"
        "<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"
    )


def _summary_row(scenario: Mapping[str, Any], index: int, slug: str) -> str:
    """One scenario's row of the summary table."""
    messages = _mapping(scenario.get("messages"))
    latency = _mapping(scenario.get("latency"))
    broken = _broken_invariants(scenario)
    seed = scenario.get("seed")
    cells = [
        f'<td class="name"><a href="#scenario-{slug}">{_esc(_name(scenario, index))}</a></td>',
        f'<td class="result">{_badge(scenario)}</td>',
        f'<td class="num messages">{_count(messages.get("ok")):,} / '
        f"{_count(messages.get('sent')):,}</td>",
        f'<td class="num failed">{_count(messages.get("failed")):,}</td>',
        f'<td class="num handler-errors">{_count(scenario.get("handler_errors")):,}</td>',
        f'<td class="num p50">{_fmt_ms(latency.get("p50"))}</td>',
        f'<td class="num p99">{_fmt_ms(latency.get("p99"))}</td>',
        f'<td class="broken-invariants">{_esc(", ".join(broken)) if broken else DASH}</td>',
        f'<td class="num seed"><code>{_esc(seed) if seed is not None else DASH}</code></td>',
    ]
    return f'<tr class="row-{_css(_result(scenario))}">{"".join(cells)}</tr>'


def _scenario_section(scenario: Mapping[str, Any], index: int, slug: str) -> str:
    """One scenario's section: details, error, invariants, faults and plots."""
    name = _name(scenario, index)
    parts = [
        f'<section class="scenario result-{_css(_result(scenario))}" id="scenario-{slug}">',
        f'<h2><span class="name">{_esc(name)}</span> {_badge(scenario)}</h2>',
        _details(scenario),
    ]
    error = scenario.get("error")
    if error:
        parts.append(f'<pre class="error-text"><strong>Error:</strong> {_esc(error)}</pre>')
    parts += ["<h3>Invariants</h3>", _invariants(scenario), "<h3>Faults</h3>", _faults(scenario)]
    steady = steady_state_section(scenario)
    if steady:
        parts.append(steady)
    parts.append(_plots(scenario, name))
    parts.append("</section>")
    return "\n".join(parts)


def _details(scenario: Mapping[str, Any]) -> str:
    """The definition list of the scenario's facts."""
    messages = _mapping(scenario.get("messages"))
    latency = _mapping(scenario.get("latency"))
    rows: list[tuple[str, str]] = []
    if scenario.get("description"):
        rows.append(("Description", _esc(scenario["description"])))
    if scenario.get("file"):
        rows.append(("File", f"<code>{_esc(scenario['file'])}</code>"))
    services = [_mapping(raw) for raw in _sequence(scenario.get("services"))]
    if len(services) > 1:
        rows.append(("Services", _describe_services(services)))
    else:
        server = _describe_server(_mapping(scenario.get("server")))
        if server:
            rows.append(("Server", _esc(server)))
    if scenario.get("seed") is not None:
        rows.append(("Seed", f"<code>{_esc(scenario['seed'])}</code>"))
    timing = [
        f"{label} {_fmt_seconds(value)} s"
        for label, value in (
            ("planned", _number(scenario.get("duration"))),
            ("took", _number(scenario.get("elapsed"))),
        )
        if value is not None
    ]
    if timing:
        rows.append(("Duration", _esc(", ".join(timing))))
    if messages:
        counts = ", ".join(
            f"{key} {_count(messages.get(key)):,}"
            for key in ("sent", "ok", "failed", "lost", "corrupt", "errors")
            if key in messages
        )
        rows.append(("Messages", _esc(counts)))
    if latency:
        rows.append(
            (
                "Latency (ms)",
                _esc(
                    ", ".join(f"{key} {_fmt_ms(latency.get(key))}" for key in ("p50", "p99", "max"))
                ),
            )
        )
    rows.append(("Handler errors", f"{_count(scenario.get('handler_errors')):,}"))
    problems = [str(problem) for problem in _sequence(scenario.get("problems")) if problem]
    if problems:
        rows.append(("Problems", "<br>".join(_esc(problem) for problem in problems)))
    items = "".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in rows)
    return f'<dl class="details">{items}</dl>'


def _invariants(scenario: Mapping[str, Any]) -> str:
    """The invariants, each marked held or broken, with its detail."""
    items = []
    for raw in _sequence(scenario.get("invariants")):
        invariant = _mapping(raw)
        held = invariant.get("held") is True
        if held and invariant.get("vacuous") is True:
            state, mark = "vacuous", "○"  # Held with nothing to judge: not evidence.
        else:
            state, mark = ("held", "✓") if held else ("broken", "✗")
        detail = invariant.get("detail")
        detail_html = f' <span class="detail">— {_esc(detail)}</span>' if detail else ""
        items.append(
            f'<li class="invariant {state}"><span class="mark" aria-label="{state}">{mark}</span>'
            f"<code>{_esc(invariant.get('name', '?'))}</code>{detail_html}</li>"
        )
    if not items:
        return '<p class="none">No invariants checked.</p>'
    return '<ul class="invariants">' + "".join(items) + "</ul>"


def _fault_window(fault: Mapping[str, Any]) -> str:
    """A fault's window as text, e.g. ``0.5 s to 1.5 s`` (with an en dash for "to")."""
    start, end = _number(fault.get("at")), _number(fault.get("until"))
    start_text = f"{_fmt_seconds(start)} s" if start is not None else "start"
    end_text = f"{_fmt_seconds(end)} s" if end is not None else "end"
    return f"{start_text} {DASH} {end_text}"


def _faults(scenario: Mapping[str, Any]) -> str:
    """The numbered list of faults; the numbers label the shaded windows in the plots."""
    items = []
    for raw in _sequence(scenario.get("faults")):
        fault = _mapping(raw)
        side = f" on the {_esc(fault['side'])} side" if fault.get("side") else ""
        if fault.get("service") and fault.get("service") != "server":
            side += f" of <code>{_esc(fault['service'])}</code>"
        unfired = fault.get("fired") is False
        note = ' <span class="unfired-note">— never fired</span>' if unfired else ""
        items.append(
            f'<li class="fault-item{" unfired" if unfired else ""}">'
            f"<code>{_esc(fault.get('fault', '?'))}</code>{side}, "
            f"{_esc(_fault_window(fault))}{note}</li>"
        )
    if not items:
        return '<p class="none">No faults.</p>'
    return '<ol class="faults">' + "".join(items) + "</ol>"


# -- the plots ---------------------------------------------------------------------------------


def _plots(scenario: Mapping[str, Any], name: str) -> str:
    """The latency and throughput plots, or a note when there is no series."""
    series = _parse_series(scenario.get("series"))
    if series is None:
        return '<p class="none no-series">No time series was recorded.</p>'
    x_max = _x_max(scenario, series)
    faults = _fault_windows(scenario, x_max)
    bucket = _fmt_seconds(series.bucket)
    return "\n".join(
        [
            '<figure class="plot-figure">',
            f"<figcaption>Latency per {bucket} s bucket</figcaption>",
            _latency_plot(name, series, x_max, faults),
            "</figure>",
            '<figure class="plot-figure">',
            f"<figcaption>Throughput per {bucket} s bucket</figcaption>",
            _throughput_plot(name, series, x_max, faults),
            "</figure>",
        ]
    )


def _column(series: Mapping[str, Any], key: str, size: int) -> list[float | None]:
    """One column of the series as numbers, padded with None to ``size``."""
    values = [_number(value) for value in _sequence(series.get(key))[:size]]
    return values + [None] * (size - len(values))


def _parse_series(raw: object) -> _Series | None:
    """The scenario's series, aligned and cleaned, or None if it has no bucket."""
    series = _mapping(raw)
    starts = [_number(value) for value in _sequence(series.get("t"))]
    keep = [index for index, start in enumerate(starts) if start is not None]
    if not keep:
        return None
    columns = {key: _column(series, key, len(starts)) for key in ("ok", "failed", "p50", "p99")}
    times = [start for start in starts if start is not None]
    bucket = _number(series.get("bucket"))
    if bucket is None or bucket <= 0:
        gaps = [later - earlier for earlier, later in itertools.pairwise(times) if later > earlier]
        bucket = min(gaps, default=1.0)
    return _Series(
        bucket=bucket,
        t=times,
        ok=[columns["ok"][index] for index in keep],
        failed=[columns["failed"][index] for index in keep],
        p50=[columns["p50"][index] for index in keep],
        p99=[columns["p99"][index] for index in keep],
    )


def _x_max(scenario: Mapping[str, Any], series: _Series) -> float:
    """The end of the time axis: the last bucket, the planned duration or the last fault."""
    ends = [max(series.t) + series.bucket]
    duration = _number(scenario.get("duration"))
    if duration is not None:
        ends.append(duration)
    for raw in _sequence(scenario.get("faults")):
        until = _number(_mapping(raw).get("until"))
        if until is not None:
            ends.append(until)
    return max(*ends, 1e-3)


def _fault_windows(scenario: Mapping[str, Any], x_max: float) -> list[_Fault]:
    """The fault windows clipped to ``[0, x_max]``; those entirely outside are left out."""
    windows: list[_Fault] = []
    for number, raw in enumerate(_sequence(scenario.get("faults")), start=1):
        fault = _mapping(raw)
        start = _number(fault.get("at"))
        end = _number(fault.get("until"))
        start = 0.0 if start is None else max(start, 0.0)
        end = x_max if end is None else min(end, x_max)
        if end <= start:
            continue
        side = f" on the {fault['side']} side" if fault.get("side") else ""
        if fault.get("service") and fault.get("service") != "server":
            side += f" of {fault['service']}"
        fired = fault.get("fired") is not False
        tooltip = f"fault {number}: {fault.get('fault', '?')}{side}, {_fault_window(fault)}" + (
            "" if fired else " (never fired)"
        )
        busy = [w.lane for w in windows if w.start < end and start < w.end]
        lane = next(n for n in range(len(busy) + 1) if n not in busy)
        windows.append(
            _Fault(number=number, start=start, end=end, tooltip=tooltip, lane=lane, fired=fired)
        )
    return windows


def _nice_step(span: float, target: int) -> float:
    """A round tick step (1, 2 or 5 times a power of ten) giving about ``target`` ticks."""
    raw = span / target
    magnitude = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 5):
        if raw <= multiple * magnitude:
            return multiple * magnitude
    return 10 * magnitude


def _y_scale(peak: float | None) -> tuple[float, float]:
    """The top of the y axis and its tick step, for values up to ``peak``."""
    if peak is None or peak <= 0:
        return 1.0, 0.2
    step = _nice_step(peak, 5)
    top = step * math.ceil(peak * 1.05 / step)
    return top, step


def _svg_open(css: str, label: str) -> str:
    """The opening tag of a plot."""
    return (
        f'<svg class="plot {css}" role="img" '
        f'aria-label="{_esc(label)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" font-family="system-ui, sans-serif" font-size="12">'
    )


def _frame(axes: _Axes, x_step: float, y_step: float, y_label: str) -> list[str]:
    """Grid lines, tick labels, axis lines and axis titles."""
    left, right = LEFT, WIDTH - RIGHT
    top, bottom = TOP, HEIGHT - BOTTOM
    parts = ['<g class="grid">']
    for index in range(round(axes.y_max / y_step) + 1):
        value = index * y_step
        y = _fmt_coord(axes.y(value))
        parts.append(
            f'<line x1="{left}" x2="{right}" y1="{y}" y2="{y}" stroke="{GRID_COLOUR}"/>'
            f'<text class="tick y-tick" x="{left - 6}" y="{y}" text-anchor="end" '
            f'dominant-baseline="middle" fill="{AXIS_COLOUR}">{_fmt_tick(value, y_step)}</text>'
        )
    for index in range(math.floor(axes.x_max / x_step + 1e-9) + 1):
        value = index * x_step
        x = _fmt_coord(axes.x(value))
        parts.append(
            f'<line x1="{x}" x2="{x}" y1="{bottom}" y2="{bottom + 5}" stroke="{AXIS_COLOUR}"/>'
            f'<text class="tick x-tick" x="{x}" y="{bottom + 18}" text-anchor="middle" '
            f'fill="{AXIS_COLOUR}">{_fmt_tick(value, x_step)}</text>'
        )
    parts.append("</g>")
    middle = _fmt_coord((top + bottom) / 2)
    parts += [
        f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{bottom}" '
        f'stroke="{AXIS_COLOUR}"/>',
        f'<line class="axis" x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" '
        f'stroke="{AXIS_COLOUR}"/>',
        f'<text class="axis-label" x="{_fmt_coord((left + right) / 2)}" y="{HEIGHT - 6}" '
        f'text-anchor="middle" fill="{AXIS_COLOUR}">seconds since scenario start</text>',
        f'<text class="axis-label" transform="translate(16 {middle}) rotate(-90)" '
        f'text-anchor="middle" fill="{AXIS_COLOUR}">{_esc(y_label)}</text>',
    ]
    return parts


def _fault_shading(axes: _Axes, faults: list[_Fault]) -> list[str]:
    """A translucent rectangle per fault window, with a tooltip and its number."""
    parts = []
    height = _fmt_coord(HEIGHT - BOTTOM - TOP)
    for fault in faults:
        x = axes.x(fault.start)
        width = max(axes.x(fault.end) - x, 1.0)
        if fault.fired:
            css = "fault"
            look = (
                f'fill="{FAULT_COLOUR}" fill-opacity="{FAULT_OPACITY}" stroke="{FAULT_COLOUR}" '
                f'stroke-width="1"'
            )
        else:  # Nothing happened in it: an outline, not a shaded window.
            css = "fault unfired"
            look = (
                f'fill="none" stroke="{UNFIRED_COLOUR}" stroke-width="1.5" stroke-dasharray="4 3"'
            )
        label_y = TOP + 12 + 13 * fault.lane
        parts.append(
            f'<rect class="{css}" x="{_fmt_coord(x)}" y="{TOP}" width="{_fmt_coord(width)}" '
            f'height="{height}" {look}><title>{_esc(fault.tooltip)}</title></rect>'
            f'<text class="fault-label" x="{_fmt_coord(x + 3)}" y="{label_y}" '
            f'fill="{"#92400e" if fault.fired else UNFIRED_COLOUR}" font-size="11">'
            f"{fault.number}{'' if fault.fired else ' (never fired)'}</text>"
        )
    return parts


def _legend(items: list[tuple[str, str, str]]) -> str:
    """A row of legend entries above the plot: (shape, colour, text) with shape line/box/fault."""
    parts = ['<g class="legend">']
    x = float(LEFT)
    y = 14
    for shape, colour, text in items:
        if shape == "line":
            parts.append(
                f'<line class="legend-swatch" x1="{x:.1f}" x2="{x + 18:.1f}" y1="{y}" y2="{y}" '
                f'stroke="{colour}" stroke-width="2.5"/>'
            )
        elif shape == "unfired":
            parts.append(
                f'<rect class="legend-swatch" x="{x:.1f}" y="{y - 6}" width="18" height="12" '
                f'fill="none" stroke="{colour}" stroke-width="1.5" stroke-dasharray="4 3"/>'
            )
        else:
            opacity = f' fill-opacity="{FAULT_OPACITY}"' if shape == "fault" else ""
            parts.append(
                f'<rect class="legend-swatch" x="{x:.1f}" y="{y - 6}" width="18" height="12" '
                f'fill="{colour}"{opacity}/>'
            )
        parts.append(
            f'<text x="{x + 24:.1f}" y="{y}" dominant-baseline="middle" '
            f'fill="{AXIS_COLOUR}">{_esc(text)}</text>'
        )
        x += 24 + 7 * len(text) + 18
    parts.append("</g>")
    return "".join(parts)


def _no_data(text: str) -> str:
    """A note in the middle of an empty plot."""
    return (
        f'<text class="no-data" x="{_fmt_coord((LEFT + WIDTH - RIGHT) / 2)}" '
        f'y="{_fmt_coord((TOP + HEIGHT - BOTTOM) / 2)}" text-anchor="middle" '
        f'fill="#6b7280">{_esc(text)}</text>'
    )


def _line(axes: _Axes, xs: list[float], values: list[float | None], css: str, colour: str) -> str:
    """A series as polylines broken at gaps (None); a lone point becomes a dot."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, value in zip(xs, values, strict=True):
        if value is None:
            runs.append([])
        else:
            runs[-1].append((axes.x(x), axes.y(value)))
    parts = []
    for run in runs:
        if len(run) == 1:
            ((x, y),) = run
            parts.append(
                f'<circle class="series {css}" cx="{_fmt_coord(x)}" cy="{_fmt_coord(y)}" '
                f'r="2.5" fill="{colour}"/>'
            )
        elif run:
            points = " ".join(f"{_fmt_coord(x)},{_fmt_coord(y)}" for x, y in run)
            parts.append(
                f'<polyline class="series {css}" points="{points}" fill="none" '
                f'stroke="{colour}" stroke-width="1.8" stroke-linejoin="round"/>'
            )
    return "".join(parts)


def _fault_legend(faults: list[_Fault]) -> list[tuple[str, str, str]]:
    """The legend entries for the shading, if there is any."""
    entries = []
    if any(fault.fired for fault in faults):
        entries.append(("fault", FAULT_COLOUR, "fault window (numbered as listed)"))
    if any(not fault.fired for fault in faults):
        entries.append(("unfired", UNFIRED_COLOUR, "a fault that never fired"))
    return entries


def _shaded(faults: list[_Fault]) -> str:
    """The end of a plot's label: how many fault windows are shaded, if any."""
    if not faults:
        return ""
    return f", {len(faults)} fault window{'' if len(faults) == 1 else 's'} shaded"


def _latency_plot(name: str, series: _Series, x_max: float, faults: list[_Fault]) -> str:
    """The p50 and p99 latency per bucket, in milliseconds, over time."""
    p50 = [None if value is None else value * 1000 for value in series.p50]
    p99 = [None if value is None else value * 1000 for value in series.p99]
    peak = max((value for value in p50 + p99 if value is not None), default=None)
    y_max, y_step = _y_scale(peak)
    axes = _Axes(x_max=x_max, y_max=y_max)
    x_step = _nice_step(x_max, 10)
    middles = [start + series.bucket / 2 for start in series.t]
    label = (
        f"Latency over time for scenario {name}: p50 and p99 per "
        f"{_fmt_seconds(series.bucket)} s bucket in milliseconds{_shaded(faults)}"
    )
    parts = [
        _svg_open("latency", label),
        *_fault_shading(axes, faults),
        *_frame(axes, x_step, y_step, "latency (ms)"),
        _line(axes, middles, p50, "p50", P50_COLOUR),
        _line(axes, middles, p99, "p99", P99_COLOUR),
    ]
    if peak is None:
        parts.append(_no_data("no latency samples"))
    legend = [("line", P50_COLOUR, "p50"), ("line", P99_COLOUR, "p99"), *_fault_legend(faults)]
    parts += [_legend(legend), "</svg>"]
    return "\n".join(parts)


def _bars(axes: _Axes, series: _Series, ok: list[float], failed: list[float]) -> list[str]:
    """Stacked bars per bucket: ok messages per second, failed ones on top."""
    parts = []
    for start, ok_rate, failed_rate in zip(series.t, ok, failed, strict=True):
        left, right = axes.x(start), axes.x(start + series.bucket)
        gap = 1.0 if right - left >= 4 else 0.0
        x, width = _fmt_coord(left + gap / 2), _fmt_coord(max(right - left - gap, 0.5))
        for css, colour, low, high in (
            ("ok", OK_COLOUR, 0.0, ok_rate),
            ("failed", FAILED_COLOUR, ok_rate, ok_rate + failed_rate),
        ):
            if high > low:
                parts.append(
                    f'<rect class="bar {css}" x="{x}" y="{_fmt_coord(axes.y(high))}" '
                    f'width="{width}" height="{_fmt_coord(axes.y(low) - axes.y(high))}" '
                    f'fill="{colour}"/>'
                )
    return parts


def _throughput_plot(name: str, series: _Series, x_max: float, faults: list[_Fault]) -> str:
    """The ok and failed messages per second per bucket, as stacked bars over time."""
    ok = [(value or 0.0) / series.bucket for value in series.ok]
    failed = [(value or 0.0) / series.bucket for value in series.failed]
    peak = max((a + b for a, b in zip(ok, failed, strict=True)), default=0.0)
    y_max, y_step = _y_scale(peak)
    axes = _Axes(x_max=x_max, y_max=y_max)
    x_step = _nice_step(x_max, 10)
    label = (
        f"Throughput over time for scenario {name}: ok and failed messages per second per "
        f"{_fmt_seconds(series.bucket)} s bucket{_shaded(faults)}"
    )
    parts = [
        _svg_open("throughput", label),
        *_fault_shading(axes, faults),
        *_frame(axes, x_step, y_step, "messages per second"),
        *_bars(axes, series, ok, failed),
    ]
    if peak <= 0:
        parts.append(_no_data("no messages"))
    legend = [
        ("box", OK_COLOUR, "ok/s"),
        ("box", FAILED_COLOUR, "failed/s"),
        *_fault_legend(faults),
    ]
    parts += [_legend(legend), "</svg>"]
    return "\n".join(parts)
