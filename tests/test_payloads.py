"""Payloads: seeded, reproducible test data."""

from __future__ import annotations

import json

import pytest

from sockharness import Payloads, UsageError


def test_the_same_seed_gives_the_same_data() -> None:
    def sample(seed: int) -> tuple[object, ...]:
        p = Payloads(seed)
        return (p.bytes(32), p.text(), p.line(), p.json_record(), p.chunks(1000, 64))

    assert sample(5) == sample(5)
    assert sample(5) != sample(6)


def test_shapes() -> None:
    p = Payloads(1)
    assert len(p.bytes(0)) == 0
    assert len(p.bytes(4096)) == 4096
    text = p.text(50)
    assert 0 < len(text) <= 50
    line = p.line(40)
    assert line.endswith(b"\n")
    assert b"\n" not in line[:-1]
    record = p.json_record()
    assert set(record) == {"id", "name", "email", "address", "created", "note"}
    assert json.loads(json.dumps(record)) == record


@pytest.mark.parametrize(("total", "max_size"), [(0, 1), (1, 1), (1000, 7), (65536, 1500)])
def test_chunks_cover_the_total_within_the_size_bound(total: int, max_size: int) -> None:
    chunks = Payloads(3).chunks(total, max_size)
    assert sum(len(c) for c in chunks) == total
    assert all(1 <= len(c) <= max_size for c in chunks)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: p.bytes(-1), "bytes\\(\\) needs a size >= 0"),
        (lambda p: p.chunks(10, 0), "max_size >= 1"),
        (lambda p: p.chunks(-5, 3), "total >= 0"),
        (lambda p: p.text(2), "max_chars >= 5"),
    ],
)
def test_bad_arguments(call: object, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        call(Payloads(0))  # type: ignore[operator]


def test_a_seed_must_be_an_int() -> None:
    with pytest.raises(UsageError, match="seed must be an int"):
        Payloads("seven")  # type: ignore[arg-type]


def test_the_fixture_is_seeded_per_test(payloads: Payloads, sockharness_seed: int) -> None:
    assert payloads.seed == sockharness_seed
    assert payloads.bytes(16) == Payloads(sockharness_seed).bytes(16)


def test_a_record_is_the_same_for_the_same_seed_on_any_day(monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime as real

    import faker.providers.date_time as faker_dates

    today = Payloads(11).json_record()

    class Later(real.datetime):
        @classmethod
        def now(cls, tz: real.tzinfo | None = None) -> Later:  # type: ignore[override]
            return cls(2031, 6, 1, tzinfo=tz)

    monkeypatch.setattr(faker_dates, "datetime", Later)
    assert faker_dates.datetime.now().year == 2031
    assert Payloads(11).json_record() == today
