"""The run's small tables, asked together: their counts in one query, their profiles and their rows
in one query each per group of tables with the same columns.

A sync of many small tables paid DuckDB's fixed cost of a statement (parsing, binding and planning
its aggregates: ~3.5 ms for the profile of a 9-column table, whatever its rows) once or twice per
table. Asked together, the same statements cost a fraction of it: the counts as one ``UNION ALL``
of ``count(*)`` (0.17 ms a table), the profiles of the tables that share their columns (names and
DuckDB types) as one ``GROUP BY`` over the ``UNION ALL`` of their rows (0.6 ms a table, the
aggregates bound once); their rows as one ``UNION ALL`` read as Arrow and cut per table (a
statement and an Arrow reader per table was ~1.5 ms of a 2,000-row table's export). Every answer is still the source's own, taken by DuckDB on the run's
read-only connection: the same moment as each table's stream (the file cannot change while it is
open, see :class:`syncer.sources.duckdb.DuckDBSource`), the same aggregates as the table's own
profile query (:func:`syncer.sources.duckdb_sql.profile_expressions`), grouped per table.

A batch that fails for any reason (a table gone, a value DuckDB cannot read, memory) answers
nothing: each of its tables is then asked on its own, as before, so one bad table fails alone. The
rows of a group are held until each table takes its own: at most :data:`ROWS_BUDGET` bytes of
Arrow data (a group past it is read table by table, as before; its long values are not read twice
in memory at once).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from syncer._exceptions import SyncError
from syncer.config import TableConfig
from syncer.sources.base import quote_ident, relation_sql
from syncer.sources.duckdb_sql import SMALL_ROWS, profile_expressions, profile_from_row
from syncer.sources.errors import is_interrupt
from syncer.validate.profile import plan_for

__all__ = [
    "BATCH_TABLES",
    "ROWS_BUDGET",
    "RunBatch",
    "batched_count_sql",
    "batched_profile_sql",
    "batched_rows_sql",
    "catalog_key",
]

log = logging.getLogger("syncer")

#: tables per batched statement at most: DuckDB's cost of a statement grows faster than its arms
#: past that (200 counts: 18 ms in statements of 32, 23 ms of 64, 75 ms in one)
BATCH_TABLES = 32
#: the Arrow bytes of a group's rows held at once, at most (two default batches)
ROWS_BUDGET = 16 * 2**20
#: rows per Arrow batch of a batched read: a DuckDB vector, as a variable-width table's own stream
#: reads, so the byte budget is checked before long values pile up
GROUP_READ_ROWS = 2_048
#: the name of the table's number in a batched profile (a column of that name keeps the table out)
_KEY = "__syncer_batch"

#: a relation's DuckDB types by column and its Arrow schema
Schema = tuple[dict[str, Any], pa.Schema]
#: runs one statement on the profiles' connection: (sql, table it is for) -> rows
Runner = Callable[[str, TableConfig], list[tuple[Any, ...]]]
#: runs one statement on the run's connection: (sql, table it is for) -> an Arrow record batch reader
Reader = Callable[[str, TableConfig], Any]
#: the source's own runner: (sql, table, arrow=..., batch_rows=...) -> a cursor or an Arrow reader
SourceRun = Callable[..., Any]


def catalog_key(source: str, here: tuple[str, str]) -> str:
    """``catalog.schema.table`` (lower case) of a configured ``source`` name; ``here``: the
    connection's (current schema, current database), for the parts the name leaves out."""
    parts = [p.lower() for p in source.split(".")]
    return ".".join((parts[-3:-2] or [here[1]]) + (parts[-2:-1] or [here[0]]) + parts[-1:])


def batched_count_sql(tables: Sequence[TableConfig]) -> str:
    """One statement: ``(k, count(*))`` of each table, k its position in ``tables``."""
    return " UNION ALL ".join(f"SELECT {k} AS k, count(*) AS n FROM {relation_sql(t)}" for k, t in enumerate(tables))


def batched_profile_sql(tables: Sequence[TableConfig], schema: pa.Schema) -> str:
    """One statement: a row per non-empty table, its position in ``tables`` and then the values of
    :func:`profile_expressions` over ``schema`` (the columns every one of them has, same types)."""
    exprs = ", ".join(e for e, _, _ in profile_expressions([plan_for(f) for f in schema]))
    cols = ", ".join(quote_ident(f.name) for f in schema)
    arms = " UNION ALL ".join(f"SELECT {k} AS {_KEY}, {cols} FROM {relation_sql(t)}" for k, t in enumerate(tables))
    return f"SELECT {_KEY}, {exprs} FROM ({arms}) GROUP BY {_KEY}"


def batched_rows_sql(tables: Sequence[TableConfig], schema: pa.Schema) -> str:
    """One statement: every row of each table, its position in ``tables`` first, then ``schema``'s
    columns (each table's own SELECT, :func:`syncer.sources.base.select_sql`, one arm each)."""
    cols = ", ".join(quote_ident(f.name) for f in schema)
    return " UNION ALL ".join(f"SELECT {k} AS {_KEY}, {cols} FROM {relation_sql(t)}" for k, t in enumerate(tables))


