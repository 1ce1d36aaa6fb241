"""Big Parquet tables written as part files encoded in parallel, and min/max taken from footers.

Row groups are dealt round-robin to ``<table>/part-NNNNN.parquet``; every reader gives the rows back
in source order; the manifest lists each part with its size and sha256, and every check (verify,
carry-over hard links, unexpected files, permissions) covers the parts.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import syncer
from syncer import ConfigError, load_config
from syncer.config import TableConfig
from syncer.export.table import _ranges_from_footer
from syncer.formats import (
    WrittenFile,
    count_rows,
    file_schema,
    iter_batches,
    open_writer,
    parquet_files,
    parquet_ranges,
    parts_digest,
    read_file,
    sha256_file,
)
from syncer.formats import parquet as parquet_format
from syncer.validate.profile import ProfileAccumulator
from syncer.volume.layout import Volume
from tests.conftest import DEFAULT_TABLES, DEMO_ROWS, write_config
from tests.test_engine import unconstrain
from tests.test_formats import ROWS, SCHEMA, assert_same_table

# 5,000 enrollments in row groups of 400 rows: 13 row groups, the last one short, dealt to 2 parts.
PARTED = "row_group_rows = 400\nwriters = 2\n"


def numbered(n: int) -> pa.Table:
    return pa.table({"id": pa.array(range(n), pa.int64()), "label": pa.array([f"row {i}" for i in range(n)])})


def write_parts(path: Path, table: pa.Table, *, parts: int, row_group_rows: int, batch_rows: int = 7) -> WrittenFile:
    writer = open_writer("parquet", path, table.schema, row_group_rows=row_group_rows, parts=parts)
    for batch in table.to_batches(max_chunksize=batch_rows):
        writer.write(batch)
    return writer.close()


# --- the writer and the readers ---------------------------------------------------------------------


@pytest.mark.parametrize("parts", [2, 3])
def test_row_groups_are_dealt_round_robin_and_read_back_in_source_order(tmp_path: Path, parts: int) -> None:
    table = numbered(1_000)
    path = tmp_path / "t"
    written = write_parts(path, table, parts=parts, row_group_rows=64)
    files = parquet_files(path)
    assert [f.name for f in files] == [f"part-{i:05d}.parquet" for i in range(parts)]
    # row group g holds ids [64 g, 64 g + 64) and lives in part g % parts
    for g in range(-(-1_000 // 64)):
        pf = pq.ParquetFile(files[g % parts])
        ids = pf.read_row_group(g // parts, columns=["id"])["id"].to_pylist()
        assert ids == list(range(64 * g, min(64 * g + 64, 1_000)))
    assert read_file("parquet", path, table.schema).equals(table)
    assert pa.Table.from_batches(list(iter_batches("parquet", path, table.schema))).equals(table)
    assert read_file("parquet", path, table.schema, ["label"]).equals(table.select(["label"]))
    assert count_rows("parquet", path, table.schema) == 1_000
    assert file_schema("parquet", path).equals(table.schema)
    assert written.path == path and len(written.parts) == parts
    assert sum(p.rows for p in written.parts) == 1_000
    assert written.rows == 1_000


@pytest.mark.parametrize("task_rows", [1, 40, None], ids=["a-task-a-row-group", "runs-of-row-groups", "one-task"])
@pytest.mark.parametrize("parts", [1, 2, 3])
def test_row_groups_read_on_one_pool_come_back_in_source_order_with_any_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parts: int, task_rows: int | None
) -> None:
    """read_table reads the row groups of every part as tasks of one pool (a row group, or a run
    of small ones): the order of the rows and of the columns asked for is the source's however
    the tasks are cut and finish."""
    if task_rows is not None:
        monkeypatch.setattr(parquet_format, "READ_TASK_ROWS", task_rows)
    table = pa.Table.from_pylist(ROWS * 60, schema=SCHEMA)
    path = tmp_path / "t"
    write_parts(path, table, parts=parts, row_group_rows=13, batch_rows=6)
    assert sum(pq.ParquetFile(f).num_row_groups for f in parquet_files(path)) == -(-table.num_rows // 13)
    for _ in range(3):  # a race in the pool would show as rows out of order in one of the reads
        assert_same_table(read_file("parquet", path, SCHEMA), table)
    cols = [SCHEMA.names[-1], SCHEMA.names[0]]
    assert_same_table(read_file("parquet", path, SCHEMA, cols), table.select(cols))


def test_an_empty_parted_table_reads_back_as_no_rows_of_its_schema(tmp_path: Path) -> None:
    empty = numbered(0)
    path = tmp_path / "t"
    write_parts(path, empty, parts=2, row_group_rows=100)
    got = read_file("parquet", path, empty.schema)
    assert got.num_rows == 0 and got.schema.equals(empty.schema)


def test_each_part_is_listed_with_its_size_and_sha256_and_the_table_digest_covers_them(tmp_path: Path) -> None:
    path = tmp_path / "t"
    written = write_parts(path, numbered(500), parts=2, row_group_rows=50)
    for part in written.parts:
        f = path / part.name
        assert part.sha256 == sha256_file(f) and part.bytes == f.stat().st_size
    listing = "".join(f"{sha256_file(f)}  {f.name}\n" for f in parquet_files(path))
    assert written.sha256 == hashlib.sha256(listing.encode()).hexdigest() == parts_digest(written.parts)
    assert written.bytes == sum(f.stat().st_size for f in parquet_files(path))


def test_every_type_survives_parts(tmp_path: Path) -> None:
    table = pa.Table.from_pylist(ROWS * 40, schema=SCHEMA)
    path = tmp_path / "t"
    write_parts(path, table, parts=3, row_group_rows=11, batch_rows=5)
    assert_same_table(read_file("parquet", path, SCHEMA), table)
    assert_same_table(pa.Table.from_batches(list(iter_batches("parquet", path, SCHEMA)), SCHEMA), table)


def test_parts_that_get_no_row_group_are_still_valid_files(tmp_path: Path) -> None:
    path = tmp_path / "t"
    written = write_parts(path, numbered(10), parts=3, row_group_rows=100)
    assert [p.rows for p in written.parts] == [10, 0, 0]
    assert all(pq.ParquetFile(f).metadata.num_rows == r for f, r in zip(parquet_files(path), (10, 0, 0), strict=True))
    assert read_file("parquet", path, numbered(10).schema).equals(numbered(10))


def test_a_parted_writer_refuses_an_existing_folder(tmp_path: Path) -> None:
    path = tmp_path / "t"
    path.mkdir()
    (path / "keep").write_text("precious")
    with pytest.raises(FileExistsError):
        open_writer("parquet", path, SCHEMA, parts=2)
    assert (path / "keep").read_text() == "precious"


def test_a_folder_without_parts_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no part-\*\.parquet files"):
        read_file("parquet", tmp_path / "t", SCHEMA)


# --- min/max from the footer ----------------------------------------------------------------------------


def footer_and_computed(table: pa.Table, path: Path, batch_rows: int = 5) -> tuple[ProfileAccumulator, ProfileAccumulator]:
    """The profile of ``table`` with min/max from the footers at ``path``, and the one computed in full."""
    acc = ProfileAccumulator(table.schema, footer_ranges=True)
    full = ProfileAccumulator(table.schema)
    for b in table.to_batches(max_chunksize=batch_rows):
        acc.update(b)
        full.update(b)
    assert acc.deferred and acc.result() != full.result()  # nothing filled in yet
    _ranges_from_footer(acc, TableConfig(name="t"), table.schema, WrittenFile(path, 0, ""))
    return acc, full


def test_footer_ranges_equal_arrow_min_max_for_every_deferred_type(tmp_path: Path) -> None:
    table = pa.Table.from_pylist(ROWS * 3, schema=SCHEMA)
    path = tmp_path / "t"
    write_parts(path, table, parts=2, row_group_rows=4, batch_rows=3)
    acc, full = footer_and_computed(table, path)
    deferred = {SCHEMA.field(i).name for i in acc.deferred}
    assert {"dec_small", "dec_wide", "f64", "text", "intl", "day", "ts", "ts_utc"} <= deferred
    assert "doc" not in deferred  # JSON text has no min/max at all
    assert acc.result() == full.result()


def test_a_column_without_footer_statistics_is_computed_from_the_written_data(tmp_path: Path) -> None:
    table = pa.Table.from_pylist(ROWS * 3, schema=SCHEMA)
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, write_statistics=["i64"], row_group_size=4)  # no statistics for the others
    ranges = parquet_ranges(path, ["text", "dec_small"])
    assert ranges == {"text": None, "dec_small": None}
    acc, full = footer_and_computed(table, path)
    assert acc.result() == full.result()


def test_all_null_row_groups_and_nan_only_columns_in_footer_ranges(tmp_path: Path) -> None:
    schema = pa.schema([("f", pa.float64()), ("s", pa.string())])
    table = pa.table({"f": [None, None, float("nan"), 2.5, -0.0, None], "s": [None, None, "b", "a", None, None]}, schema=schema)
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=2)
    acc, full = footer_and_computed(table, path, batch_rows=6)
    assert acc.result() == full.result()
    assert acc.result()["columns"]["f"] == {"nulls": 3, "nans": 1, "min": -0.0, "max": 2.5, "sum": 2.5}


# --- config ---------------------------------------------------------------------------------------------


def test_writers_setting(tmp_path: Path, demo_db: Path) -> None:
    cfg = load_config(write_config(tmp_path / "a", demo_db, extra="row_group_rows = 1000\nwriters = 3\n"))
    assert cfg.writers == 3
    assert [cfg.parquet_parts(n) for n in (100, 3_999, 4_000, 5_999, 6_000, 10**9)] == [1, 1, 2, 2, 3, 3]
    one = load_config(write_config(tmp_path / "b", demo_db, extra="writers = 1\n"))
    assert one.parquet_parts(10**9) == 1
    auto = load_config(write_config(tmp_path / "c", demo_db, extra='writers = "auto"\n'))
    assert auto.writers == 0 and auto.parquet_parts(10**9) == min(os.cpu_count() or 1, 4)
    for bad in ("0", "-1", "true", '"many"', "2.5", "65"):
        with pytest.raises(ConfigError, match=r"\[export\] writers must be \"auto\" or a whole number"):
            load_config(write_config(tmp_path / "d", demo_db, extra=f"writers = {bad}\n"))


# --- through the engine -------------------------------------------------------------------------------


@pytest.fixture
def parted(make_config) -> syncer.Config:
    return make_config(extra=PARTED)


def test_a_big_table_is_published_as_parts_and_read_back_in_source_order(parted: syncer.Config, demo_db: Path) -> None:
    report = syncer.sync(parted)
    assert report["status"] == "ok", report.get("error")
    vol = Volume(parted.root)
    man = vol.current_manifest()
    entry = man["tables"]["enrollments"]
    assert entry["file"] == "enrollments" and all(c["ok"] for c in entry["checks"]), entry["checks"]
    assert [p["name"] for p in entry["parts"]] == ["part-00000.parquet", "part-00001.parquet"]
    assert sum(p["rows"] for p in entry["parts"]) == entry["rows"] == DEMO_ROWS
    assert entry["sha256"] == parts_digest(entry["parts"]) and entry["bytes"] == sum(p["bytes"] for p in entry["parts"])
    # small tables stay one file
    assert man["tables"]["courses"]["file"] == "courses.parquet" and "parts" not in man["tables"]["courses"]
    folder = vol.snapshot_dir(man["id"]) / "enrollments"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o555
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o444 for f in folder.iterdir())
    got = syncer.read_table("enrollments", config=parted, as_arrow=True)
    con = duckdb.connect(str(demo_db), read_only=True)
    source = con.sql("SELECT * FROM enrollments").to_arrow_table()
    assert got.num_rows == DEMO_ROWS
    assert got["enrollment_id"].to_pylist() == source["enrollment_id"].to_pylist()
    assert got.equals(source.cast(got.schema)), "every value, in source order"
    assert syncer.verify(parted)["ok"]


def test_parts_are_hard_linked_into_the_next_snapshot_when_the_table_is_not_synced(parted: syncer.Config) -> None:
    first = syncer.sync(parted)
    second = syncer.sync(parted, ["participants"])
    vol = Volume(parted.root)
    a = vol.snapshot_dir(first["snapshot_id"]) / "enrollments"
    b = vol.snapshot_dir(second["snapshot_id"]) / "enrollments"
    assert sorted(os.listdir(a)) == sorted(os.listdir(b)) == ["part-00000.parquet", "part-00001.parquet"]
    for name in os.listdir(a):
        assert (a / name).stat().st_ino == (b / name).stat().st_ino
    assert syncer.verify(parted)["ok"]


def test_verify_names_a_modified_missing_or_added_part(parted: syncer.Config) -> None:
    syncer.sync(parted)
    vol = Volume(parted.root)
    folder = vol.snapshot_dir(vol.current_id()) / "enrollments"
    os.chmod(folder, 0o755)
    part = folder / "part-00001.parquet"
    os.chmod(part, 0o644)
    data = bytearray(part.read_bytes())
    data[100] ^= 0xFF  # same size, different bytes
    part.write_bytes(bytes(data))
    report = syncer.verify(parted)
    assert not report["ok"]
    assert any("part-00001.parquet" in p and "modified" in p for p in report["problems"]), report["problems"]
    (folder / "part-00002.parquet").write_bytes(b"stray")
    report = syncer.verify(parted)
    assert any("enrollments/part-00002.parquet is not listed" in p for p in report["problems"]), report["problems"]
    (folder / "part-00000.parquet").unlink()
    report = syncer.verify(parted)
    assert any("part-00000.parquet is missing" in p for p in report["problems"]), report["problems"]


def test_rollback_and_reader_fallback_work_with_parts(parted: syncer.Config) -> None:
    first = syncer.sync(parted)
    second = syncer.sync(parted)
    syncer.rollback(parted, first["snapshot_id"])
    assert Volume(parted.root).current_id() == first["snapshot_id"] != second["snapshot_id"]
    assert len(syncer.read_table("enrollments", config=parted)) == DEMO_ROWS


def test_duplicate_keys_in_a_parted_table_are_quarantined_and_the_parts_rewritten(make_config, warehouse: Path) -> None:
    tables = DEFAULT_TABLES.replace(
        'not_null = ["participant_id", "course_id"]', 'not_null = ["participant_id", "course_id"]\nmax_bad_rows = 10'
    )
    cfg = make_config(db=warehouse, tables=tables, extra=PARTED)
    unconstrain(warehouse, "enrollments", "INSERT INTO enrollments SELECT * FROM enrollments WHERE enrollment_id IN (7, 4001)")
    report = syncer.sync(cfg)
    assert report["status"] == "ok", report.get("error")
    entry = Volume(cfg.root).current_manifest()["tables"]["enrollments"]
    assert entry["quarantine"]["rows"] == 4 and len(entry["parts"]) == 2
    assert all(c["ok"] for c in entry["checks"]), entry["checks"]
    with pytest.warns(syncer.QuarantinedRowsWarning):
        df = syncer.read_table("enrollments", config=cfg)
    assert len(df) == DEMO_ROWS - 2 and df["enrollment_id"].is_unique
    assert syncer.verify(cfg)["ok"]


def test_keys_out_of_order_in_parts_are_checked_by_a_scan_of_every_part(make_config, warehouse: Path) -> None:
    tables = """
