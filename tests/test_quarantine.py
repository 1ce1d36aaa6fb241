"""Retry, bisect-to-quarantine and max_bad_rows (syncer/_quarantine.py, the export's recovery paths)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

import syncer
from syncer import History
from syncer.config import TableConfig
from syncer.export.quarantine import Quarantine, convert, screen
from syncer.volume.layout import Volume
from tests.conftest import DEFAULT_TABLES, write_config
from tests.test_engine import unconstrain

RETRY_FAST = "[retry]\nattempts = 3\nbackoff_seconds = 0.01\nmax_backoff_seconds = 0.02\n"


def with_max_bad_rows(tables: str, table: str, n: int) -> str:
    marker = f'name = "{table}"\n'
    return tables.replace(marker, f"{marker}max_bad_rows = {n}\n", 1)


def quarantine_lines(cfg: syncer.Config, report: dict, table: str) -> list[dict]:
    path = Volume(cfg.root).quarantine / report["run_id"] / f"{table}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- retry ------------------------------------------------------------------------------------------


def flaky(monkeypatch: pytest.MonkeyPatch, failures: int, table: str = "courses") -> list[int]:
    """Make the DuckDB source drop the connection on the first ``failures`` reads of ``table``."""
    from syncer.sources import duckdb as _duckdb

    real = _duckdb.DuckDBSource.stream
    calls = [0]

    def stream(self, t, schema, batch_rows):
        if t.name == table:
            calls[0] += 1
            if calls[0] <= failures:
                raise syncer.TransientSourceError(f"table {t.name!r}: connection reset by peer")
        return real(self, t, schema, batch_rows)

    monkeypatch.setattr(_duckdb.DuckDBSource, "stream", stream)
    return calls


def test_transient_error_is_retried_and_every_attempt_recorded(make_config, monkeypatch) -> None:
    cfg = make_config(extra=RETRY_FAST)
    calls = flaky(monkeypatch, failures=2)
    report = syncer.sync(cfg)
    assert report["status"] == "ok" and calls[0] == 3
    courses = next(t for t in report["tables"] if t["table"] == "courses")
    assert [a["ok"] for a in courses["attempts"]] == [False, False, True]
    assert "connection reset" in courses["attempts"][0]["error"]
    stored = {r["table_name"]: r for r in History(Volume(cfg.root).db_path).table_results(report["run_id"])}
    assert [a["ok"] for a in stored["courses"]["attempts"]] == [False, False, True]


def test_retries_exhausted_keep_the_previous_data(make_config, monkeypatch) -> None:
    cfg = make_config(extra=RETRY_FAST)
    first = syncer.sync(cfg)
    flaky(monkeypatch, failures=99)
    report = syncer.sync(cfg, force=True)  # force: an unchanged table would not be read again
    assert report["status"] == "partial"
    courses = next(t for t in report["tables"] if t["table"] == "courses")
    assert len(courses["attempts"]) == 3 and not any(a["ok"] for a in courses["attempts"])
    man = Volume(cfg.root).current_manifest()
    assert man["tables"]["courses"]["status"] == "carried_over"
    assert (
        man["tables"]["courses"]["sha256"]
        == Volume(cfg.root).inspect(first["snapshot_id"]).manifest["tables"]["courses"]["sha256"]
    )


def test_non_transient_errors_are_not_retried(make_config, monkeypatch) -> None:
    cfg = make_config(extra=RETRY_FAST, tables=DEFAULT_TABLES + '\n[[tables]]\nname = "ghost"\nprimary_key = ["id"]\n')
    report = syncer.sync(cfg)
    ghost = next(t for t in report["tables"] if t["table"] == "ghost")
    assert len(ghost["attempts"]) == 1


# --- screening: nulls ---------------------------------------------------------------------------------


def test_null_rows_within_budget_are_quarantined_and_the_rest_published(make_config, warehouse: Path) -> None:
    cfg = make_config(db=warehouse, tables=with_max_bad_rows(DEFAULT_TABLES, "participants", 10))
    unconstrain(warehouse, "participants", "UPDATE participants SET email = NULL WHERE participant_id IN (3, 7, 11)")
    report = syncer.sync(cfg)
    assert report["status"] == "ok", report.get("error")
    entry = Volume(cfg.root).current_manifest()["tables"]["participants"]
    total = duckdb.connect(str(warehouse), read_only=True).execute("select count(*) from participants").fetchall()[0][0]
    assert entry["status"] == "quarantined" and entry["rows"] == total - 3 and entry["source_rows"] == total
    assert entry["quarantine"]["rows"] == 3
    assert entry["quarantine"]["reasons"] == {"null in not_null column email": 3}
    checks = {c["name"]: c for c in entry["checks"]}
    assert all(c["ok"] for c in entry["checks"]), entry["checks"]
    assert "quarantined 3" in checks["row_count"]["detail"]
    assert "without the quarantined rows" in checks["profile"]["detail"]
    lines = quarantine_lines(cfg, report, "participants")
    assert sorted(r["row"]["participant_id"] for r in lines) == [3, 7, 11]
    assert all(r["_reason"] == "null in not_null column email" and r["_stage"] == "check" for r in lines)
    with pytest.warns(syncer.QuarantinedRowsWarning, match=r"3 source row\(s\) were set aside .*null in not_null column email"):
        df = syncer.read_table("participants", config=cfg)
    assert not df["participant_id"].isin([3, 7, 11]).any() and df["email"].notna().all()
    st = next(t for t in syncer.status(cfg)["tables"] if t["name"] == "participants")
    assert st["status"] == "quarantined"


def test_bad_rows_over_budget_fail_the_table_but_keep_examples(make_config, warehouse: Path) -> None:
    cfg = make_config(db=warehouse, tables=with_max_bad_rows(DEFAULT_TABLES, "participants", 2))
    first = syncer.sync(cfg)
    unconstrain(warehouse, "participants", "UPDATE participants SET email = NULL WHERE participant_id <= 5")
    report = syncer.sync(cfg)
    p = next(t for t in report["tables"] if t["table"] == "participants")
    assert p["status"] == "carried_over" and p["quarantined"] == 5
    assert "bad_rows: 5 bad row(s)" in p["error"] and "max_bad_rows = 2" in p["error"]
    assert len(quarantine_lines(cfg, report, "participants")) == 5
    entry = Volume(cfg.root).current_manifest()["tables"]["participants"]
    assert entry["status"] == "carried_over"
    assert entry["sha256"] == Volume(cfg.root).inspect(first["snapshot_id"]).manifest["tables"]["participants"]["sha256"]


def test_null_keys_are_quarantined_with_their_reason(make_config, warehouse: Path) -> None:
    cfg = make_config(db=warehouse, tables=with_max_bad_rows(DEFAULT_TABLES, "participants", 5))
    unconstrain(warehouse, "participants", "UPDATE participants SET participant_id = NULL WHERE participant_id IN (2, 4)")
    report = syncer.sync(cfg)
    assert report["status"] == "ok", report.get("error")
    lines = quarantine_lines(cfg, report, "participants")
    assert len(lines) == 2 and {r["_reason"] for r in lines} == {"null primary key participant_id"}


# --- duplicates -----------------------------------------------------------------------------------------


def test_duplicate_keys_within_budget_are_all_quarantined(make_config, warehouse: Path) -> None:
    cfg = make_config(db=warehouse, tables=with_max_bad_rows(DEFAULT_TABLES, "participants", 10))
    unconstrain(warehouse, "participants", "INSERT INTO participants SELECT * FROM participants WHERE participant_id IN (5, 9)")
    report = syncer.sync(cfg)
    assert report["status"] == "ok", report.get("error")
    entry = Volume(cfg.root).current_manifest()["tables"]["participants"]
    assert entry["quarantine"]["rows"] == 4 and entry["quarantine"]["reasons"] == {"duplicate primary key participant_id": 4}
    checks = {c["name"]: c for c in entry["checks"]}
    assert checks["primary_key_unique"]["ok"] and "after quarantining" in checks["primary_key_unique"]["detail"]
    with pytest.warns(syncer.QuarantinedRowsWarning, match="duplicate primary key"):
        df = syncer.read_table("participants", config=cfg)
    assert df["participant_id"].is_unique and not df["participant_id"].isin([5, 9]).any()
    assert syncer.verify(cfg)["ok"]


# --- rows the source cannot read: bisect by key ranges ------------------------------------------------


BAD_CODES = """
[[tables]]
name = "codes"
query = "select id, cast(code as integer) as code, label from raw_codes"
primary_key = ["id"]
max_bad_rows = {n}
"""


def make_codes(db: Path, bad: tuple[int, ...] = (777, 31_337)) -> None:
    con = duckdb.connect(str(db))
    con.execute(
        "CREATE TABLE raw_codes AS SELECT i AS id, "
        f"CASE WHEN i IN {bad if len(bad) > 1 else f'({bad[0]})'} THEN 'x' || i ELSE (i * 3)::VARCHAR END AS code, "
        "'label ' || i AS label FROM range(40000) r(i)"
    )
    con.close()


def test_unreadable_values_are_isolated_by_halving_key_ranges(make_config, warehouse: Path) -> None:
    make_codes(warehouse)
    cfg = make_config(db=warehouse, tables=BAD_CODES.format(n=5))
    report = syncer.sync(cfg)
    assert report["status"] == "ok", report.get("error")
    entry = Volume(cfg.root).current_manifest()["tables"]["codes"]
    assert entry["status"] == "quarantined" and entry["rows"] == 40_000 - 2
    assert all(c["ok"] for c in entry["checks"]), entry["checks"]
    lines = quarantine_lines(cfg, report, "codes")
    assert sorted(r["row"]["id"] for r in lines) == [777, 31_337]
    assert all(r["_stage"] == "read" and "Could not convert string" in r["_reason"] for r in lines)
    assert "x777" in {r["_reason"].split("'")[1] for r in lines}
    with pytest.warns(syncer.QuarantinedRowsWarning, match="quarantine/"):
        df = syncer.read_table("codes", config=cfg)
    assert len(df) == 39_998 and (df["code"] == df["id"] * 3).all()
    assert df["id"].is_monotonic_increasing


def test_unreadable_value_with_no_budget_fails_naming_the_value(make_config, warehouse: Path) -> None:
    make_codes(warehouse, bad=(123,))
    cfg = make_config(db=warehouse, tables=BAD_CODES.format(n=0))
    report = syncer.sync(cfg)
    assert report["status"] == "failed"
    err = report["tables"][0]["error"]
    assert "'codes'" in err and "x123" in err and "max_bad_rows = 0" in err
    assert quarantine_lines(cfg, report, "codes")[0]["row"]["id"] == 123


# --- the building blocks, directly -------------------------------------------------------------------------


@pytest.fixture
def table_cfg() -> TableConfig:
    return TableConfig(name="t", source="t", primary_key=("id",), not_null=("name",), max_bad_rows=10)


def test_convert_halves_a_batch_down_to_the_rows_that_cannot_be_cast(tmp_path: Path, table_cfg) -> None:
    q = Quarantine(tmp_path, table_cfg)
    raw = pa.record_batch({"id": list(range(10)), "n": ["1", "2", "x", "4", "5", "6", "7", "y", "9", "10"]})
    schema = pa.schema([("id", pa.int64()), ("n", pa.int64())])
    out = convert(raw, schema, table_cfg, q)
    got = pa.Table.from_batches(out, schema)
    assert got.column("id").to_pylist() == [0, 1, 3, 4, 5, 6, 8, 9]
    assert q.count == 2 and q.keys == {("2",), ("7",)}
    q.close()
    lines = [json.loads(x) for x in q.path.read_text().splitlines()]
    assert [r["row"]["n"] for r in lines] == ["x", "y"] and all(r["_stage"] == "convert" for r in lines)


def test_screen_splits_off_null_keys_and_not_null_violations(tmp_path: Path, table_cfg) -> None:
    q = Quarantine(tmp_path, table_cfg)
    batch = pa.record_batch({"id": [1, None, 3, 4], "name": ["a", "b", None, None]})
    kept = screen(batch, table_cfg, q)
    q.close()
    assert kept.column("id").to_pylist() == [1]
    assert q.count == 3 and q.by_column == {"id": 1, "name": 2}
    assert q.reasons == {"null primary key id": 1, "null in not_null column name": 2}


def test_quarantine_file_is_capped_past_the_budget(tmp_path: Path, table_cfg) -> None:
    t = dataclasses.replace(table_cfg, max_bad_rows=0)
    q = Quarantine(tmp_path, t)
    for i in range(500):
        q.add({"id": i}, "bad", "check", (i,))
    q.close()
    assert q.count == 500 and len(q.path.read_text().splitlines()) == 100


# --- the quarantine file's columns and who may read it (issue 13, items 12 and 16) ------------------------------

META_NAMED = """
[[tables]]
name = "people"
primary_key = ["id"]
not_null = ["email"]
max_bad_rows = 5
"""


def _people(db: Path) -> None:
    con = duckdb.connect(str(db))
    con.execute(
        "CREATE TABLE people AS SELECT i AS id, CASE WHEN i = 3 THEN NULL ELSE 'p' || i || '@x.org' END AS email, "
        '\'source reason \' || i AS "_reason", \'source stage\' AS "_stage", i * 10 AS "_rows", \'r\' || i AS "row" '
        "FROM range(1, 11) r(i)"
    )
    con.close()


def test_source_columns_named_like_the_quarantine_metadata_keep_their_values(make_config, tmp_path: Path) -> None:
    db = tmp_path / "people.duckdb"
    _people(db)
    cfg = make_config(db=db, tables=META_NAMED)
    report = syncer.sync(cfg)
    assert report["status"] == "ok", report.get("error")
    (line,) = quarantine_lines(cfg, report, "people")
    assert line["_reason"] == "null in not_null column email" and line["_stage"] == "check"
    assert line["row"] == {
        "id": 3,
        "email": None,
        "_reason": "source reason 3",
        "_stage": "source stage",
        "_rows": 30,
        "row": "r3",
    }


def _world_traversable() -> Path:
    """A folder every user may enter (pytest's tmp_path is root's own), so only the file's own mode decides."""
    folder = Path(tempfile.mkdtemp(prefix="vds-q-", dir="/tmp"))
    os.chmod(folder, 0o755)
    return folder


