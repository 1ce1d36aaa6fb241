"""The run's small tables asked together (issue 14): counts in one statement, same-schema profiles and
rows in one statement per group, each answer the one the table's own query gives, a failed batch
(or one past its byte budget) answered table by table; and whole syncs of a few dozen small tables in every format with every check."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

import syncer
from syncer.config import TableConfig
from syncer.sources import duckdb_batch, open_source
from syncer.sources.duckdb import DuckDBSource
from syncer.sources.duckdb_batch import BATCH_TABLES, batched_count_sql, batched_profile_sql, batched_rows_sql, split_rows

CHECKS = ["row_count", "schema", "primary_key_not_null", "primary_key_unique", "non_empty", "profile", "sha256", "reopen"]

#: the orders shape of the matrix (every type family the profile distinguishes), n rows from offset k
ORDERS = """SELECT i AS order_id,
       TIMESTAMPTZ '2020-01-01 00:00:00+00' + to_seconds((i * 7919) % 150000000) AS placed_at,
       DATE '2020-01-01' + ((i * 31) % 2500)::INTEGER AS ship_date,
       CASE WHEN i % 11 = 0 THEN NULL ELSE ((i * 7717) % 10000000) / 100 END::DECIMAL(12, 2) AS amount,
       CASE WHEN i % 13 = 0 THEN 'nan'::DOUBLE ELSE ((i * 2654435761) % 1000003) / 1000.0 END AS score,
       'note ' || repeat(chr(97 + (i % 26)::INTEGER), ((i * 13) % 48)::INTEGER) AS note,
       i % 3 = 0 AS gift,
       md5(i::VARCHAR)::UUID AS token
