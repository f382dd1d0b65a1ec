"""The named proxies the API manages, each a :class:`FaultProxy` and its toxics, in order.

Every change is whole or not at all: a request that fails leaves no proxy half
made, and a populate that fails part way takes back the proxies it made.
"""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sockharness._core import UsageError, parse_address, parse_kind
from sockharness.faults import FaultProxy, ProxyStats, check_faults

from ._errors import APIError
from ._toxics import Toxic, toxic_from_json

__all__ = ["ProxyRegistry"]

Protocol = Literal["tcp", "udp"]
_PROXY_FIELDS = {"name", "listen", "upstream", "enabled", "protocol", "toxics"}


def _kind_of(protocol: Protocol, listen: str, upstream: str) -> str:
    """Our kind for a proxy: the protocol, over Unix sockets when the addresses are paths."""
    paths = [text.startswith(("/", "@")) for text in (listen, upstream) if text]
    if any(paths):
        if not all(paths):
            raise APIError.bad_body(
                "listen and upstream: both socket paths, or both host:port, not one of each"
            )
        return "unix" if protocol == "tcp" else "unix_dgram"
    host = upstream.rpartition(":")[0].strip("[]")
    try:
        v6 = ipaddress.ip_address(host).version == 6
    except ValueError:
        v6 = False
    return ("tcp" if protocol == "tcp" else "udp") + ("6" if v6 else "")


def _shown(kind: str, address: Any) -> str:
    if isinstance(address, tuple):
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)


@dataclass(frozen=True)
class ProxySpec:
    """What a request asks a proxy to be."""

    name: str
    listen: str
    upstream: str
    enabled: bool
    protocol: Protocol = "tcp"

    @classmethod
    def from_json(
        cls, body: Any, *, where: str = "", current: ProxySpec | None = None
    ) -> ProxySpec:
        """The spec in a create (or, with ``current``, an update) request's body."""
        if not isinstance(body, Mapping):
            raise APIError.bad_body(f"expected a JSON object{where}")
        unknown = sorted(set(body) - _PROXY_FIELDS)
        if unknown:
            raise APIError.bad_body(
                f"{unknown[0]}{where}: unknown field (known: {', '.join(sorted(_PROXY_FIELDS))})"
            )
        base = current or cls("", "", "", True)
        values = {
            "name": base.name if current else body.get("name", ""),
            "listen": body.get("listen", base.listen),
            "upstream": body.get("upstream", base.upstream),
            "enabled": body.get("enabled", base.enabled),
            "protocol": body.get("protocol", base.protocol),
        }
        for key in ("name", "listen", "upstream"):
            if not isinstance(values[key], str):
                raise APIError.bad_body(f"{key}{where}: expected a string")
        if not isinstance(values["enabled"], bool):
            raise APIError.bad_body(f"enabled{where}: expected true or false")
        if values["protocol"] not in ("tcp", "udp"):
            raise APIError.bad_body(f"protocol{where}: expected 'tcp' or 'udp'")
        if not values["name"]:
            raise APIError.missing(f"name{where}")
        if not values["upstream"]:
            raise APIError.missing(f"upstream{where}")
        spec = cls(**values)
        try:  # A bad address is this request's error, before anything changes.
            spec.addresses()
        except APIError as exc:
            raise APIError(exc.status, f"{exc.message}{where}") from None
        return spec

    @property
    def kind(self) -> str:
        return _kind_of(self.protocol, self.listen, self.upstream)

    def addresses(self) -> tuple[Any, Any]:
        """(listen, upstream) as socket addresses; a bad one is a 400 naming the field."""
        kind = parse_kind(self.kind)
        try:
            listen = parse_address(self.listen or ":0", kind, "listen") if self.listen else None
            upstream = parse_address(self.upstream, kind, "upstream", connect=True)
        except UsageError as exc:
            raise APIError.bad_body(str(exc)) from None
        return listen, upstream


