"""File formats: every type the engine handles survives write → read exactly, in every format."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from syncer.config import FORMATS as CONFIGURED
from syncer.formats import FORMATS as REGISTRY
from syncer.formats import (
    Format,
    conform,
    count_rows,
    iter_batches,
    open_writer,
    read_file,
    schema_from_b64,
    schema_to_b64,
    sha256_file,
)
from syncer.validate.profile import JSON_META

FORMATS = [pytest.param(fmt, id=fmt) for fmt in ("parquet", "csv", "jsonl", "arrow")]
UTC = dt.UTC

SCHEMA = pa.schema(
    [
        pa.field("i64", pa.int64()),
        pa.field("i32", pa.int32()),
        pa.field("dec_small", pa.decimal128(5, 2)),
        pa.field("dec_wide", pa.decimal128(38, 10)),
        pa.field("f64", pa.float64()),
        pa.field("flag", pa.bool_()),
        pa.field("text", pa.string()),
        pa.field("intl", pa.string()),
        pa.field("doc", pa.string(), metadata=JSON_META),
        pa.field("day", pa.date32()),
        pa.field("ts", pa.timestamp("us")),
        pa.field("ts_utc", pa.timestamp("us", tz="UTC")),
    ]
)

ROWS = [
    {
        "i64": 2**63 - 1,
        "i32": 2**31 - 1,
        "dec_small": Decimal("999.99"),
        "dec_wide": Decimal("9999999999999999999999999999.9999999999"),
        "f64": 1.5,
        "flag": True,
        "text": "",  # empty string, not null
        "intl": "héllo wörld 😀👩‍👩‍👧",
        "doc": '{"a": [1, "x", null], "b": {"c": 1.5}}',
        "day": dt.date(1, 1, 1),
        "ts": dt.datetime(1, 1, 1, 0, 0, 0),
        "ts_utc": dt.datetime(1970, 1, 1, tzinfo=UTC),
    },
    {
        "i64": -(2**63),
        "i32": -(2**31),
        "dec_small": Decimal("-999.99"),
        "dec_wide": Decimal("-9999999999999999999999999999.9999999999"),
        "f64": float("nan"),
        "flag": False,
        "text": 'comma, "quote"\nnewline',
        "intl": "مرحبا بالعالم שלום",  # right-to-left
        "doc": "null",
        "day": dt.date(9999, 12, 31),
        "ts": dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
        "ts_utc": dt.datetime(2024, 2, 29, 12, 30, 0, 1, tzinfo=UTC),
    },
    {
        "i64": 0,
        "i32": 0,
        "dec_small": Decimal("0.01"),
        "dec_wide": Decimal("0.0000000001"),
        "f64": float("inf"),
        "flag": None,
        "text": None,  # null, not empty string
        "intl": "",
        "doc": '"just a string"',
        "day": dt.date(2000, 2, 29),
        "ts": dt.datetime(2000, 1, 1, 12, 0, 0, 123456),
        "ts_utc": dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    },
    {
        "i64": 42,
        "i32": -7,
        "dec_small": Decimal("-0.01"),
        "dec_wide": Decimal("1.5"),
        "f64": float("-inf"),
        "flag": True,
        "text": "null",  # the word, not a null
        "intl": "NA",
        "doc": "{}",
        "day": dt.date(1970, 1, 1),
        "ts": dt.datetime(1970, 1, 1),
        "ts_utc": dt.datetime(1, 1, 1, tzinfo=UTC),
    },
    {
        "i64": None,
        "i32": None,
        "dec_small": None,
        "dec_wide": None,
        "f64": None,
        "flag": None,
        "text": None,
        "intl": None,
        "doc": None,
        "day": None,
        "ts": None,
        "ts_utc": None,
    },
    {
        "i64": 1,
        "i32": 1,
        "dec_small": Decimal("0.00"),
        "dec_wide": Decimal("-0.0000000001"),
        "f64": -0.0,
        "flag": False,
        "text": " ",
        "intl": "nan",
        "doc": "[]",
        "day": dt.date(1969, 12, 31),
        "ts": dt.datetime(1969, 12, 31, 23, 59, 59, 999999),
        "ts_utc": dt.datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),
    },
    {
        "i64": -1,
        "i32": None,
        "dec_small": Decimal("123.45"),
        "dec_wide": None,
        "f64": 1e-308,
        "flag": None,
        "text": "NULL",
        "intl": None,
        "doc": None,
        "day": None,
        "ts": None,
        "ts_utc": None,
    },
]


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return pa.Table.from_pylist(ROWS, schema=SCHEMA)


def _write(fmt: str, path: Path, table: pa.Table, batch_rows: int = 2):
    writer = open_writer(fmt, path, table.schema, row_group_rows=3)
    for batch in table.to_batches(max_chunksize=batch_rows):
        writer.write(batch)
    return writer.close()


def _float_key(value: float | None) -> str | None:
    # repr keeps the sign of -0.0; NaN compares equal to NaN here (Arrow's equals says NaN != NaN).
    if value is None:
        return None
    return "NaN" if math.isnan(value) else repr(value)


def assert_same_table(got: pa.Table, expected: pa.Table) -> None:
    assert got.schema.equals(expected.schema, check_metadata=True), f"{got.schema}\n!=\n{expected.schema}"
    assert got.num_rows == expected.num_rows
    for field in expected.schema:
        if pa.types.is_floating(field.type):
            assert [_float_key(v) for v in got[field.name].to_pylist()] == [
                _float_key(v) for v in expected[field.name].to_pylist()
            ], field.name
        else:
            assert got[field.name].equals(expected[field.name]), (
                f"{field.name}: {got[field.name].to_pylist()} != {expected[field.name].to_pylist()}"
            )
    floats = [f.name for f in expected.schema if pa.types.is_floating(f.type)]
    assert got.drop_columns(floats).equals(expected.drop_columns(floats), check_metadata=True)


@pytest.mark.parametrize("fmt", FORMATS)
def test_read_file_round_trips_every_type(fmt, table, tmp_path):
    path = tmp_path / f"t.{fmt}"
    _write(fmt, path, table)
    assert_same_table(read_file(fmt, path, SCHEMA), table)


@pytest.mark.parametrize("fmt", FORMATS)
def test_iter_batches_round_trips_every_type(fmt, table, tmp_path):
    path = tmp_path / f"t.{fmt}"
    _write(fmt, path, table)
    batches = list(iter_batches(fmt, path, SCHEMA))
    assert all(b.schema.equals(SCHEMA, check_metadata=True) for b in batches)
    assert_same_table(pa.Table.from_batches(batches, SCHEMA), table)


def test_fixture_table_holds_nan_and_negative_zero(table):
    # Guards the helper: Arrow's own equals is blind to NaN, so the float column is compared by repr.
    f64 = table["f64"].to_pylist()
    assert math.isnan(f64[1]) and math.copysign(1.0, f64[5]) == -1.0


@pytest.mark.parametrize("fmt", FORMATS)
def test_written_file_reports_its_sha256_and_size(fmt, table, tmp_path):
    path = tmp_path / f"t.{fmt}"
    written = _write(fmt, path, table)
    assert written.path == path
    assert written.sha256 == sha256_file(path)
    assert written.bytes == path.stat().st_size > 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_written_file_reports_its_rows(fmt, table, tmp_path):
    assert _write(fmt, tmp_path / f"t.{fmt}", table, batch_rows=3).rows == table.num_rows == len(ROWS)


@pytest.mark.parametrize("fmt", FORMATS)
def test_count_rows_matches_rows_written(fmt, table, tmp_path):
    path = tmp_path / f"t.{fmt}"
    _write(fmt, path, table, batch_rows=3)
    assert count_rows(fmt, path, SCHEMA) == table.num_rows == len(ROWS)


@pytest.mark.parametrize("fmt", FORMATS)
def test_iter_batches_with_columns_returns_only_those(fmt, table, tmp_path):
    path = tmp_path / f"t.{fmt}"
    _write(fmt, path, table)
    columns = ["doc", "i64", "ts_utc"]
    got = pa.Table.from_batches(list(iter_batches(fmt, path, SCHEMA, columns=columns)))
    assert got.schema.names == columns
    assert got.schema.field("doc").metadata == JSON_META
    assert_same_table(got, table.select(columns))


@pytest.mark.parametrize("fmt", FORMATS)
def test_read_file_with_columns_returns_only_those(fmt, table, tmp_path):
    path = tmp_path / f"t.{fmt}"
    _write(fmt, path, table)
    columns = ["f64", "dec_wide"]
    assert_same_table(read_file(fmt, path, SCHEMA, columns=columns), table.select(columns))


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_table_writes_a_readable_file(fmt, tmp_path):
    path = tmp_path / f"empty.{fmt}"
    written = open_writer(fmt, path, SCHEMA).close()  # no batches at all
    assert path.exists()
    assert written.sha256 == sha256_file(path)
    assert written.bytes == path.stat().st_size
    got = read_file(fmt, path, SCHEMA)
    assert got.num_rows == 0
    assert got.schema.equals(SCHEMA, check_metadata=True)
    assert count_rows(fmt, path, SCHEMA) == 0
    assert sum(b.num_rows for b in iter_batches(fmt, path, SCHEMA)) == 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_open_writer_refuses_to_overwrite(fmt, tmp_path):
    path = tmp_path / f"t.{fmt}"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        open_writer(fmt, path, SCHEMA)
    assert path.read_bytes() == b"precious"


def test_open_writer_rejects_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="unknown format 'xlsx'"):
        open_writer("xlsx", tmp_path / "t.xlsx", SCHEMA)
    assert not (tmp_path / "t.xlsx").exists()


def test_every_configured_format_is_registered_under_its_name():
    assert set(REGISTRY) == set(CONFIGURED)
    assert all(isinstance(f, Format) and f.name == name for name, f in REGISTRY.items())


def test_conform_casts_int32_to_int64_and_attaches_metadata():
    batch = pa.RecordBatch.from_pydict(
        {"id": pa.array([1, None, -(2**31)], pa.int32()), "doc": pa.array(['{"a": 1}', None, "[]"])}
    )
    target = pa.schema([pa.field("id", pa.int64()), pa.field("doc", pa.string(), metadata=JSON_META)])
    out = conform(batch, target)
    assert out.schema.equals(target, check_metadata=True)
    assert out.column("id").type == pa.int64()
    assert out.column("id").to_pylist() == [1, None, -(2**31)]
    assert out.schema.field("doc").metadata == JSON_META


def test_conform_attaches_metadata_when_types_already_match():
    batch = pa.RecordBatch.from_pydict({"doc": pa.array(["{}"])})
    target = pa.schema([pa.field("doc", pa.string(), metadata=JSON_META)])
    assert conform(batch, target).schema.equals(target, check_metadata=True)


def test_conform_refuses_a_lossy_cast():
    batch = pa.RecordBatch.from_pydict({"id": pa.array([2**40], pa.int64())})
    with pytest.raises(pa.ArrowInvalid):
        conform(batch, pa.schema([pa.field("id", pa.int32())]))


def test_schema_b64_round_trips_with_metadata():
    schema = SCHEMA.with_metadata({b"syncer.table": b"participants"})
    text = schema_to_b64(schema)
    assert text.isascii()
    back = schema_from_b64(text)
    assert back.equals(schema, check_metadata=True)
    assert back.field("doc").metadata == JSON_META
    assert back.metadata == {b"syncer.table": b"participants"}


def test_csv_carries_binary_values_as_base64_and_reads_them_back(tmp_path: Path) -> None:
    schema = pa.schema([("id", pa.int64()), ("blob", pa.binary())])
    table = pa.table({"id": [1, 2, 3], "blob": [b"\xff\x00\xfe", None, b""]}, schema=schema)
    w = open_writer("csv", tmp_path / "t.csv", schema)
    for b in table.to_batches():
        w.write(b)
    w.close()
    assert "/wD+" in (tmp_path / "t.csv").read_text()  # base64 of ff 00 fe
    assert read_file("csv", tmp_path / "t.csv", schema).equals(table)


def test_the_arrow_writer_hands_no_bytes_to_python_and_hashes_the_whole_file(tmp_path: Path) -> None:
    """Arrow IPC goes to a native file and is hashed from the page cache: no Python sink is called
    per chunk (through one, the writer thread waited for the GIL most of its time), the sha256 and
    size are the file's, and no descriptor is left open."""
    import hashlib
    import os
    import sys

    schema = pa.schema([pa.field("id", pa.int64()), pa.field("s", pa.string())])
    batch = pa.record_batch([pa.array(range(200_000)), pa.array([f"value {i:09d}" for i in range(200_000)])], schema=schema)
    fds = len(os.listdir("/proc/self/fd"))
    calls: list[str] = []

    def spy(frame, event, arg):  # type: ignore[no-untyped-def]
        if event == "call" and frame.f_code.co_filename.endswith("files.py"):
            calls.append(frame.f_code.co_name)

    writer = open_writer("arrow", tmp_path / "t.arrow", schema)
    sys.setprofile(spy)
    try:
        for _ in range(5):
            writer.write(batch)  # ~18 MB: more than one hash chunk and one 8 MiB Python-sink buffer
    finally:
        sys.setprofile(None)
    written = writer.close()
    data = (tmp_path / "t.arrow").read_bytes()
    assert calls == []
    assert written.bytes == len(data) and written.sha256 == hashlib.sha256(data).hexdigest() and written.rows == 1_000_000
    assert len(os.listdir("/proc/self/fd")) == fds
    aborted = open_writer("arrow", tmp_path / "u.arrow", schema)
    aborted.write(batch)
    aborted.abort()
    assert len(os.listdir("/proc/self/fd")) == fds
