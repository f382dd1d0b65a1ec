"""The chaos HTML report: its content, its escaping, its plots, and how a real browser shows it."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from sockharness.chaos._html import render_html

ROOT = Path(__file__).resolve().parents[1]


# -- synthetic results -------------------------------------------------------------------------


def _series(
    duration: float,
    bucket: float,
    *,
    rate: float,
    slow: tuple[float, float] | None = None,
    failing: tuple[float, float] | None = None,
    silent: tuple[float, float] | None = None,
    seed: int,
) -> dict[str, Any]:
    """A plausible series: ``rate`` messages/s, slower in ``slow``, failing in ``failing``,
    nothing at all (gaps) in ``silent``. Deterministic for a given seed."""
    rng = random.Random(seed)
    columns: dict[str, list[Any]] = {key: [] for key in ("t", "ok", "failed", "p50", "p99")}
    for index in range(round(duration / bucket)):
        start = round(index * bucket, 6)
        middle = start + bucket / 2

        def within(window: tuple[float, float] | None, at: float = middle) -> bool:
            return window is not None and window[0] <= at < window[1]

        # Slower replies mean fewer round trips per bucket.
        sent = round(rate * bucket * rng.uniform(0.9, 1.1) * (0.25 if within(slow) else 1.0))
        if within(silent):
            ok = failed = 0
        elif within(failing):
            failed = round(sent * rng.uniform(0.3, 0.6))
            ok = sent - failed
        else:
            ok, failed = sent, 0
        base = 0.1 if within(slow) else 0.0004
        columns["t"].append(start)
        columns["ok"].append(ok)
        columns["failed"].append(failed)
        columns["p50"].append(base * rng.uniform(1.0, 1.2) if ok else None)
        columns["p99"].append(base * rng.uniform(1.8, 3.0) if ok else None)
    return {"bucket": bucket, **columns}


def _totals(series: dict[str, Any]) -> dict[str, int]:
    ok, failed = sum(series["ok"]), sum(series["failed"])
    return {
        "sent": ok + failed,
        "ok": ok,
        "failed": failed,
        "lost": failed,
        "corrupt": 0,
        "errors": 0,
    }


def latency_scenario() -> dict[str, Any]:
    """A held scenario: a latency fault on the proxy slows messages for a second."""
    series = _series(3.0, 0.1, rate=400, slow=(1.0, 2.0), seed=1)
    return {
        "name": "echo survives added latency",
        "file": "scenarios/latency.toml",
        "description": "Every message is delayed by 100 ms for a second; none may be lost.",
        "seed": 1234,
        "duration": 3.0,
        "elapsed": 3.02,
        "result": "held",
        "error": None,
        "server": {"kind": "tcp", "concurrency": "threading", "handler": "echo", "tls": False},
        "messages": _totals(series),
        "latency": {"p50": 0.00045, "p99": 0.25, "max": 0.301},
        "handler_errors": 0,
        "invariants": [
            {"name": "intact_outside_faults", "held": True, "detail": "every reply matched"},
            {"name": "recovers_within", "held": True, "detail": "back to normal in 0.1 s"},
        ],
        "faults": [
            {"fault": "Latency(delay=0.1, jitter=0.0)", "side": "proxy", "at": 1.0, "until": 2.0}
        ],
        "series": series,
    }


def reset_scenario() -> dict[str, Any]:
    """A broken scenario: resets fail messages, then the server is down (a gap in latency)."""
    series = _series(4.0, 0.1, rate=300, failing=(0.8, 1.6), silent=(2.2, 2.6), seed=2)
    return {
        "name": "resets & an outage under load",
        "file": "scenarios/resets.toml",
        "description": "Connections are reset, then the server goes away for 0.4 s.",
        "seed": 99,
        "duration": 4.0,
        "elapsed": 4.1,
        "result": "broken",
        "error": None,
        "server": {
            "kind": "tcp",
            "concurrency": "forking",
            "handler": "echo",
            "tls": True,
            "target": None,
            "server_class": None,
        },
        "messages": _totals(series),
        "latency": {"p50": 0.00043, "p99": 0.0011, "max": 0.004},
        "handler_errors": 3,
        "invariants": [
            {"name": "intact_outside_faults", "held": True, "detail": "every reply matched"},
            {"name": "no_handler_errors", "held": False, "detail": "3 handlers raised"},
        ],
        "faults": [
            {"fault": "Reset(probability=0.5)", "side": "proxy", "at": 0.8, "until": 1.6},
            {"fault": "Down()", "side": "server", "at": 2.2, "until": 2.6},
        ],
        "series": series,
    }


def error_scenario() -> dict[str, Any]:
    """A scenario that could not run: no series at all."""
    return {
        "name": "tls without a certificate",
        "file": "scenarios/tls.toml",
        "description": "Needs a certificate.",
        "seed": 7,
        "duration": 2.0,
        "elapsed": 0.0,
        "result": "error",
        "error": "could not start the server: no certificate <configured>",
        "server": {"kind": "tcp", "concurrency": "threading", "handler": "echo", "tls": True},
        "messages": {"sent": 0, "ok": 0, "failed": 0, "lost": 0, "corrupt": 0, "errors": 0},
        "latency": {"p50": None, "p99": None, "max": None},
        "handler_errors": 0,
        "invariants": [],
        "faults": [],
        "series": {"bucket": 0.1, "t": [], "ok": [], "failed": [], "p50": [], "p99": []},
    }


# -- reading the page --------------------------------------------------------------------------


class _Page(HTMLParser):
    """The elements of a page: tag, attributes, and the text inside each, nested or not."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str], list[str]]] = []
        self._open: list[list[str]] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        texts: list[str] = []
        self.elements.append((tag, {key: value or "" for key, value in attrs}, texts))
        if tag not in {"meta", "link", "br", "img", "input", "hr"}:
            self._open.append(texts)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {key: value or "" for key, value in attrs}, []))

    def handle_endtag(self, tag: str) -> None:
        if tag not in {"meta", "link", "br", "img", "input", "hr"} and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for texts in self._open:
            texts.append(data)

    def find(self, tag: str, css: str | None = None) -> list[tuple[dict[str, str], str]]:
        """The (attributes, text) of every ``tag`` whose class list holds all of ``css``."""
        wanted = set(css.split()) if css else set()
        return [
            (attrs, "".join(texts))
            for name, attrs, texts in self.elements
            if name == tag and wanted <= set(attrs.get("class", "").split())
        ]


