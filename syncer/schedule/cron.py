"""Crontab expressions read the way cron reads them (shared by config validation, status and the
scheduler).

:func:`check_crontab` validates an expression in plain Python, so loading a config (as
``read_table`` does when it finds the volume through ``sync.toml``) never imports APScheduler: an
end-user app that only reads installs the package without the scheduler. It follows APScheduler 3's own field grammar and
messages, a little stricter where APScheduler ignores trailing text (``jan/2`` is refused rather
than read as ``jan``). :func:`crontab_trigger` builds the APScheduler trigger and imports it only then.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

__all__ = ["check_crontab", "crontab_trigger"]


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")

# APScheduler 3's field bounds, names and expression syntax (apscheduler/triggers/cron/fields.py and
# expressions.py); day_of_week is Monday = 0 there, which _crontab_weekdays translates to.
_BOUNDS = {"minute": (0, 59), "hour": (0, 23), "day": (1, 31), "month": (1, 12), "day_of_week": (0, 6)}
_NAMES = {
    "month": ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    "day_of_week": ("mon", "tue", "wed", "thu", "fri", "sat", "sun"),
}
_NAME_KIND = {"month": "month", "day_of_week": "weekday"}
_SEPARATOR = re.compile(" *, *")
_ALL = re.compile(r"\*(?:/(?P<step>\d+))?$")
_RANGE = re.compile(r"(?P<first>\d+)(?:-(?P<last>\d+))?(?:/(?P<step>\d+))?$")
_NAME_RANGE = re.compile(r"(?P<first>[a-z]+)(?:-(?P<last>[a-z]+))?\Z", re.IGNORECASE)
_LAST_DAY = re.compile(r"last\Z", re.IGNORECASE)


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


def _fields(expr: str) -> dict[str, str]:
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"wrong number of fields; got {len(fields)}, expected 5")
    minute, hour, day, month, weekday = fields
    return {"minute": minute, "hour": hour, "day": day, "month": month, "day_of_week": _crontab_weekdays(weekday)}


def check_crontab(expr: str) -> None:
    """Raise ``ValueError`` (with APScheduler's wording) unless ``expr`` is a valid five-field crontab."""
    for name, value in _fields(expr).items():
        for part in _SEPARATOR.split(value.strip()):
            _check_part(name, part)


def _check_part(name: str, part: str) -> None:
    if m := _ALL.match(part):
        first, last, step = None, None, _int(m["step"])
    elif m := _RANGE.match(part):
        first, last, step = int(m["first"]), _int(m["last"]), _int(m["step"])
    elif name in _NAMES and (m := _NAME_RANGE.match(part)):
        first, last, step = _name(name, m["first"]), _name(name, m["last"]) if m["last"] else None, None
    elif name == "day" and _LAST_DAY.match(part):
        return
    else:
        raise ValueError(f'Unrecognized expression "{part}" for field "{name}"')
    if step == 0:
        raise ValueError("Increment must be higher than 0")
    if first is not None and last is None and step is None:
        last = first
    if first is not None and last is not None and first > last:
        raise ValueError("The minimum value in a range must not be higher than the maximum")
    problem = _range_problem(name, first, last, step)
    if problem:
        raise ValueError(f"Error validating expression {part!r}: {problem}")


def _range_problem(name: str, first: int | None, last: int | None, step: int | None) -> str | None:
    """What APScheduler's ``validate_range`` would say about the part, in its order."""
    lo, hi = _BOUNDS[name]
    if step and step > hi - lo:
        return f"the step value ({step}) is higher than the total range of the expression ({hi - lo})"
    if first is None:
        return None
    if first < lo:
        return f"the first value ({first}) is lower than the minimum value ({lo})"
    if last is not None and last > hi:
        return f"the last value ({last}) is higher than the maximum value ({hi})"
    span = (last or hi) - first  # as APScheduler computes it (a last value of 0 counts as none)
    if step and step > span:
        return f"the step value ({step}) is higher than the total range of the expression ({span})"
    return None


def _int(text: str | None) -> int | None:
    return int(text) if text is not None else None


def _name(field: str, text: str) -> int:
    names = _NAMES[field]
    if text.lower() not in names:
        raise ValueError(f'Invalid {_NAME_KIND[field]} name "{text}"')
    return names.index(text.lower()) + (1 if field == "month" else 0)


def crontab_trigger(expr: str, timezone: str) -> CronTrigger:
    """A ``CronTrigger`` that reads a five-field crontab expression the way cron does."""
    # Imported here, not at the top: see the module docstring.
    from apscheduler.triggers.cron import CronTrigger

    return CronTrigger(**_fields(expr), timezone=timezone)
