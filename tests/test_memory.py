"""The export's memory budget: sizes, the container's limit, batch rows by bytes, DuckDB's cache."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import syncer
from syncer import ConfigError, load_config
from syncer._memory import (
    TABLE_BATCHES_HELD,
    batch_rows_for,
    container_limit,
    duckdb_limit_for,
    memory_ceiling,
    parse_size,
    row_bytes,
)
from syncer.export.table import sized_for
from syncer.formats import get_format
from syncer.sources.duckdb import DuckDBSource
from syncer.volume.layout import Volume

GIB = 2**30


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("16MB", 16 * 10**6),
        ("512MiB", 512 * 2**20),
        ("2GB", 2 * 10**9),
        ("1.5GiB", int(1.5 * GIB)),
        ("4096", 4096),
        (" 8 kb ", 8000),
    ],
)
def test_sizes_in_duckdbs_units(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "lots", "16 parsecs", "-1MB", "0", "1e9"])
def test_a_size_that_is_not_one_says_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match="MB"):
        parse_size(text)


def _fake(tmp_path: Path, own: str, limits: dict[str, str], mem_total_kib: int = 24 * 2**20) -> tuple[Path, Path]:
    cg, proc = tmp_path / "cgroup", tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text(own)
    (proc / "meminfo").write_text(f"MemTotal:       {mem_total_kib} kB\nMemFree:  1 kB\n")
    for rel, value in limits.items():
        (cg / rel).parent.mkdir(parents=True, exist_ok=True)
        (cg / rel).write_text(value + "\n")
    cg.mkdir(exist_ok=True)
    return cg, proc


def test_cgroup_v2_limit_of_a_parent_bounds_the_container(tmp_path: Path) -> None:
    cg, proc = _fake(
        tmp_path, "0::/kubepods/pod1/ctr\n", {"kubepods/pod1/ctr/memory.max": "max", "kubepods/pod1/memory.max": str(4 * GIB)}
    )
    assert container_limit(cg, proc) == 4 * GIB


def test_cgroup_v2_inside_a_namespace_reads_the_root_file(tmp_path: Path) -> None:
    cg, proc = _fake(tmp_path, "0::/\n", {"memory.max": str(3 * GIB)})
    assert container_limit(cg, proc) == 3 * GIB


def test_cgroup_v1_memory_controller(tmp_path: Path) -> None:
    own = "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n"
    cg, proc = _fake(tmp_path, own, {"memory/docker/abc/memory.limit_in_bytes": str(2 * GIB)})
    assert container_limit(cg, proc) == 2 * GIB


def test_no_limit_means_the_machines_ram(tmp_path: Path) -> None:
    unlimited = str(9223372036854771712)  # what cgroup v1 writes for "no limit"
    cg, proc = _fake(tmp_path, "4:memory:/x\n", {"memory/x/memory.limit_in_bytes": unlimited}, mem_total_kib=8 * 2**20)
    assert container_limit(cg, proc) == 8 * GIB


def test_this_machine_has_a_limit_no_larger_than_its_ram() -> None:
    total = (
        int(next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")).split()[1])
        * 1024
    )
    assert 0 < container_limit() <= total


def _wide(columns: int) -> pa.Schema:
    kinds = [pa.int64(), pa.float64(), pa.string()]
    return pa.schema([pa.field(f"c{i}", kinds[i % 3]) for i in range(columns)])


def test_batches_are_sized_by_bytes_not_rows() -> None:
    narrow, wide = _wide(8), _wide(300)
    target = 16 * 2**20
    assert batch_rows_for(narrow, target, 32768) == 32768  # the configured rows bound a narrow table
    rows = batch_rows_for(wide, target, 32768)
    assert 1 <= rows < 32768
    assert rows * row_bytes(wide) <= target  # a 300-column batch stays near the target
    assert batch_rows_for(wide, 1, 32768) == 1  # a row wider than the target: one row, not a floor of rows
    assert batch_rows_for(wide, 8 * MIB, 32768, width=4 * MIB) == 2  # 4 MiB strings: two a batch


def test_nested_and_dictionary_columns_have_a_width() -> None:
    schema = pa.schema(
        [
            ("l", pa.list_(pa.int32())),
            ("s", pa.struct([("a", pa.int64()), ("b", pa.string())])),
            ("d", pa.dictionary(pa.int8(), pa.string())),
            ("m", pa.map_(pa.string(), pa.int64())),
        ]
    )
    assert row_bytes(schema) > row_bytes(pa.schema([("x", pa.int64())]))


@pytest.mark.parametrize(("kind", "columns"), [("int", 300), ("dbl", 150), ("str", 300), ("int", 8)])
def test_the_derived_limit_lets_duckdb_scan_the_table(tmp_path: Path, kind: str, columns: int) -> None:
    expr = {"int": "(i * {c}) % 100003", "dbl": "((i + {c}) * 0.5) % 977", "str": "'v' || ((i + {c}) % 97)::VARCHAR"}[kind]
    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as con:
        cols = ", ".join(expr.format(c=c) + f" AS c{c}" for c in range(columns))
        con.execute(f"CREATE TABLE t AS SELECT {cols} FROM range(40000) t(i)")
    with duckdb.connect(str(db), read_only=True, config={"threads": 1}) as con:
        schema = con.sql("SELECT * FROM t LIMIT 0").to_arrow_table().schema
        limit = duckdb_limit_for(schema, ceiling=4 * GIB)
        con.execute(f"SET memory_limit = '{limit}B'")
        rows = sum(b.num_rows for b in con.sql("SELECT * FROM t").to_arrow_reader(batch_rows_for(schema, 16 * 2**20, 32768)))
    assert rows == 40000
    assert limit <= (24 if columns < 10 else 300) * 2**20  # what the shape needs, not a big constant


def test_the_limit_never_exceeds_the_ceiling() -> None:
    assert duckdb_limit_for(_wide(3000), ceiling=64 * 2**20) == 64 * 2**20


# --- the budget wired into the config, the source and the export -----------------------------------------

MIB = 2**20


def _cgroup(tmp_path: Path, limit: int) -> Path:
    """A real folder read as the cgroup file system, holding a ``memory.max`` of ``limit`` bytes."""
    root = tmp_path / "cgroup"
    root.mkdir(parents=True, exist_ok=True)
    (root / "memory.max").write_text(f"{limit}\n")
    return root


def test_the_ceiling_is_half_the_container_after_the_process_needs() -> None:
    assert memory_ceiling(16 * MIB, limit=4 * GIB) == (4 * GIB - 160 * MIB - 12 * 16 * MIB) // 2
    assert memory_ceiling(8 * MIB, limit=4 * GIB) == 1920 * MIB  # SPCS's spec, the default batch
    assert memory_ceiling(1 * MIB, limit=200 * MIB) == 14 * MIB
    assert memory_ceiling(16 * MIB, limit=100 * MIB) == 8 * MIB  # never below what DuckDB can run in


def test_the_ceiling_reads_the_cgroup_root_the_environment_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCER_CGROUP_ROOT", str(_cgroup(tmp_path, 1 * GIB)))
    assert memory_ceiling(16 * MIB) == (GIB - 160 * MIB - 12 * 16 * MIB) // 2


def _config(tmp_path: Path, db: Path, tables: str, *, source: str = "", export: str = "") -> Path:
    folder = tmp_path / "cfg"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sync.toml"
    path.write_text(
        f'[source]\nkind = "duckdb"\npath = "{db}"\n{source}\n[volume]\nroot = "data"\nretain = 3\n\n[export]\n{export}\n{tables}',
        encoding="utf-8",
    )
    return path


TABLE_T = '\n[[tables]]\nname = "t"\nsource = "t"\nprimary_key = ["c0"]\n'


def test_memory_limit_is_auto_and_batch_bytes_8_mib_by_default(tmp_path: Path) -> None:
    cfg = load_config(_config(tmp_path, tmp_path / "w.duckdb", TABLE_T))
    assert cfg.source.memory_limit == "auto" and cfg.batch_bytes == 8 * MIB
    assert cfg.source.memory_ceiling == memory_ceiling(8 * MIB) > 0


@pytest.mark.parametrize(("value", "size"), [('"8MiB"', 8 * MIB), ("4194304", 4 * MIB), ('"1GiB"', GIB), ('"2 MB"', 2 * 10**6)])
def test_batch_bytes_takes_a_size_or_bytes(tmp_path: Path, value: str, size: int) -> None:
    assert load_config(_config(tmp_path, tmp_path / "w.duckdb", TABLE_T, export=f"batch_bytes = {value}")).batch_bytes == size


@pytest.mark.parametrize("value", ['"lots"', "0", '"512KiB"', '"2GiB"', "true", "1.5"])
def test_a_bad_batch_bytes_is_one_line_with_the_range(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"\[export\] batch_bytes must be a size from 1 MiB to 1 GiB") as err:
        load_config(_config(tmp_path, tmp_path / "w.duckdb", TABLE_T, export=f"batch_bytes = {value}"))
    assert "\n" not in str(err.value)


def test_an_explicit_limit_above_the_ceiling_is_refused_at_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCER_CGROUP_ROOT", str(_cgroup(tmp_path, 1 * GIB)))
    path = _config(tmp_path, tmp_path / "w.duckdb", TABLE_T, source='memory_limit = "2GB"')
    with pytest.raises(ConfigError, match=r"memory_limit = '2GB' is above this container's ceiling of 384 MiB") as err:
        load_config(path)
    assert "\n" not in str(err.value) and 'memory_limit = "auto"' in str(err.value)
    # below the ceiling it stands, and the source uses it as it is
    path = _config(tmp_path, tmp_path / "w.duckdb", TABLE_T, source='memory_limit = "300MB"')
    assert load_config(path).source.memory_limit == "300MB"


def _warehouse(path: Path, tables: dict[str, tuple[int, int]]) -> Path:
    """Tables of ``columns`` columns (int, double and short strings in turn) by ``rows`` rows."""
    kinds = ["(i * {c}) % 100003", "((i + {c}) * 0.5) % 977", "'v' || ((i + {c}) % 97)::VARCHAR"]
    with duckdb.connect(str(path)) as con:
        for name, (columns, rows) in tables.items():
            cols = ["i AS c0"] + [kinds[c % 3].format(c=c) + f" AS c{c}" for c in range(1, columns)]
            con.execute(f"CREATE TABLE {name} AS SELECT {', '.join(cols)} FROM range({rows}) t(i)")
    return path


def _tables(*names: str) -> str:
    return "".join(f'\n[[tables]]\nname = "{n}"\nsource = "{n}"\nprimary_key = ["c0"]\n' for n in names)


def test_a_wide_table_gets_fewer_rows_per_batch_and_row_group_and_more_duckdb_memory(tmp_path: Path) -> None:
    db = _warehouse(tmp_path / "w.duckdb", {"narrow": (8, 60_000), "wide": (300, 60_000)})
    cfg = load_config(_config(tmp_path, db, _tables("narrow", "wide"), export="batch_rows = 32768\nrow_group_rows = 131072"))
    with DuckDBSource(cfg.source) as src:
        sized = {}
        for name in ("narrow", "wide"):
            t = cfg.table(name)
            schema = src.schema(t)
            sized[name] = sized_for(src, t, schema, cfg, src.count(t))
            stream = src.stream(t, schema, sized[name].batch_rows)
            batches = [next(stream)]
            limit = src.con.cursor().execute("SELECT current_setting('memory_limit')").fetchall()[0][0]  # while it streams
            batches += list(stream)
            # and once it is done, the blocks the wide table's DuckDB cached are handed back: the limit is
            # the floor again; the narrow table's small limit is kept (setting it per table costs more)
            after = src.con.execute(
                "SELECT current_setting('memory_limit'), (SELECT sum(memory_usage_bytes) FROM duckdb_memory())"
            )
            kept, held = after.fetchall()[0]
            if name == "wide":
                assert parse_size(kept.replace(" ", "")) <= 17 * MIB and held <= 16 * MIB
            else:
                assert parse_size(kept.replace(" ", "")) == parse_size(limit.replace(" ", "")) < 48 * MIB
            assert max(b.num_rows for b in batches) == sized[name].batch_rows
            assert max(b.nbytes for b in batches) <= cfg.batch_bytes * 1.25  # the sample measured the strings
            sized[name] = (sized[name], parse_size(limit.replace(" ", "")))
    (narrow, narrow_limit), (wide, wide_limit) = sized["narrow"], sized["wide"]
    assert narrow.batch_rows == 32768 and narrow.row_group_rows >= 4 * 32768 // 2
    assert 1 <= wide.batch_rows < narrow.batch_rows // 4
    assert wide.row_group_rows == pytest.approx(2 * wide.batch_rows, rel=0.01)
    assert wide.row_group_rows < 131072
    assert 16 * MIB < narrow_limit < 40 * MIB < 100 * MIB < wide_limit < 200 * MIB  # 300 columns: 16 MiB + 364 blocks + a batch
    # and the written file holds row groups of that size (the writer got the per-table figure)
    report = syncer.sync(cfg)
    assert report["status"] == "ok", report.get("error")
    current = Volume(cfg.root).current
    files = [current / "wide.parquet"] if (current / "wide.parquet").exists() else sorted((current / "wide").glob("*.parquet"))
    groups = [pq.ParquetFile(f).metadata.row_group(i).num_rows for f in files for i in range(pq.ParquetFile(f).num_row_groups)]
    assert sum(groups) == 60_000 and max(groups) <= wide.row_group_rows


def test_a_wide_table_to_csv_or_jsonl_gets_smaller_batches_for_its_encoder_and_a_narrow_one_does_not(tmp_path: Path) -> None:
    # the text encoders hold several batches' worth while they spell one: the 300-column JSONL sync of
    # 1M rows peaked at 415-422 MiB with the batches Parquet gets (385-398 with these), a 250-column
    # CSV sync of 450k rows at 418-422 (390-397)
    db = _warehouse(tmp_path / "w.duckdb", {"narrow": (8, 20_000), "wide": (300, 20_000)})
    tables = "".join(
        f'\n[[tables]]\nname = "{n}_{f}"\nsource = "{n}"\nprimary_key = ["c0"]\nformat = "{f}"\n'
        for n in ("narrow", "wide")
        for f in ("parquet", "csv", "jsonl", "arrow")
    )
    cfg = load_config(_config(tmp_path, db, tables))
    rows = {}
    with DuckDBSource(cfg.source) as src:
        for t in cfg.tables:
            schema = src.schema(t)
            rows[t.name] = sized_for(src, t, schema, cfg, src.count(t)).batch_rows
    narrow = {rows[f"narrow_{f}"] for f in ("parquet", "csv", "jsonl", "arrow")}
    assert len(narrow) == 1  # 8 columns: every format keeps [export] batch_bytes
    wide = {f: rows[f"wide_{f}"] for f in ("parquet", "csv", "jsonl", "arrow")}
    assert wide["parquet"] == wide["arrow"] < min(narrow) // 4
    for fmt in ("csv", "jsonl"):
        held, extra = TABLE_BATCHES_HELD, get_format(fmt).encoder_batches
        assert extra > 0 and wide[fmt] == pytest.approx(wide["parquet"] * held / (held + extra), rel=0.02)
    # and such batches make the same table (the sync checks it against the source)
    report = syncer.sync(cfg)
    assert report["status"] == "ok", report.get("error")
    for fmt, header in (("csv", 1), ("jsonl", 0)):
        with (Volume(cfg.root).current / f"wide_{fmt}.{fmt}").open(encoding="utf-8") as lines:
            assert sum(1 for _ in lines) == 20_000 + header


def test_a_table_beyond_the_ceiling_fails_in_one_line_and_keeps_its_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = _warehouse(tmp_path / "w.duckdb", {"narrow": (8, 5000), "wide": (300, 5000)})
    path = _config(tmp_path, db, _tables("narrow", "wide"), export='batch_bytes = "1MiB"')
    first = syncer.sync(load_config(path))  # with this machine's memory: both fit
    assert first["status"] == "ok", first.get("error")
    # the same container with 200 MiB: DuckDB's ceiling is 14 MiB, and 300 columns need ~100
    monkeypatch.setenv("SYNCER_CGROUP_ROOT", str(_cgroup(tmp_path, 200 * MIB)))
    cfg = load_config(path)
    assert cfg.source.memory_ceiling == 14 * MIB
    report = syncer.sync(cfg, force=True)
    assert report["status"] == "partial"
    by_name = {t["table"]: t for t in report["tables"]}
    assert by_name["narrow"]["ok"] is True  # a narrow table runs in the ceiling
    wide = by_name["wide"]
    assert wide["ok"] is False and wide["status"] == "carried_over"
    message = wide["error"]
    assert "\n" not in message and "Traceback" not in message
    for words in (
        "table 'wide'",
        "ceiling of 14 MiB",
        "container memory 200 MiB",
        "Out of Memory",
        "give the container more memory",
        "lower [export] batch_bytes",
        "exclude_columns",
        "previous data is kept",
    ):
        assert words in message, (words, message)
    manifest = Volume(cfg.root).current_manifest()
    old = Volume.read_manifest(Volume(cfg.root).snapshot_dir(first["snapshot_id"]))
    assert manifest["tables"]["wide"]["sha256"] == old["tables"]["wide"]["sha256"]
    assert syncer.verify(cfg)["ok"]


#: runs the sync and reports its exit code and peak RSS from os.wait4. A process of its own, started
#: by this small one: a child's ru_maxrss counts the memory of the process it was forked from until
#: it execs (pytest's own, here hundreds of MB), so the parent of the sync must be small.
_WAIT4 = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(proc.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024)
"""


