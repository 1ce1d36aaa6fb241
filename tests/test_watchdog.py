"""The run watchdog (syncer/engine/watchdog.py): a run past ``[export] watchdog_seconds`` stops with
one line naming its step, its table and the limits; what is served stays as it was.

Real runs only: the slow step is a real sleep in the run's progress callback (the public hook an
app passes), the stuck one a real system call held by strace (``inject=fsync:delay_enter``).
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import syncer
from syncer import SyncError
from syncer.engine.watchdog import RunTimeoutError
from tests.conftest import write_config


def _slow(seconds: float):
    """A progress callback that stalls the run once, on its first batch of rows."""
    state = {"slept": False}

    def progress(ev: dict) -> None:
        if ev["event"] == "rows" and not state["slept"]:
            state["slept"] = True
            time.sleep(seconds)

    return progress


def _assert_served_unchanged(cfg, before: str, staging_empty: bool = True) -> None:
    assert syncer.current_snapshot(config=cfg).id == before
    assert syncer.verify(cfg)["ok"]
    if staging_empty:
        assert not [p for p in (cfg.root / "staging").iterdir() if not p.name.startswith(".")]


def test_a_run_past_its_watchdog_stops_with_one_line_naming_the_table_and_the_limits(make_config) -> None:
    cfg = make_config()
    before = syncer.sync(cfg)["snapshot_id"]
    slow = dataclasses.replace(cfg, watchdog_seconds=0.5, time_budget_seconds=0.2)
    # pytest-timeout holds this process's alarm: the stop is raised into the run once the step returns
    with pytest.raises(RunTimeoutError) as err:
        syncer.sync(slow, force=True, progress=_slow(1.5))
    msg = str(err.value)
    assert "\n" not in msg and "stopped by the watchdog" in msg
    assert f"export of table {cfg.tables[0].name}" in msg  # where it was: the step and the (first) table
    assert "watchdog_seconds = 0.5" in msg and "time_budget_seconds = 0.2" in msg
    assert "the current snapshot is unchanged" in msg
    _assert_served_unchanged(cfg, before)
    last = syncer.History(cfg.root / "syncer.db").runs(limit=1)[0]
    assert last["status"] == "failed" and last["snapshot_id"] is None and "watchdog" in (last["error"] or "")
    assert syncer.sync(cfg)["status"] == "ok"  # the next plain run is clean


def test_in_a_main_thread_the_alarm_breaks_into_the_stalled_step(tmp_path: Path, demo_db: Path) -> None:
    # a script's own process (no alarm armed): SIGALRM stops the run inside the 30 s stall, at the limit
    cfg_path = write_config(tmp_path / "cfg", demo_db, extra="watchdog_seconds = 0.5\n")
    code = (
        "import sys, time, syncer\n"
        "from syncer.engine.watchdog import RunTimeoutError\n"
        "cfg = syncer.load_config(sys.argv[1])\n"
        "syncer.sync(cfg.__class__(**{**cfg.__dict__, 'watchdog_seconds': 600}))\n"
        "def stall(ev):\n"
        "    if ev['event'] == 'rows':\n"
        "        time.sleep(30)\n"
        "t0 = time.monotonic()\n"
        "try:\n"
        "    syncer.sync(cfg, force=True, progress=stall)\n"
        "except RunTimeoutError as exc:\n"
        "    print(f'{time.monotonic() - t0:.1f}', exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(cfg_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout, proc.stderr
    took, msg = proc.stdout.split(" ", 1)
    assert float(took) < 10, f"stopped after {took}s: the alarm did not break into the stall"
    assert "stopped by the watchdog" in msg and "export of table" in msg and "unchanged" in msg


def test_a_run_in_a_worker_thread_is_stopped_too(make_config) -> None:
    # the admin app syncs in a thread: no SIGALRM there; the stop is raised into that thread
    cfg = make_config()
    before = syncer.sync(cfg)["snapshot_id"]
    slow = dataclasses.replace(cfg, watchdog_seconds=0.5)
    caught: list[BaseException] = []

    def work() -> None:
        try:
            syncer.sync(slow, force=True, progress=_slow(1.5))
        except BaseException as exc:  # handed to the test's thread
            caught.append(exc)

    t = threading.Thread(target=work)
    t.start()
    t.join(30)
    assert not t.is_alive()
    assert len(caught) == 1 and isinstance(caught[0], RunTimeoutError), caught
    assert isinstance(caught[0], SyncError) and "export of table" in str(caught[0])
    _assert_served_unchanged(cfg, before)


def test_a_run_within_its_watchdog_is_not_touched(make_config) -> None:
    cfg = dataclasses.replace(make_config(), watchdog_seconds=60)
    report = syncer.sync(cfg, progress=_slow(0.2))
    assert report["status"] == "ok"
    time.sleep(0.1)
    assert report["snapshot_id"] == syncer.current_snapshot(config=cfg).id


def test_the_watchdog_defaults_to_three_time_budgets_and_refuses_nonsense(tmp_path: Path, demo_db: Path) -> None:
    cfg = syncer.load_config(write_config(tmp_path / "a", demo_db, extra="time_budget_seconds = 100\n"))
    assert cfg.watchdog_seconds == 300
    with pytest.raises(syncer.ConfigError, match="watchdog_seconds"):
        syncer.load_config(write_config(tmp_path / "b", demo_db, extra="watchdog_seconds = -1\n"))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed (Debian package; .ci/run installs it)")
def test_a_sync_stuck_in_a_system_call_is_ended_with_one_line_and_current_intact(tmp_path: Path, demo_db: Path) -> None:
    cfg_path = write_config(tmp_path / "cfg", demo_db)
    cli = [sys.executable, "-m", "syncer", "--config", str(cfg_path)]
    first = subprocess.run([*cli, "sync"], capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    write_config(tmp_path / "cfg", demo_db, extra="watchdog_seconds = 1\n")
    cfg = syncer.load_config(cfg_path)
    before = syncer.current_snapshot(config=cfg).id
    # every fsync of the run takes 12 s: the process is stuck in the kernel, where no Python runs
    stuck = ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=fsync", "-e", "inject=fsync:delay_enter=12s"]
    t0 = time.monotonic()
    with subprocess.Popen(
        [*stuck, *cli, "sync", "--force"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    ) as proc:
        assert proc.stderr is not None
        first_line = proc.stderr.readline()
        said_at = time.monotonic() - t0
        rest = proc.stderr.read()
        # strace itself lets go only when its delay is over, whoever ended the process
        assert proc.wait(timeout=60) == 1, first_line + rest
    # at the limit (1 s) plus the grace (2 s) after the run began, well before the first fsync is let go
    assert said_at < 12, f"the line came after {said_at:.1f}s, not before the stuck call returned"
    lines = [x for x in (first_line + rest).splitlines() if x.strip() and not x.startswith("strace: ")]
    assert len(lines) == 1 and lines[0].startswith("error: sync run ") and "stopped by the watchdog" in lines[0], lines
    assert "watchdog_seconds = 1" in lines[0] and "during " in lines[0] and "Traceback" not in rest
    _assert_served_unchanged(cfg, before, staging_empty=False)  # ended mid-run: the next run sweeps it
    nxt = subprocess.run([*cli, "sync"], capture_output=True, text=True, timeout=120)
    assert nxt.returncode == 0, nxt.stderr
    _assert_served_unchanged(cfg, syncer.current_snapshot(config=cfg).id)
    runs = syncer.History(cfg.root / "syncer.db").runs(limit=5)
    assert not [r for r in runs if r["status"] == "running"]  # the ended run was closed by the next one


def test_a_run_stopped_just_after_the_swap_is_recorded_as_published(make_config, monkeypatch) -> None:
    # a stop (the watchdog's, an OS error no step wrapped) between the swap of `current` and the run's
    # own note of it: the history and the one line say what is served, not "failed, unchanged"
    import errno

    from syncer.volume.layout import Volume

    cfg = make_config()
    syncer.sync(cfg)
    real = Volume.publish

    def publish_then_stop(self, run_id):
        real(self, run_id)
        raise OSError(errno.EIO, "Input/output error", str(self.root / "current"))

    monkeypatch.setattr(Volume, "publish", publish_then_stop)
    with pytest.raises(syncer.VolumeError) as err:
        syncer.sync(cfg, force=True)
    served = syncer.current_snapshot(config=cfg).id
    assert f"snapshot {served} is published and current" in str(err.value)
    last = syncer.History(cfg.root / "syncer.db").runs(limit=1)[0]
    assert last["id"] == served and last["status"] == "ok" and last["snapshot_id"] == served
