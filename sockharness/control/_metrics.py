"""``GET /metrics``: the proxies' counters in Prometheus's text format."""

from __future__ import annotations

from typing import Protocol

from sockharness.faults import ProxyStats

__all__ = ["prometheus_text"]


class _Counted(Protocol):
    def counters(self) -> list[tuple[str, ProxyStats, dict[str, int]]]: ...


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


_HELP = {
    "sockharness_proxy_connections_total": (
        "counter",
        "Connections (datagram kinds: client addresses) the proxy accepted.",
    ),
    "sockharness_proxy_active_connections": ("gauge", "Connections the proxy relays now."),
    "sockharness_proxy_bytes_total": ("counter", "Bytes relayed, by direction."),
    "sockharness_proxy_datagrams_total": ("counter", "Datagrams relayed, by direction."),
    "sockharness_proxy_dropped_datagrams_total": ("counter", "Datagrams a fault dropped."),
    "sockharness_proxy_toxic_events_total": (
        "counter",
        "What each toxic did (a delay, a cut, a drop), as the proxy's timeline records it.",
    ),
}


def prometheus_text(registry: _Counted) -> str:
    """Every proxy's counters, one metric family after another."""
    samples: dict[str, list[str]] = {name: [] for name in _HELP}
    for name, stats, events in registry.counters():
        proxy = f'proxy="{_label(name)}"'
        samples["sockharness_proxy_connections_total"].append(f"{{{proxy}}} {stats.connections}")
        samples["sockharness_proxy_active_connections"].append(f"{{{proxy}}} {stats.active}")
        for direction in ("upstream", "downstream"):
            samples["sockharness_proxy_bytes_total"].append(
                f'{{{proxy},direction="{direction}"}} {getattr(stats, f"{direction}_bytes")}'
            )
            samples["sockharness_proxy_datagrams_total"].append(
                f'{{{proxy},direction="{direction}"}} {getattr(stats, f"{direction}_datagrams")}'
            )
        samples["sockharness_proxy_dropped_datagrams_total"].append(
            f"{{{proxy}}} {stats.dropped_datagrams}"
        )
        for toxic, count in events.items():
            samples["sockharness_proxy_toxic_events_total"].append(
                f'{{{proxy},toxic="{_label(toxic)}"}} {count}'
            )
    lines = []
    for metric, (kind, help_text) in _HELP.items():
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} {kind}"]
        lines += [f"{metric}{sample}" for sample in samples[metric]]
    return "\n".join(lines) + "\n"
