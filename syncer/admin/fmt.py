"""How the admin app writes times, ages, numbers and durations: the same way on every page.

Times are stored as ISO-8601 UTC; a page shows them in the viewer's timezone (the browser's, from
``st.context.timezone``; UTC when it is not known, e.g. under AppTest) to the second, with how long
ago. Numbers get thousands separators. Pure functions, no Streamlit: tests call them directly.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from syncer import _clock as clock
from syncer._clock import parse_iso

__all__ = ["age", "ago", "bytes_text", "duration", "local", "number", "sentence", "when", "zone"]


def zone(name: str | None) -> dt.tzinfo:
    """The viewer's timezone by IANA name; UTC for None or a name this machine does not know."""
    if not name:
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def _parse(value: str | dt.datetime | None) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    try:
        return parse_iso(value)
    except ValueError:
        return None


def local(value: str | dt.datetime | None, tz: str | None = None) -> str:
    """``2026-12-01 13:05:09 CET``: to the second, in the viewer's timezone; ``-`` for nothing."""
    at = _parse(value)
    if at is None:
        return "-" if not value else str(value)
    shown = at.astimezone(zone(tz))
    return shown.strftime("%Y-%m-%d %H:%M:%S ") + (shown.tzname() or "UTC")


def ago(value: str | dt.datetime | None, now: dt.datetime | None = None) -> str:
    """``5 min ago``, ``just now``, ``2 h ago``, ``3 days ago``; ``in 4 h`` for a time to come."""
    at = _parse(value)
    if at is None:
        return "-"
    seconds = ((now or clock.utcnow()) - at).total_seconds()
    if abs(seconds) < 45:
        return "in less than a minute" if seconds < 0 else "just now"
    return f"in {age(-seconds)}" if seconds < 0 else f"{age(seconds)} ago"


def age(seconds: float | None) -> str:
    """An age in one unit: ``12 s``, ``5 min``, ``2.5 h``, ``14 h``, ``3 days``; ``-`` for nothing."""
    if seconds is None:
        return "-"
    s = abs(seconds)
    if s < 60:
        text = f"{s:.0f} s"
    elif s < 3600:
        text = f"{round(s / 60):.0f} min"
    elif s < 48 * 3600:
        h = s / 3600
        text = f"{h:.1f} h" if h < 10 else f"{h:.0f} h"
    else:
        text = f"{s / 86400:.0f} days"
    return f"-{text}" if seconds < 0 else text


def when(value: str | dt.datetime | None, tz: str | None = None, now: dt.datetime | None = None) -> str:
    """``2026-12-01 13:05:09 CET (5 min ago)``."""
    if _parse(value) is None:
        return local(value, tz)
    return f"{local(value, tz)} ({ago(value, now)})"


def number(n: float | None, digits: int = 0) -> str:
    """``19,997``; ``-`` for nothing."""
    if n is None:
        return "-"
    return f"{n:,.{digits}f}"


def bytes_text(n: float | None) -> str:
    """``1.4 MiB``: bytes in the largest unit below 1,024."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:,.0f} {unit}" if unit == "bytes" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} TiB"  # pragma: no cover - the loop returns at GiB


def duration(seconds: float | None) -> str:
    """``0.42 s``, ``12.3 s``, ``4 min 05 s``, ``1 h 02 min``; ``-`` for nothing."""
    if seconds is None:
        return "-"
    s = float(seconds)
    if s < 10:
        return f"{s:.2f} s"
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def sentence(text: str | None) -> str:
    """``text`` with a capital first letter (messages from the engine start in lowercase)."""
    if not text:
        return ""
    return text[0].upper() + text[1:]
