"""Declared references (syncer/config/references.py, syncer/validate/references.py): refused at
config load when they cannot hold, counted in the written files before publish, at each severity."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

import syncer
from syncer import ConfigError, build_demo, load_config
from syncer.admin import reference_rows
from tests.conftest import write_config

PARENTS_CHILDREN = """
[[tables]]
name = "parents"
primary_key = ["id"]
not_null = ["name"]
format = "{parent_format}"

[[tables]]
name = "children"
primary_key = ["id"]
format = "{child_format}"
references = {{ parent_id = "parents.id" }}
{extra}
"""


def make_db(path: Path, parents: list[tuple[Any, ...]], children: list[tuple[Any, ...]]) -> Path:
    """A fresh DuckDB warehouse with parents(id, name) and children(id, parent_id)."""
    path.unlink(missing_ok=True)
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE parents (id BIGINT, name VARCHAR)")
        con.execute("CREATE TABLE children (id BIGINT, parent_id INTEGER)")  # INTEGER vs BIGINT: compared as numbers
        if parents:
            con.executemany("INSERT INTO parents VALUES (?, ?)", parents)
        if children:
            con.executemany("INSERT INTO children VALUES (?, ?)", children)
    return path


def config_for(tmp_path: Path, db: Path, *, parent_format: str = "parquet", child_format: str = "parquet", extra: str = ""):
    tables = PARENTS_CHILDREN.format(parent_format=parent_format, child_format=child_format, extra=extra)
    return load_config(write_config(tmp_path / "cfg", db, tables=tables))


def ref_check(entry: Any, name: str = "references:parent_id") -> Any:
    return next(c for c in entry.checks if c.name == name)


# --- refused at config load -----------------------------------------------------------------------------

BASE = """
[[tables]]
name = "participants"
primary_key = ["participant_id"]
exclude_columns = ["password_hash"]