def _sections(page: str) -> dict[str, str]:
    """Each scenario section's HTML, by its id."""
    return dict(re.findall(r'<section [^>]*id="([^"]+)">(.*?)</section>', page, re.S))


def _svgs(section: str) -> dict[str, str]:
    """A section's plots, by kind (latency, throughput)."""
    return dict(re.findall(r'<svg class="plot (\w+)"(.*?)</svg>', section, re.S))


# -- the page's content ------------------------------------------------------------------------


def test_the_summary_has_one_row_per_scenario_with_its_numbers() -> None:
    results = [latency_scenario(), reset_scenario(), error_scenario()]
    page = _Page(render_html(results))
    headers = [text for _, text in page.find("th")]
    assert headers == [
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
    rows = page.find("tr")[1:]
    assert [attrs["class"] for attrs, _ in rows] == ["row-held", "row-broken", "row-error"]
    cells = [text for _, text in page.find("td")]
    assert len(cells) == 3 * len(headers)
    held, broken, error = (cells[i : i + 9] for i in range(0, 27, 9))
    messages = results[0]["messages"]
    assert held == [
        "echo survives added latency",
        "held",
        f"{messages['ok']:,} / {messages['sent']:,}",
        "0",
        "0",
        "0.450",
        "250",
        "\u2013",
        "1234",
    ]
    assert broken[0] == "resets & an outage under load"
    assert broken[1] == "broken"
    assert broken[3] == f"{results[1]['messages']['failed']:,}"
    assert broken[3] != "0"
    assert broken[4:8] == ["3", "0.430", "1.10", "no_handler_errors"]
    dash = "\u2013"
    assert error == ["tls without a certificate", "error", "0 / 0", "0", "0", dash, dash, dash, "7"]
    badges = [attrs["class"] for attrs, _ in page.find("span", "badge")]
    assert "badge result-held" in badges
    assert "badge result-broken" in badges
    assert "badge result-error" in badges


def test_each_scenario_has_a_section_linked_from_the_summary() -> None:
    page = render_html([latency_scenario(), reset_scenario(), error_scenario()])
    sections = _sections(page)
    assert list(sections) == [
        "scenario-echo-survives-added-latency",
        "scenario-resets-an-outage-under-load",
        "scenario-tls-without-a-certificate",
    ]
    links = [attrs["href"] for attrs, _ in _Page(page).find("a")]
    assert links == [f"#{anchor}" for anchor in sections]
    latency = sections["scenario-echo-survives-added-latency"]
    for text in (
        "scenarios/latency.toml",
        "Every message is delayed by 100 ms for a second; none may be lost.",
        "tcp, threading, handler echo",
        "1234",
        "intact_outside_faults",
        "every reply matched",
        "Latency(delay=0.1, jitter=0.0)",
    ):
        assert text in latency
    assert "tcp, forking, handler echo, TLS" in sections["scenario-resets-an-outage-under-load"]


def test_the_results_own_server_description_and_problems_are_shown() -> None:
    scenario = latency_scenario()
    scenario["server"]["description"] = "echo (threading) over tcp"
    scenario["problems"] = ["client 3 did not stop within 2 s", "client <4> too"]
    section = _sections(render_html([scenario]))["scenario-echo-survives-added-latency"]
    assert "<dd>echo (threading) over tcp</dd>" in section
    assert "client 3 did not stop within 2 s<br>client &lt;4&gt; too" in section


def test_invariants_are_marked_held_or_broken_with_their_detail() -> None:
    page = _Page(render_html([reset_scenario()]))
    invariants = [(attrs["class"], text) for attrs, text in page.find("li", "invariant")]
    assert invariants == [
        ("invariant held", "✓intact_outside_faults — every reply matched"),
        ("invariant broken", "✗no_handler_errors — 3 handlers raised"),
    ]


def test_every_scenario_with_a_series_has_a_latency_and_a_throughput_plot() -> None:
    page = render_html([latency_scenario(), reset_scenario()])
    for section in _sections(page).values():
        plots = _svgs(section)
        assert list(plots) == ["latency", "throughput"]
        latency, throughput = plots["latency"], plots["throughput"]
        for plot in plots.values():
            assert 'role="img"' in plot
            assert re.search(r'aria-label="[^"]*over time for scenario', plot)
            assert "seconds since scenario start" in plot
            assert len(re.findall(r'class="tick x-tick"', plot)) >= 4
            assert len(re.findall(r'class="tick y-tick"', plot)) >= 3
            assert 'class="legend"' in plot
        assert 'class="series p50"' in latency
        assert 'class="series p99"' in latency
        assert "latency (ms)" in latency
        assert ">p50<" in latency
        assert ">p99<" in latency
        assert len(re.findall(r'class="bar ok"', throughput)) >= 25
        assert "messages per second" in throughput
        assert ">ok/s<" in throughput
        assert ">failed/s<" in throughput
    plots = _svgs(_sections(page)["scenario-resets-an-outage-under-load"])
    assert len(re.findall(r'class="bar failed"', plots["throughput"])) >= 5


def test_fault_windows_are_shaded_with_a_tooltip_in_both_plots() -> None:
    scenario = reset_scenario()
    plots = _svgs(render_html([scenario]))
    for plot in plots.values():
        shading = re.findall(r'<rect class="fault" ([^>]*)><title>([^<]*)</title>', plot)
        assert [tooltip for _, tooltip in shading] == [
            "fault 1: Reset(probability=0.5) on the proxy side, 0.8 s \u2013 1.6 s",
            "fault 2: Down() on the server side, 2.2 s \u2013 2.6 s",
        ]
        assert all('fill-opacity="0.22"' in attrs for attrs, _ in shading)
        # Placed on the same scale as the x tick labels: 0.8 s in and 0.8 s wide, on a 4 s axis.
        ticks = dict(re.findall(r'<text class="tick x-tick" x="([\d.]+)"[^>]*>([\d.]+)<', plot))
        zero, four = (float(x) for x, label in ticks.items() if label in {"0.0", "4.0"})
        x, width = (float(v) for v in re.findall(r'(?:x|width)="([\d.]+)"', shading[0][0])[:2])
        assert x == pytest.approx(zero + (four - zero) * 0.8 / 4, abs=0.1)
        assert width == pytest.approx((four - zero) * 0.8 / 4, abs=0.2)
        assert "fault window" in plot


def test_a_scenario_without_faults_has_no_shading_and_no_fault_legend() -> None:
    scenario = latency_scenario()
    scenario["faults"] = []
    page = render_html([scenario])
    assert 'class="fault"' not in page
    assert "fault window" not in page
    assert "No faults." in page


def test_gaps_in_the_latency_series_break_the_lines() -> None:
    scenario = latency_scenario()
    scenario["faults"] = []
    series = scenario["series"]
    series["p50"][10:15] = [None] * 5
    series["p50"][20] = None
    series["p50"][22] = None  # leaves a lone point at 21
    series["p99"][-1] = float("nan")
    latency = _svgs(render_html([scenario]))["latency"]
    assert len(re.findall(r'<polyline class="series p50"', latency)) == 3
    assert len(re.findall(r'<circle class="series p50"', latency)) == 1
    assert len(re.findall(r'<polyline class="series p99"', latency)) == 1
    p99 = re.search(r'<polyline class="series p99" points="([^"]*)"', latency)
    assert p99 is not None
    assert len(p99.group(1).split()) == 29


def test_zero_messages_still_draws_the_axes_and_says_so() -> None:
    scenario = latency_scenario()
    series = scenario["series"]
    series["ok"] = [0] * len(series["t"])
    series["failed"] = [0] * len(series["t"])
    series["p50"] = [None] * len(series["t"])
    series["p99"] = [None] * len(series["t"])
    scenario["messages"] = {"sent": 0, "ok": 0, "failed": 0}
    scenario["latency"] = {"p50": None, "p99": None, "max": None}
    plots = _svgs(render_html([scenario]))
    assert "no latency samples" in plots["latency"]
    assert "<polyline" not in plots["latency"]
    assert "no messages" in plots["throughput"]
    assert 'class="bar' not in plots["throughput"]
    for plot in plots.values():
        assert len(re.findall(r'<rect class="fault"', plot)) == 1
        assert not re.search(r"\bnan\b|\binf\b", plot, re.I)


def test_an_error_result_shows_the_error_and_no_plots() -> None:
    page = render_html([error_scenario()])
    section = _sections(page)["scenario-tls-without-a-certificate"]
    assert "could not start the server: no certificate &lt;configured&gt;" in section
    assert 'class="error-text"' in section
    assert "<svg" not in section
    assert "No time series was recorded." in section
    assert "No invariants checked." in section
    assert "1 scenario: 1 error." in page


def test_an_error_result_with_a_partial_series_still_plots_it() -> None:
    scenario = reset_scenario()
    scenario.update(result="error", error="the proxy died at 1.2 s")
    page = render_html([scenario])
    assert "the proxy died at 1.2 s" in page
    assert page.count('<svg class="plot') == 2


def test_text_from_the_results_is_escaped_everywhere() -> None:
    evil = '<script>alert("x")</script>'
    scenario = reset_scenario()
    scenario.update(
        name=evil,
        description=f"desc {evil}",
        file=f"{evil}.toml",
        error=f"err {evil}",
        seed=f"{evil}",
        server={"kind": evil, "handler": evil},
    )
    scenario["invariants"][0].update(name=evil, detail=evil, held=False)
    scenario["faults"][0].update(fault=evil, side=evil)
    page = render_html([scenario], title=f"title {evil}")
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    parsed = _Page(page)
    assert parsed.find("title")[0][1] == f"title {evil}"
    labels = [attrs["aria-label"] for attrs, _ in parsed.find("svg", "plot")]
    assert len(labels) == 2
    assert all(evil in label for label in labels)
    assert [text for _, text in parsed.find("td", "name")] == [evil]
    assert not [tag for tag, _, _ in parsed.elements if tag == "script"]


def test_long_and_duplicate_names_get_unique_readable_ids() -> None:
    long_name = "a scenario with a really long name " * 8
    results = [latency_scenario(), latency_scenario(), {"name": long_name}, {"name": "!!!"}, {}]
    page = render_html(results)
    ids = list(_sections(page))
    assert ids[:2] == [
        "scenario-echo-survives-added-latency",
        "scenario-echo-survives-added-latency-2",
    ]
    assert ids[2].startswith("scenario-a-scenario-with-a-really-long-name")
    assert len(ids[2]) <= len("scenario-") + 60
    assert ids[3:] == ["scenario-scenario-4", "scenario-scenario-5"]
    assert len(set(ids)) == len(ids)
    assert long_name.strip() in page
    assert "overflow-wrap: anywhere" in page


def test_missing_optional_keys_are_tolerated() -> None:
    page = render_html([{"name": "bare"}, {"name": "half", "series": {"t": [0, 0.5, 1.0]}}])
    sections = _sections(page)
    assert 'class="badge result-unknown"' in sections["scenario-bare"]
    assert "No time series was recorded." in sections["scenario-bare"]
    plots = _svgs(sections["scenario-half"])
    assert list(plots) == ["latency", "throughput"]
    assert "per 0.5 s bucket" in plots["latency"]


def test_no_results_make_a_page_that_says_so() -> None:
    page = render_html([])
    assert "No scenarios were run." in page
    assert "<section" not in page


def test_the_page_references_nothing_outside_itself() -> None:
    page = render_html([latency_scenario(), reset_scenario(), error_scenario()])
    assert (
        '<meta http-equiv="Content-Security-Policy" content="default-src &#x27;none&#x27;; '
        'style-src &#x27;unsafe-inline&#x27;; img-src data:">' in page
    )
    assert "http://" not in page
    assert "https://" not in page
    assert "url(" not in page
    assert "@import" not in page
    references = re.findall(r'\b(?:src|href)\s*=\s*"([^"]*)"', page)
    assert references
    assert all(ref.startswith(("data:", "#")) for ref in references), references
    assert not re.search(r"\bsrc\s*=", page)
    tags = {tag for tag, _, _ in _Page(page).elements}
    assert not tags & {"script", "img", "iframe", "object", "embed", "image", "use", "font"}


def test_the_output_is_deterministic() -> None:
    results = [latency_scenario(), reset_scenario(), error_scenario()]
    assert render_html(results) == render_html(results)


# -- in a real browser -------------------------------------------------------------------------


@pytest.fixture
def chromium() -> str:
    """Debian's Chromium, or a skip saying it is not installed."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no headless browser: neither chromium nor chromium-browser is on PATH")


def _run_chromium(browser: str, scratch: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with a private profile and home, and no background networking."""
    home = scratch / "home"
    home.mkdir(exist_ok=True)
    completed = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={scratch / 'profile'}",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-default-apps",
            "--disable-extensions",
            "--disable-sync",
            "--virtual-time-budget=2000",
            *args,
        ],
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed


