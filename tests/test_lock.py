"""One writer at a time: the volume lock across real processes, threads and the CLI."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import syncer
from syncer import History, LockHeldError, load_config
from syncer._clock import iso, utcnow
from syncer.volume.layout import Volume
from syncer.volume.lock import lock_file, lock_holder, volume_lock
from syncer.volume.manifest import RunReport

STARTED = "2026-01-02T03:04:05Z"

# Holds the lock, says so through a file, and lets go when the test creates the release file.
HOLDER = r"""
import pathlib, sys, time
from syncer.volume.lock import volume_lock
lock, ready, release = map(pathlib.Path, sys.argv[1:4])
with volume_lock(lock, {"trigger": "cli", "user": "alice", "started_at": sys.argv[4]}):
    ready.write_text("held")
    deadline = time.monotonic() + 30
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
"""

# Tries the lock once and reports what happened as JSON.
CONTENDER = r"""
import json, pathlib, sys, time
from syncer import LockHeldError
from syncer.volume.lock import volume_lock
t = time.monotonic()
try:
    with volume_lock(pathlib.Path(sys.argv[1]), {"trigger": "manual", "user": "bob", "started_at": "now"}):
        out = {"acquired": True}
except LockHeldError as exc:
    out = {"acquired": False, "message": str(exc), "holder": exc.holder}
