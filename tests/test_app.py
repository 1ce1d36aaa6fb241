"""The admin app's pages through Streamlit's AppTest, on real demo snapshots (no server, no browser).

AppTest runs ``streamlit_app.py`` the way a browser rerun does (as ``__main__``: the page router, not
the server), with ``$SYNCER_CONFIG`` pointing at a temporary config and volume. AppTest sends no
request headers, so these runs are "local": operator only when ``allow_local_operator = true``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import syncer
import syncer.admin
from syncer import Config, History, NotAuthorizedError, sync
from syncer._clock import frozen
from syncer.admin import fmt
from tests.conftest import LOCAL_OPERATOR, write_config

pytestmark = pytest.mark.usefixtures("no_jobs_left_behind")  # (tests/conftest.py)

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("pages/freshness.py", "pages/validation.py", "pages/history.py", "pages/controls.py", "pages/data_preview.py")
NOBODY = '\n[admin]\noperators = ["alice"]\n'


def app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=30).run()
    assert not at.exception, at.exception
    if page:
        at.switch_page(page).run()
        assert not at.exception, at.exception
    return at


def two_snapshots(cfg: Config) -> tuple[str, str]:
    first = sync(cfg)["snapshot_id"]
    second = sync(cfg, ["courses"], force=True)["snapshot_id"]  # a real re-export, not "unchanged"
    return first, second


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_a_real_snapshot(app_config: Callable[..., Config], page: str) -> None:
    cfg = app_config()
    two_snapshots(cfg)
    at = app(page)
    assert at.title[0].value == Path(page).stem.replace("_", " ").capitalize()
    assert not at.error, [e.value for e in at.error]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_an_empty_volume(app_config: Callable[..., Config], page: str) -> None:
    app_config()
    at = app(page)
    assert at.title[0].value


def test_freshness_metrics_and_rows_equal_the_manifest(app_config: Callable[..., Config]) -> None:
    cfg = app_config()
    first, second = two_snapshots(cfg)
    manifest = syncer.current_snapshot(config=cfg)
    at = app()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Tables fresh"] == "4 of 4"
    assert metrics["Last run"] == "ok · cli"
    assert metrics["Next run"].startswith("in ")
    assert any(second in c.value for c in at.caption)
    table = at.dataframe[0].value
    assert list(table["table"]) == list(manifest["tables"])
    assert dict(zip(table["table"], table["rows"], strict=True)) == {n: t["rows"] for n, t in manifest["tables"].items()}
    assert dict(zip(table["table"], table["exported"], strict=True)) == {
        n: fmt.when(t["exported_at"]) for n, t in manifest["tables"].items()
    }
    assert set(table["status"]) == {"fresh"}
    assert dict(zip(table["table"], table["snapshot"], strict=True)) == {
        "participants": first,
        "courses": second,
        "enrollments": first,
        "daily_metrics": first,
    }
    assert not at.warning, "no banner when everything is fresh"


def test_freshness_shows_a_banner_when_the_last_run_failed(
    app_config: Callable[..., Config], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = app_config()
    sync(cfg)
    broken = write_config(tmp_path / "cfg", tmp_path / "gone.duckdb", extra=LOCAL_OPERATOR)
    assert sync(syncer.load_config(broken))["status"] == "failed"
    at = app()
    assert any(w.value.startswith("The last run (cli, ") and "failed" in w.value for w in at.warning)


def test_validation_lists_every_check_of_the_manifest_failing_first(app_config: Callable[..., Config]) -> None:
    cfg = app_config()
    sync(cfg)
    manifest = syncer.current_snapshot(config=cfg)
    at = app("pages/validation.py")
    checks = at.dataframe[0].value
    expected = sum(len(t["checks"]) for t in manifest["tables"].values()) + len(manifest["run_checks"])
    assert len(checks) == expected
    assert {m.label: m.value for m in at.metric}["Failing"] == "0"
    results = list(checks["result"])
    assert results == sorted(results, key=lambda r: r != "FAIL"), "failing checks come first"
    assert any("No records were quarantined" in c.value for c in at.caption)


def test_validation_previews_quarantined_records_and_offers_the_file(app_config: Callable[..., Config]) -> None:
    cfg = app_config()
    snap = sync(cfg)["snapshot_id"]
    folder = Path(cfg.root) / "quarantine" / snap
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "enrollments.jsonl").write_text(
        '{"enrollment_id": 9, "course_id": null, "_reason": "not_null: course_id", "_stage": "export"}\n', encoding="utf-8"
    )
    at = app("pages/validation.py")
    assert "enrollments" in at.expander[0].label
    (row,) = at.dataframe[1].value.to_dict("records")
    assert (row["enrollment_id"], row["_reason"]) == (9, "not_null: course_id")
    assert at.get("download_button")[0].proto.label == "Download enrollments.jsonl"


def test_history_shows_runs_and_the_audit_trail_with_users(app_config: Callable[..., Config]) -> None:
    cfg = app_config()
    first, second = two_snapshots(cfg)
    syncer.rollback(cfg, first, user="alice")
    at = app("pages/history.py")
    runs = at.dataframe[0].value
    assert list(runs["snapshot_id"]) == [second, first]
    assert set(runs["trigger"]) == {"cli"}
    assert any("time budget" in c.value for c in at.caption)
    audit = at.dataframe[2].value
    assert (audit.iloc[0]["action"], audit.iloc[0]["user"]) == ("rollback", "alice")
    assert audit.iloc[0]["detail"] == f"from {second} to {first}", "the details in words, not raw JSON"


def test_data_preview_shows_what_read_table_returns_and_the_app_code(app_config: Callable[..., Config]) -> None:
    cfg = app_config()
    sync(cfg)
    at = app("pages/data_preview.py")
    at.selectbox(key="preview_table").select("courses").run()
    at.number_input(key="preview_rows").set_value(5).run()
    shown = at.dataframe[0].value
    expected = syncer.read_table("courses", config=cfg).head(5)
    assert shown.reset_index(drop=True).equals(expected.reset_index(drop=True))
    assert 'read_table("courses")' in at.code[0].value
    assert len(at.code[0].value.splitlines()) == 5
    assert not at.warning


def test_data_preview_shows_the_stale_banner(
    app_config: Callable[..., Config], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = app_config()
    with frozen() as clock:
        sync(cfg)
        clock.advance(hours=25)  # past the 24 h SLA recorded in the snapshot
        at = app("pages/data_preview.py")
    assert any("is stale" in w.value for w in at.warning)


# --- Controls: operators only ----------------------------------------------------------------------


def test_a_non_operator_sees_no_actions_and_the_handlers_refuse_them(app_config: Callable[..., Config]) -> None:
    cfg = app_config(extra=NOBODY)
    first, second = two_snapshots(cfg)
    at = app("pages/controls.py")
    assert not at.button and not at.multiselect and not at.selectbox
    assert "Only operators can re-sync, roll back or repair: local run" in at.info[0].value
    assert "allow_local_operator" in at.info[0].value
    with pytest.raises(NotAuthorizedError):
        syncer.admin.request_rollback(cfg, {}, first)
    with pytest.raises(NotAuthorizedError):
        syncer.admin.request_sync(cfg, {})
    assert syncer.current_snapshot(config=cfg)["id"] == second
    assert [e["kind"] for e in History(Path(cfg.root) / "syncer.db").events()] == ["refused", "refused"]


def test_a_local_operator_rolls_back_through_the_page_after_confirming(app_config: Callable[..., Config]) -> None:
    cfg = app_config()
    first, second = two_snapshots(cfg)
    at = app("pages/controls.py")
    assert "allow_local_operator = true" in at.caption[0].value
    assert at.selectbox(key="rollback_target").value == first
    at.button(key="rollback_review").click().run()
    (preview,) = [d.value for d in at.dataframe]
    assert dict(zip(preview["table"], preview["changes"], strict=True)) == {
        "participants": False,
        "courses": True,
        "enrollments": False,
        "daily_metrics": False,
    }
    assert syncer.current_snapshot(config=cfg)["id"] == second, "nothing happens before the confirmation"
    at.button(key="rollback_confirm").click().run()
    assert not at.exception
    assert syncer.current_snapshot(config=cfg)["id"] == first
    assert any(f"{second} → {first}" in s.value for s in at.success)
    (event,) = [e for e in History(Path(cfg.root) / "syncer.db").events() if e["kind"] == "rollback"]
    assert event["user"].startswith("local") and event["detail"] == {"from": second, "to": first}


def test_cancelling_a_rollback_changes_nothing(app_config: Callable[..., Config]) -> None:
    cfg = app_config()
    _, second = two_snapshots(cfg)
    at = app("pages/controls.py")
    at.button(key="rollback_review").click().run()
    at.button(key="rollback_cancel").click().run()
    assert syncer.current_snapshot(config=cfg)["id"] == second
    assert not [b for b in at.button if b.key == "rollback_confirm"]


def test_a_resync_through_the_page_runs_in_the_background_and_publishes(app_config: Callable[..., Config]) -> None:
    cfg = app_config()
    before = sync(cfg)["snapshot_id"]
    at = app("pages/controls.py")
    at.multiselect(key="resync_tables").select("courses").run()
    at.button(key="resync").click().run()
    job = syncer.admin.job_runner().latest("sync")
    assert job is not None and job.label == "re-sync of courses"
    assert job.wait(60) and job.state == "ok", job.error
    at.run()
    after = syncer.current_snapshot(config=cfg)["id"]
    assert after != before and after == job.result["snapshot_id"]
    assert any(f"published snapshot {after}" in s.value for s in at.success)
    run = History(Path(cfg.root) / "syncer.db").runs()[0]
    assert (run["trigger"], run["tables_requested"]) == ("manual", ["courses"])
    assert run["user"].startswith("local")


def test_a_resync_while_another_writer_holds_the_volume_says_so(app_config: Callable[..., Config]) -> None:
    from tests.test_jobs import hold_volume_lock

    cfg = app_config()
    sync(cfg)
    at = app("pages/controls.py")
    with hold_volume_lock(Path(cfg.root), trigger="cli", user="carol"):
        at.button(key="resync").click().run()
        job = syncer.admin.job_runner().latest("sync")
        assert job is not None and job.wait(30)
        at.run()
    assert job.state == "busy"
    assert any("trigger cli, user carol" in w.value for w in at.warning)
    assert len(History(Path(cfg.root) / "syncer.db").runs()) == 1
