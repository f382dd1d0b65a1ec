"""Named network profiles: a mobile, Wi-Fi or satellite link as a list of faults.

Each profile's figures come from a public set of presets, named in
``source``: the latency is the round trip the link adds (half of it each
way), with normally distributed jitter; the rates are per direction; the loss
applies to datagrams only (TCP would resend lost segments: on a stream they
are late bytes, not lost ones, and the latency and rates already slow it).
"""

from __future__ import annotations

from dataclasses import dataclass

from sockharness._core import Kind, UsageError, parse_kind

from ._plans import DOWNSTREAM, UPSTREAM
from ._specs import Bandwidth, Fault, Latency, Loss

__all__ = ["NETWORK_PROFILES", "NetworkProfile", "network_profile"]

_KBIT = 1000 / 8  # Bytes per second in one kilobit per second.
_MBIT_BINARY = 1024 * 1024 / 8  # The WebdriverIO presets count a megabit as 2**20 bits.


@dataclass(frozen=True)
class NetworkProfile:
    """A link: rates in bytes per second, times in seconds, loss a share of datagrams."""

    name: str
    down_rate: float
    up_rate: float
    latency: float
    jitter_down: float
    jitter_up: float
    loss: float
    source: str

    def faults(self, kind: str | Kind = "tcp") -> tuple[Fault, ...]:
        """The faults that make a proxy (or a socket) of ``kind`` behave like this link."""
        stream = parse_kind(kind).stream
        half = self.latency / 2
        faults: list[Fault] = [
            Latency(
                half,
                jitter=jitter / 2,
                distribution="normal" if jitter else "uniform",
                direction=direction,
            )
            for direction, jitter in (
                (UPSTREAM, self.jitter_up),
                (DOWNSTREAM, self.jitter_down),
            )
        ]
        faults += [
            Bandwidth(self.up_rate, direction="upstream"),
            Bandwidth(self.down_rate, direction="downstream"),
        ]
        if self.loss and not stream:
            faults.append(Loss(self.loss))
        return tuple(faults)


_LOADERO = "Loadero's network conditions (wiki.loadero.com, 'Network Conditions')"
_WEBDRIVERIO = "WebdriverIO's throttle presets ('WiFi')"

#: The named profiles, by the name files and command lines give them.
NETWORK_PROFILES: dict[str, NetworkProfile] = {
    profile.name: profile
    for profile in (
        NetworkProfile("edge", 200 * _KBIT, 260 * _KBIT, 0.650, 0.100, 0.100, 0.01, _LOADERO),
        NetworkProfile("3g", 1200 * _KBIT, 1200 * _KBIT, 0.250, 0.050, 0.050, 0.005, _LOADERO),
        NetworkProfile(
            "lte", 100_000 * _KBIT, 50_000 * _KBIT, 0.045, 0.005, 0.015, 0.002, _LOADERO + ": 4G"
        ),
        NetworkProfile("wifi", 30 * _MBIT_BINARY, 15 * _MBIT_BINARY, 0.002, 0, 0, 0, _WEBDRIVERIO),
        NetworkProfile(
            "lossy-wifi",
            30 * _MBIT_BINARY,
            15 * _MBIT_BINARY,
            0.002,
            0,
            0,
            0.05,
            _WEBDRIVERIO + ", with the 5 % loss of " + _LOADERO + "' '5% packetloss'",
        ),
        NetworkProfile(
            "satellite", 1000 * _KBIT, 256 * _KBIT, 0.600, 0, 0, 0, _LOADERO + ": Satellite phone"
        ),
    )
}


def network_profile(name: str, kind: str | Kind = "tcp") -> tuple[Fault, ...]:
    """The faults of the profile called ``name`` for ``kind``: ``"3g"``, ``"edge"``, ``"lte"``,
    ``"wifi"``, ``"lossy-wifi"``, ``"satellite"``.

    Example:
        >>> from sockharness.faults import network_profile
        >>> network_profile("satellite")[0]
        Latency(delay=0.3, direction='upstream')
    """
    key = name.strip().lower().replace("_", "-")
    if key not in NETWORK_PROFILES:
        raise UsageError(
            f"{name!r} is not a network profile; use one of {', '.join(NETWORK_PROFILES)}",
            parameter="profile",
            value=name,
        )
    return NETWORK_PROFILES[key].faults(kind)