[[tables]]
name = "enrollments"
primary_key = ["enrollment_id"]
"""


@pytest.mark.parametrize(
    ("line", "message"),
    [
        pytest.param(
            'references = { participant_id = "participant.participant_id" }',
            "names unknown table 'participant'; did you mean 'participants'?",
            id="unknown-table",
        ),
        pytest.param(
            'references = { password_hash = "participants.participant_id" }\nexclude_columns = ["password_hash"]',
            "column 'password_hash' is in table 'enrollments''s exclude_columns",
            id="excluded-referencing-column",
        ),
        pytest.param(
            'references = { participant_id = "participants.password_hash" }',
            "column 'password_hash' is in table 'participants''s exclude_columns",
            id="excluded-target-column",
        ),
        pytest.param(
            'references = { "a,b" = "participants.participant_id" }',
            "pairs 2 column(s) with 1; list as many on each side",
            id="composite-count-mismatch",
        ),
        pytest.param(
            'references = { participant_id = "participants" }', 'must name the target as "table.column"', id="no-column"
        ),
        pytest.param('references = { participant_id = "participants." }', "has an empty column or table name", id="empty-column"),
        pytest.param('references = { "a,a" = "participants.x,y" }', "lists a column twice", id="column-twice"),
        pytest.param('references = "participants.participant_id"', "references must be an inline table", id="not-a-table"),
        pytest.param(
            'references = { participant_id = "participants.participant_id" }\nreferences_severity = "fatal"',
            'references_severity = \'fatal\' is not one of "error", "warn"',
            id="bad-severity",
        ),
    ],
)
def test_a_reference_that_cannot_hold_is_refused_at_load_with_one_line(tmp_path: Path, line: str, message: str) -> None:
    path = write_config(tmp_path, tmp_path / "w.duckdb", tables=BASE + line + "\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert message in text and "\n" not in text
    assert text.startswith(str(path))


def test_references_parse_into_typed_records_composite_in_order(tmp_path: Path) -> None:
    tables = BASE + 'references = { participant_id = "participants.participant_id", "a, b" = "enrollments.x,y" }\n'
    tables += 'references_severity = "warn"\n'
    cfg = load_config(write_config(tmp_path, tmp_path / "w.duckdb", tables=tables))
    refs = cfg.table("enrollments").references
    assert [(r.columns, r.target, r.target_columns, r.severity) for r in refs] == [
        (("participant_id",), "participants", ("participant_id",), "warn"),
        (("a", "b"), "enrollments", ("x", "y"), "warn"),  # a self-reference is allowed
    ]


def test_the_shipped_configs_declare_the_demo_relationships() -> None:
    root = Path(__file__).resolve().parents[1]
    for path, pid in ((root / "sync.toml", "participant_id"), (root / "spcs" / "sync.toml", "PARTICIPANT_ID")):
        refs = load_config(path).table("enrollments").references
        assert {(r.columns, r.target) for r in refs} == {
            ((pid,), "participants"),
            ((pid.replace("PARTICIPANT", "COURSE").replace("participant", "course"),), "courses"),
        }


# --- orphans in the written files -------------------------------------------------------------------------


def test_an_orphan_at_severity_error_fails_the_table_and_keeps_its_old_data(tmp_path: Path) -> None:
    db = make_db(tmp_path / "w.duckdb", [(1, "a"), (2, "b")], [(10, 1), (11, 2), (12, None)])
    cfg = config_for(tmp_path, db)
    first = syncer.sync(cfg)
    assert first.status == "ok", first.error
    old = syncer.current_snapshot(config=cfg).tables["children"]
    check = ref_check(old)
    assert check.ok and check.extra["orphans"] == 0  # a null key references nothing: not an orphan

    make_db(db, [(1, "a"), (2, "b")], [(10, 1), (11, 2), (13, 7), (14, 9), (15, 7)])
    report = syncer.sync(cfg)
    assert report.status == "partial"
    assert report.table("children").status == "carried_over"
    assert "references:parent_id" in report.table("children").error
    man = syncer.current_snapshot(config=cfg)
    kept = man.tables["children"]
    assert (kept.sha256, kept.exported_in, kept.rows) == (old.sha256, old.exported_in, 3)  # the old data, unchanged
    failed = next(c for c in kept.failed_checks if c.name == "references:parent_id")
    assert not failed.ok and failed.severity == "error"
    assert failed.extra["orphans"] == 3 and failed.extra["sample"] == [[7], [7], [9]]
    assert "3 of 5 row(s) reference no row of parents as exported by this run (e.g. parent_id=7" in failed.detail
    # the Validation page lists it with its sample
    (row,) = [r for r in reference_rows(man) if r.result == "FAIL"]
    assert (row.table, row.orphans, row.sample) == ("children", 3, "7; 7; 9")
    assert man.consistency.cut == "mixed" and [d.reason for d in man.consistency.differ] == ["carried_over"]


def test_an_orphan_at_severity_warn_publishes_and_records(tmp_path: Path) -> None:
    db = make_db(tmp_path / "w.duckdb", [(1, "a")], [(10, 1), (11, 5)])
    cfg = config_for(tmp_path, db, extra='references_severity = "warn"')
    report = syncer.sync(cfg)
    assert report.status == "ok", report.error
    entry = syncer.current_snapshot(config=cfg).tables["children"]
    assert entry.status == "fresh" and entry.rows == 2
    check = ref_check(entry)
    assert (check.ok, check.severity, check.extra["orphans"], check.extra["sample"]) == (False, "warning", 1, [[5]])
    assert syncer.read_table("children", config=cfg)["parent_id"].tolist() == [1, 5]


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl", "arrow"])
def test_composite_references_in_every_format(tmp_path: Path, fmt: str) -> None:
    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE offerings (course_id INTEGER, term VARCHAR, title VARCHAR)")
        con.execute("INSERT INTO offerings VALUES (1, '2026a', 'x'), (1, '2026b', 'y'), (2, '2026a', 'z')")
        con.execute("CREATE TABLE sessions (id INTEGER, course_id INTEGER, term VARCHAR)")
        # (2, 2026b) matches no offering although each column alone does; (3, NULL) references nothing
        con.execute("INSERT INTO sessions VALUES (1, 1, '2026a'), (2, 1, '2026b'), (3, 2, '2026b'), (4, 3, NULL)")
    tables = f"""
[[tables]]
name = "offerings"
primary_key = ["course_id", "term"]
format = "{fmt}"