class _Proxy:
    """One named proxy while it exists: its relay while enabled, its toxics always.

    Disabled, it has no relay: its port is closed, so a client is refused (as
    Toxiproxy's), and enabled again it listens where it listened before.
    """

    def __init__(
        self,
        spec: ProxySpec,
        seed: int,
        toxics: Iterable[Toxic] = (),
        watch: Callable[[str], None] | None = None,
    ) -> None:
        self.spec = spec
        self.seed = seed
        self.watch = watch
        self.toxics: dict[str, Toxic] = {toxic.name: toxic for toxic in toxics}
        self.relay: FaultProxy | None = None
        self.listen = spec.listen
        #: Counters of relays closed while the proxy was disabled, kept for the metrics.
        self.stats_before: list[ProxyStats] = []
        if spec.enabled:
            self.start(spec.listen)

    def start(self, listen_text: str) -> None:
        """Listen at ``listen_text`` and relay, with every toxic in force."""
        spec = self.spec
        listen, upstream = dataclasses.replace(spec, listen=listen_text).addresses()
        faults = [toxic.fault for toxic in self.toxics.values() if toxic.fault is not None]
        try:
            relay = FaultProxy(upstream, spec.kind, faults, listen=listen, seed=self.seed)
        except OSError as exc:
            raise APIError(
                409 if exc.errno == errno.EADDRINUSE else 400,
                f"listen {listen_text!r}: cannot listen there: {exc.strerror or exc}",
            ) from None
        self.relay = relay
        self.listen = _shown(spec.kind, relay.address)
        if self.watch is not None:
            name, watch = spec.name, self.watch
            relay.watch(lambda line: watch(f"{name}: {line}"))

    def stop(self) -> None:
        """Close the port and every connection."""
        relay, self.relay = self.relay, None
        if relay is not None:
            self.stats_before.append(relay.stats)
            relay.close()

    def set_enabled(self, enabled: bool) -> None:
        if enabled and self.relay is None:
            self.start(self.listen)
        elif not enabled:
            self.stop()
        self.spec = dataclasses.replace(self.spec, enabled=enabled)

    def to_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "name": self.spec.name,
            "listen": self.listen,
            "upstream": self.spec.upstream,
            "enabled": self.spec.enabled,
            "toxics": [toxic.to_json() for toxic in self.toxics.values()],
        }
        if self.spec.protocol != "tcp":
            shown["protocol"] = self.spec.protocol
        return shown


