"""The reader matrix (scripts/reader_matrix.py) as a contract: docs/compatibility.json is the bar.

Every cell the committed docs call ``exact`` must still be exact today; a cell that got better is
not a failure (regenerate the docs to raise the bar: the command is in docs/compatibility.md).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from compare_values import arrow_columns, converted, exact  # noqa: E402

from tests.catalogue import CATALOGUE, FORMATS  # noqa: E402

DOCS = ROOT / "docs" / "compatibility.json"


@pytest.mark.parametrize(
    ("source", "read", "is_exact", "is_converted"),
    [
        pytest.param(9007199254740993, 9007199254740992.0, False, False, id="2^53+1-as-float-differs"),
        pytest.param(9007199254740992, 9007199254740992.0, False, True, id="2^53-as-float-is-converted"),
        pytest.param(1, 1.0, False, True, id="int-as-float-is-not-exact"),
        pytest.param(math.nan, math.nan, True, True, id="nan-equals-nan"),
        pytest.param(math.nan, None, False, False, id="nan-is-not-null"),
        pytest.param(None, math.nan, False, True, id="null-as-nan-is-converted"),
        pytest.param("", None, False, False, id="empty-string-is-not-null"),
        pytest.param(None, "", False, False, id="null-is-not-empty-string"),
        pytest.param("007", 7, False, False, id="text-007-is-not-7"),
        pytest.param(-0.0, 0.0, False, True, id="minus-zero-as-zero-is-converted"),
        pytest.param(-0.0, -0.0, True, True, id="minus-zero-exact"),
        pytest.param(
            dt.datetime(2026, 1, 2, 3, 4, 5, 6),
            pd.Timestamp("2026-01-02 03:04:05.000006"),
            True,
            True,
            id="timestamp-vs-datetime",
        ),
        pytest.param(dt.datetime(2026, 1, 2), pd.Timestamp("2026-01-02", tz="UTC"), False, True, id="naive-read-as-utc"),
        pytest.param(dt.date(1, 1, 1), "0001-01-01", False, True, id="date-as-text"),
        pytest.param(decimal.Decimal("99.99"), 99.99, False, True, id="decimal-as-float-shortest"),
        pytest.param(decimal.Decimal("99999999999999.9999"), 100000000000000.0, False, False, id="decimal-rounded"),
        pytest.param(b"\x00\xff", "AP8=", False, True, id="bytes-as-base64"),
        pytest.param([("a", 1)], [{"key": "a", "value": 1}], False, True, id="map-as-key-value-structs"),
        pytest.param(dt.time(12, tzinfo=dt.timezone(dt.timedelta(hours=2))), dt.time(12), False, False, id="offset-dropped"),
        pytest.param(
            pa.MonthDayNano([1, 2, 3]), {"months": 1, "days": 2, "nanoseconds": 3}, False, True, id="interval-as-jsonl-struct"
        ),
        pytest.param(pa.MonthDayNano([1, 2, 3]), {"months": 1, "days": 2, "nanoseconds": 4}, False, False, id="interval-changed"),
        pytest.param(
            pa.MonthDayNano([1, 2, 3]), pd.DateOffset(months=1, days=2, nanoseconds=3), False, True, id="interval-as-dateoffset"
        ),
        pytest.param(
            pa.MonthDayNano([1, 2, 3]), pd.DateOffset(months=1, days=3, nanoseconds=3), False, False, id="dateoffset-changed"
        ),
        pytest.param('{"a": [1, 2]}', '{"a":[1,2]}', False, True, id="json-text-respaced"),
        pytest.param('{"a": [1, 2]}', '{"a":[1,3]}', False, False, id="json-text-changed"),
    ],
)
def test_the_comparison_tells_exact_converted_and_different_values(source, read, is_exact, is_converted):
    assert exact(source, read) is is_exact
    assert converted(source, read) is is_converted


def test_the_committed_matrix_covers_the_catalogue():
    data = json.loads(DOCS.read_text(encoding="utf-8"))
    assert set(data["formats"]) == set(FORMATS)
    for fmt in FORMATS:
        assert list(data["formats"][fmt]["rows"]) == [e.name for e in CATALOGUE]


def test_the_readme_gives_the_options_the_documented_readers_use():
    from documented_readers import README_SPELLINGS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert [s for s in README_SPELLINGS if s not in readme] == []


def test_the_committed_matrix_has_documented_columns_for_the_text_formats():
    data = json.loads(DOCS.read_text(encoding="utf-8"))
    for fmt in ("csv", "jsonl"):
        readers = data["formats"][fmt]["readers"]
        assert {"pyarrow (documented)", "pandas (documented)", "polars (documented)", "duckdb (documented)"} <= set(readers)
        exact = sum(r["cells"]["duckdb (documented)"]["result"] == "exact" for r in data["formats"][fmt]["rows"].values())
        assert exact > sum(r["cells"]["duckdb"]["result"] == "exact" for r in data["formats"][fmt]["rows"].values())


def test_with_the_documented_options_every_cell_is_exact_or_converted_but_the_documented_differences():
    """What README promises a user following its options: a value is exact or converted, except the
    differences it lists (``KNOWN_DIFFERENCES``); a difference that went away must leave the list too."""
    from documented_readers import KNOWN_DIFFERENCES

    data = json.loads(DOCS.read_text(encoding="utf-8"))
    found = {
        (fmt, name, reader.split(" ")[0])
        for fmt in ("csv", "jsonl")
        for name, row in data["formats"][fmt]["rows"].items()
        for reader, cell in row["cells"].items()
        if reader.endswith("(documented)") and row["sync"] == "published" and cell["result"] not in ("exact", "converted")
    }
    assert found == set(KNOWN_DIFFERENCES)


def test_a_reader_that_kills_its_process_is_a_crash_cell_and_the_others_are_still_read(tmp_path):
    """polars panics on an INTERVAL in an Arrow file: that table is a crash, the next one is judged."""
    import pyarrow.ipc as ipc
    import reader_matrix

    from tests.catalogue import entry

    jobs = []
    for name in ("interval", "integer"):
        e = entry(name)
        values = e.expected()
        arrow_type = pa.month_day_nano_interval() if name == "interval" else pa.int32()
        table = pa.table({"k": pa.array(values["k"], pa.int32()), "v": pa.array(values["v"], arrow_type)})
        path = tmp_path / f"{name}.arrow"
        with ipc.new_file(str(path), table.schema) as w:
            w.write_table(table)
        jobs.append({"entry": name, "table": name, "path": str(path), "root": str(tmp_path)})
    got = reader_matrix._run_worker("polars", "arrow", jobs, tmp_path, timeout=120)
    assert got["interval"]["result"] == "crash" and "PanicException" in got["interval"]["detail"], got
    assert got["integer"] == {"result": "exact", "detail": ""}


@pytest.mark.slow
def test_every_cell_the_docs_promise_exact_is_still_exact():
    import reader_matrix

    promised = json.loads(DOCS.read_text(encoding="utf-8"))
    now = reader_matrix.run_matrix()
    lost = [
        f"{fmt} / {name} / {reader}: {now['formats'][fmt]['rows'][name]['cells'][reader]}"
        for fmt, data in promised["formats"].items()
        for name, row in data["rows"].items()
        for reader, cell in row["cells"].items()
        if cell["result"] == "exact" and now["formats"][fmt]["rows"][name]["cells"][reader]["result"] != "exact"
    ]
    assert not lost, "cells docs/compatibility.md promises exact are not exact any more:\n" + "\n".join(lost)
    from documented_readers import KNOWN_DIFFERENCES

    worse = [
        f"{fmt} / {name} / {reader}: {cell}"
        for fmt in ("csv", "jsonl")
        for name, row in now["formats"][fmt]["rows"].items()
        for reader, cell in row["cells"].items()
        if reader.endswith("(documented)")
        and cell["result"] not in ("exact", "converted", "refused")
        and (fmt, name, reader.split(" ")[0]) not in KNOWN_DIFFERENCES
    ]
    assert not worse, "README's options no longer give these values:\n" + "\n".join(worse)


# DuckDB's Python values have no exact kind for these: a UUID object, INTERVAL as timedelta, ...
LOOSE_IN_DUCKDB_PYTHON = {"uuid", "map", "bignum"}  # BIGNUM as its decimal text


def test_the_catalogue_warehouse_holds_the_declared_values(tmp_path):
    """The SQL literals build what each entry says (DuckDB's own Python values, compared loosely
    only where DuckDB's Python conversion has no exact kind: INTERVAL as timedelta, BIT as text)."""
    import duckdb

    from tests.catalogue import build_catalogue

    con = duckdb.connect(str(build_catalogue(tmp_path / "c.duckdb")))
    try:
        con.execute("SET TimeZone = 'UTC'")
        for e in CATALOGUE:
            rel = con.sql(f"SELECT * FROM {e.table} ORDER BY k")
            names = [d[0] for d in rel.description]
            rows = rel.fetchall()
            for col, values in e.expected().items():
                got = [r[names.index(col)] for r in rows]
                if e.name in ("timestamp_ns", "interval", "time_ns"):  # DuckDB's Python values round ns to us, months to 30 days
                    got = arrow_columns(rel.to_arrow_table())[col]
                same = converted if e.name in LOOSE_IN_DUCKDB_PYTHON else exact
                bad = [(w, g) for w, g in zip(values, got, strict=True) if not same(w, g)]
                assert not bad, f"{e.name}.{col}: {bad}"
    finally:
        con.close()


def test_the_matrix_fails_a_run_whose_report_is_not_what_current_serves(tmp_path):
    """The harness's guard (scripts/reader_matrix.py::_check_served): a run that reports a table
    published that ``current`` does not serve -- with a snapshot id or without one -- fails with the
    volume's story instead of reading another snapshot's files; a truthful report passes."""
    import dataclasses

    import duckdb
    import reader_matrix

    import syncer

    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE t AS SELECT range AS k FROM range(10)")
    cfg_path = tmp_path / "sync.toml"
    cfg_path.write_text(
        f'[source]\nkind = "duckdb"\npath = "{db}"\n\n[volume]\nroot = "data"\n\n[[tables]]\nname = "t"\nprimary_key = ["k"]\n'
    )
    cfg = syncer.load_config(cfg_path)
    report = syncer.sync(cfg)
    reader_matrix._check_served(cfg, report)  # the truth passes
    ghost = dataclasses.replace(report.tables[0], table="ghost")
    for sid in (report.snapshot_id, None):
        lying = dataclasses.replace(report, snapshot_id=sid, tables=(*report.tables, ghost))
        with pytest.raises(AssertionError, match="published and not served: \\['ghost'\\]"):
            reader_matrix._check_served(cfg, lying)
    failed = dataclasses.replace(ghost, status="failed")
    reader_matrix._check_served(cfg, dataclasses.replace(report, snapshot_id=None, tables=(failed,)))  # nothing said
