"""CSV and JSONL on the volume: every value exact through read_table and through DuckDB, pandas,
polars and pyarrow read with the options the README documents (real syncs of a DuckDB warehouse)."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

import syncer
from syncer import load_config, read_table
from syncer.formats import schema_from_b64
from syncer.volume.manifest import Manifest
from tests.conftest import write_config

#: strings a CSV reader is tempted to turn into something else
STRINGS = [
    "",
    None,
    "NULL",
    "NA",
    "None",
    "nan",
    "n/a",
    "007",
    "\\N",  # the NULL marker itself, as a real string
    'say "hi", then go',
    "two\r\nlines",
    "one\nline feed",
    "tab\there",
    " ",
    "héllo wörld 😀 مرحبا שלום",
]
DECIMALS = ["0.0000000001", "-1.5", "12345678901234567890.5", None, "0", "-0.0000000001"]
FLOATS = ["1.5", "'NaN'::DOUBLE", "'Infinity'::DOUBLE", "'-Infinity'::DOUBLE", "NULL", "1e-308"]


def _lit(v: str | None) -> str:
    return "NULL" if v is None else "'" + v.replace("'", "''") + "'"


def _warehouse(tmp_path: Path, select: str) -> Path:
    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    con.execute(f"CREATE TABLE t AS {select}")
    con.execute("CREATE TABLE e AS SELECT * FROM t WHERE false")
    con.close()
    return db


def _sync(tmp_path: Path, select: str, fmt: str) -> tuple[Path, Manifest, pa.Table]:
    """Publish tables ``t`` (rows of ``select``) and ``e`` (none) in ``fmt``; the source as Arrow."""
    db = _warehouse(tmp_path, select)
    tables = "".join(
        f'\n[[tables]]\nname = "{n}"\nsource = "{n}"\nformat = "{fmt}"\nprimary_key = ["id"]\nallow_empty = true\n'
        for n in ("t", "e")
    )
    cfg = load_config(write_config(tmp_path / "cfg", db, tables=tables))
    report = syncer.sync(cfg)
    assert report.status == "ok", [(t.table, t.error, [c.detail for c in t.checks if not c.ok]) for t in report.tables]
    with duckdb.connect(str(db), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        source = con.sql("SELECT * FROM t ORDER BY id").to_arrow_table()
    return cfg.root, syncer.current_snapshot(cfg.root), source


def _strings_select() -> str:
    rows = []
    for i, s in enumerate(STRINGS):
        d = DECIMALS[i % len(DECIMALS)]
        f = FLOATS[i % len(FLOATS)]
        rows.append(f"({i}, {_lit(s)}, {_lit(d)}::DECIMAL(38,10), {f}::DOUBLE, DATE '2024-01-01' + {i})")
    return "SELECT * FROM (VALUES " + ", ".join(rows) + ") v(id, s, d, f, day)"


def _float_key(v: Any) -> Any:
    # repr keeps the sign of -0.0; NaN compares equal to NaN here
    if not isinstance(v, float):
        return v
    return "NaN" if math.isnan(v) else repr(v)


def _cells(values: list[Any]) -> list[Any]:
    return [_float_key(v) for v in values]


@pytest.fixture
def csv_volume(tmp_path: Path) -> tuple[Path, Manifest, pa.Table]:
    return _sync(tmp_path, _strings_select(), "csv")


def _published(root: Path, manifest: Manifest, table: str = "t") -> Path:
    return root / "snapshots" / manifest.id / manifest.tables[table].file


# -- CSV -------------------------------------------------------------------------------------------


def test_csv_read_table_gives_back_every_value(csv_volume) -> None:
    root, _, source = csv_volume
    got = read_table("t", root=root, as_arrow=True)
    for name in source.schema.names:
        assert _cells(got[name].to_pylist()) == _cells(source[name].to_pylist()), name


def test_csv_manifest_records_the_dialect(csv_volume) -> None:
    _, manifest, _ = csv_volume
    dialect = manifest.tables["t"].dialect
    assert dialect is not None
    assert dialect["null"] == "\\N"
    assert dialect["delimiter"] == "," and dialect["quote"] == '"' and dialect["header"] is True
    assert dialect["strings_quoted"] is True


def test_csv_writes_decimals_in_plain_digits(csv_volume) -> None:
    root, manifest, _ = csv_volume
    text = _published(root, manifest).read_text(encoding="utf-8")
    assert '"0.0000000001"' in text
    assert '"12345678901234567890.5000000000"' in text
    assert "E-" not in text and "E+" not in text


def test_csv_null_is_the_unquoted_marker_and_a_real_marker_string_is_quoted(csv_volume) -> None:
    root, manifest, _ = csv_volume
    lines = _published(root, manifest).read_bytes().split(b"\n")
    assert lines[0] == b'"id","s","d","f","day"'
    assert lines[2].startswith(b"1,\\N,")  # STRINGS[1] is None
    assert any(line.startswith(b'8,"\\N",') for line in lines)  # STRINGS[8] is the string \N
    assert lines[1].startswith(b'0,"",')


def test_csv_empty_table_has_its_header_line(csv_volume) -> None:
    root, manifest, _ = csv_volume
    assert _published(root, manifest, "e").read_bytes() == b'"id","s","d","f","day"\n'
    got = read_table("e", root=root, as_arrow=True)
    assert got.num_rows == 0 and got.schema.equals(schema_from_b64(manifest.tables["e"].arrow_schema))


def test_csv_reads_exactly_with_pyarrow(csv_volume) -> None:
    root, manifest, source = csv_volume
    got = pcsv.read_csv(
        _published(root, manifest),
        parse_options=pcsv.ParseOptions(newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(
            null_values=["\\N"],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            column_types={"d": pa.decimal128(38, 10), "s": pa.string()},
        ),
    )
    for name in source.schema.names:
        assert _cells(got[name].to_pylist()) == _cells(source[name].to_pylist()), name


def test_csv_reads_exactly_with_duckdb(csv_volume) -> None:
    root, manifest, source = csv_volume
    got = duckdb.sql(
        f"SELECT * FROM read_csv('{_published(root, manifest)}', header = true, nullstr = '\\N', allow_quoted_nulls = false, "
        "types = {'s': 'VARCHAR', 'd': 'DECIMAL(38,10)'}) ORDER BY id"
    ).to_arrow_table()
    for name in source.schema.names:
        assert _cells(got[name].to_pylist()) == _cells(source[name].to_pylist()), name


def test_csv_reads_exactly_with_polars_except_a_string_equal_to_the_marker(csv_volume) -> None:
    root, manifest, source = csv_volume
    got = pl.read_csv(
        _published(root, manifest),
        null_values=["\\N"],
        schema_overrides={"s": pl.String, "d": pl.Decimal(38, 10), "f": pl.Float64, "day": pl.Date},
    ).to_arrow()
    for name in source.schema.names:
        expected = source[name].to_pylist()
        if name == "s":  # polars, like pandas, takes a quoted \N for the marker too (README)
            expected = [None if v == "\\N" else v for v in expected]
        assert _cells(got[name].to_pylist()) == _cells(expected), name


def test_csv_reads_exactly_with_pandas_except_a_string_equal_to_the_marker(csv_volume) -> None:
    root, manifest, source = csv_volume
    na = {name: ["\\N"] for name in source.schema.names}
    na["f"].append("nan")  # a float column's NaN; nowhere else (a string "nan" stays "nan")
    got = pd.read_csv(_published(root, manifest), keep_default_na=False, na_values=na, dtype={"s": str, "d": str, "f": float})
    strings = [None if isinstance(v, float) else v for v in got["s"]]
    # pandas cannot tell a quoted field from an unquoted one: the string \N reads as NaN (README)
    assert strings == [None if s == "\\N" else s for s in STRINGS]
    decimals = [None if isinstance(v, float) else Decimal(v) for v in got["d"]]
    assert decimals == source["d"].to_pylist()
    assert _cells(got["f"].tolist()) == _cells([math.nan if v is None else v for v in source["f"].to_pylist()])


# -- JSONL -----------------------------------------------------------------------------------------

_EVERY_TYPE = """
SELECT * FROM (VALUES
 (1, 1.5::DOUBLE, 0.0000000001::DECIMAL(38,10), MAP {'k1': 1, 'k2': 2}, '\\xAA\\x00'::BLOB,
  INTERVAL 1 MONTH + INTERVAL 3 DAY + INTERVAL 5 SECOND, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::UUID,
  [1, 2, NULL], {'x': 1, 'y': 'z'}, MAP {1: [1.5]}, 'x', TIMESTAMPTZ '2024-01-01 00:00:00.123456+00'),
 (2, 'NaN'::DOUBLE, -1.5, MAP {}, ''::BLOB, INTERVAL 0 SECOND, NULL, [], NULL, MAP {2: []}, '', NULL),
 (3, 'Infinity'::DOUBLE, NULL, NULL, NULL, NULL, NULL, NULL, {'x': NULL, 'y': NULL}, NULL, NULL, NULL),
 (4, '-Infinity'::DOUBLE, 12345678901234567890.5, MAP {'': NULL}, NULL, NULL, NULL, [NULL], NULL, NULL, 'NaN', NULL),
 (5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
) v(id, f, d, m, b, iv, u, l, st, m2, s, tz)
"""


@pytest.fixture
def jsonl_volume(tmp_path: Path) -> tuple[Path, Manifest, pa.Table]:
    return _sync(tmp_path, _EVERY_TYPE, "jsonl")


def _refuse(token: str) -> Any:
    raise ValueError(f"not JSON (RFC 8259): {token}")


def test_jsonl_lines_are_valid_json(jsonl_volume) -> None:
    root, manifest, _ = jsonl_volume
    lines = _published(root, manifest).read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line, parse_constant=_refuse) for line in lines]
    assert [r["f"] for r in rows] == [1.5, "NaN", "Infinity", "-Infinity", None]
    assert rows[0]["d"] == "0.0000000001"
    assert rows[0]["m"] == [{"key": "k1", "value": 1}, {"key": "k2", "value": 2}]
    assert rows[0]["iv"] == {"months": 1, "days": 3, "nanoseconds": 5_000_000_000}
    dialect = manifest.tables["t"].dialect
    assert dialect is not None and dialect["nonfinite_floats"] == ["NaN", "Infinity", "-Infinity"]


def test_jsonl_reads_with_polars(jsonl_volume) -> None:
    root, manifest, source = jsonl_volume
    path = _published(root, manifest)
    assert pl.read_ndjson(path).height == source.num_rows
    got = pl.read_ndjson(path, schema_overrides={"f": pl.String, "d": pl.String}).with_columns(
        pl.col("f").cast(pl.Float64), pl.col("d").cast(pl.Decimal(38, 10))
    )
    assert _cells(got["f"].to_list()) == _cells(source["f"].to_pylist())
    assert got["d"].to_list() == source["d"].to_pylist()


def test_jsonl_read_table_gives_back_every_value_maps_included(jsonl_volume) -> None:
    root, _, source = jsonl_volume
    got = read_table("t", root=root, as_arrow=True)
    assert got.schema.equals(source.schema, check_metadata=False)
    for name in source.schema.names:
        assert _cells(got[name].to_pylist()) == _cells(source[name].to_pylist()), name


def test_jsonl_empty_table_reads_with_its_schema(jsonl_volume) -> None:
    root, manifest, source = jsonl_volume
    entry = manifest.tables["e"]
    assert (root / "snapshots" / manifest.id / entry.file).read_bytes() == b""
    got = read_table("e", root=root, as_arrow=True)
    assert got.num_rows == 0
    assert got.schema.equals(schema_from_b64(entry.arrow_schema), check_metadata=True)
    assert got.schema.equals(source.schema, check_metadata=False)
    # other readers: the manifest's arrow_schema gives the empty table its columns (README)
    assert schema_from_b64(entry.arrow_schema).empty_table().to_pandas().columns.tolist() == source.schema.names


def test_jsonl_reads_with_duckdb_and_pandas(jsonl_volume) -> None:
    root, manifest, source = jsonl_volume
    path = _published(root, manifest)
    got = duckdb.sql(
        f"SELECT f::DOUBLE AS f, d::DECIMAL(38,10) AS d, map_from_entries(m) AS m FROM read_json('{path}', "
        "columns = {'id': 'INTEGER', 'f': 'VARCHAR', 'd': 'VARCHAR', 'm': 'STRUCT(key VARCHAR, value INTEGER)[]'}) ORDER BY id"
    ).to_arrow_table()
    assert _cells(got["f"].to_pylist()) == _cells(source["f"].to_pylist())
    assert got["d"].to_pylist() == source["d"].to_pylist()
    assert got["m"].to_pylist() == source["m"].to_pylist()
    frame = pd.read_json(path, lines=True, dtype=False)
    assert [None if v is None or (isinstance(v, float) and math.isnan(v)) else Decimal(v) for v in frame["d"]] == (
        source["d"].to_pylist()
    )
    assert [None if isinstance(v, float) else v for v in frame["s"].tolist()[:4]] == ["x", "", None, "NaN"]


# -- the formats' own round trip, for Arrow types a DuckDB source does not give ---------------------

ARROW_ONLY = pa.schema(
    [
        ("ts_ns", pa.timestamp("ns")),
        ("ts_ns_utc", pa.timestamp("ns", tz="UTC")),
        ("dur", pa.duration("us")),
        ("f32", pa.float32()),
        ("fixed", pa.binary(2)),
        ("big", pa.large_string()),
        ("cat", pa.dictionary(pa.int8(), pa.string())),
        ("deep", pa.struct([("m", pa.map_(pa.int64(), pa.list_(pa.float64()))), ("d", pa.decimal128(20, 12))])),
    ]
)


def _write_read(fmt: str, path: Path, table: pa.Table) -> pa.Table:
    from syncer.formats import open_writer, read_file

    writer = open_writer(fmt, path, table.schema)
    for batch in table.to_batches(max_chunksize=2):
        writer.write(batch)
    writer.close()
    return read_file(fmt, path, table.schema)


def test_jsonl_round_trips_arrow_types_beyond_the_source(tmp_path: Path) -> None:
    table = pa.table(
        {
            "ts_ns": pa.array([1_700_000_000_123_456_789, None, -1], pa.timestamp("ns")),
            "ts_ns_utc": pa.array([1, None, 2**62], pa.timestamp("ns", tz="UTC")),
            "dur": pa.array([2**53 + 1, None, -1], pa.duration("us")),
            "f32": pa.array([math.nan, -math.inf, -0.0], pa.float32()),
            "fixed": pa.array([b"\x00\xff", None, b"ab"], pa.binary(2)),
            "big": pa.array(["", None, "😀"], pa.large_string()),
            "cat": pa.array(["a", None, "a"]).dictionary_encode().cast(pa.dictionary(pa.int8(), pa.string())),
            "deep": pa.array(
                [{"m": [(1, [math.inf, None])], "d": Decimal("0.000000000001")}, None, {"m": None, "d": None}],
                ARROW_ONLY.field("deep").type,
            ),
        },
        schema=ARROW_ONLY,
    )
    path = tmp_path / "t.jsonl"
    got = _write_read("jsonl", path, table)
    for line in path.read_text(encoding="utf-8").splitlines():
        json.loads(line, parse_constant=_refuse)
    for name in ARROW_ONLY.names:
        assert _cells(got[name].to_pylist()) == _cells(table[name].to_pylist()), name
    assert got.schema.equals(ARROW_ONLY)


def test_text_files_of_earlier_versions_still_read_exactly(tmp_path: Path) -> None:
    from syncer.formats import read_file

    schema = pa.schema([("id", pa.int64()), ("s", pa.string()), ("d", pa.decimal128(38, 10)), ("f", pa.float64())])
    old_csv = tmp_path / "old.csv"
    old_csv.write_text('"id","s","d","f"\n1,"",1E-10,nan\n2,,,\n3,"NULL",-1.5000000000,inf\n', encoding="utf-8")
    got = read_file("csv", old_csv, schema)
    assert got["s"].to_pylist() == ["", None, "NULL"]
    assert got["d"].to_pylist() == [Decimal("0.0000000001"), None, Decimal("-1.5")]
    assert _cells(got["f"].to_pylist()) == ["NaN", None, "inf"]
    old_jsonl = tmp_path / "old.jsonl"
    old_jsonl.write_text('{"iv": [1, 2, 3], "f": NaN}\n{"iv": null, "f": -Infinity}\n', encoding="utf-8")
    got = read_file("jsonl", old_jsonl, pa.schema([("iv", pa.month_day_nano_interval()), ("f", pa.float64())]))
    assert got["iv"].to_pylist() == [pa.MonthDayNano([1, 2, 3]), None]
    assert _cells(got["f"].to_pylist()) == ["NaN", "-inf"]


@pytest.mark.parametrize(
    ("bad_line", "why"),
    [
        pytest.param('{"id": 2, "s": "cut off', "line 2 is not valid JSON", id="truncated-line"),
        pytest.param('{"id": 2, "s": "b"', "line 2 is not valid JSON", id="unclosed-object"),
        pytest.param("[2, null]", "line 2 is not a JSON object", id="array-not-object"),
    ],
)
def test_the_reopen_check_fails_naming_a_jsonl_line_that_does_not_parse(tmp_path: Path, bad_line: str, why: str) -> None:
    """A JSONL line that does not parse is a failed ``reopen`` check with the line, not an exception."""
    from syncer.config import TableConfig
    from syncer.export.quarantine import Quarantine
    from syncer.formats import open_writer
    from syncer.validate.checks import Evidence, validate_table
    from syncer.validate.keys import DupResult
    from syncer.validate.profile import ProfileAccumulator

    schema = pa.schema([("id", pa.int64()), ("s", pa.string())])
    batch = pa.record_batch([pa.array([1, 3]), pa.array(["a", "c"])], schema=schema)
    path = tmp_path / "t.jsonl"
    writer = open_writer("jsonl", path, schema)
    writer.write(batch)
    written = writer.close()
    first, last = path.read_text(encoding="utf-8").splitlines()
    path.write_text(f"{first}\n{bad_line}\n{last}\n", encoding="utf-8")  # the file changed under the check
    acc = ProfileAccumulator(schema)
    acc.update(batch)
    table = TableConfig("t", source="t", primary_key=("id",), format="jsonl")
    ev = Evidence(table, schema, 2, acc.result(), acc, DupResult(), Quarantine(tmp_path / "q", table), written, None, False)
    reopen = next(c for c in validate_table(ev) if c.name == "reopen")
    assert not reopen.ok
    assert reopen.detail.startswith("cannot re-open t.jsonl: ") and why in reopen.detail, reopen.detail


def test_the_quarantine_file_is_strict_json_spelled_as_the_jsonl_format(tmp_path: Path) -> None:
    """Quarantined rows are spelled as a JSONL table file spells them: no bare NaN/Infinity tokens
    (which polars and every RFC 8259 parser refuse), decimals as plain digits, bytes base64."""
    from syncer.config import TableConfig
    from syncer.export.quarantine import Quarantine
    from syncer.formats import open_writer

    batch = pa.record_batch(
        {
            "id": pa.array([None, None, None], pa.int64()),
            "f": pa.array([math.nan, math.inf, -math.inf]),
            "d": pa.array([Decimal("0.0000000001"), None, Decimal("-1.5")], pa.decimal128(38, 10)),
            "b": pa.array([b"\x00\xff", None, b""]),
            "m": pa.array([[("a", math.nan)], None, []], pa.map_(pa.string(), pa.float64())),
        }
    )
    table = TableConfig("t", source="t", primary_key=("id",), format="parquet", max_bad_rows=10)
    q = Quarantine(tmp_path / "q", table)
    q.add_rows(batch, ["null primary key id"] * 3, "check")
    q.add({"id": 7, "f": math.nan, "at": pa.MonthDayNano([1, 2, 3])}, "cannot read", "read", (7,))
    q.close()
    lines = q.path.read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line, parse_constant=_refuse) for line in lines]  # strict: a NaN token raises
    writer = open_writer("jsonl", tmp_path / "same.jsonl", batch.schema)
    writer.write(batch)
    writer.close()
    as_format = [json.loads(line) for line in (tmp_path / "same.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["row"] for r in rows[:3]] == as_format  # the record nested under "row", as the format spells it
    assert rows[0]["row"]["f"] == "NaN" and rows[1]["row"]["f"] == "Infinity" and rows[0]["row"]["d"] == "0.0000000001"
    assert rows[3] == {
        "_reason": "cannot read",
        "_stage": "read",
        "row": {"id": 7, "f": "NaN", "at": {"months": 1, "days": 2, "nanoseconds": 3}},
    }
    assert pl.read_ndjson(q.path).height == 4  # polars refused the whole file while it held bare NaN


# -- the README's reader options, run as written ------------------------------------------------------

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_block(after: str) -> str:
    """The first ```python block of README.md after the line starting with ``after``."""
    text = README.read_text(encoding="utf-8")
    start = text.index("```python\n", text.index(after)) + len("```python\n")
    return text[start : text.index("```", start)]


def _run_statements(code: str, folder: Path) -> list[dict[str, list[Any]]]:
    """Each top-level expression of ``code``, evaluated in ``folder`` (where t.csv / t.jsonl are), as columns."""
    import ast
    import os

    import pyarrow.json  # noqa: F401 - the README's pyarrow.json.read_json

    names = {"duckdb": duckdb, "pa": pa, "pyarrow": pa, "pl": pl, "pd": pd}
    results = []
    old = Path.cwd()
    os.chdir(folder)
    try:
        for node in ast.parse(code).body:
            assert isinstance(node, ast.Expr), ast.unparse(node)
            results.append(_columns(eval(compile(ast.Expression(node.value), "README.md", "eval"), names)))
    finally:
        os.chdir(old)
    return results


def _columns(result: Any) -> dict[str, list[Any]]:
    if isinstance(result, duckdb.DuckDBPyRelation):
        return result.to_arrow_table().to_pydict()
    if isinstance(result, pa.Table):
        return result.to_pydict()
    if isinstance(result, pl.DataFrame):
        return result.to_dict(as_series=False)
    return {str(c): result[c].tolist() for c in result.columns}


def test_the_readme_csv_options_read_every_value(tmp_path: Path) -> None:
    select = (
        "SELECT * FROM (VALUES (1, '007', 0.0000000001::DECIMAL(38,10), 'NaN'::DOUBLE, '\\x00\\xff'::BLOB),"
        " (2, '', NULL, NULL, NULL), (3, 'NULL', -1.5, 1.5, ''::BLOB)) v(id, code, amount, score, payload)"
    )
    root, manifest, _ = _sync(tmp_path, select, "csv")
    (tmp_path / "t.csv").write_bytes(_published(root, manifest).read_bytes())
    got = _run_statements(_readme_block("**CSV** — one dialect"), tmp_path)
    assert len(got) == 4  # DuckDB, pyarrow, polars, pandas
    for cols in got:
        assert cols["code"] == ["007", "", "NULL"], cols
        assert cols["id"] == [1, 2, 3]
    duck, arrow, polars, pandas = got
    for cols in (duck, arrow, polars):
        assert cols["amount"] == [Decimal("0.0000000001"), None, Decimal("-1.5")]
    assert duck["payload"] == [b"\x00\xff", None, b""]
    assert arrow["payload"] == polars["payload"] == ["AP8=", None, ""]  # base64, decoded by the app
    assert pandas["amount"][0] == "0.0000000001" and math.isnan(pandas["score"][0]) and pandas["score"][2] == 1.5


def test_the_readme_jsonl_options_read_every_value(tmp_path: Path) -> None:
    select = (
        # no NaN here: pyarrow's JSON reader refuses a float column of strings and numbers (README)
        "SELECT * FROM (VALUES (1, -0.0::DOUBLE, 0.0000000001::DECIMAL(38,10), '\\x00\\xff'::BLOB, MAP {'a': 1},"
        " INTERVAL 1 MONTH + INTERVAL 2 DAY, 18446744073709551615::UBIGINT),"
        " (2, 1.5, NULL, NULL, NULL, NULL, NULL)) v(id, score, amount, payload, m, span, n)"
    )
    root, manifest, _ = _sync(tmp_path, select, "jsonl")
    (tmp_path / "t.jsonl").write_bytes(_published(root, manifest).read_bytes())
    polars, duck, arrow, pandas = _run_statements(_readme_block("An empty table is an empty file"), tmp_path)
    for cols in (polars, duck):
        assert _cells(cols["score"]) == _cells([-0.0, 1.5])
        assert cols["amount"] == [Decimal("0.0000000001"), None]
    assert duck["payload"] == [b"\x00\xff", None] and duck["m"] == [[("a", 1)], None]
    assert duck["span"] == [{"months": 1, "days": 2, "nanoseconds": 0}, None]
    assert arrow["n"] == [2**64 - 1, None] and arrow["amount"] == ["0.0000000001", None]
    assert pandas["amount"][0] == "0.0000000001" and _cells(pandas["score"]) == _cells([-0.0, 1.5])


def test_jsonl_keeps_the_nanoseconds_of_a_time64_ns_column(tmp_path: Path) -> None:
    """A Python time stops at microseconds: the writer spells time64[ns] from its integer value."""
    table = pa.table({"t": pa.array([43_200_123_456_789, None, 0, 86_399_999_999_999], pa.time64("ns"))})
    path = tmp_path / "t.jsonl"
    got = _write_read("jsonl", path, table)
    assert [json.loads(line)["t"] for line in path.read_text(encoding="utf-8").splitlines()] == [
        "12:00:00.123456789",
        None,
        "00:00:00",
        "23:59:59.999999999",
    ]
    assert got.column("t").cast(pa.int64()).to_pylist() == table.column("t").cast(pa.int64()).to_pylist()


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_the_reopen_check_fails_when_a_value_reads_back_changed(
    tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spelling that loses digits (as JSONL once did with a time64[ns]) is caught: the text file
    parsed back is profiled and held against the profile of the batches that were written. JSONL
    re-reads the closed file (here changed on disk); CSV reads each batch's bytes back from the
    file as it writes them (here its encoder spells six digits)."""
    from syncer.config import TableConfig
    from syncer.export.quarantine import Quarantine
    from syncer.formats import open_writer
    from syncer.formats.csv import CsvTableWriter
    from syncer.validate.checks import Evidence, validate_table
    from syncer.validate.keys import DupResult
    from syncer.validate.profile import ProfileAccumulator

    schema = pa.schema([("id", pa.int64()), ("t", pa.time64("ns"))])
    batch = pa.record_batch([pa.array([1, 2]), pa.array([43_200_123_456_789, 1], pa.time64("ns"))], schema=schema)
    path = tmp_path / f"t.{fmt}"
    if fmt == "csv":
        spell = CsvTableWriter.encode

        def six_digits(self: CsvTableWriter, encoder: int, b: pa.RecordBatch) -> list[pa.Buffer]:
            text = b"".join(buf.to_pybytes() for buf in spell(self, encoder, b))
            assert b"12:00:00.123456789" in text
            return [pa.py_buffer(text.replace(b"12:00:00.123456789", b"12:00:00.123456"))]

        monkeypatch.setattr(CsvTableWriter, "encode", six_digits)
    writer = open_writer(fmt, path, schema)
    writer.write(batch)
    written = writer.close()
    if fmt == "jsonl":
        text = path.read_text(encoding="utf-8")
        assert "12:00:00.123456789" in text
        path.write_text(text.replace("12:00:00.123456789", "12:00:00.123456"), encoding="utf-8")  # six digits kept
    acc = ProfileAccumulator(schema)
    acc.update(batch)
    table = TableConfig("t", source="t", primary_key=("id",), format=fmt)
    ev = Evidence(table, schema, 2, acc.result(), acc, DupResult(), Quarantine(tmp_path / "q", table), written, None, False)
    checks = {c.name: c for c in validate_table(ev)}
    assert checks["profile"].ok  # the batches were right: only the re-read sees the change
    assert not checks["reopen"].ok
    assert "values read back differ from the values written: t.max" in checks["reopen"].detail, checks["reopen"].detail