def split_rows(data: pa.Table, n: int) -> list[pa.Table]:
    """``data`` (:func:`batched_rows_sql`'s answer) as one table per position ``0 .. n-1``, without
    the position column; each table's rows in the order its arm gave them. (No Python value goes
    into a compute call: pyarrow converts one by asking pandas, whose import is ~0.4 s.)"""
    keys = data.column(0).combine_chunks()
    body = data.drop_columns([_KEY])
    if len(keys) > 1 and pc.min(pc.pairwise_diff(keys)).as_py() < 0:  # arms interleaved: a stable sort
        order = pc.sort_indices(keys)
        keys, body = keys.take(order), body.take(order)
    sizes = {int(c["values"]): int(c["counts"]) for c in pc.value_counts(keys).to_pylist()}
    out, at = [], 0
    for k in range(n):
        out.append(body.slice(at, sizes.get(k, 0)))
        at += sizes.get(k, 0)
    return out


def _read_within(read: Reader, sql: str, table: TableConfig, tables: int) -> pa.Table | None:
    """``sql``'s answer as one Arrow table, or None when it passes :data:`ROWS_BUDGET` bytes or fails
    (an interrupt stays one)."""
    batches, held = [], 0
    try:
        reader = read(sql, table)
    except (SyncError, duckdb.Error) as exc:
        log.debug("the batched rows of %d tables did not answer (%s); each is read alone", tables, exc)
        return None
    try:
        for batch in reader:
            held += batch.nbytes
            if held > ROWS_BUDGET:
                log.debug("the rows of %d tables pass %d bytes; each is read alone", tables, ROWS_BUDGET)
                return None
            batches.append(batch)
        return pa.Table.from_batches(batches, reader.schema)
    except (duckdb.Error, pa.ArrowException, OSError, RuntimeError) as exc:
        if is_interrupt(exc):
            raise KeyboardInterrupt from None
        log.debug("the batched rows of %d tables did not answer (%s); each is read alone", tables, exc)
        return None
    finally:
        reader.close()


