"""The process-wide job runner: real syncs on a background thread, one at a time, progress, busy volume."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncer import Config, History, LockHeldError, SourceError, current_snapshot, sync
from syncer.admin import JobRunner


@contextlib.contextmanager
def hold_volume_lock(root: Path, *, trigger: str = "cli", user: str = "alice") -> Iterator[subprocess.Popen[str]]:
    """Another process (like `syncer sync` from a shell) holds the volume's writer lock until the block ends."""
    Path(root).mkdir(parents=True, exist_ok=True)
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from syncer.volume.lock import volume_lock
        with volume_lock(Path({str(root)!r}) / ".lock", {{"trigger": {trigger!r}, "user": {user!r}, "started_at": "earlier"}}):
            print("held", flush=True)
            sys.stdin.read()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_job_runs_a_real_sync_and_reports_its_progress(config: Config) -> None:
    runner = JobRunner()
    events: list[dict[str, Any]] = []

    def work(progress: Any) -> dict[str, Any]:
        def both(ev: dict[str, Any]) -> None:
            events.append(ev)
            progress(ev)

        return sync(config, trigger="manual", user="alice", progress=both)

    job = runner.submit("sync", work, label="re-sync of all tables", user="alice", tables_total=len(config.tables))
    assert job.wait(60)
    assert job.state == "ok", job.error
    assert job.result is not None and job.result["snapshot_id"] == current_snapshot(config=config)["id"]
    assert job.tables_done == 4 and job.fraction == 1.0 and job.tables_failed == []
    assert job.message == f"re-sync of all tables: published snapshot {job.result['snapshot_id']}"
    assert [e["table"] for e in events if e["event"] == "table_done"] == [t.name for t in config.tables]
    assert runner.active() is None and runner.latest("sync") is job and runner.get(job.id) is job


def test_progress_fraction_counts_finished_tables_and_rows_of_the_current_one() -> None:
    runner = JobRunner()
    seen: dict[str, float] = {}

    def work(progress: Any) -> dict[str, Any]:
        job = runner.active()
        assert job is not None
        progress({"event": "table_start", "table": "a", "total": 100})
        progress({"event": "rows", "table": "a", "done": 50, "total": 100})
        seen["half_of_first"] = job.fraction
        progress({"event": "table_done", "table": "a", "ok": True, "rows": 100})
        progress({"event": "table_start", "table": "b", "total": 10})
        seen["first_done"] = job.fraction
        progress({"event": "table_done", "table": "b", "ok": False, "rows": 0})
        seen["all_done_while_running"] = job.fraction
        return {"status": "partial", "snapshot_id": "s1"}

    job = runner.submit("sync", work, label="re-sync", user="bob", tables_total=2)
    assert job.wait(10)
    # never 100 % before the job has finished: validating and publishing come after the last row
    assert seen == {"half_of_first": 0.25, "first_done": 0.5, "all_done_while_running": 0.99}
    assert job.state == "partial" and job.tables_failed == ["b"]
    assert "b kept their previous data" in job.message


def test_a_second_job_is_refused_while_one_runs_naming_the_first(config: Config) -> None:
    runner = JobRunner()
    release = threading.Event()
    first = runner.submit(
        "sync", lambda _p: (release.wait(10), {"status": "ok"})[1], label="re-sync of courses", user="alice", tables_total=1
    )
    try:
        with pytest.raises(LockHeldError, match=r"re-sync of courses started by alice at .* is still running"):
            runner.submit("sync", lambda _p: {"status": "ok"}, label="re-sync of all tables", user="bob", tables_total=4)
        assert runner.active() is first
    finally:
        release.set()
    assert first.wait(10) and first.state == "ok"
    second = runner.submit("sync", lambda _p: {"status": "ok"}, label="again", user="bob", tables_total=1)
    assert second.wait(10) and second.state == "ok"


def test_a_writer_in_another_process_ends_the_job_busy_with_the_holder_named(config: Config) -> None:
    runner = JobRunner()
    with hold_volume_lock(Path(config.root), trigger="cli", user="carol"):
        job = runner.submit(
            "sync",
            lambda p: sync(config, trigger="manual", user="alice", progress=p),
            label="re-sync",
            user="alice",
            tables_total=4,
        )
        assert job.wait(30)
    assert job.state == "busy"
    assert job.error is not None and "trigger cli, user carol" in job.error
    assert History(Path(config.root) / "syncer.db").runs() == [], "the busy job never started a run"


@pytest.mark.parametrize(
    ("exc", "state"),
    [
        pytest.param(SourceError("warehouse unreachable"), "failed", id="expected-failure"),
        pytest.param(KeyError("bug"), "error", id="a-bug"),
    ],
)
def test_a_failing_job_is_reported_and_the_runner_keeps_working(exc: Exception, state: str) -> None:
    runner = JobRunner()

    def work(_p: Any) -> dict[str, Any]:
        raise exc

    job = runner.submit("sync", work, label="re-sync", user="alice", tables_total=1)
    assert job.wait(10)
    assert job.state == state and job.finished and job.fraction == 1.0
    assert str(exc.args[0]) in (job.error or "")
    again = runner.submit("sync", lambda _p: {"status": "ok", "snapshot_id": "x"}, label="retry", user="alice", tables_total=1)
    assert again.wait(10) and again.state == "ok"


def test_progress_is_weighted_by_rows_with_an_eta_and_never_100_before_the_end() -> None:
    runner = JobRunner()
    seen: dict[str, Any] = {}

    def work(progress: Any) -> dict[str, Any]:
        job = runner.active()
        assert job is not None
        progress({"event": "table_start", "table": "small", "total": 100})
        progress({"event": "table_done", "table": "small", "ok": True, "rows": 100})
        seen["small_done"] = job.fraction  # 100 of 1,000 expected rows: 10 %, not 50 %
        progress({"event": "table_start", "table": "big", "total": 900})
        time.sleep(0.05)
        progress({"event": "rows", "table": "big", "done": 450, "total": 900})
        seen["half_of_big"], seen["eta"], seen["message"] = job.fraction, job.eta_s, job.message
        progress({"event": "table_done", "table": "big", "ok": True, "rows": 900})
        seen["publishing"] = job.message
        return {"status": "ok", "snapshot_id": "s1"}

    job = runner.submit("sync", work, label="re-sync", user="bob", tables_total=2, weights={"small": 100, "big": 900})
    assert job.wait(10)
    assert seen["small_done"] == pytest.approx(0.1)
    assert seen["half_of_big"] == pytest.approx(0.55)
    assert seen["eta"] is not None and seen["eta"] > 0
    assert "(55%)" in seen["message"] and "left" in seen["message"]
    assert seen["publishing"].startswith("re-sync: validating and publishing (99%)")


def test_a_resync_weighs_tables_by_their_last_published_rows(config: Config) -> None:
    from syncer.admin.actions import expected_rows

    assert expected_rows(config, ["courses"]) == {}, "nothing published: tables count equally"
    sync(config)
    manifest = current_snapshot(config=config)
    weights = expected_rows(config, [t.name for t in config.tables])
    assert weights == {n: t["source_rows"] or t["rows"] for n, t in manifest["tables"].items()}