[[tables]]
name = "sessions"
primary_key = ["id"]
format = "{fmt}"
references = {{ "course_id,term" = "offerings.course_id,term" }}
"""
    cfg = load_config(write_config(tmp_path / "cfg", db, tables=tables))
    report = syncer.sync(cfg)
    assert report.table("sessions").status == "failed"  # nothing published before: nothing to keep
    check = next(c for c in report.table("sessions").checks if c.name == "references:course_id,term")
    assert check.extra["orphans"] == 1 and check.extra["sample"] == [[2, "2026b"]]
    assert "course_id=2, term='2026b'" in check.detail


def test_a_carried_over_target_is_checked_as_the_snapshot_holds_it(tmp_path: Path) -> None:
    db = make_db(tmp_path / "w.duckdb", [(1, "a"), (2, "b")], [(10, 1)])
    cfg = config_for(tmp_path, db)
    assert syncer.sync(cfg).status == "ok"
    # parents gains id 3 but fails its own checks (a null name): the snapshot keeps parents {1, 2};
    # children now references 3, which is in the warehouse and the failed export, not in the snapshot
    make_db(db, [(1, "a"), (2, "b"), (3, None)], [(10, 1), (11, 3)])
    report = syncer.sync(cfg)
    assert report.status == "failed"  # both tables kept their data: nothing new to publish
    check = next(c for c in report.table("children").checks if c.name == "references:parent_id")
    assert check.extra["orphans"] == 1 and check.extra["target"]["state"] == "carried_over"
    assert "parents kept from run" in check.detail and "(its export failed)" in check.detail


def test_a_table_not_re_exported_is_checked_against_what_is_published_and_cannot_fail(tmp_path: Path) -> None:
    db = make_db(tmp_path / "w.duckdb", [(1, "a"), (2, "b")], [(10, 1), (11, 2)])
    cfg = config_for(tmp_path, db)
    assert syncer.sync(cfg).status == "ok"
    make_db(db, [(1, "a")], [(10, 1), (11, 2)])
    report = syncer.sync(cfg, ["parents"])  # a per-table re-sync drops parent 2; children keeps its file
    assert report.status == "ok", report.error
    man = syncer.current_snapshot(config=cfg)
    check = ref_check(man.tables["children"])
    assert (check.ok, check.severity, check.extra["orphans"]) == (False, "warning", 1)
    assert check.extra["target"]["state"] == "fresh"
    assert [c.name for c in man.tables["children"].checks].count("references:parent_id") == 1
    assert {d.table: d.reason for d in man.consistency.differ} == {"children": "earlier_run"}


def test_a_referenced_column_the_files_do_not_have_fails_with_one_line(tmp_path: Path) -> None:
    db = make_db(tmp_path / "w.duckdb", [(1, "a")], [(10, 1)])
    tables = PARENTS_CHILDREN.format(parent_format="parquet", child_format="parquet", extra="").replace(
        "parent_id = ", "parentid = "
    )
    cfg = load_config(write_config(tmp_path / "cfg", db, tables=tables))
    report = syncer.sync(cfg)
    check = next(c for c in report.table("children").checks if c.name == "references:parentid")
    assert not check.ok and check.severity == "error"
    assert "column 'parentid' is not in table 'children' (its columns: id, parent_id); fix the column name" in check.detail
    assert report.table("children").status == "failed"


def test_the_demo_makes_orphans_on_request_and_the_shipped_config_catches_them(
    tmp_path: Path, make_config: Callable[..., Any]
) -> None:
    db = tmp_path / "w.duckdb"
    build_demo(db, 2_000, orphans=4)
    root = Path(__file__).resolve().parents[1]
    text = (
        (root / "sync.toml").read_text(encoding="utf-8").replace('path = "var/warehouse.duckdb"', f"path = {json.dumps(str(db))}")
    )
    (tmp_path / "sync.toml").write_text(text, encoding="utf-8")
    cfg = load_config(tmp_path / "sync.toml")
    report = syncer.sync(cfg)
    assert report.table("enrollments").status == "failed"  # nothing published before: nothing to keep
    check = next(c for c in report.table("enrollments").checks if c.name == "references:participant_id")
    assert check.extra["orphans"] == 4
    assert next(c for c in report.table("enrollments").checks if c.name == "references:course_id").ok
    with pytest.raises(ConfigError, match="--orphans must be an integer from 0"):
        build_demo(db, 100, orphans=101)


def test_the_validation_page_lists_each_reference_with_its_orphans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    from syncer.admin import server

    db = make_db(tmp_path / "w.duckdb", [(1, "a")], [(10, 1)])
    path = write_config(
        tmp_path / "cfg", db, tables=PARENTS_CHILDREN.format(parent_format="parquet", child_format="csv", extra="")
    )
    monkeypatch.setattr(server, "STEP", server.StartupStep())
    monkeypatch.setenv("SYNCER_CONFIG", str(path))
    syncer.sync(load_config(path))
    make_db(db, [(1, "a")], [(10, 1), (11, 5), (12, 6)])
    syncer.sync(load_config(path))  # children fails on its orphans and keeps its first data
    root = Path(__file__).resolve().parents[1]
    at = AppTest.from_file(str(root / "streamlit_app.py"), default_timeout=30).run()
    at.switch_page("pages/validation.py").run()
    assert not at.exception, at.exception
    assert any("1 reference check(s) found orphans: children.parent_id -> parents.id (last attempt)" in e.value for e in at.error)
    table = next(d.value for d in at.dataframe if "orphans" in d.value.columns)
    rows = table.to_dict("records")
    # the kept (first) data passes against this snapshot's parents; the failed attempt is listed too
    assert [(r["result"], r["severity"], r["orphans"]) for r in rows] == [("pass", "warning", 0), ("FAIL", "error", 2)]
    assert rows[1] | {"detail": None, "target": None} == {
        "table": "children",
        "reference": "parent_id -> parents.id (last attempt)",
        "result": "FAIL",
        "severity": "error",
        "orphans": 2,
        "sample": "5; 6",
        "target": None,
        "detail": None,
    }


def test_a_parted_target_is_read_whole(tmp_path: Path) -> None:
    db = make_db(tmp_path / "w.duckdb", [(i, f"p{i}") for i in range(1, 2001)], [(1, 1999), (2, 2000), (3, 2001)])
    tables = PARENTS_CHILDREN.format(parent_format="parquet", child_format="parquet", extra="")
    extra = "writers = 2\nrow_group_rows = 200\n"  # parents: 2 part files of 5 row groups each
    cfg = load_config(write_config(tmp_path / "cfg", db, tables=tables, extra=extra))
    report = syncer.sync(cfg)
    check = next(c for c in report.table("children").checks if c.name == "references:parent_id")
    assert check.extra["sample"] == [[2001]] and check.extra["orphans"] == 1
    assert (Path(cfg.root) / "snapshots" / report.snapshot_id / "parents").is_dir()


def test_key_types_that_cannot_be_compared_fail_the_check_with_one_line(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE parents (id BIGINT, name VARCHAR)")
        con.execute("INSERT INTO parents VALUES (1, 'a')")
        con.execute("CREATE TABLE children (id BIGINT, parent_id BLOB)")
        con.execute("INSERT INTO children VALUES (1, '\\x01'::BLOB)")
    cfg = config_for(tmp_path, db)
    report = syncer.sync(cfg)
    check = next(c for c in report.table("children").checks if c.name == "references:parent_id")
    assert not check.ok and check.severity == "error" and check.extra["orphans"] is None
    assert "the orphan scan failed" in check.detail and "check that the key types match" in check.detail
    assert "\n" not in check.detail


def test_a_nan_key_is_an_orphan_and_its_sample_stays_strict_json(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE parents (id DOUBLE, name VARCHAR)")
        con.execute("INSERT INTO parents VALUES (1.5, 'a')")
        con.execute("CREATE TABLE children (id BIGINT, parent_id DOUBLE)")
        con.execute("INSERT INTO children VALUES (1, 1.5), (2, 'NaN'::DOUBLE)")
    cfg = config_for(tmp_path, db, extra='references_severity = "warn"')
    syncer.sync(cfg)
    check = ref_check(syncer.current_snapshot(config=cfg).tables["children"])
    assert check.extra["orphans"] == 1 and check.extra["sample"] == [["nan"]]
    text = (Path(cfg.root) / "current" / "manifest.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the manifest"))