def _requested_by_the_page(net_log: Path) -> set[str]:
    """Every URL in a Chromium net log but those of the browser's own requests.

    The browser's own requests (time, accounts, ...) have no initiator: their
    ``URL_REQUEST_START_JOB`` says ``"initiator": "not an origin"`` or nothing.
    Every other URL anywhere in the log (requests, preconnects, stream jobs)
    counts as the page's.
    """
    log = json.loads(net_log.read_text())
    assert {"constants", "events"} <= set(log)
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    own_sources = {
        event["source"]["id"]
        for event in log["events"]
        if event["type"] == start_job
        and "url" in event.get("params", {})
        and event["params"].get("initiator", "not an origin") == "not an origin"
    }
    urls: set[str] = set()
    own: set[str] = set()
    for event in log["events"]:
        url = event.get("params", {}).get("url")
        if isinstance(url, str):
            (own if event["source"]["id"] in own_sources else urls).add(url)
    return urls - own


def _allowed(url: str, report: Path) -> bool:
    return url == report.as_uri() or url.startswith(("data:", "about:"))


def test_the_net_log_check_sees_what_a_page_requests(chromium: str, tmp_path: Path) -> None:
    """The control for the next test: a page without the policy that does fetch things."""
    page = tmp_path / "leaky.html"
    page.write_text(
        '<!DOCTYPE html><html><head><link rel="stylesheet" href="http://127.0.0.1:9/s.css">'
        '</head><body><img src="http://127.0.0.1:9/i.png" alt=""></body></html>'
    )
    _run_chromium(
        chromium, tmp_path, "--dump-dom", f"--log-net-log={tmp_path / 'net.json'}", page.as_uri()
    )
    requested = _requested_by_the_page(tmp_path / "net.json")
    assert {"http://127.0.0.1:9/s.css", "http://127.0.0.1:9/i.png"} <= requested
    assert not all(_allowed(url, page) for url in requested)


