"""An adversarial corpus of table shapes: the peak memory of a sync stays under 400 MiB for each, in
every format it supports, or the table fails in one line and keeps its old data.

Each table is generated in DuckDB and synced by a real ``syncer sync`` process; the peak is the
process TREE's proportional set size (``/proc/<pid>/smaps_rollup`` ``Pss`` of the sync and of every
child it starts, sampled every 20 ms), so a child that runs DuckDB's COPY (``export = "engine"``) or
the supervisor's child counts as much as the sync itself. The shapes are the ones nobody had tried:
values of megabytes (a row bigger than a batch), a table whose first rows are small and whose later
ones are huge (the sample the batch is sized from lies), 600 columns, all-NULL columns, wide
numerics (DECIMAL(38), HUGEINT, INTERVAL, TIME), deep STRUCT nesting with MAPs, incompressible
bytes. What each peaked at before and after the fixes is in README ("Memory").
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from syncer.sources.duckdb_memory import batch_target, gathered, read_rows
from syncer.volume.layout import Volume

MIB = 2**20
#: issue 14's bound for every shape and format
PEAK_BOUND = 400 * MIB

#: name -> (DuckDB SELECT generating it, its key, the formats it is synced to). Sized so one sync
#: takes a few seconds here; each is past the size where a row count sized by the first rows breaks.
SHAPES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # one value of 2 MiB a row, 40 rows: a row wider than a quarter of the 8 MiB batch; with the old
    # floor of 1,024 rows a batch held the whole table
    "long_values": (
        "SELECT i AS id, repeat(chr(97 + (i % 26)::INTEGER), 2 * 1024 * 1024) AS s FROM range(40) t(i)",
        "id",
        ("parquet", "csv", "jsonl", "arrow"),
    ),
    # the first 4,000 rows (the sample of 2,048 and more) are a few bytes, then every 40th is 1 MiB:
    # batches sized by the sample held 32,768 rows, ~150 MiB of them
    "skewed": (
        "SELECT i AS id, CASE WHEN i > 4000 AND i % 40 = 0 THEN repeat('z', 1024 * 1024) ELSE 'a' || i END AS s "
        "FROM range(10000) t(i)",
        "id",
        ("parquet", "csv", "jsonl", "arrow"),
    ),
    # incompressible bytes: 1 MiB of random-looking BLOB a row
    "random_bytes": (
        "SELECT i AS id, unhex((SELECT string_agg(md5(i::VARCHAR || '-' || j::VARCHAR), '') FROM range(65536) u(j))) AS b "
        "FROM range(40) t(i)",
        "id",
        ("parquet", "csv", "jsonl", "arrow"),
    ),
    # 100 columns that are NULL in every row, of five types
    "all_null": (
        "SELECT i AS id, "
        + ", ".join(f"NULL::{t} AS n{c}" for c, t in enumerate(["VARCHAR", "INTEGER", "DOUBLE", "DATE", "DECIMAL(18,2)"] * 20))
        + " FROM range(300000) t(i)",
        "id",
        ("parquet", "csv", "jsonl", "arrow"),
    ),
    # 100 columns of the wide fixed-size types (INTERVAL: refused by every format in one line, before a row is read)
    "wide_numerics": (
        "SELECT i AS id, "
        + ", ".join(
            f"(i * {c})::DECIMAL(38, 6) AS d{c}, i::HUGEINT * {c} * 1000000000000 AS h{c}, "
            f"TIME '00:00:00' + to_seconds((i * {c}) % 86400) AS t{c}"
            for c in range(1, 34)
        )
        + " FROM range(20000) t(i)",
        "id",
        ("parquet", "csv", "jsonl", "arrow"),
    ),
    # STRUCTs nested six deep, a LIST inside, and MAPs
    "deep_nested": (
        "SELECT i AS id, {'a': {'b': {'c': {'d': {'e': {'f': i, 'g': 'x' || i}, 'h': [i, i + 1]}}}}, 'm': MAP {'k': i}} AS s, "
        "MAP([i, i + 1], ['a', 'b']) AS m FROM range(100000) t(i)",
        "id",
        ("parquet", "jsonl", "arrow"),
    ),
    # 600 columns: DuckDB's scan needs ~0.6 MiB a column, the batches get the rest
    "columns_600": (
        "SELECT i AS id, "
        + ", ".join(f"(i * {c}) % 1000 AS c{c}" if c % 3 else f"'x' || ((i + {c}) % 97) AS c{c}" for c in range(1, 600))
        + " FROM range(20000) t(i)",
        "id",
        ("parquet", "csv", "jsonl", "arrow"),
    ),
}


def test_batches_close_on_their_measured_bytes_when_rows_are_wider_than_the_sample() -> None:
    # a batch sized for 32,768 rows of ~10 bytes (the first rows); later chunks hold 1 MiB values
    schema = pa.schema([("id", pa.int64()), ("s", pa.string())])
    assert read_rows(schema, 32768) == 2048  # a guessed width: one DuckDB vector at a time
    assert read_rows(pa.schema([("id", pa.int64())]), 32768) == 32768  # a fixed width is exact
    target = batch_target(schema, 32768, width=10.0)
    small = [pa.record_batch([pa.array(range(i, i + 2048)), pa.array(["a"] * 2048)], schema=schema) for i in range(0, 8192, 2048)]
    huge = pa.record_batch([pa.array(range(100)), pa.array(["z" * 2**20] * 100)], schema=schema)
    out = list(gathered(iter([*small, huge, *small]), 32768, target))
    assert sum(b.num_rows for b in out) == 2 * 8192 + 100
    per_row = huge.nbytes / huge.num_rows
    for b in out:
        # no batch holds more than its target plus one row: 100 MiB of values went on a row at a time
        assert b.num_rows * min(per_row, b.nbytes / b.num_rows) <= target + per_row
    assert pa.Table.from_batches(out).column("id").to_pylist() == [*range(8192), *range(100), *range(8192)]
    # rows as the sample said: whole batches of batch_rows, split across chunks where one fills up
    even = list(gathered(iter(small), 3000, batch_target(schema, 3000, width=small[0].nbytes / 2048)))
    assert [b.num_rows for b in even] == [3000, 3000, 2192]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("shapes") / "shapes.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("SET threads = 2")
        for name, (sql, _, _) in SHAPES.items():
            con.execute(f"CREATE TABLE {name} AS {sql}")
    return db


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            out += [int(x) for x in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
    except OSError:
        pass  # ended between two reads
    return out


def _pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_pss(pid: int) -> int:
    """The proportional set size of ``pid`` and all its descendants, in bytes."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += _pss(p)
        todo += _children(p)
    return total