def _read_as(uid: int, gid: int, path: Path) -> int:
    return subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "cat", str(path)], capture_output=True
    ).returncode


@pytest.fixture
def public_folder(tmp_path: Path):
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("reading as another user needs root and setpriv")
    folder = _world_traversable()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _quarantine_run(make_config, tmp_path: Path, folder: Path, extra: str = "") -> tuple[syncer.Config, Path]:
    db = folder / "people.duckdb"
    _people(db)
    cfg = make_config(db=db, tables=META_NAMED, folder=folder / "cfg", extra=extra)
    report = syncer.sync(cfg)
    assert report["status"] == "ok", report.get("error")
    return cfg, Volume(cfg.root).quarantine / report["run_id"] / "people.jsonl"


def test_quarantine_files_are_readable_by_the_syncing_user_only(make_config, tmp_path: Path, public_folder: Path) -> None:
    cfg, qfile = _quarantine_run(make_config, tmp_path, public_folder)
    assert stat.S_IMODE(qfile.stat().st_mode) == 0o600 and stat.S_IMODE(qfile.parent.stat().st_mode) == 0o700
    published = Volume(cfg.root).current / "people.parquet"
    assert _read_as(65534, 65534, published) == 0, "control: an app user reads the published data"
    assert _read_as(65534, 65534, qfile) != 0, "an app user must not read the quarantined rows"


