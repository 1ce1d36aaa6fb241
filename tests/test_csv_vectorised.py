"""The vectorised CSV writer (decimals and binary spelled by DuckDB) writes the very bytes of the row-wise one."""

from __future__ import annotations

import decimal
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from syncer.formats.csv import ARROW, CsvTableWriter, _fits, _spelling
from tests.catalogue import CATALOGUE

D = decimal.Decimal


def written(batches: list[pa.RecordBatch], schema: pa.Schema, path: Path, *, vectorised: bool, lines: bool = False) -> bytes:
    w = CsvTableWriter(path, schema, vectorised=vectorised, lines_always=lines)
    for b in batches:
        w.write(b)
    w.close()
    return path.read_bytes()


def assert_same_bytes(batches: list[pa.RecordBatch], schema: pa.Schema, tmp: Path) -> None:
    """The row-wise writer's bytes = the vectorised writer's, with its own choice of lines and with
    csv_lines wherever it can build them."""
    want = written(batches, schema, tmp / "row-wise.csv", vectorised=False)
    assert written(batches, schema, tmp / "vectorised-lines.csv", vectorised=True, lines=True) == want
    assert written(batches, schema, tmp / "vectorised.csv", vectorised=True) == want


@pytest.mark.parametrize("entry", [pytest.param(e, id=e.name) for e in CATALOGUE])
def test_every_catalogue_table_is_written_byte_for_byte_as_the_row_wise_writer_does(
    entry: Any, catalogue_source: Any, tmp_path: Path
) -> None:
    from syncer.config import TableConfig
    from syncer.formats.csv import CsvFormat

    table = TableConfig(name=entry.table, source=entry.table, primary_key=("k",))
    try:
        schema = catalogue_source.schema(table)
    except Exception as exc:  # refused by the source (UHUGEINT, TIMETZ ...): not the writer's business
        pytest.skip(f"the source refuses it: {exc}")
    if CsvFormat().unsupported_columns(schema):
        pytest.skip("CSV refuses the type (nested, dictionary, interval)")
    batches = list(catalogue_source.stream(table, schema, 2))  # several batches: the header once
    assert batches
    assert_same_bytes(batches, schema, tmp_path)


def _decimals(rng: random.Random, p: int, s: int, n: int) -> list[Any]:
    out: list[Any] = []
    for _ in range(n):
        r = rng.random()
        if r < 0.1:
            out.append(None)
            continue
        digits = rng.choice([1, p]) if r < 0.3 else rng.randint(1, p)
        unscaled = rng.randint(-(10**digits - 1), 10**digits - 1)
        out.append(D(unscaled).scaleb(-s))
    return out


def _binary(rng: random.Random, n: int) -> list[Any]:
    return [None if rng.random() < 0.1 else rng.randbytes(rng.randint(0, 40)) for _ in range(n)]