def sync_tree_peak(config: Path, env: dict[str, str] | None = None) -> tuple[int, int, str]:
    """``syncer sync`` of ``config`` as a process of its own: (exit code, peak Pss of its process
    tree in bytes, its stderr). Sampled every 20 ms from this process."""
    full = {**os.environ, "SYNCER_LOG_FORMAT": "text", **(env or {})}
    argv = [sys.executable, "-m", "syncer", "--config", str(config), "sync"]
    proc = subprocess.Popen(argv, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0

    def sample() -> None:
        nonlocal peak
        while proc.poll() is None:
            peak = max(peak, tree_pss(proc.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate(timeout=300)
    sampler.join()
    return proc.returncode, peak, err


def _config(tmp_path: Path, db: Path, table: str, key: str, fmt: str, export: str = "stream") -> Path:
    path = tmp_path / f"sync-{table}-{fmt}-{export}.toml"
    path.write_text(
        f'[source]\nkind = "duckdb"\npath = "{db}"\n\n[volume]\nroot = "{tmp_path / "data"}"\nretain = 2\n\n'
        f'[[tables]]\nname = "{table}"\nsource = "{table}"\nprimary_key = ["{key}"]\nformat = "{fmt}"\nexport = "{export}"\n',
        encoding="utf-8",
    )
    return path


#: `make test` syncs each shape to one format, a different one shape after shape (every format
#: is met, and each shape once); the whole corpus, every shape in every format and through the
#: engine, is `make test-corpus` (marked ``corpus``: minutes, like the long fault sweep)
_ROTATION = ("parquet", "csv", "jsonl", "arrow")


def _everyday(i: int, formats: tuple[str, ...]) -> str:
    wanted = _ROTATION[i % len(_ROTATION)]
    return wanted if wanted in formats else formats[0]


CASES = [
    pytest.param(
        name,
        fmt,
        id=f"{name}-{fmt}",
        marks=[pytest.mark.slow] + ([] if fmt == _everyday(i, formats) else [pytest.mark.corpus]),
    )
    for i, (name, (_, _, formats)) in enumerate(SHAPES.items())
    for fmt in formats
]


@pytest.mark.parametrize(("shape", "fmt"), CASES)
def test_every_shape_syncs_under_the_bound(tmp_path: Path, warehouse: Path, shape: str, fmt: str) -> None:
    _, key, _ = SHAPES[shape]
    code, peak, err = sync_tree_peak(_config(tmp_path, warehouse, shape, key, fmt))
    print(f"peak {shape} {fmt} stream: {peak / MIB:.0f} MiB")  # the README's figures (pytest -s)
    assert code == 0, err[-2000:]
    assert peak < PEAK_BOUND, f"{shape} to {fmt}: the sync's process tree peaked at {peak / MIB:.0f} MiB"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute(f"SELECT count(*) FROM {shape}").fetchall()[0][0]
    assert Volume(tmp_path / "data").current_manifest()["tables"][shape]["rows"] == rows


#: the skewed table through the engine peaks at 412-458 MiB: DuckDB's COPY sizes its row groups by
#: rows (aligned to the storage's, which the key check relies on), and a row group of this table's
#: 1 MiB values, buffered per thread, is past the bound (README "Memory": left open)
_ENGINE_OVER = pytest.mark.xfail(reason="the engine's COPY buffers row groups sized by rows: 412-458 MiB", strict=False)
ENGINE_CASES = [
    pytest.param(
        name,
        id=f"{name}-engine",
        marks=[
            pytest.mark.slow,
            *([_ENGINE_OVER] if name == "skewed" else []),
            *([] if name == "long_values" else [pytest.mark.corpus]),
        ],
    )
    for name in ("long_values", "skewed", "random_bytes", "all_null", "columns_600")
]


@pytest.mark.parametrize("shape", ENGINE_CASES)
def test_every_shape_the_engine_writes_stays_under_the_bound(tmp_path: Path, warehouse: Path, shape: str) -> None:
    """export = "engine": DuckDB's COPY in a child process, whose memory counts in the tree."""
    _, key, _ = SHAPES[shape]
    code, peak, err = sync_tree_peak(_config(tmp_path, warehouse, shape, key, "parquet", export="engine"))
    print(f"peak {shape} parquet engine: {peak / MIB:.0f} MiB")
    assert code == 0, err[-2000:]
    assert peak < PEAK_BOUND, f"{shape} through the engine: the process tree peaked at {peak / MIB:.0f} MiB"


def _cgroup(tmp_path: Path, limit: int) -> Path:
    """A folder read as the cgroup file system (``SYNCER_CGROUP_ROOT``) holding a ``memory.max``."""
    root = tmp_path / "cgroup"
    root.mkdir(exist_ok=True)
    (root / "memory.max").write_text(f"{limit}\n")
    return root


#: 300 values of 2 MiB: DuckDB scans a vector of them at once, and its string heap for it asks for
#: 1 GiB in one allocation, which no container of 1 GiB can give (physically: DuckDB's vector of
#: 2,048 rows, all 300 of them); 40 of them (the "fits" table) need 128 MiB and fit
HUGE = "SELECT i AS id, repeat(chr(97 + (i % 26)::INTEGER), 2 * 1024 * 1024) AS s FROM range({rows}) t(i)"


@pytest.mark.slow
def test_a_table_too_big_for_its_container_fails_in_one_line_and_one_that_fits_is_not_refused(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE huge AS " + HUGE.format(rows=3))
        con.execute("CREATE TABLE fits AS " + HUGE.format(rows=40))
    config = tmp_path / "sync.toml"
    config.write_text(
        f'[source]\nkind = "duckdb"\npath = "{db}"\n\n[volume]\nroot = "{tmp_path / "data"}"\nretain = 3\n\n'
        + "".join(f'[[tables]]\nname = "{n}"\nsource = "{n}"\nprimary_key = ["id"]\n\n' for n in ("huge", "fits")),
        encoding="utf-8",
    )
    code, _, err = sync_tree_peak(config)  # this machine's memory: both fit
    assert code == 0, err[-2000:]
    before = Volume(tmp_path / "data").current_manifest()["tables"]["huge"]
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE OR REPLACE TABLE huge AS " + HUGE.format(rows=300))
    container = 1024 * MIB
    code, peak, err = sync_tree_peak(config, {"SYNCER_CGROUP_ROOT": str(_cgroup(tmp_path, container))})
    assert peak < container, f"the sync would have been OOM-killed: {peak / MIB:.0f} MiB"
    assert code != 0 and "Traceback" not in err
    lines = [
        line for line in err.splitlines() if "table 'huge'" in line and "needs more memory than this container's ceiling" in line
    ]
    assert lines, err[-3000:]
    for words in ("container memory 1 GiB", "the previous data is kept", "give the container more memory", "exclude_columns"):
        assert words in lines[-1], (words, lines[-1])
    after = Volume(tmp_path / "data").current_manifest()["tables"]
    assert after["huge"]["sha256"] == before["sha256"] and after["huge"]["rows"] == 3  # its old data, unchanged
    assert after["fits"]["rows"] == 40  # the table that fits was exported in the same container


def test_a_parquet_row_group_closes_on_its_bytes_when_rows_grow_past_the_first_batch(tmp_path: Path) -> None:
    # row groups of 131,072 rows were sized from small first rows; 40 later rows of 1 MiB each were
    # buffered in one row group (per encoder) before: now it closes at 1.5x the bytes it was sized for
    from syncer.formats import open_writer

    schema = pa.schema([("id", pa.int64()), ("s", pa.string())])
    writer = open_writer("parquet", tmp_path / "t.parquet", schema, compression="zstd", row_group_rows=131072, parts=1)
    writer.write(pa.record_batch([pa.array(range(4096)), pa.array(["a"] * 4096)], schema=schema))
    for i in range(40):
        writer.write(pa.record_batch([pa.array([4096 + i]), pa.array(["z" * 2**20])], schema=schema))
    writer.close()
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(tmp_path / "t.parquet").metadata
    sizes = [meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)]
    assert sum(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) == 4096 + 40
    first = 4096 * (8 + 4 + 1)  # what the first batch said a row group of 131,072 rows would hold, about
    assert meta.num_row_groups > 10 and max(sizes) <= 2 * 2**20 + 1.5 * 131072 * first / 4096, sizes
