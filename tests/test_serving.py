"""What the admin server runs besides the pages: the startup step, readiness, the startup gate,
the operator actions and the read models behind the pages. Real volumes, real syncs."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import syncer
import syncer.admin
from syncer import Config, History, LockHeldError, NotAuthorizedError, sync
from syncer._clock import frozen
from syncer.admin import (
    USER_HEADER,
    StartupGate,
    begin_startup,
    freshness,
    quarantined,
    read_quarantined,
    readiness,
    request_rollback,
    request_sync,
    rollback_preview,
    server,
    startup_state,
)
from syncer.admin.server import wait_for_startup
from tests.test_jobs import hold_volume_lock

OPERATORS = """
[admin]
operators = ["alice"]
"""


@pytest.fixture(autouse=True)
def fresh_process_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts as a new server process would: no startup step run yet, no job running."""
    monkeypatch.setattr(server, "STEP", server.StartupStep())
    yield
    job = syncer.admin.job_runner().active()
    if job is not None:
        job.wait(30)


def events(cfg: Config, kind: str) -> list[dict[str, Any]]:
    return [e for e in History(Path(cfg.root) / "syncer.db").events() if e["kind"] == kind]


def start_and_wait(cfg: Config) -> dict[str, Any]:
    assert begin_startup(cfg)
    assert wait_for_startup(60)
    return startup_state()


# --- startup + readiness ---------------------------------------------------------------------------


def test_ready_is_503_until_the_startup_step_has_published_then_200_with_the_tables(config: Config) -> None:
    code, body = readiness(config)
    assert (code, body["ready"], body["phase"]) == (503, False, "idle")
    state = start_and_wait(config)
    assert state["phase"] == "done" and state["result"]["action"] == "synced"
    code, body = readiness(config)
    manifest = syncer.current_snapshot(config=config)
    assert code == 200
    assert body["snapshot"] == manifest["id"] == state["result"]["snapshot_id"]
    assert body["stale"] is False
    assert {n: t["rows"] for n, t in body["tables"].items()} == {n: t["rows"] for n, t in manifest["tables"].items()}
    assert body["next_run"] == syncer.next_run(config)


def test_the_startup_step_runs_once_per_process(config: Config) -> None:
    start_and_wait(config)
    assert begin_startup(config) is False
    assert [r["trigger"] for r in History(Path(config.root) / "syncer.db").runs()] == ["startup"]


def test_nothing_to_serve_keeps_ready_at_200_and_says_why(make_config: Callable[..., Config], tmp_path: Path) -> None:
    # 503 would take the only instance out of the SPCS endpoint, locking operators out of the app
    # that can fix it: ready answers 200 and its body carries the data's state.
    cfg = make_config(db=tmp_path / "missing.duckdb")
    state = start_and_wait(cfg)
    assert state["phase"] == "unservable"
    code, body = readiness(cfg)
    assert code == 200 and body["snapshot"] is None and body["data"] == "missing"
    assert "missing.duckdb" in body["reason"]


def test_a_failed_startup_sync_keeps_serving_the_previous_snapshot(make_config: Callable[..., Config], tmp_path: Path) -> None:
    good = make_config()
    old = sync(good)["snapshot_id"]
    # Same volume, the source is gone, and a skip window of 0 makes startup try to sync.
    broken = dataclasses.replace(make_config(db=tmp_path / "gone.duckdb"), skip_startup_if_younger_than_hours=0.0)
    assert broken.root == good.root
    state = start_and_wait(broken)
    assert state["phase"] == "done"
    assert (state["result"]["action"], state["result"]["run_status"], state["result"]["snapshot_id"]) == ("failed", "failed", old)
    assert "gone.duckdb" in state["result"]["reason"]
    code, body = readiness(broken)
    assert code == 200 and body["snapshot"] == old


# --- the startup gate ------------------------------------------------------------------------------


def call_asgi(app: Any, scope_type: str, path: str) -> list[dict[str, Any]]:
    """Drive an ASGI app the way uvicorn does for one request; return what it sent."""
    sent: list[dict[str, Any]] = []
    incoming = (
        [{"type": "websocket.connect"}]
        if scope_type == "websocket"
        else [{"type": "http.request", "body": b"", "more_body": False}]
    )

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": scope_type, "path": path, "headers": [], "query_string": b"", "method": "GET"}
    asyncio.run(app(scope, receive, send))
    return sent


async def inner_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"app"})


def test_the_gate_answers_503_to_pages_but_lets_probes_through_until_startup_finishes(config: Config) -> None:
    gate = StartupGate(inner_app)
    page = call_asgi(gate, "http", "/")
    assert page[0]["status"] == 503
    assert b"Volume Data Sync is starting" in page[1]["body"]
    assert (b"retry-after", b"2") in page[0]["headers"]
    assert call_asgi(gate, "websocket", "/_stcore/stream")[0] == {
        "type": "websocket.close",
        "code": 1013,
        "reason": "starting up",
    }
    for probe in ("/ready", "/_stcore/health"):
        assert call_asgi(gate, "http", probe)[0]["status"] == 200
    start_and_wait(config)
    assert call_asgi(gate, "http", "/")[0]["status"] == 200


