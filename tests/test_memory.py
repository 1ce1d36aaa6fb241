"""The export's memory budget: sizes, the container's limit, batch rows by bytes, DuckDB's cache."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from syncer._memory import MIN_BATCH_ROWS, batch_rows_for, container_limit, duckdb_limit_for, parse_size, row_bytes

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
    assert MIN_BATCH_ROWS <= rows < 32768
    assert rows * row_bytes(wide) <= target  # a 300-column batch stays near the target
    assert batch_rows_for(wide, 1, 32768) == MIN_BATCH_ROWS


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
