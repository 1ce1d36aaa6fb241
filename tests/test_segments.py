"""Parquet tables written in segments: a file's footer is held in memory until it is written
(~0.9 KB a column chunk with pyarrow, twice that while it is written), so a table whose parts would
hold more than ``FILE_CHUNKS`` column chunks each goes on in new files, ``part-SSSSS-PPPPP.parquet``.

Every reader gives every row back: ours in source order (segment by segment, row groups dealt
round-robin within one), pandas / polars / DuckDB reading the folder in name order; the manifest
lists every file; verify, carry-over hard links and the duplicate-key rewrite cover them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import syncer
import syncer._memory as memory
from syncer._memory import groups_per_file, needs_segments
from syncer.formats import count_rows, file_schema, iter_batches, open_writer, parquet_files, parquet_layout, read_file
from syncer.formats.parquet import parquet_segments
from syncer.volume.layout import Volume
from tests.test_formats import ROWS, SCHEMA, assert_same_table
from tests.test_parts import numbered


def write(path: Path, table: pa.Table, *, parts: int, row_group_rows: int, segmented: bool = True, batch_rows: int = 7):
    writer = open_writer("parquet", path, table.schema, row_group_rows=row_group_rows, parts=parts, segmented=segmented)
    for batch in table.to_batches(max_chunksize=batch_rows):
        writer.write(batch)
    return writer.close()


@pytest.mark.parametrize("parts", [1, 2, 3])
def test_a_segmented_table_rolls_to_a_new_file_every_few_row_groups_and_reads_back_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parts: int
) -> None:
    monkeypatch.setattr(memory, "FILE_CHUNKS", 8)  # 2 columns: 4 row groups a file
    table = numbered(1_000)
    assert groups_per_file(table.schema) == 4
    path = tmp_path / "t"
    written = write(path, table, parts=parts, row_group_rows=64)
    groups = -(-1_000 // 64)  # 16 row groups, the last one short
    files = parquet_files(path)
    # segment s holds row groups [4 s parts, 4 (s + 1) parts), each part its 4, dealt round-robin
    per_segment = 4 * parts
    expected = sorted(
        {f"part-{g // per_segment:05d}-{(g % per_segment) % parts:05d}.parquet" for g in range(groups)},
    )
    assert [f.name for f in files] == expected
    for g in range(groups):
        s, i = divmod(g, per_segment)
        f = path / f"part-{s:05d}-{i % parts:05d}.parquet"
        ids = pq.ParquetFile(f).read_row_group(i // parts, columns=["id"])["id"].to_pylist()
        assert ids == list(range(64 * g, min(64 * g + 64, 1_000)))
    assert all(pq.ParquetFile(f).metadata.num_row_groups <= 4 for f in files)
    # our readers: every row in source order
    assert read_file("parquet", path, table.schema).equals(table)
    assert pa.Table.from_batches(list(iter_batches("parquet", path, table.schema))).equals(table)
    assert read_file("parquet", path, table.schema, ["label"]).equals(table.select(["label"]))
    assert count_rows("parquet", path, table.schema) == 1_000
    assert file_schema("parquet", path).equals(table.schema)
    assert parquet_layout(path) == (parts, True)
    assert all(len(s) == parts for s in parquet_segments(path)[:-1])
    # the written file lists every file, sized and hashed, in name order
    assert [p.name for p in written.parts] == expected
    assert sum(p.rows for p in written.parts) == written.rows == 1_000
    for p in written.parts:
        assert p.bytes == (path / p.name).stat().st_size
        assert p.rows == pq.ParquetFile(path / p.name).metadata.num_rows
    assert syncer.formats.parts_digest(written.parts) == written.sha256
    # other readers get every row (in name order; with one part that is source order)
    import pandas as pd
    import polars as pl

    got_pd = pd.read_parquet(path)
    got_duck = duckdb.sql(f"SELECT id FROM read_parquet('{path}/*.parquet')").to_arrow_table()
    got_pl = pl.read_parquet(f"{path}/*.parquet")
    for ids in (got_pd["id"].tolist(), got_duck["id"].to_pylist(), got_pl["id"].to_list()):
        assert sorted(ids) == list(range(1_000))
        if parts == 1:
            assert ids == list(range(1_000))


def test_every_type_survives_segments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "FILE_CHUNKS", 3 * memory.leaf_columns(SCHEMA))  # 3 row groups a file
    table = pa.Table.from_pylist(ROWS * 40, schema=SCHEMA)
    path = tmp_path / "t"
    write(path, table, parts=2, row_group_rows=11, batch_rows=5)
    assert len(parquet_segments(path)) > 2
    assert_same_table(read_file("parquet", path, SCHEMA), table)
    assert_same_table(pa.Table.from_batches(list(iter_batches("parquet", path, SCHEMA)), SCHEMA), table)


def test_a_table_that_fits_is_written_as_before(tmp_path: Path) -> None:
    table = numbered(1_000)
    assert not needs_segments(table.schema, 1_000, 64, 2)
    written = write(tmp_path / "t", table, parts=2, row_group_rows=64, segmented=False)
    assert [p.name for p in written.parts] == ["part-00000.parquet", "part-00001.parquet"]
    assert parquet_layout(tmp_path / "t") == (2, False)
    one = write(tmp_path / "one.parquet", table, parts=1, row_group_rows=64, segmented=False)
    assert one.parts == () and one.path.is_file() and parquet_layout(one.path) == (1, False)


def test_which_tables_are_segmented() -> None:
    wide = pa.schema([(f"c{i}", pa.int64()) for i in range(300)])  # 27 row groups a file
    narrow = pa.schema([(f"c{i}", pa.int64()) for i in range(8)])  # 1,024
    assert groups_per_file(wide) == 8192 // 300 and groups_per_file(narrow) == 1024
    # the matrix's wide table: 1M rows in row groups of ~2,700 rows (368 of them) in one part
    assert needs_segments(wide, 1_000_000, 2_700, 1)
    assert not needs_segments(wide, 20_000, 2_700, 1)
    # 20M narrow rows in row groups of 131,072 on two parts: 77 each, far from 1,024
    assert not needs_segments(narrow, 20_000_000, 131_072, 2)
    assert needs_segments(narrow, 200_000_000, 131_072, 2)


# --- through a sync -------------------------------------------------------------------------------------

COLUMNS = 200  # 40 row groups a file
ROWS_WIDE = 6_000


@pytest.fixture
def wide(tmp_path: Path, make_config) -> syncer.Config:
    db = tmp_path / "wide.duckdb"
    cols = ", ".join(f"(i * {c}) % 1009 AS c{c}" if c % 2 else f"'s' || ((i + {c}) % 31) AS c{c}" for c in range(1, COLUMNS))
    with duckdb.connect(str(db)) as con:
        con.execute(f"CREATE TABLE wide AS SELECT i AS id, {cols} FROM range({ROWS_WIDE}) t(i)")
    tables = '\n[[tables]]\nname = "wide"\nsource = "wide"\nprimary_key = ["id"]\nmax_bad_rows = 10\n'
    # row groups of 50 rows, two parts: 60 row groups a part, 40 a file
    return make_config(db=db, tables=tables, extra="row_group_rows = 50\nwriters = 2\n")


def test_a_wide_tall_table_is_published_in_segments_and_every_check_covers_them(wide: syncer.Config) -> None:
    report = syncer.sync(wide)
    assert report["status"] == "ok", report.get("error")
    vol = Volume(wide.root)
    entry = vol.current_manifest()["tables"]["wide"]
    assert entry["file"] == "wide" and all(c["ok"] for c in entry["checks"]), entry["checks"]
    names = [p["name"] for p in entry["parts"]]
    assert names == [
        "part-00000-00000.parquet",
        "part-00000-00001.parquet",
        "part-00001-00000.parquet",
        "part-00001-00001.parquet",
    ]
    folder = vol.snapshot_dir(vol.current_id()) / "wide"
    assert all(pq.ParquetFile(folder / n).metadata.num_row_groups <= 40 for n in names)
    with duckdb.connect(str(wide.source.path), read_only=True) as con:
        source = con.sql("SELECT * FROM wide").to_arrow_table()
    got = syncer.read_table("wide", config=wide, as_arrow=True)
    assert got["id"].to_pylist() == list(range(ROWS_WIDE)) and got.equals(source.cast(got.schema))
    assert syncer.verify(wide)["ok"]
    # synced again unchanged: the next snapshot holds the same files, hard-linked
    first = vol.current_id()
    again = syncer.sync(wide)
    assert again["status"] == "ok" and vol.current_id() != first
    a, b = vol.snapshot_dir(first) / "wide", vol.snapshot_dir(vol.current_id()) / "wide"
    assert sorted(os.listdir(a)) == sorted(os.listdir(b)) == names
    assert all((a / n).stat().st_ino == (b / n).stat().st_ino for n in names)
    assert syncer.verify(wide)["ok"]


def test_duplicate_keys_in_a_segmented_table_are_quarantined_and_the_segments_rewritten(wide: syncer.Config) -> None:
    with duckdb.connect(str(wide.source.path)) as con:
        con.execute("INSERT INTO wide SELECT * FROM wide WHERE id IN (3, 5_500)")
    report = syncer.sync(wide)
    assert report["status"] == "ok", report.get("error")
    entry = Volume(wide.root).current_manifest()["tables"]["wide"]
    assert entry["quarantine"]["rows"] == 4
    assert entry["parts"][0]["name"] == "part-00000-00000.parquet" and len(entry["parts"]) == 4
    with pytest.warns(syncer.QuarantinedRowsWarning):
        got = syncer.read_table("wide", config=wide, as_arrow=True)
    assert got["id"].to_pylist() == [i for i in range(ROWS_WIDE) if i not in (3, 5_500)]
    assert syncer.verify(wide)["ok"]


_FOOTER = """
import sys, pyarrow as pa
from syncer.formats import open_writer
segmented = sys.argv[2] == "1"
table = pa.table({f"c{i}": pa.array(range(200), pa.int64()) for i in range(300)})
w = open_writer("parquet", __import__("pathlib").Path(sys.argv[1]), table.schema, row_group_rows=200, parts=1, segmented=segmented)
def peak():  # VmHWM: this process's own (ru_maxrss carries a parent's peak across fork + exec)
    return int([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1])
before = peak()
for _ in range(400):  # 400 row groups x 300 columns: 120,000 column chunks
    w.write(table.to_batches()[0])
w.close()
print((peak() - before) // 1024)
"""


@pytest.mark.slow
def test_a_segmented_writer_holds_a_bounded_footer_where_one_file_grows_with_the_table(tmp_path: Path) -> None:
    """Peak RSS growth of a process writing 400 row groups of 300 columns (the OS's figure):
    measured 211 MiB in one file, 21 in segments."""

    def grown(segmented: bool) -> int:
        out = tmp_path / ("seg" if segmented else "one.parquet")
        run = subprocess.run([sys.executable, "-c", _FOOTER, str(out), "1" if segmented else "0"], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        return int(run.stdout.strip())

    one, seg = grown(False), grown(True)
    assert one > 120, f"one file's footer: {one} MiB"  # ~0.9 KB a chunk, ~1.8 KB while it is written
    assert seg < 60 and seg < one / 3, (seg, one)