def _sync_process(config: Path, cgroup: Path) -> tuple[int, int, str]:
    """``syncer sync`` as a process of its own under the ``cgroup`` folder: (exit code, peak RSS in bytes, stderr)."""
    env = {**os.environ, "SYNCER_CGROUP_ROOT": str(cgroup), "SYNCER_LOG_FORMAT": "text"}
    argv = [sys.executable, "-c", _WAIT4, sys.executable, "-m", "syncer", "--config", str(config), "sync"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    code, peak = done.stdout.split()[-2:]
    return int(code), int(peak), done.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fmt", "container", "bound"),
    [
        # measured before batches and row groups were sized by bytes: 408, 581 and 400 MiB; after:
        # ~330, ~460 and ~300 MiB
        ("parquet", 512 * MIB, 384 * MIB),
        ("csv", 512 * MIB, 512 * MIB),
        ("arrow", 512 * MIB, 384 * MIB),
        # DuckDB parses the JSONL file back with ~1.2 MB per column (300: ~380 MB, whatever the
        # length of the file; before, the re-read grew with the file, past 10 GiB at 250k rows): it
        # needs a ceiling of that, so a container of 1,280 MiB
        ("jsonl", 1280 * MIB, 1280 * MIB),
    ],
)
def test_a_wide_table_syncs_inside_its_container(tmp_path: Path, fmt: str, container: int, bound: int) -> None:
    # 300 columns x 60k rows: ~190 MB of Arrow, ~240 MB as JSONL
    rows = 60_000
    db = _warehouse(tmp_path / "w.duckdb", {"wide": (300, rows)})
    tables = f'\n[[tables]]\nname = "wide"\nsource = "wide"\nprimary_key = ["c0"]\nformat = "{fmt}"\n'
    config = _config(tmp_path, db, tables)
    code, peak, err = _sync_process(config, _cgroup(tmp_path, container))
    assert code == 0, err
    assert peak < bound <= container, f"peak RSS {peak / MIB:.0f} MiB"
    assert Volume(tmp_path / "cfg" / "data").current_manifest()["tables"]["wide"]["rows"] == rows