FROM range({k}, {k} + {n}) t(i)"""


_WRITE = "import duckdb, sys; duckdb.connect(sys.argv[1]).execute('INSERT INTO t1 SELECT * FROM t1')"


def _warehouse(db: Path, tables: dict[str, str]) -> None:
    con = duckdb.connect(str(db))
    for name, sql in tables.items():
        con.execute(f"CREATE TABLE {name} AS {sql}")
    con.close()


def _config(folder: Path, db: Path, tables: list[tuple[str, str, str]], **extra: str) -> syncer.Config:
    """(name, source, format) per table, primary key order_id."""
    body = "".join(
        f'\n[[tables]]\nname = "{n}"\nsource = "{s}"\nformat = "{f}"\nprimary_key = ["order_id"]\n'
        + "".join(f"{k} = {v}\n" for k, v in extra.items())
        for n, s, f in tables
    )
    path = folder / "sync.toml"
    path.write_text(f'[source]\nkind = "duckdb"\npath = "{db}"\n\n[volume]\nroot = "{folder / "vol"}"\n' + body)
    return syncer.load_config(path)


def _counting(source: Any) -> list[str]:
    """The statements the source runs from here on (each still runs)."""
    queries: list[str] = []
    real = source._run

    def counted(sql: str, *args: Any, **kw: Any) -> Any:
        queries.append(sql)
        return real(sql, *args, **kw)

    source._run = counted
    return queries


@contextlib.contextmanager
def _planned(cfg: syncer.Config, tables: list[TableConfig]) -> Iterator[tuple[DuckDBSource, list[str]]]:
    """A source told ``tables`` (as a run tells it) with their counts taken, and the statements it
    runs from then on."""
    source = open_source(cfg.source)
    try:
        source.plan(tables)
        for t in tables:
            source.count(t)
        yield source, _counting(source)
    finally:
        source.close()


@pytest.fixture
def orders_db(tmp_path: Path) -> Path:
    db = tmp_path / "w.duckdb"
    tables = {f"t{k}": ORDERS.format(k=k * 1000, n=40 + k) for k in range(6)}
    tables["empty"] = ORDERS.format(k=0, n=0)
    tables["wider"] = f"SELECT *, 1 AS extra FROM ({ORDERS.format(k=7, n=30)})"
    _warehouse(db, tables)
    return db


def _tables(*names: str, **kw: Any) -> list[TableConfig]:
    return [TableConfig(name=n, source=n, primary_key=("order_id",), **kw) for n in names]


def test_the_counts_of_the_planned_tables_are_one_statement_each_the_table_s_own(tmp_path: Path, orders_db: Path) -> None:
    cfg = _config(tmp_path, orders_db, [("t0", "t0", "parquet")])
    tables = _tables("t0", "t1", "t2", "empty", "wider")
    source = open_source(cfg.source)
    try:
        own = {t.name: source.count(t) for t in tables}  # not planned: each its own count(*)
        source.plan(tables)
        queries = _counting(source)
        batched = {t.name: source.count(t) for t in tables}
    finally:
        source.close()
    assert batched == own == {"t0": 40, "t1": 41, "t2": 42, "empty": 0, "wider": 30}
    # the catalogue (which tables exist, their columns: once per run), then one statement for every count
    assert len(queries) == 3 and "duckdb_columns()" in queries[1] and queries[2].count("count(*)") == 5, queries


def test_the_counts_are_taken_at_the_run_s_one_moment(tmp_path: Path, orders_db: Path) -> None:
    # every table's count is the file as the run opened it: no writer gets in until the run ends
    cfg = _config(tmp_path, orders_db, [("t0", "t0", "parquet")])
    tables = _tables("t0", "t1")
    source = open_source(cfg.source)
    try:
        source.plan(tables)
        assert source.count(tables[0]) == 40
        writer = subprocess.run([sys.executable, "-c", _WRITE, str(orders_db)], capture_output=True, text=True, timeout=60)
        assert writer.returncode != 0 and "lock" in writer.stderr.lower(), writer.stderr  # another process: kept out
        assert source.count(tables[1]) == 41
    finally:
        source.close()
    subprocess.run([sys.executable, "-c", _WRITE, str(orders_db)], check=True, timeout=60)  # after the run: it gets in
    again = open_source(cfg.source)
    try:
        again.plan(tables)
        assert [again.count(t) for t in tables] == [40, 82]
    finally:
        again.close()


def test_same_schema_small_tables_are_profiled_in_one_statement_each_as_its_own_query_says(
    tmp_path: Path, orders_db: Path
) -> None:
    cfg = _config(tmp_path, orders_db, [("t0", "t0", "parquet")])
    tables = _tables("t0", "t1", "t2", "t3", "empty", "wider") + _tables("t4", "t5", exclude_columns=("note",))
    source = open_source(cfg.source)
    try:
        schemas = {t.name: _projected(source, t) for t in tables}
        own = {t.name: source.profile(t, schemas[t.name]) for t in tables}  # not planned: each table alone
    finally:
        source.close()
    with _planned(cfg, tables) as (source, queries):
        batched = {t.name: source.profile(t, schemas[t.name]) for t in tables}
    assert batched == own
    assert own["t1"]["rows"] == 41 and own["t0"]["columns"]["score"]["nans"] > 0 and own["t0"]["columns"]["amount"]["nulls"] > 0
    grouped = [q for q in queries if "GROUP BY __syncer_batch" in q]
    # t0-t3 together, t4-t5 (without note) together; the empty and the wider table each alone
    assert len(grouped) == 2 and [q.count("UNION ALL") for q in grouped] == [3, 1], grouped
    alone = [q for q in queries if q.startswith("SELECT count(*), ")]
    assert len(alone) == 2, queries


def _read(source: DuckDBSource, table: TableConfig, schema: pa.Schema, batch_rows: int = 7) -> pa.Table:
    batches = list(source.stream(table, schema, batch_rows))
    assert all(b.num_rows <= batch_rows for b in batches)
    return pa.Table.from_batches(batches, batches[0].schema) if batches else pa.table({})


def _same(a: pa.Table, b: pa.Table) -> bool:
    """The same schema and values in the same order (NaN equal to NaN, which Table.equals does not hold)."""

    def values(t: pa.Table) -> list[list[Any]]:
        return [["NaN" if isinstance(v, float) and v != v else v for v in c.to_pylist()] for c in t.columns]

    return a.schema == b.schema and values(a) == values(b)


def _rows_batches(queries: list[str]) -> list[str]:
    return [q for q in queries if "AS __syncer_batch" in q and "GROUP BY" not in q]


def test_same_schema_small_tables_in_a_row_are_read_in_one_statement_each_table_its_own_rows_in_order(
    tmp_path: Path, orders_db: Path
) -> None:
    cfg = _config(tmp_path, orders_db, [("t0", "t0", "parquet")])
    tables = _tables("t0", "t1", "t2", "t3", "wider") + _tables("t4", "t5", exclude_columns=("note",))
    source = open_source(cfg.source)
    try:
        schemas = {t.name: _projected(source, t) for t in tables}
        own = {t.name: _read(source, t, schemas[t.name]) for t in tables}  # not planned: each table alone
    finally:
        source.close()
    with _planned(cfg, tables) as (source, queries):
        batched = {t.name: _read(source, t, schemas[t.name]) for t in tables}  # the run's order
    for name, rows in own.items():
        assert _same(batched[name], rows), name  # the same values, types and order
        assert batched[name].schema.names == schemas[name].names
    assert own["t3"].num_rows == 43 and "note" not in own["t5"].schema.names
    grouped = _rows_batches(queries)
    # t0-t3 together, t4-t5 (without note) together; the wider table alone
    assert sorted(q.count("UNION ALL") for q in grouped) == [1, 3], grouped
    assert sum(1 for q in queries if q.startswith('SELECT "order_id"')) == 1, queries
    # a group is the tables right after the first in the run's order: rows are never held across
    # another table's export (t0 stops at the wider table; t1 and t2 go together after it)
    interleaved = _tables("t0", "wider", "t1", "t2")
    with _planned(cfg, interleaved) as (source, queries):
        for t in interleaved:
            assert _same(_read(source, t, schemas[t.name]), own[t.name]), t.name
    assert [q.count("UNION ALL") for q in _rows_batches(queries)] == [1], queries
    assert sum(1 for q in queries if q.startswith('SELECT "order_id"')) == 2, queries


def test_a_group_past_its_byte_budget_and_a_failing_group_are_read_table_by_table(
    tmp_path: Path, orders_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    con = duckdb.connect(str(orders_db))  # same columns as t0, one value DuckDB cannot compute
    con.execute("CREATE VIEW bad AS SELECT * REPLACE (CASE WHEN order_id = 3 THEN error('boom') ELSE note END AS note) FROM t0")
    con.close()
    cfg = _config(tmp_path, orders_db, [("t0", "t0", "parquet")])
    source = open_source(cfg.source)
    try:
        schema = _projected(source, _tables("t0")[0])
        own = {n: _read(source, t, schema) for n, t in zip(("t0", "t1", "t2"), _tables("t0", "t1", "t2"), strict=True)}
    finally:
        source.close()
    for budget, tables in ((4096, _tables("t0", "t1", "t2")), (duckdb_batch.ROWS_BUDGET, _tables("t0", "bad", "t1"))):
        monkeypatch.setattr(duckdb_batch, "ROWS_BUDGET", budget)
        with _planned(cfg, tables) as (source, queries):
            for t in tables:
                if t.name == "bad":
                    with pytest.raises(syncer.SyncError, match="boom"):
                        _read(source, t, schema)
                else:
                    assert _same(_read(source, t, schema), own[t.name]), (budget, t.name)
        assert len(_rows_batches(queries)) == 1, queries  # tried once, then each table alone
        assert sum(1 for q in queries if q.startswith('SELECT "order_id"')) == 3, queries


def test_the_rows_of_a_batch_are_cut_per_table_whatever_order_they_came_in() -> None:
    keys = [0, 0, 2, 2, 2, 3]
    data = pa.table({"__syncer_batch": keys, "v": ["a", "b", "c", "d", "e", "f"]})
    parts = split_rows(data, 4)
    assert [p.column("v").to_pylist() for p in parts] == [["a", "b"], [], ["c", "d", "e"], ["f"]]
    assert all(p.schema.names == ["v"] for p in parts)
    mixed = pa.table({"__syncer_batch": [2, 0, 2, 1, 0], "v": [1, 2, 3, 4, 5]})
    assert [p.column("v").to_pylist() for p in split_rows(mixed, 3)] == [[2, 5], [4], [1, 3]]
    empty = pa.table({"__syncer_batch": pa.array([], pa.int32()), "v": pa.array([], pa.int64())})
    assert [p.num_rows for p in split_rows(empty, 2)] == [0, 0]
    schema = pa.schema([pa.field("order_id", pa.int64()), pa.field("note", pa.string())])
    assert batched_rows_sql(_tables("t0", "t1"), schema) == (
        'SELECT 0 AS __syncer_batch, "order_id", "note" FROM "t0" UNION ALL SELECT 1 AS __syncer_batch, "order_id", "note" FROM "t1"'
    )


def _projected(source: DuckDBSource, table: TableConfig) -> pa.Schema:
    full = source.schema(table)
    return pa.schema([f for f in full if f.name not in table.exclude_columns])


def test_same_columns_are_asked_for_their_schema_once_each_the_table_s_own(tmp_path: Path, orders_db: Path) -> None:
    con = duckdb.connect(str(orders_db))  # same names, one type apart: its own schema
    con.execute("CREATE TABLE other AS SELECT * REPLACE (order_id::INTEGER AS order_id) FROM t0")
    con.execute("CREATE TYPE mood AS ENUM ('calm', 'busy')")
    con.execute("CREATE TABLE m1 AS SELECT order_id, 'calm'::mood AS mood FROM t0")
    con.execute("CREATE TABLE m2 AS SELECT order_id, 'busy'::mood AS mood FROM t1")
    con.close()
    cfg = _config(tmp_path, orders_db, [("t0", "t0", "parquet")])
    tables = _tables("t0", "t1", "t2", "other", "wider", "m1", "m2", "gone")
    source = open_source(cfg.source)
    try:
        own = {t.name: source.schema(t) for t in tables[:-1]}  # not planned: each asked alone
        source.plan(tables)
        queries = _counting(source)
        asked = _asking(source)
        planned = {t.name: source.schema(t) for t in tables[:-1]}
        with pytest.raises(syncer.SyncError, match="'gone'"):
            source.schema(tables[-1])
    finally:
        source.close()
    assert all(planned[n].equals(own[n], check_metadata=True) for n in own), planned
    assert (
        pa.types.is_int32(planned["other"].field("order_id").type)
        and planned["m2"].field("mood").type == own["m1"].field("mood").type
    )
    assert asked == ["t0", "other", "wider", "m1", "gone"], asked  # t1, t2 and m2: the same columns as one before
    assert len(queries) == 2, queries  # the catalogue, once


def _asking(source: Any) -> list[str]:
    asked: list[str] = []
    real = source._asked

    def spy(table: TableConfig) -> Any:
        asked.append(table.name)
        return real(table)

    source._asked = spy
    return asked


def test_a_batch_that_fails_is_answered_table_by_table(tmp_path: Path, orders_db: Path) -> None:
    con = duckdb.connect(str(orders_db))  # same columns as t0, but one value DuckDB cannot compute
    con.execute("CREATE VIEW bad AS SELECT * REPLACE (CASE WHEN order_id = 3 THEN error('boom') ELSE note END AS note) FROM t0")
    con.close()
    cfg = _config(tmp_path, orders_db, [("t0", "t0", "parquet")])
    tables = _tables("t0", "bad", "gone", "t1")
    source = open_source(cfg.source)
    try:
        schema = source.schema(tables[0])
        own = {t.name: source.profile(t, schema) for t in (tables[0], tables[3])}
        source.plan(tables)
        queries = _counting(source)
        assert source.count(tables[0]) == 40  # one statement for t0, bad and t1; the missing table apart
        with pytest.raises(syncer.SyncError, match="'gone'"):
            source.count(tables[2])
        assert [source.count(t) for t in (tables[1], tables[3])] == [40, 41]
        assert source.profile(tables[0], schema) == own["t0"]  # the batch failed on bad's value: each alone
        with pytest.raises(syncer.SyncError, match="boom"):
            source.profile(tables[1], schema)
        assert source.profile(tables[3], schema) == own["t1"]
    finally:
        source.close()
    batches = [q for q in queries if "UNION ALL" in q]
    assert len(batches) == 2 and "GROUP BY __syncer_batch" in batches[1], queries


def test_the_batched_statements_group_each_table_by_its_position() -> None:
    tables = _tables(*(f"t{k}" for k in range(BATCH_TABLES + 3)))
    count = batched_count_sql(tables)
    assert (
        count.count("UNION ALL") == len(tables) - 1
        and f'SELECT {len(tables) - 1} AS k, count(*) AS n FROM "t{len(tables) - 1}"' in count
    )
    schema = pa.schema([pa.field("order_id", pa.int64()), pa.field("note", pa.string())])
    prof = batched_profile_sql(tables[:2], schema)
    assert prof.endswith('FROM (SELECT 0 AS __syncer_batch, "order_id", "note" FROM "t0" UNION ALL '
                         'SELECT 1 AS __syncer_batch, "order_id", "note" FROM "t1") GROUP BY __syncer_batch')  # fmt: skip


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl", "arrow"])
def test_dozens_of_small_tables_sync_with_every_check_and_a_broken_one_fails_alone(
    tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "w.duckdb"
    tables = {f"s{k:02d}": ORDERS.format(k=k * 100, n=20 + k) for k in range(30)}
    tables["dup"] = f"SELECT * FROM ({ORDERS.format(k=0, n=20)}) UNION ALL SELECT * FROM ({ORDERS.format(k=5, n=1)})"
    _warehouse(db, tables)
    names = [*tables, "missing"]
    cfg = _config(tmp_path, db, [(n, n, fmt) for n in names])
    statements: list[str] = []
    real = DuckDBSource._run

    def spy(self: DuckDBSource, sql: str, *args: Any, **kw: Any) -> Any:
        statements.append(sql)
        return real(self, sql, *args, **kw)

    monkeypatch.setattr(DuckDBSource, "_run", spy)
    report = syncer.sync(cfg)
    assert report.status == "partial"
    status = {t.table: t.status for t in report.tables}
    assert {n for n, s in status.items() if s != "fresh"} == {"dup", "missing"}, status
    assert "dup" in (report.error or "") and "primary_key_unique" in (report.error or "")
    assert "'missing'" in (report.error or "") and "Traceback" not in (report.error or "")
    snap = syncer.current_snapshot(config=cfg)
    assert snap is not None and set(snap.tables) == set(tables) - {"dup"}
    for name, entry in snap.tables.items():
        assert [c.name for c in entry.checks] == CHECKS and all(c.ok for c in entry.checks), (name, entry.checks)
        assert entry.rows == entry.source_rows == 20 + int(name[1:]) and entry.profile is not None
        assert entry.profile["rows"] == entry.rows
    problems = syncer.verify(cfg).problems  # every published file as its manifest says; only the two are absent
    assert len(problems) == 2 and all("'dup'" in p or "'missing'" in p for p in problems), problems
    grouped = [q for q in statements if "GROUP BY __syncer_batch" in q]
    assert sum(q.count(" UNION ALL ") + 1 for q in grouped) == len(tables), grouped  # every small table profiled in a batch
    read = _rows_batches(statements)
    assert sum(q.count(" UNION ALL ") + 1 for q in read) == len(tables), read  # and read in a batch


def test_a_changed_value_in_one_small_table_fails_that_table_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # its source profile came from the batched statement: the written side still has to match it
    db = tmp_path / "w.duckdb"
    _warehouse(db, {f"s{k}": ORDERS.format(k=k * 100, n=30) for k in range(5)})
    cfg = _config(tmp_path, db, [(f"s{k}", f"s{k}", "parquet") for k in range(5)])
    real = DuckDBSource.stream

    def tampered(self: DuckDBSource, table: TableConfig, schema: pa.Schema, batch_rows: int) -> Any:
        for batch in real(self, table, schema, batch_rows):
            if table.name == "s3":
                amount = batch.column("amount").to_pylist()
                amount[1] = amount[1] + 1 if amount[1] is not None else 1
                batch = batch.set_column(
                    batch.schema.get_field_index("amount"), "amount", pa.array(amount, batch.column("amount").type)
                )
            yield batch

    monkeypatch.setattr(DuckDBSource, "stream", tampered)
    report = syncer.sync(cfg)
    status = {t.table: t.status for t in report.tables}
    assert report.status == "partial" and status == {"s0": "fresh", "s1": "fresh", "s2": "fresh", "s3": "failed", "s4": "fresh"}
    assert "profile" in (report.error or "") and "amount" in (report.error or "")


def test_only_the_tables_to_export_are_planned_the_unchanged_cost_no_query(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "w.duckdb"
    _warehouse(db, {f"s{k}": ORDERS.format(k=k * 100, n=30) for k in range(3)})
    assert syncer.sync(_config(tmp_path, db, [("s0", "s0", "parquet"), ("s1", "s1", "parquet")])).status == "ok"
    planned: list[list[str]] = []
    real = DuckDBSource.plan

    def spy(self: DuckDBSource, tables: Any) -> None:
        planned.append([t.name for t in tables])
        real(self, tables)

    monkeypatch.setattr(DuckDBSource, "plan", spy)
    queries: list[str] = []
    run = DuckDBSource._run
    monkeypatch.setattr(DuckDBSource, "_run", lambda self, sql, *a, **kw: queries.append(sql) or run(self, sql, *a, **kw))
    report = syncer.sync(_config(tmp_path, db, [(f"s{k}", f"s{k}", "parquet") for k in range(3)]))
    assert {t.table: t.status for t in report.tables} == {"s0": "unchanged", "s1": "unchanged", "s2": "fresh"}
    assert planned == [["s2"]], planned  # the two confirmed unchanged first, then only s2 told to the source
    counts = [q for q in queries if "count(*) AS n" in q]
    assert len(counts) == 1 and '"s2"' in counts[0] and '"s0"' not in counts[0], counts
