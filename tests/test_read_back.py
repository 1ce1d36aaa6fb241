"""A CSV file read back while it is written (syncer.formats.text_encoders) is the closed file's
parse: on every type of the catalogue and on generated batches of many shapes, in batches small
enough that the file is many ranges. (JSONL parses its closed file: docs/performance.md.)"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from syncer.formats import open_writer, reread_batches, unsupported_columns
from syncer.validate.profile import ProfileAccumulator, profile_differences
from tests.catalogue import CATALOGUE
from tests.test_jsonl_sql import _random_batch, same


def _assert_read_back_is_the_closed_parse(fmt: str, schema: pa.Schema, batches: list[pa.RecordBatch], path: Path) -> bool:
    """Write ``batches``; the read-back's rows and profile are the closed file's re-read's, and the
    writer's parse of the whole body gives the re-read's values. False: the format parses this
    schema once closed (no read-back)."""
    writer = open_writer(fmt, path, schema)
    written_profile = ProfileAccumulator(schema)
    for b in batches:
        writer.write(b)
        written_profile.update(b)
    written = writer.close()
    rb = written.read_back
    if rb is None:
        return False
    assert rb.error is None, rb.error
    closed = ProfileAccumulator(schema)
    reread = list(reread_batches(fmt, path, schema))
    for b in reread:
        closed.update(b)
    rows = sum(b.num_rows for b in batches)
    assert rb.rows == closed.rows == rows
    assert profile_differences(closed.result(), rb.acc.result(), schema) == []
    assert profile_differences(written_profile.result(), rb.acc.result(), schema) == []
    # the same parse over the whole body, one range: value for value the re-read's
    head = len(writer.head)  # type: ignore[attr-defined]
    body = pa.OSFile(str(path))
    size = path.stat().st_size - head  # (a range is never empty: an empty body is no range)
    again = list(writer.parse(lambda: body.get_stream(head, size))) if size else []  # type: ignore[attr-defined]
    want = pa.Table.from_batches(reread, schema)
    got = pa.Table.from_batches(again, schema)
    assert got.num_rows == want.num_rows
    for name in schema.names:
        for i, (x, y) in enumerate(zip(got.column(name).to_pylist(), want.column(name).to_pylist(), strict=True)):
            assert same(x, y), (name, i, x, y)
    return True


@pytest.mark.parametrize("fmt", ["csv"])
@pytest.mark.parametrize("entry", [pytest.param(e, id=e.name) for e in CATALOGUE])
def test_every_catalogue_type_reads_back_as_the_closed_file_parses(
    entry: Any, fmt: str, catalogue_source: Any, tmp_path: Path
) -> None:
    from syncer.config import TableConfig

    table = TableConfig(name=entry.table, source=entry.table, primary_key=["k"])
    try:
        schema = catalogue_source.schema(table)
    except Exception as exc:  # refused by the source: not the writer's business
        pytest.skip(f"the source refuses it: {exc}")
    if unsupported_columns(fmt, schema):
        pytest.skip(f"{fmt} refuses the type")
    batches = list(catalogue_source.stream(table, schema, 3))  # ranges of 3 rows: many of them
    if not _assert_read_back_is_the_closed_parse(fmt, schema, batches, tmp_path / f"t.{fmt}"):
        pytest.skip(f"{fmt} parses this schema once the file is closed")


@pytest.mark.parametrize("fmt", ["csv"])
@pytest.mark.parametrize("seed", range(16))
def test_generated_tables_read_back_as_the_closed_file_parses(seed: int, fmt: str, tmp_path: Path) -> None:
    """Random columns of the generated batch (every kind of text, float, time, decimal, bytes),
    random row counts and batch sizes from one row up, the empty table too."""
    r = random.Random(seed)
    full = _random_batch(seed, rows=r.choice([0, 1, 7, 300, 2_000]))
    names = [n for n in full.schema.names if not pa.types.is_nested(full.schema.field(n).type)]  # CSV holds none
    keep = sorted(r.sample(names, r.randint(1, len(names))), key=names.index)
    batch = full.select(keep)
    size = r.choice([1, 5, 64, 1_000])
    batches = [batch.slice(i, size) for i in range(0, batch.num_rows, size)] or [batch]
    read_back = _assert_read_back_is_the_closed_parse(fmt, batch.schema, batches, tmp_path / f"t.{fmt}")
    assert read_back  # CSV reads back every table of fewer than 150 columns


def test_a_wide_csv_table_parses_its_closed_file_and_a_change_to_it_fails_reopen(tmp_path: Path) -> None:
    """From READ_BACK_COLUMNS columns on, the writer reads nothing back (memory): the re-open check
    parses the closed file, so a value changed on disk after the close is a failed ``reopen``."""
    from syncer.config import TableConfig
    from syncer.export.quarantine import Quarantine
    from syncer.formats.csv import READ_BACK_COLUMNS
    from syncer.validate.checks import Evidence, validate_table
    from syncer.validate.keys import DupResult

    for columns in (READ_BACK_COLUMNS - 1, READ_BACK_COLUMNS):
        schema = pa.schema([(f"c{i:03d}", pa.int64()) for i in range(columns)])
        batch = pa.record_batch([pa.array([i, i + 1000]) for i in range(columns)], schema=schema)
        path = tmp_path / f"w{columns}.csv"
        writer = open_writer("csv", path, schema)
        writer.write(batch)
        acc = ProfileAccumulator(schema)
        acc.update(batch)
        written = writer.close()
        assert (written.read_back is None) is (columns >= READ_BACK_COLUMNS)
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("\n1000,", "\n1009,"), encoding="utf-8")  # same size, c000's max changed
        table = TableConfig("w", source="w", primary_key=("c000",), format="csv")
        ev = Evidence(table, schema, 2, acc.result(), acc, DupResult(), Quarantine(tmp_path / "q", table), written, None, False)
        checks = {c.name: c for c in validate_table(ev)}
        assert checks["sha256"].ok  # the size did not change
        # read back while written: the change came after; parsed once closed: it is seen
        assert checks["reopen"].ok is (columns < READ_BACK_COLUMNS), checks["reopen"].detail