@pytest.mark.parametrize("seed", range(6))
def test_generated_batches_of_decimals_and_binary_are_written_the_same(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    arrays, names = [], []
    for k, (p, s) in enumerate([(12, 2), (18, 10), (38, 0), (38, 37), (38, 38), (1, 0), (9, 9), (4, 1), (60, 5)]):
        t = pa.decimal256(p, s) if p > 38 else pa.decimal128(p, s)
        arrays.append(pa.array(_decimals(rng, p, s, 400), t))
        names.append(f"d{k}")
    for k, t in enumerate([pa.binary(), pa.large_binary()]):
        arrays.append(pa.array(_binary(rng, 400), t))
        names.append(f"b{k}")
    arrays.append(pa.array([None if rng.random() < 0.2 else rng.randbytes(3) for _ in range(400)], pa.binary(3)))
    names.append("fixed")
    arrays.append(pa.array([rng.choice(['a"b', "x,y", "", None, "line\nbreak"]) for _ in range(400)]))
    names.append("text")
    table = pa.table(arrays, names=names)
    batches = table.slice(0, 150).to_batches() + table.slice(150).to_batches(max_chunksize=97)
    assert_same_bytes(batches, table.schema, tmp_path)


def test_an_all_null_and_an_empty_batch_are_written_the_same(tmp_path: Path) -> None:
    schema = pa.schema([("d", pa.decimal128(10, 3)), ("b", pa.binary())])
    nulls = pa.record_batch([pa.array([None, None], schema[0].type), pa.array([None, None], pa.binary())], schema=schema)
    empty = pa.record_batch([pa.array([], schema[0].type), pa.array([], pa.binary())], schema=schema)
    assert_same_bytes([empty, nulls, empty], schema, tmp_path)
    assert (tmp_path / "vectorised.csv").read_text() == '"d","b"\n\\N,\\N\n\\N,\\N\n'


@pytest.mark.parametrize(
    ("t", "how"),
    [
        pytest.param(pa.decimal128(12, 2), ARROW, id="decimal128-scale-2"),
        pytest.param(pa.decimal128(6, 6), ARROW, id="decimal128-6-6"),
        pytest.param(pa.decimal256(60, 5), ARROW, id="decimal256-scale-5"),
        pytest.param(pa.decimal128(38, 37), "duckdb", id="decimal128-38-37"),
        pytest.param(pa.decimal128(9, 9), None, id="precision-equals-scale-past-6"),  # DuckDB: ".1" for 0.1
        pytest.param(pa.decimal256(60, 7), None, id="decimal256-scale-7"),
        pytest.param(pa.binary(), "duckdb", id="binary"),
        pytest.param(pa.large_binary(), "duckdb", id="large_binary"),
        pytest.param(pa.binary(4), None, id="fixed_size_binary"),
    ],
)
def test_which_columns_arrow_or_duckdb_spell(t: pa.DataType, how: str | None) -> None:
    got = _spelling(pa.field("v", t))
    assert (got if got in (ARROW, None) else "duckdb") == how


def test_a_hugeint_past_38_digits_does_not_go_to_duckdb() -> None:
    t = pa.decimal128(38, 10)
    assert _fits(pa.array([D(10**38 - 1).scaleb(-10, decimal.Context(prec=100))], t))
    wide = pa.array([D(10**38).scaleb(-10, decimal.Context(prec=100))], pa.decimal256(39, 10))
    past = wide.cast(t, safe=False)  # 39 digits in decimal128(38, 10): what a HUGEINT column can hold
    assert past.cast(wide.type).equals(wide)
    assert not _fits(past)


def _plain_columns(rng: random.Random, n: int) -> dict[str, pa.Array]:
    floats = [0.0, -0.0, 1.5, -2.25e-300, 5e-324, 1e300, 0.1, 1 / 3, float("nan"), float("inf"), float("-inf"), 123456789.0]
    texts = ['a"b', "x,y", "", "line\nbreak", "cr\r\nlf", "ünï©ødé", '"', "\\N", "NULL", " lead", "trail "]
    micros = [rng.randint(-(2**50), 2**50) for _ in range(n)]

    def maybe(values: list[Any]) -> list[Any]:
        return [None if rng.random() < 0.1 else v for v in values]

    cols: dict[str, pa.Array] = {
        "i64": pa.array(maybe([rng.randint(-(2**63), 2**63 - 1) for _ in range(n)]), pa.int64()),
        "u64": pa.array(maybe([rng.randint(0, 2**64 - 1) for _ in range(n)]), pa.uint64()),
        "i8": pa.array(maybe([rng.randint(-128, 127) for _ in range(n)]), pa.int8()),
        "f64": pa.array(maybe([rng.choice(floats) * rng.choice([1, -1, 7.1]) for _ in range(n)]), pa.float64()),
        "f32": pa.array(maybe([rng.choice(floats) for _ in range(n)]), pa.float32()),
        "flag": pa.array(maybe([rng.random() < 0.5 for _ in range(n)]), pa.bool_()),
        "day": pa.array(maybe([rng.randint(-700000, 2900000) for _ in range(n)]), pa.int32()).cast(pa.date32()),
        "t_us": pa.array(maybe([m % 86_400_000_000 for m in micros]), pa.int64()).cast(pa.time64("us")),
        "t_ms": pa.array(maybe([m % 86_400_000 for m in micros]), pa.int32()).cast(pa.time32("ms")),
        'quote"d, name': pa.array(maybe([rng.choice(texts) for _ in range(n)]), pa.string()),
        "big_text": pa.array(maybe([rng.choice(texts) * rng.randint(0, 3) for _ in range(n)]), pa.large_string()),
    }
    # instants from year 1 to 9999 (what the sources hand over; nanoseconds: what int64 holds)
    span = {"s": (-62135596800, 253402300799), "ms": (-62135596800000, 253402300799999)}
    span |= {"us": (span["ms"][0] * 1000, span["ms"][1] * 1000), "ns": (-(2**63) + 1, 2**63 - 1)}
    for unit, (lo, hi) in span.items():
        values = maybe([rng.randint(lo, hi) if rng.random() < 0.5 else rng.randint(-(10**9), 10**9) for _ in range(n)])
        for tz in (None, "UTC"):
            cols[f"ts_{unit}_{tz}"] = pa.array(values, pa.int64()).cast(pa.timestamp(unit, tz))
    return cols


@pytest.mark.parametrize("seed", range(4))
def test_generated_batches_of_every_plain_type_are_written_the_same(seed: int, tmp_path: Path) -> None:
    from syncer.formats.csv_lines import supported

    rng = random.Random(seed)
    cols = _plain_columns(rng, 500)
    cols["amount"] = pa.array(_decimals(rng, 12, 2, 500), pa.decimal128(12, 2))  # spelled, then quoted
    table = pa.table(cols)
    assert supported(pa.schema([f.with_type(pa.string()) if f.name == "amount" else f for f in table.schema]))
    batches = table.slice(0, 1).to_batches() + table.slice(1, 0).to_batches() + table.slice(1).to_batches(max_chunksize=211)
    assert_same_bytes(batches, table.schema, tmp_path)


@pytest.mark.parametrize(
    "t",
    [
        pytest.param(pa.timestamp("us", "America/New_York"), id="zone"),
        pytest.param(pa.timestamp("ms", "+02:00"), id="offset"),
        pytest.param(pa.duration("s"), id="duration"),
        pytest.param(pa.null(), id="null"),
    ],
)
def test_a_schema_the_lines_do_not_cover_goes_to_pyarrow_whole_and_writes_the_same(t: pa.DataType, tmp_path: Path) -> None:
    from syncer.formats.csv_lines import supported

    schema = pa.schema([pa.field("id", pa.int64()), pa.field("v", t)])
    assert not supported(schema)
    values = pa.array([None, None, None], pa.null()) if t == pa.null() else pa.array([0, None, 1_600_000_000], pa.int64()).cast(t)
    batch = pa.record_batch([pa.array([1, 2, 3]), values], schema=schema)
    assert_same_bytes([batch], schema, tmp_path)


def test_the_lines_are_built_where_they_beat_pyarrow_s_writer() -> None:
    from syncer.formats.csv_lines import faster

    utc = pa.field("at", pa.timestamp("us", "UTC"))
    orders = pa.schema([pa.field(f"c{i}", pa.int64()) for i in range(8)] + [utc])
    wide = pa.schema([pa.field(f"c{i}", pa.string()) for i in range(299)] + [utc])
    assert faster(orders) and not faster(wide)
    assert not faster(pa.schema([pa.field("at", pa.timestamp("us", "Europe/Paris"))]))  # not covered at all


_NO_PANDAS = """
import sys
from pathlib import Path
import pyarrow.parquet as pq
from syncer.formats.csv import CsvTableWriter
batch = pq.ParquetFile(sys.argv[1]).read().combine_chunks().to_batches()[0]  # (pa.array() would import pandas)
w = CsvTableWriter(Path(sys.argv[2]), batch.schema, lines_always=True)
w.write(batch)
w.close()
print("pandas" in sys.modules)
"""


def test_the_lines_do_not_import_pandas(tmp_path: Path) -> None:
    # pa.scalar("...") converts a Python object: pyarrow's first such conversion imports pandas
    import subprocess
    import sys

    import pyarrow.parquet as pq

    ts = pa.array([0, None, 1_600_000_000_000_000], pa.int64()).cast(pa.timestamp("us", "UTC"))
    d = pa.array([D("123.45"), None, D("-0.05")], pa.decimal128(12, 2))
    pq.write_table(pa.table([ts, pa.array(["a", None, 'q"uote']), d], names=["at", "s", "d"]), tmp_path / "in.parquet")
    out = tmp_path / "t.csv"
    proc = subprocess.run(
        [sys.executable, "-c", _NO_PANDAS, str(tmp_path / "in.parquet"), str(out)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
    assert out.read_text().splitlines()[1:] == [
        '1970-01-01 00:00:00.000000Z,"a","123.45"',
        "\\N,\\N,\\N",
        '2020-09-13 12:26:40.000000Z,"q""uote","-0.05"',
    ]
