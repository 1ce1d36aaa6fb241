"""The eleven defects issue 12 found, one test each, through the public face only (``syncer.sync``,
``syncer.read_table``, ``load_config``, the files and ``manifest.json`` on the volume), so the same
file runs against the code before the fixes (commit c5171a0) and fails there, defect by defect.

The finer tests of each fix live with their room (tests/test_parquet.py, test_text_formats.py,
test_exact_values.py); these pin the user-visible symptom the issue reported.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

import syncer

FORMATS = ("parquet", "csv", "jsonl", "arrow")


def _publish(tmp_path: Path, sql: list[str], tables: dict[str, str], fmt: str, extra: str = "") -> tuple[Any, Path]:
    """Build a DuckDB warehouse from ``sql``, sync ``tables`` (name -> source or query) in ``fmt``."""
    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    for statement in sql:
        con.execute(statement)
    con.close()
    body = ""
    for name, src in tables.items():
        where = f'query = "{src}"' if src.lower().startswith("select") else f'source = "{src}"'
        body += f'\n[[tables]]\nname = "{name}"\n{where}\nprimary_key = ["id"]\nformat = "{fmt}"\n{extra}\n'
    cfg_path = tmp_path / "sync.toml"
    cfg_path.write_text(f'[source]\nkind = "duckdb"\npath = "{db}"\n\n[volume]\nroot = "data"\n{body}', encoding="utf-8")
    cfg = syncer.load_config(cfg_path)
    return syncer.sync(cfg), tmp_path / "data"


def _ok(report: Any) -> None:
    errors = [(t["table"], t["error"]) for t in report["tables"] if not t["ok"]]
    assert report["status"] == "ok", errors


def _manifest(root: Path) -> dict[str, Any]:
    return json.loads((root / "current" / "manifest.json").read_text(encoding="utf-8"))


def _file(root: Path, table: str) -> Path:
    return root / "current" / _manifest(root)["tables"][table]["file"]


# 1 ---------------------------------------------------------------------------------------------------


FASTPARQUET = textwrap.dedent(
    """
    import json, sys
    import pandas as pd
    df = pd.read_parquet(sys.argv[1], engine="fastparquet")
    print(json.dumps({c: [None if pd.isna(v) else str(v) for v in df[c]] for c in df.columns}))
    """
)


def test_1_fastparquet_reads_our_parquet_without_wrong_values_or_a_crash(tmp_path):
    rows = ", ".join(
        f"({i}, {k}, {-1 if i == 2 else i}, (hash({i})::HUGEINT - 9223372036854775808)::BIGINT, TIMESTAMP '9999-12-31 23:59:59' - INTERVAL ({i}) SECOND, "
        f"{'99999999999999.9999' if i % 2 else '-99999999999999.9999'}::DECIMAL(18,4))"
        for i, k in enumerate([9007199254740993, 2, 3, *range(4, 2000)], start=1)
    )
    report, root = _publish(
        tmp_path,
        [f"CREATE TABLE t AS SELECT * FROM (VALUES {rows}) v(id, big, small, h, ts, d)"],
        {"t": "t"},
        "parquet",
    )
    _ok(report)
    proc = subprocess.run([sys.executable, "-c", FASTPARQUET, str(_file(root, "t"))], capture_output=True, text=True)
    assert proc.returncode == 0, f"fastparquet died: exit {proc.returncode} {proc.stderr[-300:]}"
    got = json.loads(proc.stdout)
    assert got["big"][:3] == ["9007199254740993", "2", "3"]
    assert got["small"][:3] == ["1", "-1", "3"]
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    want = [str(h) for (h,) in con.execute("SELECT h FROM t ORDER BY id").fetchall()]
    con.close()
    assert got["h"] == want


# 2 ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_2_a_hugeint_sum_publishes_in_every_format(tmp_path, fmt):
    report, root = _publish(
        tmp_path,
        ["CREATE TABLE s (id INTEGER, x BIGINT)", "INSERT INTO s VALUES (1, 3), (1, 4), (2, 9223372036854775807), (2, 1)"],
        {"t": "select id, sum(x) as total from s group by id"},
        fmt,
    )
    _ok(report)
    got = syncer.read_table("t", root=root, as_arrow=True).to_pydict()
    assert sorted(zip(got["id"], got["total"], strict=True)) == [(1, Decimal(7)), (2, Decimal(2**63))]


# 3 ---------------------------------------------------------------------------------------------------


def test_3_read_table_to_pandas_keeps_a_nullable_bigint_above_2_to_the_53(tmp_path):
    report, root = _publish(
        tmp_path, ["CREATE TABLE t AS SELECT * FROM (VALUES (1, 9007199254740993), (2, NULL)) v(id, big)"], {"t": "t"}, "parquet"
    )
    _ok(report)
    df = syncer.read_table("t", root=root)
    assert int(df["big"].iloc[0]) == 2**53 + 1 and df["big"].dtype != "float64"


# 4 ---------------------------------------------------------------------------------------------------


def _refuse(token: str) -> Any:
    raise ValueError(f"not JSON: {token}")


def test_4_jsonl_is_valid_json_and_polars_reads_it(tmp_path):
    import polars as pl

    report, root = _publish(
        tmp_path,
        ["CREATE TABLE t AS SELECT * FROM (VALUES (1, 'NaN'::DOUBLE), (2, 'Infinity'::DOUBLE), (3, 1.5)) v(id, f)"],
        {"t": "t"},
        "jsonl",
    )
    _ok(report)
    path = _file(root, "t")
    for line in path.read_text(encoding="utf-8").splitlines():
        json.loads(line, parse_constant=_refuse)
    assert pl.read_ndjson(path).height == 3


# 5 ---------------------------------------------------------------------------------------------------


def test_5_a_map_column_exports_to_jsonl_and_reads_back(tmp_path):
    report, root = _publish(
        tmp_path, ["CREATE TABLE t AS SELECT 1 AS id, MAP {'a': 1, 'b': NULL} AS m UNION ALL SELECT 2, NULL"], {"t": "t"}, "jsonl"
    )
    _ok(report)
    got = syncer.read_table("t", root=root, as_arrow=True).sort_by("id").to_pydict()
    assert got["m"] == [[("a", 1), ("b", None)], None]


# 6 ---------------------------------------------------------------------------------------------------


def test_6_an_enum_column_exports_to_parquet(tmp_path):
    report, root = _publish(
        tmp_path,
        [
            "CREATE TYPE colour AS ENUM ('red', 'green', 'blue')",
            "CREATE TABLE t (id INTEGER, c colour)",
            "INSERT INTO t VALUES (1, 'red'), (2, 'blue'), (3, NULL)",
        ],
        {"t": "t"},
        "parquet",
    )
    _ok(report)
    assert syncer.read_table("t", root=root, as_arrow=True).sort_by("id").column("c").to_pylist() == ["red", "blue", None]


# 7 ---------------------------------------------------------------------------------------------------


def test_7a_timestamp_s_publishes_in_parquet(tmp_path):
    report, root = _publish(
        tmp_path, ["CREATE TABLE t AS SELECT 1 AS id, TIMESTAMP_S '9999-12-31 23:59:59' AS ts"], {"t": "t"}, "parquet"
    )
    _ok(report)
    assert syncer.read_table("t", root=root, as_arrow=True).schema.field("ts").type == pa.timestamp("s")


@pytest.mark.parametrize("fmt", FORMATS)
def test_7b_nanosecond_timestamps_publish_in_every_format(tmp_path, fmt):
    report, root = _publish(
        tmp_path, ["CREATE TABLE t AS SELECT 1 AS id, TIMESTAMP_NS '2026-11-25 03:15:00.123456789' AS ts"], {"t": "t"}, fmt
    )
    _ok(report)
    got = syncer.read_table("t", root=root, as_arrow=True).column("ts").cast(pa.int64()).to_pylist()
    assert got[0] % 1000 == 789


# 8 ---------------------------------------------------------------------------------------------------


def test_8_one_long_string_keeps_the_manifest_small(tmp_path):
    report, root = _publish(tmp_path, ["CREATE TABLE t AS SELECT 1 AS id, repeat('x', 1200000) AS s"], {"t": "t"}, "parquet")
    _ok(report)
    assert (root / "current" / "manifest.json").stat().st_size < 50_000


# 9 ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_9_an_empty_table_keeps_its_schema_for_every_reader(tmp_path, fmt):
    """read_table gives the columns back; other readers get them the documented way: a CSV header
    line, and for JSONL (an empty file) the manifest's arrow_schema, which the dialect names."""
    import base64

    import pyarrow.ipc as ipc

    report, root = _publish(
        tmp_path,
        ["CREATE TABLE t (id INTEGER, s VARCHAR, d DECIMAL(38,10))"],
        {"t": "t"},
        fmt,
        extra="allow_empty = true",
    )
    _ok(report)
    got = syncer.read_table("t", root=root, as_arrow=True)
    assert got.num_rows == 0 and got.schema.names == ["id", "s", "d"]
    entry = _manifest(root)["tables"]["t"]
    if fmt == "csv":
        assert _file(root, "t").read_text(encoding="utf-8").splitlines() == ['"id","s","d"']
        return
    assert "arrow_schema" in entry["dialect"]["empty_table"]
    schema = ipc.read_schema(pa.py_buffer(base64.b64decode(entry["arrow_schema"])))
    assert schema.empty_table().to_pandas().columns.tolist() == ["id", "s", "d"]


