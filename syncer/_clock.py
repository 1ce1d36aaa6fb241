"""The one clock of the engine: every "now" goes through :func:`utcnow`, so tests can freeze or move it.

Modules call ``clock.utcnow()`` through this module (``from syncer import _clock as clock``), never a
name imported from it, so :func:`frozen` reaches every caller. Ages, staleness, snapshot ids, run
history times and the scheduler's "next run" all read it; only durations use ``time.monotonic``.

    with frozen(dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)) as clock:
        ...            # utcnow() is 03:00:00 here
        clock.advance(hours=25)
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["FUTURE", "FrozenClock", "age_seconds", "frozen", "future_message", "iso", "parse_iso", "utcnow"]

#: the status of data whose ``exported_at`` is after now: an error state, never fresh (the clock moved
#: back since the export, the export ran with the clock ahead, or the manifest was edited)
FUTURE = "future"

_lock = threading.Lock()
_frozen: FrozenClock | None = None


class FrozenClock:
    """A clock that stands still until told to move (tests only; see :func:`frozen`)."""

    def __init__(self, at: dt.datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("a frozen clock needs an aware datetime (tzinfo=dt.UTC)")
        self.now = at.astimezone(dt.UTC)

    def advance(self, **delta: float) -> dt.datetime:
        """Move forward (or back, with negative values) by ``datetime.timedelta(**delta)``."""
        with _lock:
            self.now += dt.timedelta(**delta)
            return self.now

    def set(self, at: dt.datetime) -> None:
        with _lock:
            self.now = at.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    """Now, in UTC (the frozen time inside :func:`frozen`)."""
    f = _frozen
    return f.now if f is not None else dt.datetime.now(dt.UTC)


@contextmanager
def frozen(at: dt.datetime | None = None) -> Iterator[FrozenClock]:
    """Freeze :func:`utcnow` at ``at`` (default: the real now) for the block, in every thread."""
    global _frozen
    clock = FrozenClock(at or dt.datetime.now(dt.UTC))
    previous = _frozen
    _frozen = clock
    try:
        yield clock
    finally:
        _frozen = previous


def iso(t: dt.datetime) -> str:
    """ISO-8601 in UTC with microseconds and a ``Z``: how every time is written to the volume."""
    return t.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def age_seconds(exported_at: str, now: dt.datetime | None = None) -> float:
    """Seconds from ``exported_at`` to now (negative: "in the future", see :data:`FUTURE`)."""
    return ((now or utcnow()) - parse_iso(exported_at)).total_seconds()


def future_message(age: float) -> str:
    """What a negative age means, in the words ``status`` and the reader use."""
    return f"exported_at is {-age:.0f} s in the future: the clock moved or the manifest was edited"