def test_the_csv_reader_reads_a_row_longer_than_its_block_after_rows_it_gave(tmp_path: Path) -> None:
    # 4 MiB blocks bound the reader; a 6 MB value deep in the file reads it again with bigger blocks,
    # and the rows already given are not given twice
    from syncer.formats import iter_batches, open_writer

    n = 300_000  # ~10 MB of short rows, the long one after 8 MB of them
    ids = list(range(n))
    text = [f"row {i} " * 3 for i in ids]
    text[250_000] = "x" * (6 * 10**6)
    table = pa.table({"id": pa.array(ids, pa.int64()), "s": pa.array(text)})
    writer = open_writer("csv", tmp_path / "t.csv", table.schema, compression="none", row_group_rows=1000, parts=1)
    for b in table.to_batches(max_chunksize=50_000):
        writer.write(b)
    writer.close()
    batches = list(iter_batches("csv", tmp_path / "t.csv", table.schema))
    assert len(batches) > 2  # it was read in blocks, not in one
    got = pa.Table.from_batches(batches)
    assert got.column("id").to_pylist() == ids and got.column("s").to_pylist() == text


@pytest.mark.slow
def test_a_wide_jsonl_file_reads_back_in_bounded_duckdb_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 300 columns x 6000 lines. Reading each column with a json_extract of the whole line held
    # ~600 bytes per line and column until the query ended (> 1 GB here, growing with the file);
    # each line parsed once into its fields reads it inside a 452 MiB ceiling, at any length.
    from syncer.formats import open_writer, reread_batches

    db = _warehouse(tmp_path / "w.duckdb", {"wide": (300, 6000)})
    with duckdb.connect(str(db), read_only=True) as con:
        source = con.sql("SELECT * FROM wide ORDER BY c0").to_arrow_table()
    path = tmp_path / "wide.jsonl"
    writer = open_writer("jsonl", path, source.schema, compression="none", row_group_rows=1000, parts=1)
    for b in source.to_batches(max_chunksize=2000):
        writer.write(b)
    writer.close()
    monkeypatch.setenv("SYNCER_CGROUP_ROOT", str(_cgroup(tmp_path, 1160 * MIB)))
    assert memory_ceiling() == 452 * MIB
    got = pa.Table.from_batches(list(reread_batches("jsonl", path, source.schema)), source.schema)
    assert got.equals(source)
    # and a ceiling it cannot parse in is one line naming the ceiling and the way out
    monkeypatch.setenv("SYNCER_CGROUP_ROOT", str(_cgroup(tmp_path, 300 * MIB)))
    with pytest.raises(
        ValueError, match=r"wide\.jsonl cannot be parsed back inside this container's memory ceiling of 22 MiB"
    ) as err:
        list(reread_batches("jsonl", path, source.schema))
    assert "\n" not in str(err.value) and "give the container more memory" in str(err.value)