# 10 --------------------------------------------------------------------------------------------------


def test_10_csv_keeps_empty_strings_null_and_plain_decimals_for_other_readers(tmp_path):
    report, root = _publish(
        tmp_path,
        [
            "CREATE TABLE t AS SELECT * FROM (VALUES (1, '', 0.0000000001::DECIMAL(38,10)), (2, NULL, NULL), "
            "(3, 'NULL', 1), (4, 'NA', 2), (5, 'None', 3), (6, '007', 4)) v(id, s, d)"
        ],
        {"t": "t"},
        "csv",
    )
    _ok(report)
    path = _file(root, "t")
    text = path.read_text(encoding="utf-8")
    assert "E-10" not in text and "0.0000000001" in text
    dialect = _manifest(root)["tables"]["t"]["dialect"]
    null = dialect["null"].replace("'", "''")
    rows = duckdb.sql(
        f"SELECT id, s FROM read_csv('{path}', header = true, nullstr = '{null}', allow_quoted_nulls = false, "
        "types = {'s': 'VARCHAR'}) ORDER BY id"
    ).fetchall()
    assert [s for _, s in rows] == ["", None, "NULL", "NA", "None", "007"]
    df = pd.read_csv(path, keep_default_na=False, na_values={"s": [dialect["null"]]}, dtype={"s": str})
    assert [None if isinstance(v, float) and math.isnan(v) else v for v in df["s"]] == ["", None, "NULL", "NA", "None", "007"]


# 11 --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ddl", ["UHUGEINT", "TIMETZ"])
def test_11_a_type_the_export_cannot_carry_is_refused_naming_the_fix(tmp_path, ddl):
    value = "340282366920938463463374607431768211455" if ddl == "UHUGEINT" else "'12:00:00+05:30'"
    report, _ = _publish(
        tmp_path, [f"CREATE TABLE t (id INTEGER, u {ddl})", f"INSERT INTO t VALUES (1, {value})"], {"t": "t"}, "parquet"
    )
    (table,) = report["tables"]
    assert not table["ok"]
    assert "'u'" in table["error"] and 'exclude_columns = ["u"]' in table["error"] and 'CAST("u" AS VARCHAR)' in table["error"]
