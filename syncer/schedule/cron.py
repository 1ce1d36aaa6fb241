"""Crontab expressions read the way cron reads them (shared by config validation, status and the
scheduler)."""

from __future__ import annotations

from apscheduler.triggers.cron import CronTrigger

__all__ = ["crontab_trigger"]


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _crontab_weekdays(field: str) -> str:
    """Crontab weekday numbers (0 or 7 = Sunday) as names APScheduler 3 reads the same way.

    APScheduler 3 numbers weekdays from Monday = 0 (its documented "historical mistake"), so
    ``CronTrigger.from_crontab("0 3 * * 1")`` fires on Tuesdays. Names mean the same to both, so
    each numeric part is expanded to names; parts already written with names are kept.
    """
    if field == "*" or any(c.isalpha() for c in field):
        return field
    days: list[int] = []
    for part in field.split(","):
        rng, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if rng == "*":
            lo, hi = 0, 6
        elif "-" in rng:
            lo_text, hi_text = rng.split("-", 1)
            lo, hi = int(lo_text), int(hi_text)
        else:
            lo = int(rng)
            hi = 7 if step_text else lo
        if not (0 <= lo <= 7 and 0 <= hi <= 7 and lo <= hi and step > 0):
            raise ValueError(f"weekday field {field!r}: {part!r} is not a valid range of 0-7")
        days += [d % 7 for d in range(lo, hi + 1, step)]
    return ",".join(_WEEKDAYS[d] for d in sorted(set(days)))


def crontab_trigger(expr: str, timezone: str) -> CronTrigger:
    """A ``CronTrigger`` that reads a five-field crontab expression the way cron does."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"wrong number of fields; got {len(fields)}, expected 5")
    minute, hour, day, month, weekday = fields
    return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=_crontab_weekdays(weekday), timezone=timezone)
