"""The vectorised CSV writer (decimals and binary spelled by DuckDB) writes the very bytes of the row-wise one."""

from __future__ import annotations

import decimal
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from syncer.formats.csv import ARROW, CsvTableWriter, _fits, _spelling
from syncer.sources.duckdb import DuckDBSource
from tests.catalogue import CATALOGUE, build_catalogue

D = decimal.Decimal


def written(batches: list[pa.RecordBatch], schema: pa.Schema, path: Path, *, vectorised: bool) -> bytes:
    w = CsvTableWriter(path, schema, vectorised=vectorised)
    for b in batches:
        w.write(b)
    w.close()
    return path.read_bytes()


def assert_same_bytes(batches: list[pa.RecordBatch], schema: pa.Schema, tmp: Path) -> None:
    want = written(batches, schema, tmp / "row-wise.csv", vectorised=False)
    got = written(batches, schema, tmp / "vectorised.csv", vectorised=True)
    assert got == want


@pytest.fixture(scope="module")
def catalogue_source(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from syncer.config import SourceConfig

    src = DuckDBSource(SourceConfig(kind="duckdb", path=build_catalogue(tmp_path_factory.mktemp("cat") / "c.duckdb")))
    yield src
    src.close()


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