def test_the_report_renders_in_chromium_and_requests_nothing(chromium: str, tmp_path: Path) -> None:
    results = [latency_scenario(), reset_scenario()]
    report = tmp_path / "report.html"
    report.write_text(render_html(results), encoding="utf-8")
    net_log = tmp_path / "net.json"

    dom = _run_chromium(
        chromium, tmp_path, "--dump-dom", f"--log-net-log={net_log}", report.as_uri()
    ).stdout

    page = _Page(dom)
    assert len(page.find("table", "summary")) == 1
    assert [attrs["class"] for attrs, _ in page.find("tr")[1:]] == ["row-held", "row-broken"]
    names = [text for _, text in page.find("td", "name")]
    assert names == [scenario["name"] for scenario in results]
    assert len(page.find("section", "scenario")) == 2
    assert len(page.find("svg", "plot latency")) == 2
    assert len(page.find("svg", "plot throughput")) == 2
    assert dom.count("<svg") == 4
    assert len(page.find("polyline", "series p50")) >= 2
    assert len(page.find("polyline", "series p99")) >= 2
    assert len(page.find("rect", "bar ok")) >= 60
    assert len(page.find("rect", "fault")) == 2 * (1 + 2)
    assert all(attrs.get("role") == "img" for attrs, _ in page.find("svg", "plot"))

    requested = _requested_by_the_page(net_log)
    assert all(_allowed(url, report) for url in requested), sorted(requested)


