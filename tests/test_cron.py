"""Crontab validation without APScheduler agrees with the APScheduler trigger the scheduler builds."""

from __future__ import annotations

import pytest

from syncer.schedule.cron import check_crontab, crontab_trigger

VALID = [
    "0 3 * * *",
    "*/15 * * * *",
    "0 */2 * * *",
    "0 9-17 * * 1-5",
    "30 1 * * 7",
    "0 0 1 * *",
    "0 0 last * *",
    "0 0 1,15 * *",
    "0 6 * jan-mar *",
    "0 6 * 1-12/3 *",
    "0 6 * * mon-fri",
    "0 6 * * MON,wed",
    "0 6 * * */2",
    "5/15 * * * *",
    "0 0 * * 0-7",
    "59 23 31 12 *",
    "0  3  *  *  *",
]

INVALID = [
    "0 3 * *",
    "0 3 * * * *",
    "",
    "0 25 * * *",
    "60 * * * *",
    "*/60 * * * *",
    "5-3 * * * *",
    "0 3 0 * *",
    "0 3 32 * *",
    "0 3 * 13 *",
    "0 3 * 0 *",
    "0/0 * * * *",
    "0 3 * * 8",
    "0 3 * * 7/0",
    "0 3 * * mon-foo",
    "0 3 * foo *",
    "a 3 * * *",
    "1,,2 * * * *",
    "0 3 * * 1-",
    "0 3 L * *",
    "0 3 ? * *",
    "0-10/20 * * * *",
]

# APScheduler ignores what follows a month or weekday name (``jan/2`` is read as ``jan``); refused here.
STRICTER = ["0 3 * jan/2 *", "0 3 * jan-3 *", "0 3 * * mon/2", "0 3 lastly * *"]


def _apscheduler_error(expr: str) -> str | None:
    try:
        crontab_trigger(expr, "UTC")
    except ValueError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("expr", VALID)
def test_a_valid_crontab_passes_both(expr: str) -> None:
    check_crontab(expr)
    assert _apscheduler_error(expr) is None


@pytest.mark.parametrize("expr", INVALID)
def test_an_invalid_crontab_is_refused_with_the_words_apscheduler_uses(expr: str) -> None:
    expected = _apscheduler_error(expr)
    assert expected is not None
    with pytest.raises(ValueError) as info:
        check_crontab(expr)
    assert str(info.value) == expected


@pytest.mark.parametrize("expr", STRICTER)
def test_trailing_text_after_a_name_is_refused(expr: str) -> None:
    with pytest.raises(ValueError, match="Unrecognized expression"):
        check_crontab(expr)