out["elapsed"] = time.monotonic() - t
print(json.dumps(out))
"""


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen]]:
    """Subprocesses started by a test; any still running at the end are killed (by their own pid)."""
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)
        for stream in (p.stdout, p.stderr):
            if stream:
                stream.close()


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"holder exited early: {proc.returncode} {proc.stderr.read() if proc.stderr else ''}"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.01)


@pytest.fixture
def hold(tmp_path: Path, procs: list[subprocess.Popen]):
    """hold(lock_path) -> (holder process, release file): the lock is held by another process on return."""

    def start(lock_path: Path) -> tuple[subprocess.Popen, Path]:
        ready, release = tmp_path / f"ready-{len(procs)}", tmp_path / f"release-{len(procs)}"
        p = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(lock_path), str(ready), str(release), STARTED],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(p)
        _wait_for(ready, p)
        return p, release

    return start


def _contend(lock_path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CONTENDER, str(lock_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_second_process_fails_at_once_naming_the_holder(tmp_path, hold):
    lock_path = tmp_path / ".lock"
    holder, release = hold(lock_path)

    result = _contend(lock_path)

    assert result["acquired"] is False
    assert result["elapsed"] < 1.0
    msg = result["message"]
    assert "another sync holds the volume lock" in msg
    assert f"pid {holder.pid}" in msg
    assert socket.gethostname() in msg
    assert "trigger cli" in msg and "user alice" in msg
    assert f"started {STARTED}" in msg
    assert result["holder"] == {
        "trigger": "cli",
        "user": "alice",
        "started_at": STARTED,
        "pid": holder.pid,
        "host": socket.gethostname(),
    }

    # The same from this process.
    t = time.monotonic()
    with pytest.raises(LockHeldError, match=f"pid {holder.pid}") as exc_info, volume_lock(lock_path, {"trigger": "cli"}):
        pass
    assert time.monotonic() - t < 1.0
    assert exc_info.value.holder["pid"] == holder.pid

    release.touch()
    assert holder.wait(timeout=20) == 0
    assert not (tmp_path / ".lock.json").exists()  # a clean release removes the description
    assert _contend(lock_path)["acquired"] is True


def test_the_lock_is_free_at_once_after_the_holder_is_killed(tmp_path, hold):
    lock_path = tmp_path / ".lock"
    holder, _ = hold(lock_path)
    sidecar = tmp_path / ".lock.json"
    assert lock_holder(lock_path)["pid"] == holder.pid

    os.kill(holder.pid, signal.SIGKILL)
    assert holder.wait(timeout=20) == -signal.SIGKILL
    assert sidecar.exists()  # the dead holder's description is left behind; harmless

    t = time.monotonic()
    with volume_lock(lock_path, {"trigger": "cli", "user": "carol", "started_at": STARTED}):
        assert time.monotonic() - t < 1.0
        assert lock_holder(lock_path)["pid"] == os.getpid()
        assert lock_holder(lock_path)["user"] == "carol"
    assert not sidecar.exists()


def test_a_sync_runs_after_the_holder_is_killed(config, hold):
    vol = Volume(config.root)
    vol.ensure()
    holder, _ = hold(vol.lock_path)
    with pytest.raises(LockHeldError, match=f"pid {holder.pid}"):
        syncer.sync(config)
    assert vol.current_id() is None  # nothing was published while the lock was held
    assert syncer.repair(config)["skipped"] == "a sync is running; nothing repaired"

    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=20)
    report = syncer.sync(config)
    assert report["status"] == "ok"
    assert vol.current_id() == report["snapshot_id"]


def test_a_second_sync_in_another_thread_is_refused(config):
    entered, release = threading.Event(), threading.Event()
    results: list[object] = []

    def slow_progress(event: dict) -> None:
        if not entered.is_set():
            entered.set()
            release.wait(timeout=20)

    def first() -> None:
        try:
            results.append(syncer.sync(config, user="alice", progress=slow_progress))
        except BaseException as exc:
            results.append(exc)

    t = threading.Thread(target=first)
    t.start()
    try:
        assert entered.wait(timeout=20)
        errors: list[BaseException] = []

        def second() -> None:
            try:
                syncer.sync(config, user="bob")
            except BaseException as exc:
                errors.append(exc)

        t0 = time.monotonic()
        t2 = threading.Thread(target=second)
        t2.start()
        t2.join(timeout=20)
        assert time.monotonic() - t0 < 1.0
    finally:
        release.set()
        t.join(timeout=60)

    assert len(errors) == 1 and isinstance(errors[0], LockHeldError)
    msg = str(errors[0])
    assert "already running in this process" in msg
    assert f"pid {os.getpid()}" in msg and "trigger cli" in msg and "user alice" in msg
    assert len(results) == 1 and isinstance(results[0], RunReport), results
    assert results[0]["status"] == "ok"
    assert [r["user"] for r in syncer.History(Volume(config.root).db_path).runs()] == ["alice"]


def test_two_cli_syncs_started_together_one_wins_one_exits_3(config_path, procs):
    cfg = load_config(config_path)
    vol = Volume(cfg.root)
    vol.ensure()
    History(vol.db_path).event("test", iso(utcnow()))  # create the history db (WAL)
    # Keep the history busy: whichever CLI takes the volume lock then waits inside it (on SQLite's busy
    # timeout) until we let go, so the other one is certain to find the lock taken.
    blocker = sqlite3.connect(vol.db_path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        env = {**os.environ, "SYNCER_USER": "dave"}
        cmd = [sys.executable, "-m", "syncer", "--config", str(config_path), "sync"]
        a = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=config_path.parent)
        b = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=config_path.parent)
        procs += [a, b]
        deadline = time.monotonic() + 30
        while a.poll() is None and b.poll() is None:
            assert time.monotonic() < deadline, "neither CLI finished"
            time.sleep(0.02)
        loser, winner = (a, b) if a.poll() is not None else (b, a)
        _, err = loser.communicate(timeout=10)
        assert winner.poll() is None  # still holding the lock, waiting on the history
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    assert loser.returncode == 3, err
    assert "another sync holds the volume lock" in err
    # the holder is the winner's child, the engine under its supervisor (syncer/supervise.py)
    assert f"(its supervisor: pid {winner.pid}) on {socket.gethostname()}" in err
    assert "trigger cli" in err and "user dave" in err and "started " in err
    assert "Traceback" not in err

    out, err_w = winner.communicate(timeout=30)
    assert winner.returncode == 0, err_w
    assert "published snapshot" in out
    assert vol.current_id() is not None
    assert [r["status"] for r in History(vol.db_path).runs()] == ["ok"]


def test_a_holder_that_has_only_just_taken_the_lock_is_still_named(tmp_path):
    # The holder writes .lock.json a moment after flock succeeds; a contender arriving in between
    # must still name it rather than "another process".
    lock_path = tmp_path / ".lock"
    lock_file(lock_path).parent.mkdir(mode=0o700)
    raw = os.open(lock_file(lock_path), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(raw, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        sidecar = tmp_path / ".lock.json"
        details = {"trigger": "schedule", "started_at": STARTED, "pid": 4242, "host": "elsewhere"}
        writer = threading.Timer(0.1, lambda: sidecar.write_text(json.dumps(details), encoding="utf-8"))
        writer.start()
        expected = "pid 4242 on elsewhere \\(trigger schedule, started "
        with pytest.raises(LockHeldError, match=expected) as exc_info, volume_lock(lock_path, {"trigger": "cli"}):
            pass
        writer.join()
        assert exc_info.value.holder == details

        sidecar.unlink()
        t = time.monotonic()
        with pytest.raises(LockHeldError, match="no holder details recorded"), volume_lock(lock_path, {"trigger": "cli"}):
            pass
        assert time.monotonic() - t < 1.0
    finally:
        os.close(raw)


def test_the_lock_file_is_private_to_the_syncing_user(tmp_path):
    lock_path = tmp_path / ".lock"
    with volume_lock(lock_path, {"trigger": "cli"}):
        assert stat.S_IMODE(os.stat(lock_file(lock_path)).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(lock_file(lock_path).parent).st_mode) == 0o700


def test_a_lock_folder_opened_up_by_hand_is_closed_again(tmp_path):
    lock_path = tmp_path / ".lock"
    folder = lock_file(lock_path).parent
    folder.mkdir()
    os.chmod(folder, 0o755)
    lock_file(lock_path).touch(mode=0o644)
    os.chmod(lock_file(lock_path), 0o644)
    with volume_lock(lock_path, {"trigger": "cli"}):
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(lock_file(lock_path)).st_mode) == 0o600


def test_something_else_in_place_of_the_lock_folder_is_one_clear_error(tmp_path):
    lock_path = tmp_path / ".lock"
    (tmp_path / ".writer").write_text("not a folder")
    with (
        pytest.raises(syncer.VolumeError, match=r"cannot take the volume lock .*\.writer.*not a folder"),
        volume_lock(lock_path, {"trigger": "cli"}),
    ):
        pass
