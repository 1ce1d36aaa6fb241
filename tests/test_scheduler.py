"""The daily refresh: one APScheduler per process, fire times from the cron, a real scheduled sync."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from streamlit.testing.v1 import AppTest

import syncer
import syncer.schedule.scheduler
from syncer import Config, History
from syncer.schedule.scheduler import (
    JOB_ID,
    build_scheduler,
    crontab_trigger,
    scheduled_sync,
    scheduler_info,
    start_scheduler,
    stop_scheduler,
)
from tests.test_jobs import hold_volume_lock

ROOT = Path(__file__).resolve().parents[1]
WEEKLY_BERLIN = """
[schedule]
cron = "30 4 * * 1"
timezone = "Europe/Berlin"
misfire_grace_seconds = 900
"""


def scheduler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "APScheduler" and t.is_alive()]


@pytest.fixture
def no_scheduler() -> Iterator[None]:
    stop_scheduler()
    yield
    stop_scheduler()
    deadline = time.monotonic() + 5
    while scheduler_threads() and time.monotonic() < deadline:
        time.sleep(0.02)


def next_monday_0430_berlin(after: dt.datetime) -> dt.datetime:
    """Worked out by hand, not by APScheduler: the first Monday 04:30 Berlin time after ``after``."""
    berlin = ZoneInfo("Europe/Berlin")
    day = after.astimezone(berlin).date()
    while True:
        candidate = dt.datetime(day.year, day.month, day.day, 4, 30, tzinfo=berlin)
        if candidate.weekday() == 0 and candidate > after:
            return candidate
        day += dt.timedelta(days=1)


def test_the_job_follows_the_cron_with_coalesce_one_instance_and_the_misfire_grace(make_config: Callable[..., Config]) -> None:
    cfg = make_config(extra=WEEKLY_BERLIN)
    sched = build_scheduler(cfg)
    sched.start(paused=True)
    try:
        job = sched.get_job(JOB_ID)
        assert job.coalesce is True and job.max_instances == 1 and job.misfire_grace_time == 900
        assert isinstance(job.trigger, CronTrigger)
        assert job.next_run_time == next_monday_0430_berlin(dt.datetime.now(dt.UTC))
        assert job.next_run_time.utcoffset() in (dt.timedelta(hours=1), dt.timedelta(hours=2))
    finally:
        sched.shutdown(wait=False)


@pytest.mark.parametrize(
    ("weekday", "python_weekdays"),
    [
        pytest.param("1", {0}, id="1-is-monday"),
        pytest.param("0", {6}, id="0-is-sunday"),
        pytest.param("7", {6}, id="7-is-sunday"),
        pytest.param("1-5", {0, 1, 2, 3, 4}, id="weekdays"),
        pytest.param("*/2", {6, 1, 3, 5}, id="every-other-from-sunday"),
        pytest.param("0,6", {5, 6}, id="weekend"),
        pytest.param("mon,fri", {0, 4}, id="names"),
    ],
)
def test_crontab_weekday_numbers_mean_what_cron_means(weekday: str, python_weekdays: set[int]) -> None:
    # APScheduler 3's own from_crontab counts weekdays from Monday = 0: "0 3 * * 1" would fire on Tuesdays.
    trigger = crontab_trigger(f"0 3 * * {weekday}", "UTC")
    seen, t = set(), dt.datetime.now(dt.UTC)
    for _ in range(21):
        fire = trigger.get_next_fire_time(None, t)
        assert (fire.hour, fire.minute) == (3, 0)
        seen.add(fire.weekday())
        t = fire + dt.timedelta(minutes=1)
    assert seen == python_weekdays


@pytest.mark.usefixtures("no_scheduler")
def test_exactly_one_scheduler_per_process_however_often_it_is_asked_or_pages_rerun(
    config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = syncer.load_config(config_path)
    first = start_scheduler(cfg)
    assert all(start_scheduler(cfg) is first for _ in range(10))
    monkeypatch.setenv("SYNCER_CONFIG", str(config_path))
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=30)
    for _ in range(5):
        at.run()
        assert not at.exception
    at.switch_page("pages/controls.py")
    for _ in range(5):
        at.run()
        assert not at.exception
    assert len(scheduler_threads()) == 1
    info = scheduler_info()
    assert info is not None and info["pid"] == os.getpid()
    assert info["next_run"] == syncer.next_run(cfg), "the UI's next run is the running scheduler's next fire time"
    stop_scheduler()
    assert scheduler_info() is None


@pytest.mark.usefixtures("no_scheduler")
def test_the_running_scheduler_fires_a_real_sync_with_trigger_schedule(config: Config) -> None:
    sched = start_scheduler(config)
    sched.modify_job(JOB_ID, next_run_time=dt.datetime.now(dt.UTC))  # "it is 03:00 now"
    hist = History(Path(config.root) / "syncer.db")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        runs = hist.runs()
        if runs and runs[0]["status"] != "running":
            break
        time.sleep(0.05)
    runs = hist.runs()
    assert [(r["trigger"], r["user"], r["status"]) for r in runs] == [("schedule", "scheduler", "ok")]
    assert syncer.current_snapshot(config=config)["id"] == runs[0]["snapshot_id"]
    assert sched.get_job(JOB_ID).next_run_time.isoformat() > dt.datetime.now(dt.UTC).isoformat(), "back on the cron"


def test_a_scheduled_run_steps_aside_when_another_writer_is_busy(config: Config) -> None:
    with hold_volume_lock(Path(config.root), trigger="manual", user="alice"):
        assert scheduled_sync(config) is None
    hist = History(Path(config.root) / "syncer.db")
    assert hist.runs() == []
    (skipped,) = [e for e in hist.events() if e["kind"] == "schedule_skipped"]
    assert "trigger manual, user alice" in skipped["detail"]["reason"]
    report = scheduled_sync(config)
    assert report is not None and report["status"] == "ok" and report["trigger"] == "schedule"


def test_syncer_schedule_runs_in_the_foreground_and_stops_on_sigterm(make_config: Callable[..., Config]) -> None:
    cfg = make_config(extra=WEEKLY_BERLIN)
    env = {k: v for k, v in os.environ.items() if k != "SYNCER_CONFIG"} | {"SYNCER_LOG_FORMAT": "text"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncer", "--config", str(cfg.path), "schedule"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        expected = next_monday_0430_berlin(dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
        assert f"next run {expected.strftime('%Y-%m-%dT%H:%M:%S')}" in first, first
        assert "cron '30 4 * * 1' (Europe/Berlin)" in first
        time.sleep(0.3)
        assert proc.poll() is None, "the scheduler keeps running in the foreground"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "scheduler stopped" in out
    assert "received SIGTERM" in err