[[tables]]
name = "enrollments"
query = "select * from enrollments order by enrollment_id desc"
primary_key = ["enrollment_id"]
"""
    cfg = make_config(db=warehouse, tables=tables, extra=PARTED)
    report = syncer.sync(cfg)
    assert report["status"] == "ok", report.get("error")
    entry = Volume(cfg.root).current_manifest()["tables"]["enrollments"]
    check = {c["name"]: c for c in entry["checks"]}["primary_key_unique"]
    assert check["ok"] and "strictly increasing" not in check["detail"]
    assert "parts" in entry
    # a duplicate in the second part only is found by the same scan
    unconstrain(warehouse, "enrollments", "INSERT INTO enrollments SELECT * FROM enrollments WHERE enrollment_id = 3")
    before = Volume(cfg.root).current_id()
    report = syncer.sync(cfg)
    assert report["status"] != "ok" and report["snapshot_id"] is None  # the only table failed: nothing published
    assert "duplicate enrollment_id value(s) covering 2 rows" in str(report), report
    assert Volume(cfg.root).current_id() == before


def test_profile_from_footers_matches_the_source_for_every_demo_table(parted: syncer.Config) -> None:
    report = syncer.sync(parted)
    assert report["status"] == "ok", report.get("error")
    man = Volume(parted.root).current_manifest()
    for name, entry in man["tables"].items():
        prof = {c["name"]: c for c in entry["checks"]}["profile"]
        assert prof["ok"], (name, prof)
        table = syncer.read_table(name, config=parted, as_arrow=True)
        for col, stats in entry["profile"]["columns"].items():
            if "min" in stats and stats["min"] is not None and pa.types.is_string(table.schema.field(col).type):
                assert stats["min"] == pc.min(table[col]).as_py() and stats["max"] == pc.max(table[col]).as_py()