class ProxyRegistry:
    """The API's proxies by name; every method is safe from any thread."""

    def __init__(self, *, seed: int = 0, watch: Callable[[str], None] | None = None) -> None:
        self.seed = seed
        #: Called with a line per connection and fault decision of every proxy (``-v``).
        self.watch = watch
        self._lock = threading.RLock()
        self._proxies: dict[str, _Proxy] = {}

    # -- proxies ----------------------------------------------------------------------------

    def names(self) -> list[str]:
        with self._lock:
            return list(self._proxies)

    def all_json(self) -> dict[str, Any]:
        with self._lock:
            return {name: proxy.to_json() for name, proxy in self._proxies.items()}

    def get_json(self, name: str) -> dict[str, Any]:
        with self._lock:
            return self._get(name).to_json()

    def counters(self) -> list[tuple[str, ProxyStats, dict[str, int]]]:
        """Per proxy: its name, its :class:`ProxyStats`, and each toxic's fault events."""
        with self._lock:
            proxies = list(self._proxies.values())
        rows = []
        for proxy in proxies:
            relay = proxy.relay
            by_fault: dict[str, int] = {}
            for event in relay.timeline.events if relay is not None else ():
                by_fault[event.fault] = by_fault.get(event.fault, 0) + 1
            events = {
                name: by_fault.get(repr(toxic.fault), 0) for name, toxic in proxy.toxics.items()
            }
            rows.append((proxy.spec.name, _summed(proxy), events))
        return rows

    def _get(self, name: str) -> _Proxy:
        proxy = self._proxies.get(name)
        if proxy is None:
            raise APIError.proxy_not_found(name)
        return proxy

    def create(self, body: Any) -> dict[str, Any]:
        spec = ProxySpec.from_json(body)
        with self._lock:
            if spec.name in self._proxies:
                raise APIError(409, f"proxy already exists: {spec.name}")
            self._proxies[spec.name] = proxy = self._start(spec, ())
            return proxy.to_json()

    def _start(self, spec: ProxySpec, toxics: Iterable[Toxic]) -> _Proxy:
        return _Proxy(spec, self.seed, toxics, self.watch)

    def update(self, name: str, body: Any) -> dict[str, Any]:
        with self._lock:
            proxy = self._get(name)
            # Left out, the listen address is where it listens now (not "port 0" again).
            current = dataclasses.replace(proxy.spec, listen=proxy.listen)
            spec = ProxySpec.from_json(body, current=current)
            if _same_place(proxy.spec, spec, proxy.listen):
                proxy.set_enabled(spec.enabled)
                return proxy.to_json()
            # Moved: the old relay goes first (the new one may take its port), and comes
            # back if the new one cannot start.
            was_enabled = proxy.relay is not None
            proxy.stop()
            try:
                replacement = self._start(spec, proxy.toxics.values())
            except BaseException:
                if was_enabled:
                    proxy.start(proxy.listen)
                raise
            self._proxies[name] = replacement
            return replacement.to_json()

    def delete(self, name: str) -> None:
        with self._lock:
            proxy = self._get(name)
            del self._proxies[name]
        proxy.stop()

    def populate(self, body: Any, *, prune: Iterable[str] = ()) -> list[dict[str, Any]]:
        """Create or replace every proxy of ``body`` (a list): all, or none of the new ones.

        An entry with ``toxics`` (a list of toxics, as ``POST .../toxics`` takes
        them) gets exactly those; one without keeps its own. The proxies named
        in ``prune`` that ``body`` does not name are deleted (a config file's,
        reloaded).
        """
        if not isinstance(body, list):
            raise APIError.bad_body("expected a JSON array of proxies")
        entries = [_entry(item, index) for index, item in enumerate(body)]
        names = [spec.name for spec, _ in entries]
        for name in names:
            if names.count(name) > 1:
                raise APIError.bad_body(f"name: {name!r} is given twice")
        with self._lock:
            made = self._made_for(entries)
            for name, proxy in made.items():
                old = self._proxies.get(name)
                if old is not None:
                    old.stop()
                self._proxies[name] = proxy
            for spec, toxics in entries:
                proxy = self._proxies[spec.name]
                if toxics is not None and spec.name not in made:
                    _set_toxics(proxy, toxics)
                proxy.set_enabled(spec.enabled)
            for name in set(prune) - set(names):
                gone = self._proxies.pop(name, None)
                if gone is not None:
                    gone.stop()
            return [self._proxies[name].to_json() for name in names]

    def _made_for(self, entries: list[tuple[ProxySpec, list[Toxic] | None]]) -> dict[str, _Proxy]:
        """The new relays a populate needs (new names, or a new place): all, or none."""
        made: dict[str, _Proxy] = {}
        try:
            for spec, toxics in entries:
                existing = self._proxies.get(spec.name)
                if existing is None or not _same_place(existing.spec, spec, existing.listen):
                    made[spec.name] = self._start(spec, toxics or ())
        except BaseException:
            for proxy in made.values():
                proxy.stop()
            raise
        return made

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        with self._lock:
            for proxy in self._proxies.values():
                proxy.toxics.clear()
                if proxy.relay is not None:
                    proxy.relay.clear()
                proxy.set_enabled(True)

    def close(self) -> None:
        """Close every proxy (the API server is stopping)."""
        with self._lock:
            proxies, self._proxies = list(self._proxies.values()), {}
        for proxy in proxies:
            proxy.stop()

    # -- toxics -----------------------------------------------------------------------------

    def toxics_json(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [toxic.to_json() for toxic in self._get(name).toxics.values()]

    def toxic_json(self, name: str, toxic: str) -> dict[str, Any]:
        with self._lock:
            return self._toxic(self._get(name), toxic).to_json()

    @staticmethod
    def _toxic(proxy: _Proxy, name: str) -> Toxic:
        toxic = proxy.toxics.get(name)
        if toxic is None:
            raise APIError.toxic_not_found(name)
        return toxic

    def add_toxic(self, name: str, body: Any) -> dict[str, Any]:
        toxic = toxic_from_json(body)
        with self._lock:
            proxy = self._get(name)
            if toxic.name in proxy.toxics:
                raise APIError(409, f"toxic already exists: {toxic.name}")
            twin = next((t for t in proxy.toxics.values() if t.fault == toxic.fault), None)
            if twin is not None:
                raise APIError(
                    409,
                    f"toxic {twin.name!r} has the same type, stream, toxicity and attributes: "
                    f"change that one, or make this one differ",
                )
            assert toxic.fault is not None
            try:
                _check_transport(toxic, proxy.spec.kind)
                if proxy.relay is not None:
                    proxy.relay.add(toxic.fault)
            except UsageError as exc:  # A fault the proxy's transport does not take.
                raise APIError.bad_body(f"type: {exc}") from None
            proxy.toxics[toxic.name] = toxic
            return toxic.to_json()

    def update_toxic(self, name: str, toxic_name: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, Mapping):
            raise APIError.bad_body("expected a JSON object")
        with self._lock:
            proxy = self._get(name)
            old = self._toxic(proxy, toxic_name)
            new = old.updated(body)
            assert old.fault is not None
            assert new.fault is not None
            twin = next(
                (t for t in proxy.toxics.values() if t.fault == new.fault and t is not old), None
            )
            if twin is not None:
                raise APIError(
                    409,
                    f"toxic {twin.name!r} would be the same as {toxic_name!r}: make them differ",
                )
            if new.fault != old.fault:
                _check_transport(new, proxy.spec.kind)
                if proxy.relay is not None:
                    proxy.relay.replace(old.fault, new.fault)
            proxy.toxics[toxic_name] = new
            return new.to_json()

    def remove_toxic(self, name: str, toxic_name: str) -> None:
        with self._lock:
            proxy = self._get(name)
            toxic = self._toxic(proxy, toxic_name)
            assert toxic.fault is not None
            if proxy.relay is not None:
                proxy.relay.remove(toxic.fault)
            del proxy.toxics[toxic_name]


def _same_place(old: ProxySpec, new: ProxySpec, listening: str) -> bool:
    """Whether ``new`` asks for the proxy ``old`` is (``listening`` where it is): the same
    upstream and protocol, and the same listen address, or any (none given, or port 0, on
    the same host)."""
    if (old.upstream, old.protocol) != (new.upstream, new.protocol):
        return False
    if new.listen in ("", old.listen, listening):
        return True
    host, _, port = new.listen.rpartition(":")
    return port == "0" and old.listen.rpartition(":")[0] in (host, "")


def _summed(proxy: _Proxy) -> ProxyStats:
    """The proxy's counters over every relay it has had (one per time it was enabled)."""
    stats = [*proxy.stats_before, *([proxy.relay.stats] if proxy.relay is not None else [])]
    names = [item.name for item in dataclasses.fields(ProxyStats)]
    totals = {name: sum(getattr(item, name) for item in stats) for name in names}
    totals["active"] = proxy.relay.stats.active if proxy.relay is not None else 0
    return ProxyStats(**totals)


def _check_transport(toxic: Toxic, kind: str) -> None:
    """The toxic's fault applies to the proxy's transport (a UsageError if not)."""
    assert toxic.fault is not None
    check_faults([toxic.fault], parse_kind(kind), proxy=True)


def _entry(item: Any, index: int) -> tuple[ProxySpec, list[Toxic] | None]:
    """A populate entry: the proxy, and its toxics when it lists them."""
    where = f" at proxy {index + 1}"
    spec = ProxySpec.from_json(item, where=where)
    given = item.get("toxics")
    if given is None:
        return spec, None
    if not isinstance(given, list):
        raise APIError.bad_body(f"toxics{where}: expected a list of toxics")
    toxics: list[Toxic] = []
    for position, body in enumerate(given):
        try:
            toxic = toxic_from_json(body)
            _check_transport(toxic, spec.kind)
        except APIError as exc:
            raise APIError(exc.status, f"{exc.message} (toxics[{position}]{where})") from None
        except UsageError as exc:
            raise APIError.bad_body(f"type: {exc} (toxics[{position}]{where})") from None
        for other in toxics:
            if other.name == toxic.name or other.fault == toxic.fault:
                raise APIError(
                    409,
                    f"toxics[{position}]{where}: the same as {other.name!r} (a toxic's name, "
                    f"and its type, stream, toxicity and attributes, are its own)",
                )
        toxics.append(toxic)
    return spec, toxics


def _set_toxics(proxy: _Proxy, toxics: list[Toxic]) -> None:
    """Make the proxy's toxics exactly ``toxics``; those that do not change stay in force."""
    wanted = {toxic.name: toxic for toxic in toxics}
    relay = proxy.relay
    for name, old in list(proxy.toxics.items()):
        new = wanted.get(name)
        if new is None or new.fault != old.fault:
            assert old.fault is not None
            if relay is not None:
                relay.remove(old.fault)
            del proxy.toxics[name]
    for toxic in toxics:
        if toxic.name not in proxy.toxics:
            assert toxic.fault is not None
            if relay is not None:
                relay.add(toxic.fault)
            proxy.toxics[toxic.name] = toxic
