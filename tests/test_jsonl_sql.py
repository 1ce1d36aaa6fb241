"""The vectorised JSON Lines encoder spells every value as the row-wise one does (same parsed values)."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import random
import struct
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from syncer.formats.jsonl import JsonlTableWriter
from syncer.formats.jsonl_sql import SqlLines, plan, read_batches, read_plan
from tests.catalogue import CATALOGUE


def reference_lines(batch: pa.RecordBatch, tmp: Path) -> list[str]:
    path = tmp / f"ref-{random.random()}.jsonl"
    w = JsonlTableWriter(path, batch.schema, vectorised=False)
    w.write(batch)
    w.close()
    return path.read_text(encoding="utf-8").split("\n")[:-1]


def same(a: Any, b: Any) -> bool:
    """Equal as JSON values, floats bit for bit (-0.0 is not 0.0), numbers by value (1e16 == 10000000000000000.0)."""
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, int | float) or not isinstance(b, int | float):
            return False
        return struct.pack("<d", float(a)) == struct.pack("<d", float(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def assert_same_lines(batch: pa.RecordBatch, tmp: Path) -> None:
    select = plan(batch.schema)
    assert select is not None, f"no SQL plan for {batch.schema}"
    enc = SqlLines(select)
    try:
        fast = enc.encode(batch).decode("utf-8")
    finally:
        enc.close()
    assert fast.endswith("\n")
    got = [json.loads(line) for line in fast.split("\n")[:-1]]  # strict: NaN tokens would not parse
    want = [json.loads(line) for line in reference_lines(batch, tmp)]
    assert len(got) == len(want) == batch.num_rows
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert same(g, w), f"row {i}: {g!r} != {w!r}"


PLANNED = []
for e in CATALOGUE:
    PLANNED.append(pytest.param(e, id=e.name))


@pytest.mark.parametrize("entry", PLANNED)
def test_every_catalogue_type_is_spelled_as_the_row_wise_encoder_does(entry: Any, catalogue_source: Any, tmp_path: Path) -> None:
    from syncer.config import TableConfig

    table = TableConfig(name=entry.table, source=entry.table, primary_key=["k"])
    try:
        schema = catalogue_source.schema(table)
    except Exception as exc:  # refused by the source (UHUGEINT, TIMETZ ...): not the encoder's business
        pytest.skip(f"the source refuses it: {exc}")
    batches = list(catalogue_source.stream(table, schema, 1000))
    batch = pa.Table.from_batches(batches, schema).combine_chunks().to_batches()[0] if batches else None
    assert batch is not None
    if plan(schema) is None:
        pytest.skip("row-wise encoder by design (no exact SQL spelling)")
    try:
        reference_lines(batch, tmp_path)
    except Exception:
        # the row-wise encoder cannot write it: the SQL one must refuse as well, not invent a spelling
        with pytest.raises(Exception):  # noqa: B017 - any refusal: the writer then goes row-wise
            SqlLines(plan(schema)).encode(batch)  # type: ignore[arg-type]
        return
    assert_same_lines(batch, tmp_path)


def _random_batch(seed: int, rows: int = 300) -> pa.RecordBatch:
    r = random.Random(seed)

    def maybe(v: Any) -> Any:
        return None if r.random() < 0.15 else v

    floats = [0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324, 1.7976931348623157e308, 1e16, 0.1, -2.5e-7]
    text = ["", "NULL", "null", '"', "\\", "\n\r\t", "\x00\x1f", "é", "😀", "\u2028\u2029", "a,b", "'x'"]
    base = dt.datetime(1, 1, 1)
    cols = {
        "i64": pa.array([maybe(r.randint(-(2**63), 2**63 - 1)) for _ in range(rows)], pa.int64()),
        "u64": pa.array([maybe(r.randint(0, 2**64 - 1)) for _ in range(rows)], pa.uint64()),
        "f64": pa.array(
            [maybe(r.choice(floats) if r.random() < 0.5 else r.uniform(-1e6, 1e6)) for _ in range(rows)], pa.float64()
        ),
        "f32": pa.array([maybe(r.choice([0.1, -0.0, 3.4e38, math.nan, 1.5])) for _ in range(rows)], pa.float32()),
        "dec": pa.array(
            [maybe(decimal.Decimal(r.randint(-(10**17), 10**17)).scaleb(-r.choice([0, 4]) * 0 - 4)) for _ in range(rows)],
            pa.decimal128(18, 4),
        ),
        "s": pa.array([maybe("".join(r.choice(text) for _ in range(r.randint(0, 4)))) for _ in range(rows)], pa.string()),
        "b": pa.array([maybe(bytes(r.randint(0, 255) for _ in range(r.randint(0, 6)))) for _ in range(rows)], pa.binary()),
        "d": pa.array([maybe(dt.date(r.randint(1, 9999), r.randint(1, 12), r.randint(1, 28))) for _ in range(rows)], pa.date32()),
        "t": pa.array(
            [
                maybe(dt.time(r.randint(0, 23), r.randint(0, 59), r.randint(0, 59), r.choice([0, 1, 500000, 999999])))
                for _ in range(rows)
            ],
            pa.time64("us"),
        ),
        "ts": pa.array(
            [
                maybe(base + dt.timedelta(microseconds=r.randint(0, 315537897599999999) // r.choice([1, 1000000])))
                for _ in range(rows)
            ],
            pa.timestamp("us"),
        ),
        "tz": pa.array(
            [
                maybe(dt.datetime(2020, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=r.randint(-(10**15), 10**15)))
                for _ in range(rows)
            ],
            pa.timestamp("us", "UTC"),
        ),
        "tsns": pa.array(
            [maybe(r.randint(-(10**18), 10**18) // r.choice([1, 1000, 10**9])) for _ in range(rows)], pa.timestamp("ns")
        ),
        "lst": pa.array(
            [maybe([maybe(r.choice(floats)) for _ in range(r.randint(0, 3))]) for _ in range(rows)], pa.list_(pa.float64())
        ),
        "st": pa.array(
            [maybe({"a": maybe(r.randint(0, 9)), "b c": maybe(r.choice(text))}) for _ in range(rows)],
            pa.struct([("a", pa.int32()), ("b c", pa.string())]),
        ),
        "m": pa.array(
            [maybe([(k, maybe(decimal.Decimal("1.50"))) for k in r.sample(text, r.randint(0, 2))]) for _ in range(rows)],
            pa.map_(pa.string(), pa.decimal128(9, 2)),
        ),
        'odd "name"': pa.array([maybe(r.random() < 0.5) for _ in range(rows)], pa.bool_()),
    }
    return pa.RecordBatch.from_pydict(cols)


@pytest.mark.parametrize("seed", range(6))
def test_generated_batches_of_every_kind_are_spelled_the_same(seed: int, tmp_path: Path) -> None:
    assert_same_lines(_random_batch(seed), tmp_path)


@pytest.mark.parametrize(
    "t",
    [
        pa.month_day_nano_interval(),
        pa.duration("us"),
        pa.time64("ns"),
        pa.timestamp("ns", "UTC"),
        pa.decimal256(40, 2),
        pa.float16(),
        pa.list_(pa.duration("s")),
    ],
)
def test_types_without_an_exact_sql_spelling_go_row_wise(t: pa.DataType) -> None:
    assert plan(pa.schema([("k", pa.int64()), ("v", t)])) is None


def test_a_column_without_a_name_goes_row_wise() -> None:
    assert plan(pa.schema([("", pa.int64())])) is None


def test_a_date_no_iso_text_can_spell_is_refused_naming_the_column() -> None:
    con = duckdb.connect()
    batch = con.sql("SELECT DATE '10000-01-01' AS far").to_arrow_table().to_batches()[0]
    enc = SqlLines(plan(batch.schema))  # type: ignore[arg-type]
    with pytest.raises(duckdb.Error, match="column 'far' holds a date outside years 1-9999"):
        enc.encode(batch)


def test_a_map_with_a_repeated_key_is_refused_for_the_row_wise_encoder() -> None:
    batch = pa.RecordBatch.from_pydict({"m": pa.array([[("a", 1), ("a", 2)]], pa.map_(pa.string(), pa.int64()))})
    with pytest.raises(duckdb.InvalidInputException, match="duplicate key"):
        SqlLines(plan(batch.schema)).encode(batch)  # type: ignore[arg-type]


def _read_back(path: Path, schema: pa.Schema) -> pa.Table:
    select = read_plan(schema)
    assert select is not None
    return pa.Table.from_batches(list(read_batches(path, schema, select, 1000)), schema=schema)


def test_the_re_read_parses_each_line_once_and_names_a_bad_line(tmp_path: Path) -> None:
    schema = pa.schema([("a", pa.string())])
    good = tmp_path / "good.jsonl"
    good.write_text('{"a": "1"}\n{"a": "x\\u2028y"}\n{"b": [1, {"c": null}]}\n', encoding="utf-8")
    assert _read_back(good, schema).column("a").to_pylist() == ["1", "x\u2028y", None]
    cases = {
        "cut": ('{"a": "1"}\n{"a": "2"}\n{"a": \n', r"Malformed JSON .*cut.jsonl.*line"),
        "arr": ('{"a": "1"}\n[1, 2]\n', r"line 2: Expected OBJECT, but got ARRAY"),
        "scalar": ('{"a": "1"}\n5\n', r"line 2: Expected OBJECT"),
        "scalars": ('"x"\n"y"\n', r"line 1: Expected OBJECT"),  # never read as one text column
        "repeated": ('{"a": "1", "a": "2"}\n', r"line 1: .*duplicate key"),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=rf"^{name}.jsonl is not valid JSON Lines: .*{message}"):
            _read_back(path, schema)
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert _read_back(empty, schema).num_rows == 0


def test_names_the_reader_cannot_hold_apart_are_read_row_wise() -> None:
    assert read_plan(pa.schema([("Name", pa.string()), ("name", pa.string())])) is None
    assert read_plan(pa.schema([("", pa.int64())])) is None
    assert read_plan(pa.schema([("a.b", pa.int64()), ("c/d", pa.string()), ("it's", pa.bool_())])) is not None


@pytest.mark.parametrize("seed", range(3))
def test_the_re_read_gives_back_what_the_encoder_wrote(seed: int, tmp_path: Path) -> None:
    whole = _random_batch(seed, rows=500)
    kept = [i for i, f in enumerate(whole.schema) if read_plan(pa.schema([f])) is not None]
    batch = whole.select(kept)
    assert batch.num_columns >= 5, batch.schema
    select = read_plan(batch.schema)
    assert select is not None
    path = tmp_path / "x.jsonl"
    path.write_bytes(SqlLines(plan(batch.schema)).encode(batch))  # type: ignore[arg-type]
    back = pa.Table.from_batches(list(read_batches(path, batch.schema, select, 128)), schema=batch.schema)
    for name in batch.schema.names:  # repr: NaN equals NaN, -0.0 differs from 0.0, floats bit for bit
        got, want = back.column(name).to_pylist(), batch.column(name).to_pylist()
        assert [repr(v) for v in got] == [repr(v) for v in want], name


def test_the_writer_goes_row_wise_from_a_batch_the_sql_path_refuses(tmp_path: Path) -> None:
    schema = pa.schema([("k", pa.int64()), ("m", pa.map_(pa.string(), pa.int64()))])
    good = pa.RecordBatch.from_pydict({"k": [1], "m": [[("a", 1)]]}, schema=schema)
    repeated = pa.RecordBatch.from_pydict({"k": [2], "m": [[("a", 1), ("a", 2)]]}, schema=schema)
    w = JsonlTableWriter(tmp_path / "t.jsonl", schema)
    assert w._select is not None  # the vectorised path is taken while it can be
    for b in (good, repeated, good):
        w.write(b)
    w.close()
    assert w._select is None
    lines = [json.loads(x) for x in (tmp_path / "t.jsonl").read_text(encoding="utf-8").split("\n")[:-1]]
    assert lines == [
        {"k": 1, "m": [{"key": "a", "value": 1}]},
        {"k": 2, "m": [{"key": "a", "value": 1}, {"key": "a", "value": 2}]},
        {"k": 1, "m": [{"key": "a", "value": 1}]},
    ]


def test_a_schema_without_an_sql_spelling_is_written_row_wise(tmp_path: Path) -> None:
    schema = pa.schema([("d", pa.duration("s"))])
    w = JsonlTableWriter(tmp_path / "d.jsonl", schema)
    assert w._select is None
    w.write(pa.RecordBatch.from_pydict({"d": [5]}, schema=schema))
    w.close()
    assert json.loads((tmp_path / "d.jsonl").read_text()) == {"d": 5}


def _same_tables(a: pa.Table, b: pa.Table) -> None:
    assert a.schema.equals(b.schema, check_metadata=False)
    assert a.num_rows == b.num_rows
    for name in a.column_names:
        for i, (x, y) in enumerate(zip(a.column(name).to_pylist(), b.column(name).to_pylist(), strict=True)):
            assert same(x, y) if isinstance(x, float) or isinstance(y, float) else x == y, (name, i, x, y)


@pytest.mark.parametrize("seed", range(4))
def test_the_engines_reread_gives_the_readers_batches(seed: int, tmp_path: Path) -> None:
    from syncer.formats import iter_batches, reread_batches

    batch = _random_batch(seed).drop_columns(["lst", "st", "m"])  # nested columns are re-read row-wise
    path = tmp_path / "x.jsonl"
    w = JsonlTableWriter(path, batch.schema)
    w.write(batch)
    w.close()
    assert read_plan(batch.schema) is not None
    fast = pa.Table.from_batches(list(reread_batches("jsonl", path, batch.schema)), batch.schema)
    slow = pa.Table.from_batches(list(iter_batches("jsonl", path, batch.schema)), batch.schema)
    _same_tables(fast, slow)
    _same_tables(fast, pa.Table.from_batches([batch]))


def test_the_reread_of_a_changed_value_fails_or_differs(tmp_path: Path) -> None:
    from syncer.formats import reread_batches

    schema = pa.schema([("k", pa.int64()), ("d", pa.decimal128(9, 2)), ("b", pa.binary())])
    path = tmp_path / "x.jsonl"
    path.write_text('{"k": 1, "d": "1.50", "b": "AAE="}\n{"k": "x", "d": "2.00", "b": "AA=="}\n', encoding="utf-8")
    with pytest.raises((ValueError, pa.ArrowInvalid)):
        list(reread_batches("jsonl", path, schema))
    path.write_text('{"k": 1}\n[2]\n', encoding="utf-8")
    with pytest.raises(ValueError, match="not a JSON object"):
        list(reread_batches("jsonl", path, pa.schema([("k", pa.int64())])))


def test_lists_and_structs_are_read_back_through_duckdb_exactly(tmp_path: Path) -> None:
    r = random.Random(7)
    rows = 400
    point = pa.struct([("x", pa.float64()), ("y", pa.int32()), ("d", pa.decimal128(9, 3)), ("at", pa.timestamp("us"))])
    inner = pa.struct([("name", pa.string()), ("tags", pa.list_(pa.string()))])
    floats = [0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324, 0.1, 1e300]

    def maybe(v: Any) -> Any:
        return None if r.random() < 0.2 else v

    cols = {
        "ints": pa.array([maybe([maybe(r.randint(-(2**63), 2**63 - 1)) for _ in range(r.randint(0, 4))]) for _ in range(rows)]),
        "deep": pa.array(
            [
                maybe([maybe([maybe(r.choice(["", 'a"b', "é", "\n"])) for _ in range(r.randint(0, 3))]) for _ in range(2)])
                for _ in range(rows)
            ],
            pa.list_(pa.list_(pa.string())),
        ),
        "point": pa.array(
            [
                maybe(
                    {
                        "x": maybe(r.choice(floats)),
                        "y": maybe(r.randint(-(2**31), 2**31 - 1)),
                        "d": maybe(decimal.Decimal(r.randint(-(10**8), 10**8)).scaleb(-3)),
                        "at": maybe(dt.datetime(1, 1, 1) + dt.timedelta(microseconds=r.randint(0, 315537897599999999))),
                    }
                )
                for _ in range(rows)
            ],
            point,
        ),
        "people": pa.array(
            [
                maybe([maybe({"name": maybe("p"), "tags": maybe(["x", None])}) for _ in range(r.randint(0, 2))])
                for _ in range(rows)
            ],
            pa.list_(inner),
        ),
    }
    batch = pa.RecordBatch.from_pydict(cols)
    select = read_plan(batch.schema)
    assert select is not None, "lists and structs of exact leaves are read by DuckDB"
    path = tmp_path / "n.jsonl"
    path.write_bytes(SqlLines(plan(batch.schema)).encode(batch))  # type: ignore[arg-type]
    back = pa.Table.from_batches(list(read_batches(path, batch.schema, select, 100)), schema=batch.schema)
    for name in batch.schema.names:
        assert [repr(v) for v in back.column(name).to_pylist()] == [repr(v) for v in batch.column(name).to_pylist()], name
    # a value that is not its leaf's spelling is refused, not read as something else
    path.write_text('{"ints":[1.5],"deep":null,"point":null,"people":null}\n', encoding="utf-8")
    with pytest.raises(pa.ArrowInvalid):
        list(read_batches(path, batch.schema, select, 100))
    assert read_plan(pa.schema([("m", pa.map_(pa.string(), pa.int64()))])) is None
    assert read_plan(pa.schema([("s", pa.struct([("A", pa.int64()), ("a", pa.int64())]))])) is None
    assert read_plan(pa.schema([("l", pa.list_(pa.binary()))])) is None