def test_the_snowflake_source_streams_a_wide_table_in_the_per_table_batches(tmp_path: Path) -> None:
    # Snowpark local testing: the same sizing (no sample there: the schema's estimate), and the
    # source's to_arrow_batches re-sliced to it
    from snowflake.snowpark import Session
    from snowflake.snowpark import types as T

    from syncer.config import SourceConfig, TableConfig
    from syncer.sources.snowflake import SnowflakeSource
    from syncer.sources.snowflake_connect import use_session_factory

    columns, rows = 120, 3000
    kinds = [T.LongType(), T.DoubleType(), T.StringType()]
    schema = T.StructType([T.StructField("ID", T.LongType())] + [T.StructField(f"C{c}", kinds[c % 3]) for c in range(1, columns)])
    values = [
        (i, *[(i * c if c % 3 == 0 else i + c / 2 if c % 3 == 1 else f"v{i % 97}") for c in range(1, columns)])
        for i in range(rows)
    ]
    session = Session.builder.config("local_testing", True).create()
    try:
        session.create_dataframe(values, schema=schema).write.save_as_table("WIDE", mode="overwrite")
        session.create_dataframe([(i, i * 2) for i in range(rows)], schema=["ID", "N"]).write.save_as_table(
            "NARROW", mode="overwrite"
        )
        cfg = dataclasses.replace(
            load_config(_config(tmp_path, tmp_path / "unused.duckdb", TABLE_T, export='batch_bytes = "1MiB"')),
            source=SourceConfig(kind="snowflake"),
        )
        got, schemas = {}, {}
        with use_session_factory(lambda: session), SnowflakeSource(cfg.source) as src:
            for name in ("wide", "narrow"):
                t = TableConfig(name=name, source=name, primary_key=("ID",))
                with src.pinned(t):
                    arrow = schemas[name] = src.schema(t)
                    sized = sized_for(src, t, arrow, cfg, src.count(t))
                    got[name] = (sized.batch_rows, [b.num_rows for b in src.stream(t, arrow, sized.batch_rows)])
    finally:
        session.close()
    assert got["narrow"] == (32768, [rows])
    wide_rows, wide_batches = got["wide"]
    assert wide_rows == 2**20 // row_bytes(schemas["wide"])  # 1 MiB over the schema's estimate of a row
    assert max(wide_batches) == wide_rows and sum(wide_batches) == rows