# --- operator actions ------------------------------------------------------------------------------


def test_a_non_operator_calling_the_handlers_directly_is_refused_and_audited(make_config: Callable[..., Config]) -> None:
    cfg = make_config(extra=OPERATORS)
    first = sync(cfg)["snapshot_id"]
    second = sync(cfg)["snapshot_id"]
    for headers in ({USER_HEADER: "mallory"}, {}, [(USER_HEADER, "alice"), (USER_HEADER, "alice")]):
        with pytest.raises(NotAuthorizedError):
            request_sync(cfg, headers)
        with pytest.raises(NotAuthorizedError):
            request_rollback(cfg, headers, first)
    assert syncer.current_snapshot(config=cfg)["id"] == second
    assert syncer.admin.job_runner().active() is None
    local = syncer.admin.identify(cfg, {}).user
    refused = events(cfg, "refused")
    assert sorted((e["user"], e["detail"]["action"]) for e in refused) == sorted(
        (user, action) for user in ("mallory", local, "(invalid user header)") for action in ("sync", "rollback")
    )
    assert len(History(Path(cfg.root) / "syncer.db").runs()) == 2


def test_an_operator_resyncs_chosen_tables_on_the_job_runner_and_it_is_audited(make_config: Callable[..., Config]) -> None:
    cfg = make_config(extra=OPERATORS)
    before = sync(cfg)["snapshot_id"]
    job = request_sync(cfg, {USER_HEADER: "alice"}, ["courses"])
    assert job.wait(60) and job.state == "ok", job.error
    after = syncer.current_snapshot(config=cfg)
    assert after["id"] == job.result["snapshot_id"] != before
    run = History(Path(cfg.root) / "syncer.db").runs()[0]
    assert (run["trigger"], run["user"], run["tables_requested"]) == ("manual", "alice", ["courses"])
    (manual,) = events(cfg, "manual_sync")
    assert manual["user"] == "alice" and manual["detail"]["tables"] == ["courses"]


def test_a_resync_while_another_process_writes_ends_busy_and_never_starts_a_second_writer(
    make_config: Callable[..., Config],
) -> None:
    cfg = make_config(extra=OPERATORS)
    with hold_volume_lock(Path(cfg.root), trigger="schedule", user="scheduler"):
        job = request_sync(cfg, {USER_HEADER: "alice"})
        assert job.wait(30)
    assert job.state == "busy" and "trigger schedule, user scheduler" in (job.error or "")
    assert History(Path(cfg.root) / "syncer.db").runs() == []
    (busy,) = events(cfg, "busy")
    assert busy["user"] == "alice" and busy["detail"]["action"] == "sync"


def test_a_second_resync_from_the_app_is_refused_while_the_first_runs(make_config: Callable[..., Config]) -> None:
    cfg = make_config(extra=OPERATORS + "\n")
    release = threading.Event()
    blocker = syncer.admin.job_runner().submit(
        "sync", lambda _p: (release.wait(10), {"status": "ok"})[1], label="re-sync of courses", user="bob", tables_total=1
    )
    try:
        with pytest.raises(LockHeldError, match="re-sync of courses started by bob"):
            request_sync(cfg, {USER_HEADER: "alice"})
        with pytest.raises(LockHeldError, match="roll back after it finishes"):
            request_rollback(cfg, {USER_HEADER: "alice"}, "whatever")
    finally:
        release.set()
        blocker.wait(10)


def test_rollback_preview_shows_what_changes_and_the_rollback_moves_current(
    make_config: Callable[..., Config], warehouse: Path
) -> None:
    cfg = make_config(db=warehouse, extra=OPERATORS)
    old = sync(cfg)["snapshot_id"]
    with duckdb.connect(str(warehouse)) as con:
        con.execute("DELETE FROM courses WHERE course_id IN (SELECT course_id FROM courses ORDER BY course_id LIMIT 3)")
    new = sync(cfg, ["courses"])["snapshot_id"]
    preview = rollback_preview(cfg, old)
    assert (preview["from"], preview["to"], preview["ok"]) == (new, old, True)
    by_table = {t["table"]: t for t in preview["tables"]}
    assert by_table["courses"]["rows_change"] == 3 and by_table["courses"]["changes"] is True
    assert by_table["courses"]["rows_now"] + 3 == by_table["courses"]["rows_after"]
    assert [n for n, t in by_table.items() if not t["changes"]] == ["participants", "enrollments", "daily_metrics"]
    res = request_rollback(cfg, {USER_HEADER: "alice"}, old)
    assert res.to_json() == {"from": new, "to": old}
    assert syncer.current_snapshot(config=cfg)["id"] == old
    (rb,) = events(cfg, "rollback")
    assert rb["user"] == "alice" and rb["detail"] == {"from": new, "to": old}
    with pytest.raises(syncer.ConfigError, match="not retained"):
        rollback_preview(cfg, "20000101T000000Z-0000")