class RunBatch:
    """The run's planned tables (:meth:`plan`) and what was asked for them together."""

    def __init__(self) -> None:
        self.planned: dict[str, TableConfig] = {}
        self.counts: dict[str, int] = {}
        self._counted = False
        #: catalog key -> (column names, DuckDB type names); None until first needed
        self.columns: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] | None = None
        self._here: tuple[str, str] = ("main", "memory")
        self.profiles: dict[str, dict[str, Any]] = {}
        self._tried: set[str] = set()  # tables a batched profile was taken (or failed) for
        self.rows: dict[str, pa.Table] = {}
        self._fetched: set[str] = set()  # tables whose rows were read in a batch (or failed to)
        self._lock = threading.Lock()
        self._schemas: dict[tuple[tuple[str, ...], tuple[str, ...]], Schema] = {}

    def plan(self, tables: Sequence[TableConfig]) -> None:
        """The tables this run will export (source tables only: a query is asked on its own)."""
        self.planned = {t.name: t for t in tables if t.source is not None and t.query is None}

    def schema(self, table: TableConfig, run: Runner, ask: Callable[[], Schema]) -> Schema:
        """The table's DuckDB types and Arrow schema: ``ask()``'s answer for it, or the one it gave
        for a planned table with the same columns (names and DuckDB types, from the catalogue), which
        is the same (the Arrow schema follows from the types alone)."""
        mine = None
        if table.name in self.planned:
            try:
                self._catalog(table, run)
                mine = self._signature(table)
            except (SyncError, duckdb.Error) as exc:
                log.debug("the catalogue did not answer (%s); each table's schema is asked alone", exc)
        got = self._schemas.get(mine) if mine is not None else None
        if got is None:
            got = ask()
            if mine is not None and (tuple(got[0]), tuple(str(t) for t in got[0].values())) == mine:
                self._schemas[mine] = got  # kept only when the catalogue spells the very same columns
        return got

    def count(self, table: TableConfig, run: Runner) -> int | None:
        """The table's row count from the run's one counting statement, or None (not planned, or
        the statement failed: the caller counts it alone)."""
        if not self._counted and table.name in self.planned:
            self._counted = True
            try:
                self._catalog(table, run)
            except (SyncError, duckdb.Error) as exc:
                log.debug("the catalogue did not answer (%s); each table is counted alone", exc)
                return None
            tables = [t for t in self.planned.values() if self._signature(t) is not None]  # a missing one: alone
            for at in range(0, len(tables), BATCH_TABLES):
                chunk = tables[at : at + BATCH_TABLES]
                try:
                    rows = run(batched_count_sql(chunk), table)
                except (SyncError, duckdb.Error) as exc:
                    log.debug("the batched count did not answer (%s); each table is counted alone", exc)
                    continue
                self.counts.update({chunk[int(k)].name: int(n) for k, n in rows})
        return self.counts.get(table.name)

    def profile(self, table: TableConfig, schema: pa.Schema, run: Runner) -> dict[str, Any] | None:
        """The source profile of a small planned table from a batched statement over it and the
        other planned small tables with the same columns; None: the caller profiles it alone."""
        with self._lock:
            got = self.profiles.pop(table.name, None)
            if got is not None or table.name in self._tried or not self._small(table):
                return got
            group = self._group(table, schema, run, self._tried)
            self._tried.update(t.name for t in group)
            if len(group) < 2:
                return None
            try:
                rows = run(batched_profile_sql(group, schema), table)
            except (SyncError, duckdb.Error) as exc:
                log.debug("the batched profile of %d tables did not answer (%s); each is profiled alone", len(group), exc)
                return None
            plans = [plan_for(f) for f in schema]
            exprs = profile_expressions(plans)
            for row in rows:
                self.profiles[group[int(row[0])].name] = profile_from_row(plans, exprs, list(row[1:]))
            return self.profiles.pop(table.name, None)

    def table_rows(self, table: TableConfig, schema: pa.Schema, source_run: SourceRun) -> pa.Table | None:
        """The rows of a small planned table, read in one statement with the other planned small
        tables of the same columns (at most :data:`ROWS_BUDGET` bytes of them); None: the caller
        streams it alone (not small, a group of one, past the budget, or the statement failed)."""
        with self._lock:
            got = self.rows.pop(table.name, None)
            if got is not None or table.name in self._fetched or not self._small(table):
                return got
            group = self._group(table, schema, lambda sql, t: source_run(sql, t).fetchall(), self._fetched, following=True)
            self._fetched.update(t.name for t in group)
            if len(group) < 2:
                return None
            read: Reader = lambda sql, t: source_run(sql, t, arrow=True, batch_rows=GROUP_READ_ROWS)  # noqa: E731
            data = _read_within(read, batched_rows_sql(group, schema), table, len(group))
            if data is None or data.schema.names[1:] != schema.names:
                return None
            for t, part in zip(group, split_rows(data, len(group)), strict=True):
                if part.num_rows != self.counts.get(t.name):  # not this table's count: read it alone
                    continue
                self.rows[t.name] = part
            return self.rows.pop(table.name, None)

    def _small(self, table: TableConfig) -> bool:
        n = self.counts.get(table.name)
        return table.name in self.planned and n is not None and 0 < n <= SMALL_ROWS

    def _group(
        self, table: TableConfig, schema: pa.Schema, run: Runner, tried: set[str], *, following: bool = False
    ) -> list[TableConfig]:
        """``table`` and the planned small tables not yet in ``tried`` whose columns are the same
        (names and DuckDB types) and are exported with the same columns, at most
        :data:`BATCH_TABLES` and :data:`SMALL_ROWS` rows together. ``following``: only the tables
        right after ``table`` in the run's order, up to the first that does not belong (rows are
        held until their table is exported: never across another table's export and its memory)."""
        self._catalog(table, run)
        mine = self._signature(table)
        if mine is None or not set(schema.names) <= set(mine[0]) or _KEY in mine[0]:
            return [table]
        group, rows = [table], self.counts[table.name]
        planned = list(self.planned.values())
        after = [t.name for t in planned].index(table.name) + 1 if following else 0
        for other in planned[after:]:
            if len(group) >= BATCH_TABLES:
                break
            n = self.counts.get(other.name, 0)
            fits = other.name not in tried and self._small(other) and rows + n <= SMALL_ROWS
            if other.name == table.name:
                continue
            if fits and other.exclude_columns == table.exclude_columns and self._signature(other) == mine:
                group.append(other)
                rows += n
            elif following:
                break
        return group

    def _catalog(self, table: TableConfig, run: Runner) -> None:
        if self.columns is None:  # every relation's columns, once per run (they cannot change while it reads)
            here = run(HERE_SQL, table)[0]
            self._here, self.columns = (here[0], here[1]), read_columns(run(COLUMNS_SQL, table))

    def _signature(self, table: TableConfig) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        assert self.columns is not None and table.source is not None
        return self.columns.get(catalog_key(table.source, self._here))


#: every relation's columns, in order, with their DuckDB type names
COLUMNS_SQL = (
    "SELECT lower(database_name), lower(schema_name), lower(table_name), "
    "list(column_name ORDER BY column_index), list(data_type ORDER BY column_index) "
    "FROM duckdb_columns() GROUP BY ALL"
)
HERE_SQL = "SELECT lower(current_schema()), lower(current_database())"


def read_columns(rows: list[tuple[Any, ...]]) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """:data:`COLUMNS_SQL`'s rows by catalog key."""
    return {f"{db}.{schema}.{name}": (tuple(cols), tuple(types)) for db, schema, name, cols, types in rows}