def test_the_engine_unload_stays_under_the_ceiling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the unload's own limit (DuckDB's Parquet writer buffers a row group per thread), given to the
    # child that runs the COPY, is capped by the ceiling too; the real COPY runs, the spy only records it
    import syncer.sources.duckdb as duckdb_source

    db = _warehouse(tmp_path / "w.duckdb", {"narrow": (8, 5000)})
    monkeypatch.setenv("SYNCER_CGROUP_ROOT", str(_cgroup(tmp_path, 400 * MIB)))
    cfg = load_config(_config(tmp_path, db, _tables("narrow")))
    ceiling = cfg.source.memory_ceiling
    assert ceiling == 72 * MIB
    seen: list[int] = []
    real = duckdb_source.run_copy

    def spy(*args: Any, **kwargs: Any) -> dict[str, Any]:
        seen.append(parse_size(kwargs["memory_limit"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(duckdb_source, "run_copy", spy)
    with DuckDBSource(cfg.source) as src:
        t = cfg.table("narrow")
        src.unload(t, src.schema(t), tmp_path / "out", compression="zstd", row_group_rows=1000)
    assert seen and max(seen) <= ceiling
    assert sum(1 for _ in (tmp_path / "out").glob("*.parquet")) >= 1


@pytest.mark.parametrize(
    ("columns", "writers", "expected"),
    [
        pytest.param(300, "auto", 1, id="wide-one-encoder"),
        pytest.param(300, 2, 2, id="wide-explicit-writers-kept"),
        pytest.param(8, "auto", 0, id="narrow-one-per-core"),
    ],
)
def test_a_wide_parquet_table_is_encoded_by_one_writer(tmp_path: Path, columns: int, writers: object, expected: int) -> None:
    """A second Parquet part costs a column writer per column (300 columns x 250k rows: 423 ->
    395 MiB peak with one): a wide table gets one encoder unless [export] writers is set."""
    db = _warehouse(tmp_path / "w.duckdb", {"t": (columns, 20_000)})
    extra = f"writers = {writers if isinstance(writers, int) else chr(34) + str(writers) + chr(34)}"
    cfg = load_config(_config(tmp_path, db, _tables("t"), export=extra))
    with DuckDBSource(cfg.source) as src:
        t = cfg.table("t")
        schema = src.schema(t)
        sized = sized_for(src, t, schema, cfg, 10_000_000)
    assert sized.writers == expected
    if expected == 1:
        assert sized.parquet_parts(10_000_000) == 1  # one file, one encoder


def test_the_schema_of_1200_columns_is_asked_with_the_limit_its_columns_need(tmp_path: Path) -> None:
    # LIMIT 0 of 1,200 columns needs ~40 MB of DuckDB (a vector's buffers a column): at the 16 MiB
    # floor the table was refused before a row was read ("failed to allocate data of size 32.0 KiB")
    db = _warehouse(tmp_path / "w.duckdb", {"t": (1200, 300)})
    cfg = load_config(_config(tmp_path, db, _tables("t")))
    with DuckDBSource(cfg.source) as src:
        assert len(src.schema(cfg.table("t"))) == 1200


@pytest.mark.parametrize(
    ("columns", "threads"),
    [
        pytest.param(600, 1, marks=pytest.mark.slow),  # ran out at 256 MiB before (the profile scanned all 600)
        pytest.param(40, 2),
        pytest.param(300, 1, marks=[pytest.mark.slow, pytest.mark.corpus]),
        pytest.param(300, 2, marks=[pytest.mark.slow, pytest.mark.corpus]),
    ],
)
def test_the_derived_limit_holds_the_stream_and_the_profile_running_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, columns: int, threads: int
) -> None:
    """The stream scans every column while the profile's queries run beside it (another cursor):
    both pin a block a column they scan. Profiled in pieces of at most PROFILE_COLUMNS columns, the
    derived limit (every column a thread, plus a piece) holds both, with no query run again with
    the ceiling (a run of 300 columns at 133.5 MiB did, before: the profile scanned all 300)."""
    import threading

    from syncer._memory import PROFILE_COLUMNS

    rows = 2 * 122_880 + 7  # several of DuckDB's storage row groups a column
    db = _warehouse(tmp_path / "w.duckdb", {"t": (columns, rows)})
    cfg = load_config(_config(tmp_path, db, TABLE_T, source=f"threads = {threads}"))
    with DuckDBSource(cfg.source) as src:
        t = cfg.table("t")
        schema = src.schema(t)
        sized = sized_for(src, t, schema, cfg, src.count(t))
        stream = src.stream(t, schema, sized.batch_rows)
        got = [next(stream).num_rows]  # the stream's scan is running: its limit is set
        limit = parse_size(src.memory_limit)
        profiled: list[dict[str, Any]] = []
        done = threading.Event()

        def profile_until_the_stream_ends() -> None:  # overlapping every part of the stream's scan
            while not done.is_set() or not profiled:
                profiled.append(src.profile(t, schema))

        worker = threading.Thread(target=profile_until_the_stream_ends)
        worker.start()
        try:
            got += [b.num_rows for b in stream]
        finally:
            done.set()
            worker.join()
    assert sum(got) == rows and profiled and profiled[0]["rows"] == rows
    retried = [r.getMessage() for r in caplog.records if "memory_limit" in r.getMessage()]
    assert not retried, retried
    pinned = threads * columns + min(columns, PROFILE_COLUMNS)
    # what the shape needs (its blocks, and one batch as DuckDB builds it, by the schema's row width), no more
    assert limit <= 16 * MIB + pinned * 400 * 2**10 + sized.batch_rows * row_bytes(schema)


def test_the_profile_queries_scan_at_most_a_piece_of_columns_each() -> None:
    from syncer._memory import PROFILE_COLUMNS
    from syncer.sources.duckdb_sql import profile_expressions, profile_groups
    from syncer.validate.profile import plan_for

    schema = pa.schema([(f"c{i}", [pa.int64(), pa.float64(), pa.string(), pa.bool_()][i % 4]) for i in range(301)])
    plans = [plan_for(f) for f in schema]
    scanned = frozenset(i for i, f in enumerate(schema) if f.type in (pa.string(), pa.bool_()))
    groups = profile_groups(plans, set(), scanned=scanned)
    assert all(len({i for _, i, _ in g if i >= 0}) <= PROFILE_COLUMNS for g in groups)
    # every expression once, each column's statistics of a kind in one query, the row count in the first
    flat = [e for g in groups for e in g]
    assert sorted(flat) == sorted(profile_expressions(plans, frozenset()))
    assert [i for _, i, _ in flat].count(-1) == 1 and any(i == -1 for _, i, _ in groups[0])
    for g in groups:
        for _, i, stat in g:
            same = [h for h in groups if any(j == i and s == stat for _, j, s in h)]
            assert same == [g]
    # a narrow table's groups are what they were: one query per kind
    narrow = [plan_for(f) for f in schema][:12]
    assert len(profile_groups(narrow, set(), scanned=frozenset(i for i in scanned if i < 12))) <= 5
