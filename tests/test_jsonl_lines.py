"""JSON Lines built with Arrow compute (syncer.formats.jsonl_lines) give the row-wise encoder's values."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from syncer.formats import jsonl_lines
from syncer.formats.jsonl import JsonlTableWriter
from tests.catalogue import CATALOGUE
from tests.test_jsonl_sql import _random_batch, reference_lines, same

FLAT = [
    "i64",
    "u64",
    "f64",
    "dec",
    "s",
    "d",
    "ts",
    "tz",
    'odd "name"',
]


def assert_arrow_lines(batch: pa.RecordBatch, tmp: Path) -> None:
    assert jsonl_lines.supported(batch.schema), batch.schema
    buf = jsonl_lines.encode(batch)
    assert buf is not None, "declined a batch it should spell"
    text = buf.to_pybytes().decode("utf-8")
    assert text.endswith("\n") or not batch.num_rows
    got = [json.loads(line) for line in text.split("\n")[:-1]]  # strict: a NaN token would not parse
    want = [json.loads(line) for line in reference_lines(batch, tmp)]
    assert len(got) == len(want) == batch.num_rows
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert same(g, w), f"row {i}: {g!r} != {w!r}"


@pytest.mark.parametrize("seed", range(6))
def test_generated_flat_batches_are_spelled_as_the_row_wise_encoder_does(seed: int, tmp_path: Path) -> None:
    whole = _random_batch(seed)
    batch = whole.select(FLAT)
    strings = batch.column("s")
    # control characters send a batch to the SQL path (tested below); here: the rest of the texts
    clean = pa.array([None if v is None else "".join(c for c in v if c >= " ") for v in strings.to_pylist()], pa.string())
    batch = batch.set_column(batch.schema.get_field_index("s"), "s", clean)
    assert_arrow_lines(batch, tmp_path)


@pytest.mark.parametrize(
    "values",
    [
        pytest.param([0.0, -0.0, 5.0, -3.0, 1e14, 999999999999999.0, 1e15, -1e15, 1e16, 1e21], id="whole-numbers"),
        pytest.param([0.1, 1e-7, 5e-324, -2.5e-7, 1.7976931348623157e308, 1 / 3], id="fractions"),
        pytest.param([math.nan, math.inf, -math.inf, None, 2.0], id="non-finite"),
    ],
)
def test_floats_keep_their_type_sign_and_bits(values: list[Any], tmp_path: Path) -> None:
    batch = pa.record_batch([pa.array(values, pa.float64())], names=["f"])
    assert_arrow_lines(batch, tmp_path)
    text = jsonl_lines.encode(batch).to_pybytes().decode()  # type: ignore[union-attr]
    for line in text.splitlines():  # every finite value reads back as a float, never an integer
        v = json.loads(line)["f"]
        assert v is None or isinstance(v, str | float), line


@pytest.mark.parametrize(
    ("column", "why"),
    [
        pytest.param(pa.array(["ok", "tab\there"]), "control character", id="control-character"),
        pytest.param(pa.array([dt.date(2020, 1, 1)], pa.date32()).cast(pa.int32()).cast(pa.date32()), None, id="plain-date"),
    ],
)
def test_a_batch_with_a_control_character_is_declined(column: pa.Array, why: str | None) -> None:
    batch = pa.record_batch([column], names=["v"])
    assert (jsonl_lines.encode(batch) is None) == (why is not None)


def test_a_date_past_year_9999_is_declined_and_the_writer_refuses_it_as_before(tmp_path: Path) -> None:
    batch = duckdb.sql("SELECT 1 AS k, DATE '10000-01-01' AS far").to_arrow_table().to_batches()[0]
    assert jsonl_lines.encode(batch) is None
    ts = duckdb.sql("SELECT TIMESTAMP '10000-01-01 00:00:00' AS far").to_arrow_table().to_batches()[0]
    assert jsonl_lines.encode(ts) is None
    w = JsonlTableWriter(tmp_path / "t.jsonl", batch.schema, arrow_always=True)
    with pytest.raises(Exception, match=r"out of range|outside years 1-9999"):
        w.write(batch)
        w.close()
    w.abort()


def test_the_writer_falls_back_per_batch_to_the_sql_spelling(tmp_path: Path) -> None:
    schema = pa.schema([("k", pa.int64()), ("s", pa.string())])
    batches = [
        pa.record_batch([pa.array([1]), pa.array(['a "quoted" \\ text'])], schema=schema),
        pa.record_batch([pa.array([2]), pa.array(["a\nnew line"])], schema=schema),  # declined: DuckDB spells it
        pa.record_batch([pa.array([3]), pa.array([None], pa.string())], schema=schema),
    ]
    w = JsonlTableWriter(tmp_path / "t.jsonl", schema, arrow_always=True)
    assert w._arrow
    for b in batches:
        w.write(b)
    w.close()
    lines = [json.loads(x) for x in (tmp_path / "t.jsonl").read_text(encoding="utf-8").splitlines()]
    assert lines == [{"k": 1, "s": 'a "quoted" \\ text'}, {"k": 2, "s": "a\nnew line"}, {"k": 3, "s": None}]


def test_wide_tables_and_small_batches_are_spelled_by_arrow_big_narrow_batches_by_duckdb(tmp_path: Path) -> None:
    from syncer.formats.jsonl import ARROW_BELOW_ROWS

    wide = pa.schema([(f"c{i}", pa.int64()) for i in range(65)])
    narrow = pa.schema([(f"c{i}", pa.int64()) for i in range(9)])
    w = JsonlTableWriter(tmp_path / "w.jsonl", wide)
    assert w._arrow and w.arrow_below_rows > 1 << 40
    w.close()
    n = JsonlTableWriter(tmp_path / "n.jsonl", narrow, encoders=1)
    assert n._arrow and n.arrow_below_rows == ARROW_BELOW_ROWS
    small = pa.record_batch([pa.array(range(10), pa.int64())] * 9, schema=narrow)
    n.write(small)
    n._pipeline.finish()  # every batch spelled and written (close() would close the SQL encoders)
    assert n._sql == [None], "a small batch went to DuckDB"  # (~7 ms a call there, ~1 ms in Arrow)
    n.close()
    m = JsonlTableWriter(tmp_path / "m.jsonl", narrow, encoders=1)
    big = pa.record_batch([pa.array(range(ARROW_BELOW_ROWS), pa.int64())] * 9, schema=narrow)
    m.write(big)
    m._pipeline.finish()
    assert m._sql[0] is not None, "a big narrow batch was not spelled by DuckDB"
    m.close()
    got = [json.loads(x) for x in (tmp_path / "m.jsonl").read_text().splitlines()[:2]]
    assert got == [{f"c{i}": 0 for i in range(9)}, {f"c{i}": 1 for i in range(9)}]
    assert not jsonl_lines.supported(pa.schema([("t", pa.time64("us"))]))  # the SQL path's, as before


FLAT_CATALOGUE = [pytest.param(e, id=e.name) for e in CATALOGUE]


@pytest.mark.parametrize("entry", FLAT_CATALOGUE)
def test_every_flat_catalogue_type_is_spelled_as_the_row_wise_encoder_does(
    entry: Any,
    catalogue_source: Any,
    tmp_path: Path,
) -> None:
    from syncer.config import TableConfig

    table = TableConfig(name=entry.table, source=entry.table, primary_key=["k"])
    try:
        schema = catalogue_source.schema(table)
    except Exception as exc:
        pytest.skip(f"the source refuses it: {exc}")
    if not jsonl_lines.supported(schema):
        pytest.skip("not a flat type of jsonl_lines (the SQL or row-wise path spells it)")
    batches = list(catalogue_source.stream(table, schema, 1000))
    batch = pa.Table.from_batches(batches, schema).combine_chunks().to_batches()[0]
    if jsonl_lines.encode(batch) is None:  # declined (a control character, a year past 9999): SQL spells it
        return
    assert_arrow_lines(batch, tmp_path)