# --- read models -----------------------------------------------------------------------------------


def test_freshness_rows_match_the_manifest_and_name_the_snapshot_that_exported_each_table(
    make_config: Callable[..., Config],
) -> None:
    cfg = make_config()
    first = sync(cfg)["snapshot_id"]
    second = sync(cfg, ["courses"], force=True)["snapshot_id"]  # force: re-export the unchanged table
    f = freshness(cfg)
    manifest = syncer.current_snapshot(config=cfg)
    assert f["snapshot"]["id"] == second
    assert (f["fresh"], f["total"], f["banners"]) == (4, 4, [])
    rows = {r["table"]: r for r in f["tables"]}
    assert {n: r["rows"] for n, r in rows.items()} == {n: t["rows"] for n, t in manifest["tables"].items()}
    assert {n: r["exported_at"] for n, r in rows.items()} == {n: t["exported_at"] for n, t in manifest["tables"].items()}
    assert {n: r["snapshot"] for n, r in rows.items()} == {
        "participants": first,
        "courses": second,
        "enrollments": first,
        "daily_metrics": first,
    }
    assert {r["status"] for r in rows.values()} == {"fresh"} and {r["sla"] for r in rows.values()} == {"within SLA"}


def test_freshness_flags_stale_carried_over_and_failed_tables_with_a_banner(make_config: Callable[..., Config]) -> None:
    tables = """
[[tables]]
name = "courses"
primary_key = ["course_id"]

[[tables]]
name = "daily_metrics"
primary_key = ["metric_date"]
"""
    cfg = make_config(tables=tables)
    sync(cfg)
    broken = (
        tables.replace('name = "courses"', 'name = "courses"\nsource = "no_such_table"')
        + '\n[[tables]]\nname = "ghost"\nprimary_key = ["id"]\n'
    )
    cfg = make_config(tables=broken)
    report = sync(cfg, force=True)  # daily_metrics exported again (fresh), not confirmed unchanged
    assert report["status"] == "partial"
    rows = {r["table"]: r for r in freshness(cfg)["tables"]}
    assert (rows["courses"]["status"], rows["daily_metrics"]["status"], rows["ghost"]["status"]) == (
        "carried over",
        "fresh",
        "failed",
    )
    f = freshness(cfg)
    assert f["fresh"] == 1 and f["total"] == 3
    texts = [text for _, text in f["banners"]]
    assert texts[0].startswith("The last run (cli,") and "partial" in texts[0]
    assert any("courses" in b and "Kept their previous data" in b for b in texts)


def test_freshness_marks_tables_older_than_the_sla_stale(make_config: Callable[..., Config]) -> None:
    cfg = make_config()
    with frozen() as clock:
        sync(cfg)
        clock.advance(hours=cfg.sla_hours + 1)
        f = freshness(cfg)
    assert f["fresh"] == 0 and {r["status"] for r in f["tables"]} == {"stale"}
    assert {r["sla"] for r in f["tables"]} == {"over SLA"}
    assert any("Over the 24 h freshness SLA" in text for _, text in f["banners"])


def test_quarantined_records_are_listed_and_readable(config: Config) -> None:
    snap = sync(config)["snapshot_id"]
    assert quarantined(config) == []
    folder = Path(config.root) / "quarantine" / snap
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"course_id": [7, 7], "reason": ["duplicate key", "duplicate key"]}), folder / "courses.parquet")
    # The engine streams bad rows as JSON lines with the reason; their values need not fit the schema.
    (folder / "enrollments.jsonl").write_text(
        '{"enrollment_id": 1, "course_id": null, "_reason": "not_null: course_id", "_stage": "export"}\n'
        '{"enrollment_id": "x2", "course_id": 3, "_reason": "schema: enrollment_id", "_stage": "export"}\n',
        encoding="utf-8",
    )
    courses, enrollments = quarantined(config)
    assert (courses["table"], courses["format"], enrollments["table"], enrollments["format"]) == (
        "courses",
        "parquet",
        "enrollments",
        "jsonl",
    )
    assert read_quarantined(courses, limit=1).to_dict("records") == [{"course_id": 7, "reason": "duplicate key"}]
    rows = read_quarantined(enrollments)
    assert list(rows["enrollment_id"]) == [1, "x2"]
    assert list(rows["_reason"]) == ["not_null: course_id", "schema: enrollment_id"]
