"""The History page's read model (syncer/admin/history_models.py) on real syncs, rollbacks and SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

import syncer
import syncer.admin
from syncer import Config, History, HistoryError
from syncer.admin import AuditRow, HistoryView, RunRow, StepTime, history_view, step_name
from syncer.volume.layout import Volume


def db_runs(cfg: Config) -> list[dict]:
    return History(Volume(cfg.root).db_path).runs(limit=1000)


def test_runs_steps_and_audit_of_real_syncs_and_a_rollback(config: Config) -> None:
    first = syncer.sync(config)
    second = syncer.sync(config, ["courses"], trigger="manual", user="bob")
    syncer.rollback(config, first["snapshot_id"], user="alice")

    view = history_view(config)
    assert isinstance(view, HistoryView) and all(isinstance(r, RunRow) for r in view.runs)
    # runs: newest first, as the history holds them
    assert [r.id for r in view.runs] == [second["run_id"], first["run_id"]]
    assert [r.snapshot_id for r in view.runs] == [second["snapshot_id"], first["snapshot_id"]]
    assert [(r.trigger, r.user, r.status) for r in view.runs] == [("manual", "bob", "ok"), ("cli", None, "ok")]
    stored = {r["id"]: r for r in db_runs(config)}
    for row in view.runs:
        raw = stored[row.id]
        assert (row.rows, row.bytes, row.duration_s, row.started_at) == (
            raw["rows"],
            raw["bytes"],
            raw["duration_s"],
            raw["started_at"],
        )
        assert row.rows > 0 and row.finished and row.rows_per_s == pytest.approx(row.rows / row.duration_s)
        assert row.steps == raw["steps"] and "export_validate_s" in row.steps
    assert view.runs[0].rows == second["rows"] < view.runs[1].rows == first["rows"]

    # steps: the finished runs' steps, oldest run first, in the order each run took them
    # (named in words: "export + validate", "reference checks", "publish", "retention")
    expected = [(r.id, step_name(k), v) for r in reversed(view.runs) for k, v in r.steps.items()]
    assert {s.step for s in view.steps} == {"export + validate", "reference checks", "publish", "retention"}
    assert [(s.run, s.step, s.seconds) for s in view.steps] == expected
    assert all(isinstance(s, StepTime) for s in view.steps)
    totals = [sum(r.steps.values()) for r in view.runs]
    assert view.slowest_s == pytest.approx(max(totals))
    assert view.budget_s == config.time_budget_seconds

    # audit: newest first, with who did it
    assert all(isinstance(a, AuditRow) for a in view.audit)
    assert [(a.action, a.user) for a in view.audit] == [("rollback", "alice"), ("manual_sync", "bob")]
    rollback, manual = view.audit
    # the details in words and in full, not raw JSON
    assert rollback.detail == f"from {second['snapshot_id']} to {first['snapshot_id']}"
    assert manual.run == second["run_id"] and manual.detail == "tables: courses"


def test_a_failed_run_is_listed_with_its_error_and_no_snapshot(make_config: Callable[..., Config], tmp_path: Path) -> None:
    cfg = make_config(db=tmp_path / "missing.duckdb")
    report = syncer.sync(cfg)
    (row,) = history_view(cfg).runs
    assert (row.id, row.status, row.snapshot_id, row.rows) == (report["run_id"], "failed", None, 0)
    assert "syncer demo" in row.error
    assert row.finished and row.rows_per_s == 0.0


def test_a_run_still_going_is_listed_but_not_charted(config: Config) -> None:
    syncer.sync(config)
    History(Volume(config.root).db_path).start_run(
        {"id": "20991231T000000Z-0000", "trigger": "schedule", "started_at": "2099-12-31T00:00:00Z", "user": "scheduler"}
    )
    view = history_view(config)
    running = view.runs[0]
    assert (running.status, running.duration_s, running.steps, running.rows_per_s) == ("running", None, None, None)
    assert not running.finished and view.finished == view.runs[1:]
    assert {s.run for s in view.steps} == {view.runs[1].id}


def test_limits_cut_the_runs_and_the_audit_trail(config: Config) -> None:
    for user in ("ann", "ben", "cat"):
        syncer.sync(config, ["courses"], trigger="manual", user=user)
    view = history_view(config, limit=2, audit_limit=1)
    assert len(view.runs) == 2 and [a.user for a in view.audit] == ["cat"]
    assert {s.run for s in view.steps} == {r.id for r in view.runs}


def test_an_empty_volume_has_an_empty_history_and_creates_no_database(config: Config) -> None:
    view = history_view(config)
    assert (view.runs, view.steps, view.audit, view.slowest_s) == ((), (), (), None)
    assert not Volume(config.root).db_path.exists()


def test_the_json_form_is_what_the_page_tabulates(config: Config) -> None:
    syncer.sync(config)
    view = history_view(config)
    row = view.runs[0].to_json()
    assert list(row) == list(RunRow.__dataclass_fields__)
    assert view.runs[0]["snapshot_id"] == row["snapshot_id"] and "trigger" in view.runs[0]
    assert view.to_json()["runs"][0] == row


def test_a_history_that_cannot_be_opened_is_a_history_error_naming_the_file(config: Config) -> None:
    syncer.sync(config)
    db = Volume(config.root).db_path
    for p in db.parent.glob("syncer.db*"):
        p.unlink()
    db.mkdir()  # a folder where the database should be: sqlite3 cannot open it, even as root
    with pytest.raises(HistoryError, match=str(db)):
        history_view(config)


def test_a_corrupt_history_is_a_history_error(config: Config) -> None:
    syncer.sync(config)
    db = Volume(config.root).db_path
    con = sqlite3.connect(db)
    con.execute("DROP TABLE events")
    con.close()
    with pytest.raises(syncer.SyncError, match=r"run history .* cannot be read"):
        history_view(config)


def test_the_admin_face_exports_the_history_models() -> None:
    for name in ("AuditRow", "HistoryView", "RunRow", "StepTime", "history_view"):
        assert name in syncer.admin.__all__ and getattr(syncer.admin, name)