def test_a_configured_quarantine_group_may_read_them_and_nobody_else(make_config, tmp_path: Path, public_folder: Path) -> None:
    _quarantine_run(make_config, tmp_path, public_folder)
    cfg_path = public_folder / "cfg" / "sync.toml"
    cfg_path.write_text(cfg_path.read_text().replace("retain = 3", 'retain = 3\nquarantine_group = "users"'))
    cfg = syncer.load_config(cfg_path)
    assert cfg.quarantine_gid == 100
    report = syncer.sync(cfg)
    qfile = Volume(cfg.root).quarantine / report["run_id"] / "people.jsonl"
    st = qfile.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_gid == 100
    assert stat.S_IMODE(qfile.parent.stat().st_mode) == 0o750 and qfile.parent.stat().st_gid == 100
    assert _read_as(65534, 100, qfile) == 0, "a member of the quarantine group reads them"
    assert _read_as(65534, 65534, qfile) != 0, "an app user outside the group does not"


def test_an_unknown_quarantine_group_is_refused_at_load(tmp_path: Path, demo_db: Path) -> None:
    path = write_config(tmp_path / "c", demo_db)
    path.write_text(path.read_text().replace("retain = 3", 'retain = 3\nquarantine_group = "no-such-group-x"'))
    with pytest.raises(syncer.ConfigError, match=r"\[volume\] quarantine_group = 'no-such-group-x' is not a group"):
        syncer.load_config(path)
