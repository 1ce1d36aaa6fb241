"""The clock seam: every "now" of the engine reads syncer._clock, which tests freeze and move."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

import syncer
from syncer import _clock as clock
from syncer._clock import frozen, iso, parse_iso

T0 = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)


def test_a_frozen_clock_stands_still_in_every_thread_until_moved() -> None:
    with frozen(T0) as c:
        seen: list[dt.datetime] = []
        t = threading.Thread(target=lambda: seen.append(clock.utcnow()))
        t.start()
        t.join()
        assert seen == [T0] and clock.utcnow() == T0
        assert c.advance(hours=25) == T0 + dt.timedelta(hours=25)
        assert clock.utcnow() == T0 + dt.timedelta(hours=25)
    assert abs(clock.utcnow() - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=5)


def test_a_frozen_clock_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="aware datetime"), frozen(dt.datetime(2026, 1, 1)):
        pass


def test_iso_round_trips_in_utc_with_a_z() -> None:
    text = iso(T0.astimezone(dt.timezone(dt.timedelta(hours=5))))
    assert text == "2026-12-01T03:00:00.000000Z" and parse_iso(text) == T0


def test_a_sync_under_a_frozen_clock_stamps_the_snapshot_with_that_time(config) -> None:
    with frozen(T0) as c:
        report = syncer.sync(config)
        assert report["snapshot_id"].startswith("20261201T030000Z-")
        c.advance(hours=config.sla_hours + 1)
        tables = syncer.status(config)["tables"]
        assert {t["stale"] for t in tables} == {True}
        assert {round(t["age_seconds"]) for t in tables} == {round((config.sla_hours + 1) * 3600)}
