"""The admin app's fixes and new pages (issue 15) through AppTest, on real demo snapshots and volumes.

Each test names the behaviour it holds: the rollback confirm tied to its preview, the default target,
the bounded data preview, a broken ``current``, banners that clear and do not repeat, quarantined and
future states, the run and table pages and the links to them, the History grid, a config typo made
while the server runs, the job banner per session.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

import syncer
import syncer.admin
from syncer import Config, History, sync
from syncer._clock import frozen, iso
from syncer.admin import fmt, server
from syncer.volume.layout import Volume
from tests.conftest import DEFAULT_TABLES, LOCAL_OPERATOR, write_config
from tests.test_app import app, two_snapshots
from tests.test_engine import unconstrain
from tests.test_quarantine import with_max_bad_rows

pytestmark = pytest.mark.usefixtures("no_jobs_left_behind")  # (tests/conftest.py)


def dangle_current(cfg: Config, target: str = "20260101T000000Z-dead") -> str:
    """Point ``current`` at a snapshot folder that does not exist (as an interrupted copy leaves it)."""
    vol = Volume(cfg.root)
    tmp = vol.root / "current.tmp"
    os.symlink(f"snapshots/{target}", tmp)
    os.replace(tmp, vol.current)
    return target


def texts(elements: object) -> list[str]:
    return [e.value for e in elements]  # type: ignore[attr-defined]


# --- fix 1 and 2: rollback -------------------------------------------------------------------------


def test_confirm_refuses_when_current_moved_since_the_preview_and_previews_again(app_config: Callable[..., Config]) -> None:
    cfg = app_config()
    first, second = two_snapshots(cfg)
    at = app("pages/controls.py")
    at.button(key="rollback_review").click().run()
    assert any(f"from **{second}** to **{first}**" in w for w in texts(at.warning))
    third = sync(cfg, ["courses"])["snapshot_id"]  # a CLI sync publishes while the operator reads
    at.button(key="rollback_confirm").click().run()
    assert syncer.current_snapshot(config=cfg)["id"] == third, "a snapshot the operator never saw must not be dropped"
    assert any(f"Current moved from {second} to {third} since the preview" in e for e in texts(at.error))
    assert not [b for b in at.button if b.key == "rollback_confirm" and "None" in b.label]
    assert any(f"from **{third}** to **{first}**" in w for w in texts(at.warning)), "the preview is shown again"
    at.button(key="rollback_confirm").click().run()
    assert syncer.current_snapshot(config=cfg)["id"] == first
    assert any(f"{third} → {first}" in s for s in texts(at.success))


def test_the_rollback_handler_refuses_a_preview_of_another_current(app_config: Callable[..., Config]) -> None:
    # The page's own check runs on its next rerun; the handler's covers a sync that publishes in
    # the instant between that rerun and the click.
    cfg = app_config()
    first, second = two_snapshots(cfg)
    third = sync(cfg, ["courses"])["snapshot_id"]
    with pytest.raises(syncer.admin.CurrentMovedError, match=f"current moved from {second} to {third} since the preview"):
        syncer.admin.request_rollback(cfg, {}, first, seen_current=second)
    assert syncer.current_snapshot(config=cfg)["id"] == third
    kinds = [(e["kind"], e["detail"].get("reason", "")) for e in History(Path(cfg.root) / "syncer.db").events()]
    assert ("refused", f"current moved from {second} to {third}") in kinds
    assert syncer.admin.request_rollback(cfg, {}, first, seen_current=third).to == first


def test_roll_back_to_defaults_to_the_previous_snapshot_after_every_sync(app_config: Callable[..., Config]) -> None:
    cfg = app_config()
    first, second = two_snapshots(cfg)
    third = sync(cfg, ["courses"])["snapshot_id"]
    at = app("pages/controls.py")
    assert at.selectbox(key="rollback_target").value == second
    at.selectbox(key="rollback_target").select(first).run()
    fourth = sync(cfg, ["courses"])["snapshot_id"]
    at.run()
    assert syncer.current_snapshot(config=cfg)["id"] == fourth
    assert at.selectbox(key="rollback_target").value == third, "the old pick is forgotten once current moved"


# --- fix 3: data preview ---------------------------------------------------------------------------


def _rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_data_preview_reads_only_the_rows_shown_with_read_tables_dtypes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 100,000 enrollments in row groups of 4,096: big enough that Parquet's footer read (64 KiB)
    # does not already cover the file. rchar counts every byte this process read(2) or pread(2).
    db = tmp_path / "big.duckdb"
    syncer.build_demo(db, 100_000)
    path = write_config(tmp_path / "cfg", db, extra=LOCAL_OPERATOR)
    path.write_text(path.read_text().replace("[export]\n", "[export]\nrow_group_rows = 4096\n"))
    monkeypatch.setenv("SYNCER_CONFIG", str(path))
    cfg = syncer.load_config(path)
    sync(cfg)
    entry = syncer.current_snapshot(config=cfg)["tables"]["enrollments"]
    syncer.admin.preview_table(cfg, "enrollments", 10)  # imports done: measure the reads alone
    before = _rchar()
    full = syncer.read_table("enrollments", config=cfg)
    whole = _rchar() - before
    before = _rchar()
    preview = syncer.admin.preview_table(cfg, "enrollments", 10)
    read = _rchar() - before
    assert read < whole / 4, f"read {read:,} bytes to show 10 rows; reading the table takes {whole:,}"
    assert (preview.rows, preview.shown) == (entry["rows"], 10)
    pd.testing.assert_frame_equal(preview.frame, full.head(10))  # values and dtypes: the exact path
    at = app("pages/data_preview.py")
    at.selectbox(key="preview_table").select("enrollments").run()
    at.number_input(key="preview_rows").set_value(7).run()
    assert len(at.dataframe[0].value) == 7
    assert any(f"{entry['rows']:,} rows" in c and "showing the first 7" in c for c in texts(at.caption))


def test_data_preview_keeps_a_null_columns_dtype_when_the_head_has_no_null(app_config: Callable[..., Config]) -> None:
    cfg = app_config()
    sync(cfg)
    full = syncer.read_table("enrollments", config=cfg)
    nullable = [c for c in full.columns if full[c].isna().any() and not full[c].head(3).isna().any()]
    preview = syncer.admin.preview_table(cfg, "enrollments", 3)
    for c in nullable:
        assert preview.frame[c].dtype == full[c].dtype, c
    pd.testing.assert_frame_equal(preview.frame, full.head(3))


# --- fix 4 and readiness: a broken current --------------------------------------------------------


def test_a_broken_current_shows_the_fallback_everywhere_and_an_operator_repairs_it(app_config: Callable[..., Config]) -> None:
    cfg = app_config()
    _first, second = two_snapshots(cfg)
    dead = dangle_current(cfg)
    at = app()
    assert any(f"Apps read the fallback snapshot **{second}**" in c for c in texts(at.caption))
    table = at.dataframe[0].value
    assert set(table["status"]) <= {"fresh", "unchanged"}, "Freshness shows what apps read, not 'missing'"
    (banner,) = [e for e in texts(at.error) if dead in e]
    assert "repair it on Controls" in banner and "is points at" not in banner
    server.STEP.update(phase="done")
    code, body = syncer.admin.readiness(cfg)
    assert code == 200 and body["data"] == "degraded" and body["snapshot"] == second and body["fallback"] is True
    at.switch_page("pages/controls.py").run()
    at.button(key="rollback_review").click().run()
    assert not any("None" in w for w in texts(at.warning))
    assert any(f"points at {dead}, which does not exist" in w for w in texts(at.warning))
    at.button(key="repair").click().run()
    assert Volume(cfg.root).current_id() == second
    assert any("Repaired: current was pointing at" in s for s in texts(at.success))
    (event,) = [e for e in History(Path(cfg.root) / "syncer.db").events() if e["kind"] == "repair"]
    assert event["user"].startswith("local") and event["detail"]["reason"] == "admin app"


def test_repair_is_refused_to_a_viewer(app_config: Callable[..., Config]) -> None:
    cfg = app_config(extra='\n[admin]\noperators = ["alice"]\n')
    sync(cfg)
    dead = dangle_current(cfg)
    at = app("pages/controls.py")
    assert not [b for b in at.button if b.key == "repair"]
    with pytest.raises(syncer.NotAuthorizedError):
        syncer.admin.request_repair(cfg, {})
    assert Volume(cfg.root).current_id() == dead


def test_ready_is_200_with_the_data_state_and_its_table_states_agree_with_stale(app_config: Callable[..., Config]) -> None:
    cfg = app_config()
    server.STEP.update(phase="unservable")
    code, body = syncer.admin.readiness(cfg)
    assert code == 200 and body["data"] == "missing" and body["snapshot"] is None
    with frozen() as clock:
        sync(cfg)
        assert syncer.admin.readiness(cfg)[1]["data"] == "ok"
        clock.advance(hours=25)
        code, body = syncer.admin.readiness(cfg)
    assert code == 200 and body["data"] == "stale" and body["stale"] is True
    assert {(t["status"], t["stale"]) for t in body["tables"].values()} == {("stale", True)}


# --- fix 5: banners -------------------------------------------------------------------------------


def test_the_startup_banner_says_the_error_once_and_clears_after_a_later_sync(
    app_config: Callable[..., Config], tmp_path: Path
) -> None:
    cfg = app_config()
    broken = syncer.load_config(write_config(tmp_path / "cfg", tmp_path / "gone.duckdb", extra=LOCAL_OPERATOR))
    server.STEP.update(phase="starting", started_at=iso(syncer._clock.utcnow()))
    report = sync(broken, trigger="startup")
    server.STEP.update(
        phase="unservable", finished_at=iso(syncer._clock.utcnow()), result={"action": "failed", "reason": report["error"]}
    )
    at = app()
    shown = [e for e in texts(at.error) + texts(at.warning) if "gone.duckdb" in e]
    assert len(shown) == 1, shown
    assert shown[0].count("gone.duckdb") == 1 and "(tables participants, courses, enrollments, daily_metrics)" in shown[0]
    sync(cfg)
    at = app()
    assert not [e for e in texts(at.error) if "Startup" in e], "a later sync published: the startup banner is gone"


def test_collapse_error_names_the_tables_once() -> None:
    text = "no table was exported: a: E1; b: E1; c: E2"
    assert syncer.admin.collapse_error(text, ["a", "b", "c"]) == "no table was exported: E1 (tables a, b); E2 (table c)"
    assert syncer.admin.collapse_error("other: x: y", ["a"]) == "other: x: y"


# --- fix 6 and the future state: quarantined rows, data from the future ---------------------------


def test_quarantined_rows_are_a_state_of_their_own_on_freshness(
    app_config: Callable[..., Config], warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unconstrain(warehouse, "participants", "UPDATE participants SET email = NULL WHERE participant_id IN (3, 7, 11)")
    path = write_config(
        tmp_path / "q", warehouse, tables=with_max_bad_rows(DEFAULT_TABLES, "participants", 10), extra=LOCAL_OPERATOR
    )
    monkeypatch.setenv("SYNCER_CONFIG", str(path))
    cfg = syncer.load_config(path)
    sync(cfg)
    at = app()
    table = at.dataframe[0].value.set_index("table")
    assert (table.loc["participants", "status"], table.loc["participants", "quarantined"]) == ("quarantined", "3")
    assert table.loc["courses", "quarantined"] == ""
    assert table.loc["courses", "status"] == "fresh"
    assert any("participants: 3 source row(s) set aside in quarantine" in w for w in texts(at.warning))
    assert "quarantined" in list(syncer.admin.STATES)[:3], "the legend has the quarantined state, among the good ones"


def test_data_exported_in_the_future_is_an_error_state_never_fresh(app_config: Callable[..., Config]) -> None:
    cfg = app_config()
    with frozen(dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)):
        sync(cfg)  # the clock was 3 h ahead (skew), or the manifest was edited
    at = app()
    assert set(at.dataframe[0].value["status"]) == {"future"}
    assert {m.label: m.value for m in at.metric}["Tables fresh"] == "0 of 4"
    assert any("Exported in the future" in e for e in texts(at.error))
    colour, is_error = syncer.admin.STATES["future"]
    assert is_error and colour != syncer.admin.STATES["fresh"][0]


# --- the run page, the table page, links, the grid ------------------------------------------------


def test_the_run_page_shows_tables_steps_checks_and_the_error_in_full(app_config: Callable[..., Config], tmp_path: Path) -> None:
    cfg = app_config()
    sync(cfg)
    bad_tables = DEFAULT_TABLES.replace('source = "courses"', 'source = "no_such_courses"')
    bad = syncer.load_config(write_config(tmp_path / "cfg", Path(cfg.source.path), tables=bad_tables, extra=LOCAL_OPERATOR))
    report = sync(bad)
    assert report["status"] == "partial"
    at = app()
    at.query_params["id"] = report["run_id"]
    at.switch_page("pages/run.py").run()
    assert not at.exception, at.exception
    assert report["run_id"] in [s.value for s in at.subheader]
    assert {m.label: m.value for m in at.metric}["Status"] == "partial"
    tables = at.dataframe[0].value.set_index("table")
    assert tables.loc["courses", "status"] == "carried_over" and tables.loc["courses", "page"] == "table?name=courses"
    error = next(
        t for t in History(Path(cfg.root) / "syncer.db").table_results(report["run_id"]) if t["table_name"] == "courses"
    )["error"]
    assert error in [c.value for c in at.code], "the table's error text in full"
    assert len(at.dataframe[1].value) > 0, "the run's checks"
    assert any("export + validate" in m.value for m in at.markdown), "steps with their timings, named in words"


def test_the_table_page_shows_snapshots_runs_last_success_and_failure(app_config: Callable[..., Config], tmp_path: Path) -> None:
    cfg = app_config()
    first, second = two_snapshots(cfg)
    bad_tables = DEFAULT_TABLES.replace('source = "courses"', 'source = "no_such_courses"')
    bad = syncer.load_config(write_config(tmp_path / "cfg", Path(cfg.source.path), tables=bad_tables, extra=LOCAL_OPERATOR))
    failed_run = sync(bad)["run_id"]
    at = app()
    at.query_params["name"] = "courses"
    at.switch_page("pages/table.py").run()
    assert not at.exception, at.exception
    assert "courses" in [s.value for s in at.subheader]
    snaps = at.get("dataframe")[0].value
    assert second in list(snaps["snapshot"]) and first in list(snaps["snapshot"])
    assert any("no_such_courses" in e for e in texts(at.error)), "the last failure with its reason"
    assert any("rows in" in s for s in texts(at.success)), "the last success"
    runs = next(d.value for d in at.dataframe if "checks_failed" in d.value.columns and "trigger" in d.value.columns)
    assert f"run?id={failed_run}" in list(runs["page"])


def test_every_table_and_run_named_links_to_its_page(app_config: Callable[..., Config]) -> None:
    cfg = app_config()
    two_snapshots(cfg)
    job = syncer.admin.request_sync(cfg, {}, ["courses"])  # audited as manual_sync, with its run
    assert job.wait(60) and job.state == "ok", job.error
    at = app()
    assert list(at.dataframe[0].value["page"]) == [f"table?name={t.name}" for t in cfg.tables]
    last = History(Path(cfg.root) / "syncer.db").last_run()
    assert any(p.proto.page.endswith("run.py") or "run" in p.proto.page for p in at.get("page_link"))
    at.switch_page("pages/history.py").run()
    runs = at.dataframe[0].value
    assert runs["page"].iloc[0] == f"run?id={last['id']}"
    assert "None" not in set(runs["error"]) and set(runs["error"]) == {""}, "no 'None' for a run without error"
    assert all(s.endswith(("bytes", "KiB", "MiB", "GiB")) for s in runs["size"])
    audit = at.dataframe[2].value
    assert list(audit["run"]) == [f"run?id={job.result['run_id']}"], "the audit trail links its run"
    at.switch_page("pages/validation.py").run()
    checks = at.dataframe[0].value
    assert {p for t, p in zip(checks["table"], checks["page"], strict=True) if t != "(run)"} == {
        f"table?name={t.name}" for t in cfg.tables
    }


def test_history_has_a_runs_by_tables_grid(app_config: Callable[..., Config]) -> None:
    cfg = app_config()
    two_snapshots(cfg)
    at = app("pages/history.py")
    grid = at.dataframe[1].value
    assert list(grid.columns) == ["started", "page", "run_status", *[t.name for t in cfg.tables]]
    newest, oldest = grid.iloc[0], grid.iloc[1]
    assert newest["courses"] == "ok" and newest["participants"] == "·", "only courses was in the newest run"
    assert all(oldest[t.name] == "ok" for t in cfg.tables)


# --- rough edges: times, numbers, config typo, job banner -------------------------------------------


def test_times_are_shown_in_the_viewers_timezone_with_how_long_ago(app_config: Callable[..., Config]) -> None:
    cfg = app_config()
    sync(cfg)
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "streamlit_app.py"), default_timeout=30)
    at.context["timezone"] = "Asia/Tokyo"
    at.run()
    exported = at.dataframe[0].value["exported"].iloc[0]
    assert exported.endswith("JST (just now)"), exported
    assert fmt.local("2026-12-01T03:00:00.123456Z", "Europe/Berlin") == "2026-12-01 04:00:00 CET"
    assert fmt.ago("2026-12-01T03:00:00Z", dt.datetime(2026, 12, 1, 5, 30, tzinfo=dt.UTC)) == "2.5 h ago"
    assert fmt.number(19997) == "19,997" and fmt.bytes_text(3 * 1048576) == "3.0 MiB"


def test_a_config_typo_made_while_the_server_runs_keeps_the_pages_and_names_the_mistake(
    app_config: Callable[..., Config],
) -> None:
    cfg = app_config()
    sync(cfg)
    at = app()
    assert cfg.path is not None
    good = cfg.path.read_text()
    cfg.path.write_text(good.replace("[freshness]", "[freshnes]"))
    at = app()  # the page reloaded after the typo
    assert at.title[0].value == "Freshness", "the page still renders, on the last good config"
    assert any("freshnes" in e and "configuration that loaded last" in e for e in texts(at.error))
    at.switch_page("pages/history.py").run()
    assert at.title[0].value == "History"


def test_the_job_result_banner_is_for_the_session_that_started_it(app_config: Callable[..., Config]) -> None:
    cfg = app_config()
    sync(cfg)
    mine = app("pages/controls.py")
    mine.button(key="resync").click().run()
    job = syncer.admin.job_runner().latest("sync")
    assert job is not None and job.wait(60)
    mine.run()
    assert any("published snapshot" in s for s in texts(mine.success))
    other = app("pages/controls.py")
    assert not [s for s in texts(other.success) if "published snapshot" in s]
    assert any("Last re-sync from this app: ok" in c for c in texts(other.caption))


# --- rough edges in the charts (their Vega-Lite specs, as the browser receives them) -------------


def chart_specs(at: object) -> list[dict]:
    import json

    def walk(node: object) -> Iterator[object]:
        yield node
        for child in getattr(node, "children", {}).values():
            yield from walk(child)

    return [json.loads(e.proto.spec) for e in walk(at.main) if "vega" in str(getattr(e, "type", ""))]  # type: ignore[attr-defined]


def layers(spec: dict) -> list[dict]:
    return spec.get("layer") or [spec]


def test_the_age_chart_marks_every_table_with_the_tables_own_age_text_and_no_red_sla(app_config: Callable[..., Config]) -> None:
    cfg = app_config()
    sync(cfg)
    at = app()
    age, rows = chart_specs(at)
    marks = [layer["mark"]["type"] for layer in layers(age)]
    assert "point" in marks, "a point per table: visible at any age"
    (text,) = [layer for layer in layers(age) if layer["mark"]["type"] == "text"]
    assert text["encoding"]["text"]["field"] == "age", "the label is the table's own age text"
    (rule,) = [layer for layer in layers(age) if layer["mark"]["type"] == "rule"]
    stale_red = syncer.admin.STATES["stale"][0]
    assert rule["mark"]["color"] != stale_red, "red means stale, not the SLA line"
    colour = layers(rows)[0]["encoding"]["color"]["scale"]["range"]
    assert stale_red not in colour and "#c62828" not in colour, "ordinary series are never the stale red"


def test_history_charts_have_a_line_per_scope_and_label_every_run(app_config: Callable[..., Config]) -> None:
    cfg = app_config()
    two_snapshots(cfg)  # a full run and a one-table run
    at = app("pages/history.py")
    duration, _speed, steps = chart_specs(at)
    assert layers(duration)[0]["encoding"]["color"]["field"] == "scope"
    y = layers(steps)[0]["encoding"]["y"]
    assert y["field"] == "run" and y["axis"]["labelOverlap"] is False, "every run keeps its label"


def test_make_run_takes_the_port_from_PORT() -> None:
    import subprocess

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(["make", "-n", "run", "PORT=8612"], cwd=root, capture_output=True, text=True, check=True).stdout
    assert "--server.port 8612" in out
    assert "--server.port 8501" in subprocess.run(["make", "-n", "run"], cwd=root, capture_output=True, text=True).stdout


def test_the_run_page_lists_every_retry_attempt_with_its_error(
    tmp_path: Path, demo_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_quarantine import RETRY_FAST, flaky

    path = write_config(tmp_path / "cfg", demo_db, extra=LOCAL_OPERATOR + RETRY_FAST)
    monkeypatch.setenv("SYNCER_CONFIG", str(path))
    flaky(monkeypatch, failures=2)  # the source drops the connection twice, then answers
    report = sync(syncer.load_config(path))
    assert report["status"] == "ok"
    at = app()
    at.query_params["id"] = report["run_id"]
    at.switch_page("pages/run.py").run()
    tables = at.dataframe[0].value.set_index("table")
    assert tables.loc["courses", "attempts"] == 3 and tables.loc["participants", "attempts"] == 1
    (expander,) = [e for e in at.expander if e.label.startswith("courses")]
    assert expander.label == "courses: fresh, 3 attempt(s)"
    lines = [m.value for m in expander.markdown]
    assert lines[0].startswith("- attempt 1: failed; retried after") and lines[-1] == "- attempt 3: ok"
    assert any("connection reset by peer" in c.value for c in expander.code)


def test_ready_is_200_and_says_why_when_the_config_cannot_be_loaded() -> None:
    # The lifespan could not load the config: the app still serves the error, so the probe lets it.
    server.STEP.update(phase="error", error="sync.toml: unknown key 'freshnes'; did you mean 'freshness'?")
    code, body = syncer.admin.readiness(None)
    assert code == 200 and body["data"] == "unknown" and "freshnes" in body["reason"]
    server.STEP.update(phase="starting")
    assert syncer.admin.readiness(None)[0] == 503, "503 only while the startup step runs"


@pytest.mark.parametrize("status", ["mismatch", "some_new_state"])
def test_an_engine_status_the_page_does_not_know_is_an_error_state_never_fresh(status: str) -> None:
    from syncer.admin.freshness_model import _state_of
    from syncer.engine.results import TableStatus

    row = TableStatus(name="courses", status=status, stale=True, format="parquet", rows=3, age_seconds=60.0)
    assert _state_of(row, set()) == status
    assert syncer.admin.STATES["mismatch"][1] is True
    assert _state_of(TableStatus(name="c", status="future", stale=True, format="parquet"), set()) == "future"