def _png_size(png: Path) -> tuple[int, int]:
    """The width and height from a PNG's header."""
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_report_screenshots_in_chromium(chromium: str, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    report.write_text(render_html([latency_scenario(), reset_scenario()]), encoding="utf-8")
    shot = tmp_path / "shot.png"

    _run_chromium(
        chromium, tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", report.as_uri()
    )

    assert shot.is_file()
    assert shot.stat().st_size > 10_000
    assert _png_size(shot) == (1280, 2000)


def test_the_screenshot_tool_writes_a_png(chromium: str, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    report.write_text(render_html([reset_scenario()]), encoding="utf-8")
    shot = tmp_path / "tool.png"
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "report_screenshot.py"),
            str(report),
            str(shot),
            "--height",
            "1200",
            "--browser",
            chromium,
        ],
        env={**os.environ, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert f"wrote {shot}" in completed.stdout
    assert _png_size(shot) == (1280, 1200)
    assert shot.stat().st_size > 10_000


def test_a_vacuous_invariant_is_not_a_green_tick() -> None:
    scenario = reset_scenario()
    scenario["invariants"] = [
        {"name": "intact_outside_faults", "held": True, "vacuous": True, "detail": "nothing"},
        {"name": "min_messages", "held": True, "vacuous": False, "detail": "9 messages"},
    ]
    section = next(iter(_sections(render_html([scenario])).values()))
    assert re.search(r'invariant vacuous"><span class="mark" aria-label="vacuous">○</span>'
                     r"<code>intact_outside_faults", section)  # fmt: skip
    assert re.search(r'invariant held"><span class="mark" aria-label="held">✓</span>'
                     r"<code>min_messages", section)  # fmt: skip


def test_a_fault_that_never_fired_is_drawn_apart_and_overlaps_stay_readable() -> None:
    scenario = reset_scenario()
    scenario["faults"] = [
        {"fault": "Latency(delay=0.1)", "side": "proxy", "at": 0.5, "until": 2.0, "fired": True},
        {"fault": "ResetPeer(after=9)", "side": "proxy", "at": 1.0, "until": 2.5, "fired": False},
        {"fault": "Slicer(average_size=8)", "side": "proxy", "at": 3.0, "until": 3.5,
         "fired": True},
    ]  # fmt: skip
    page = render_html([scenario])
    assert "— never fired</span>" in page
    for plot in _svgs(page).values():
        rects = re.findall(
            r'<rect class="(fault(?: unfired)?)" ([^>]*)><title>([^<]*)</title>', plot
        )
        assert [css for css, _, _ in rects] == ["fault", "fault unfired", "fault"]
        assert 'fill="none"' in rects[1][1]
        assert "stroke-dasharray" in rects[1][1]
        assert rects[1][2].endswith("(never fired)")
        labels = re.findall(
            r'<text class="fault-label" x="[\d.]+" y="([\d.]+)"[^>]*>([^<]*)<', plot
        )
        (y1, first), (y2, second), (y3, third) = labels
        assert (first, second, third) == ("1", "2 (never fired)", "3")
        assert y1 != y2, "overlapping windows put their numbers on the same spot"
        assert y3 == y1, "a window that overlaps none goes back to the first lane"
        assert "a fault that never fired" in plot
