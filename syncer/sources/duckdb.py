"""The embedded DuckDB warehouse as a source (the default; the demo runs on it)."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import duckdb
import pyarrow as pa

import syncer.sources.duckdb_memory as _mem
import syncer.sources.duckdb_sql as dsql
from syncer import _clock as clock
from syncer import _memory
from syncer._exceptions import (
    BadRowsError,
    SourceError,
    SourceOutOfMemoryError,
    SourceUnavailableError,
    TransientSourceError,
)
from syncer.config import SourceConfig, TableConfig
from syncer.sources.base import KeyRange, RowFilter, Source, quote_ident, relation_sql, select_sql
from syncer.sources.duckdb_batch import RunBatch, catalog_key
from syncer.sources.duckdb_memory import auto_limit, below_ceiling, beyond_ceiling, sample_row_bytes, shown, with_ceiling
from syncer.sources.duckdb_sql import SMALL_ROWS, opened_identity, profile_from_row, profile_groups, where_sql
from syncer.sources.duckdb_types import CONVERTED_TYPES, refuse_inexact, type_ids
from syncer.sources.duckdb_unload import UnloadCrashed, run_copy
from syncer.sources.errors import DuckDBContext, Stage, is_interrupt, map_duckdb_error
from syncer.validate.profile import CONVERTED, JSON_META, plan_for

__all__ = ["DuckDBSource"]

log = logging.getLogger("syncer")

#: memory_limit while DuckDB unloads a table (export = "engine"): its Parquet writer buffers a row
#: group per thread. At 20M rows (in the run's process): 256MB peaked at 338 MiB RSS, 2GB at 710 MiB;
#: the COPY runs in a child of its own (syncer.sources.duckdb_unload) beside the run's ~140 MiB: the
#: 20M-row engine sync's process tree peaked at 419 MiB with 192MB, 386 with 160MB, 353 with 128MB.
_UNLOAD_LIMIT = "160MB"
_STREAM_HINT = ' (export = "stream" for this table reads it in batches and quarantines rows that fail)'
#: rows read to measure a table's row width (its strings) before its batches are sized
_SAMPLE_ROWS = 2048


class DuckDBSource(Source):
    """One read-only connection for the whole run, opened once. DuckDB lets either one process
    open a database file read-write or any number open it read-only, never both (its file lock):
    while a sync holds the file, a writer process cannot open it, and one that holds it keeps the
    sync out (the sync fails to open the source and keeps the published data). So every query of
    every table of the run reads the file as it was when the run opened it: one consistent cut."""

    kind = "duckdb"
    marker_covers_schema = True  # the file's identity: a DDL statement changes the file too
    # The file is opened read-only, so no writer can exist while we hold it: a second connection
    # (cursor) sees exactly the data the streaming transaction sees.
    concurrent_profile = True

    def __init__(self, cfg: SourceConfig) -> None:
        self.path = cfg.path
        self.threads = cfg.threads
        self._auto = cfg.memory_limit == "auto"  # the limit follows each table's needs (syncer._memory)
        # a query that ran out of its limit runs once more with the ceiling (a value of many MB, a big sort), never more
        self.ceiling = cfg.memory_ceiling or _memory.memory_ceiling()
        self.memory_limit = f"{_memory.DUCKDB_BASE}B" if self._auto else cfg.memory_limit
        self._limit_of: str | None = None  # the table memory_limit was derived for (auto)
        self._needs_memory: set[str] = set()  # tables whose stream ran out of memory_limit once
        self._reading = 0  # streams in flight (their cache is handed back when none is: release_cache)
        self._raised = 0  # queries running with the raised limit (it is database-wide)
        self._lowered = True  # memory_limit is the configured one
        self._raised_lock = threading.Lock()
        self._profile_con: Any = None  # the profiles' cursor (see _profile_cursor)
        self._catalog: dict[str, list[str]] | None = None  # "catalog.schema.table" -> types (change_marker)
        self._profile_lock = threading.Lock()
        if self.path is None or not self.path.exists():
            raise SourceUnavailableError(
                f"DuckDB warehouse not found at {self.path}; build the demo with `syncer demo` or fix [source] path in the config"
            )
        # the marker describes the file this run opened, never a file put in its place meanwhile
        versions = f"duckdb-{duckdb.__version__}:pyarrow-{pa.__version__}"
        self.con, self._file_marker = opened_identity(self.path, versions, lambda: self._connect(cfg))
        # From here until close no writer can open the file: this is the moment every table is read at.
        self.run_moment = clock.utcnow()
        self._rows: dict[str, int] = {}  # each table's count (its profile runs as one query when small)
        self._widths: dict[str, float | None] = {}  # each table's sampled row width (the stream's batch bytes)
        self._batch = RunBatch()

    def _connect(self, cfg: SourceConfig) -> Any:
        return dsql.connect_read_only(self.path, cfg.threads, self.memory_limit)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": str(self.path), "duckdb_version": duckdb.__version__}

    @contextlib.contextmanager
    def pinned(self, table: TableConfig) -> Iterator[dict[str, Any]]:
        # The file is open read-only and DuckDB's file lock keeps any writer out while it is, so
        # every query of this sync (count, profile, stream, key ranges; every table) sees the data
        # as of the run's moment. No transaction is needed -- and none is wanted: a failed query
        # would abort it, and isolating bad rows runs queries that are expected to fail.
        assert self.run_moment is not None
        yield {
            "as_of": clock.iso(self.run_moment),
            "pinned": True,
            "isolation": "read-only database file",
        }

    def change_marker(self, table: TableConfig) -> str | None:
        """The database file's identity, taken while the file is open read-only (no writer can
        change it until close): any write to any table changes it, so the granularity is the whole
        file, not the table. None for a query, a view, or a file with a WAL beside it."""
        if table.query is not None or self._file_marker is None or table.source is None:
            return None
        if self._catalog is None:
            # the whole catalogue once per run, not one query per table: it cannot change while
            # the file is open read-only
            here = self._run("SELECT lower(current_schema()), lower(current_database())", table).fetchall()[0]
            sql = "SELECT lower(table_name), lower(table_schema), lower(table_catalog), table_type FROM information_schema.tables"
            self._catalog = {"": list(here)}
            for name, schema, catalog, kind in self._run(sql, table).fetchall():
                self._catalog.setdefault(f"{catalog}.{schema}.{name}", []).append(kind)
        key = catalog_key(table.source, (self._catalog[""][0], self._catalog[""][1]))
        return self._file_marker if self._catalog.get(key) == ["BASE TABLE"] else None

    def plan(self, tables: Sequence[TableConfig]) -> None:
        self._batch.plan(tables)  # their counts and small profiles asked together (syncer.sources.duckdb_batch)

    def schema(self, table: TableConfig) -> pa.Schema:
        types, arrow = self._batch.schema(table, lambda sql, t: self._run(sql, t).fetchall(), lambda: self._asked(table))
        refuse_inexact(table, types)
        fields = []
        for f in arrow:
            t = types.get(f.name)
            if t is not None and str(t) == "JSON":
                f = f.with_metadata(JSON_META)
            elif t is not None and type_ids(t) & CONVERTED_TYPES:  # recorded in the manifest
                f = f.with_metadata({CONVERTED: f"{t} -> {f.type}".encode()})
            fields.append(f)
        return pa.schema(fields)

    def _asked(self, table: TableConfig) -> tuple[dict[str, Any], pa.Schema]:
        try:
            rel = self.con.sql(f"SELECT * FROM {relation_sql(table)} LIMIT 0")
            if len(rel.columns) >= _mem.SCHEMA_WIDE:  # 1,200 columns fail at the floor; a narrow table: no SET
                self.use_limit_for(table, _mem.columns_only(len(rel.columns)), 1, lower=False)
            return dict(zip(rel.columns, rel.types, strict=True)), rel.to_arrow_table().schema
        except (duckdb.Error, RuntimeError) as exc:
            raise self._error(exc, table) from exc

    def count(self, table: TableConfig, where: RowFilter | None = None) -> int:
        batched = None if where is not None else self._batch.count(table, lambda sql, t: self._run(sql, t).fetchall())
        if batched is not None:
            self._rows[table.name] = batched
            return batched
        cond, params = where_sql(where)
        # fetchall, not fetchone: DuckDB 2.0 refuses the next query on a connection with an unread result.
        n = int(self._run(f"SELECT count(*) FROM {relation_sql(table)}{cond}", table, params=params).fetchall()[0][0])
        if where is None:
            self._rows[table.name] = n
        return n

    @_mem.releasing
    def profile(self, table: TableConfig, schema: pa.Schema, where: RowFilter | None = None) -> dict[str, Any]:
        self.use_limit_for(table, schema, _SAMPLE_ROWS, lower=False)
        try:
            batched = None if where is not None else self._batched_profile(table, schema)
            return batched if batched is not None else self._profile(table, schema, where)
        except BadRowsError as exc:
            wide = {f.name for f in schema if pa.types.is_decimal(f.type) and f.type.precision > 18}
            if not (wide and "Overflow" in str(exc)):
                raise
            # An exact decimal sum past 38 digits does not fit any DuckDB type: those sums are
            # taken as DOUBLE and compared with a float tolerance (recorded in the profile).
            prof = self._profile(table, schema, where, approx_sum=wide)
            prof["approx_sum"] = sorted(wide)
            return prof
        except SourceOutOfMemoryError as exc:
            # min/max of very large values (a 10 MB string) need more than the bounded cache: allow
            # this one query up to the ceiling, then bound the cache again.
            if not below_ceiling(self.memory_limit, self.ceiling):
                raise beyond_ceiling(exc, table.name, "its profile", self.ceiling) from exc
            log.warning("%s; retrying the profile with memory_limit = %s", exc, with_ceiling(self.ceiling))
            # (on a cursor of its own: the main connection may be busy streaming on another thread;
            # memory_limit is a database-wide setting)
            self._more_memory(+1)
            try:
                return self._profile(table, schema, where)
            except SourceOutOfMemoryError as again:
                raise beyond_ceiling(again, table.name, "its profile", self.ceiling) from again
            finally:
                self._more_memory(-1)

    def _batched_profile(self, table: TableConfig, schema: pa.Schema) -> dict[str, Any] | None:
        with self._profile_cursor() as cur:
            return self._batch.profile(table, schema, lambda sql, t: self._run(sql, t, con=cur).fetchall())

    def use_limit_for(self, table: TableConfig, schema: pa.Schema, batch_rows: int, *, lower: bool = True) -> None:
        """memory_limit = "auto": what this table's scan needs (columns, a batch), at most the ceiling; never
        lowered within a table, nor for a profile (``lower=False``): its stream sets it (no SET per query)."""
        if not self._auto:
            return
        with self._raised_lock:
            limit = auto_limit(schema, batch_rows, self.ceiling, self.threads)
            wanted, now = _memory.parse_size(limit), _memory.parse_size(self.memory_limit)
            if self._lowered and wanted == now:
                self._limit_of = table.name
                return
            if wanted < now and (self._limit_of == table.name or not lower):
                return
            self.memory_limit, self._limit_of = limit, table.name
            if self._raised == 0:
                try:
                    self._set_limit(self.memory_limit)
                    self._lowered = True
                except duckdb.OutOfMemoryException:
                    self._lowered = False  # a query still holds more; lowered when it ends

    def _more_memory(self, change: int) -> None:
        """Raise memory_limit while at least one query needs it (a stream and a profile may overlap):
        ``+1`` when a query starts needing it, ``-1`` when it is done, ``0`` only to lower it again.

        Lowering can fail while another query still holds more than the configured limit (it ran
        while the limit was raised): then the limit stays raised until the next stream starts or
        ends (each calls this), and no query fails for it."""
        with self._raised_lock:
            self._raised += change
            if change > 0 and self._raised == 1:
                self._set_limit(f"{self.ceiling}B")
                self._lowered = False
            if self._raised == 0 and not self._lowered:
                try:
                    self._set_limit(self.memory_limit)
                    self._lowered = True
                except duckdb.OutOfMemoryException:
                    log.debug("memory_limit stays at %s until the running query ends", f"{self.ceiling}B")

    @contextlib.contextmanager
    def _profile_cursor(self) -> Iterator[Any]:
        """The profiles' own connection (UTC), made once per run (one overlapping it: a cursor of its own)."""
        if not self._profile_lock.acquire(blocking=False):
            cur = self.con.cursor()
            try:
                cur.execute("SET TimeZone = 'UTC'")
                yield cur
            finally:
                cur.close()
            return
        try:
            if self._profile_con is None:
                cur = self.con.cursor()
                cur.execute("SET TimeZone = 'UTC'")
                self._profile_con = cur
            yield self._profile_con
        finally:
            self._profile_lock.release()

    def _set_limit(self, limit: str) -> None:
        cur = self.con.cursor()
        try:
            cur.execute(f"SET memory_limit = '{limit}'")
        finally:
            cur.close()

    def _profile(
        self,
        table: TableConfig,
        schema: pa.Schema,
        where: RowFilter | None = None,
        approx_sum: frozenset[str] | set[str] = frozenset(),
    ) -> dict[str, Any]:
        plans = [plan_for(f) for f in schema]
        small = where is None and self._rows.get(table.name, SMALL_ROWS + 1) <= SMALL_ROWS
        scanned = frozenset(i for i, f in enumerate(schema) if pa.types.is_boolean(f.type) or plans[i].form == "text")
        groups = profile_groups(plans, approx_sum, one=small, scanned=scanned if where is None else None)
        cond, params = where_sql(where)
        # Narrow queries, one after another, on the run's one profile cursor: DuckDB answers plain
        # count/min/max/sum from a fast scan (segment statistics prune most of the work), while one
        # SELECT mixing FILTER clauses and casts scans every value (about 3x the CPU on the demo
        # table); and one at a time, because the groups run as one query (subqueries joined) scan at
        # once and need their memory together: 300 columns ran out of a 128 MiB ceiling that way.
        parts = [g for g in groups if g]
        row: list[Any] = []
        with self._profile_cursor() as cur:
            for g in parts:
                sql = f"SELECT {', '.join(e for e, _, _ in g)} FROM {relation_sql(table)}{cond}"
                row.extend(self._run(sql, table, con=cur, params=params).fetchall()[0])
        return profile_from_row(plans, [x for g in parts for x in g], row)

    supports_key_ranges = True

    def key_bounds(self, table: TableConfig, key: str) -> tuple[Any, Any]:
        k = quote_ident(key)
        row = self._run(f"SELECT min({k}), max({k}) FROM {relation_sql(table)}", table).fetchall()[0]
        return row[0], row[1]

    def split_key(self, table: TableConfig, rng: KeyRange) -> Any:
        k = quote_ident(rng.key)
        cond, params = rng.sql()
        rel = f"{relation_sql(table)} WHERE {cond}"
        n = self._run(f"SELECT count(DISTINCT {k}) FROM {rel}", table, params=params).fetchall()[0][0]
        if n <= 1:
            return None
        sql = f"SELECT DISTINCT {k} AS k FROM {rel} ORDER BY k LIMIT 1 OFFSET {int(n) // 2}"
        return self._run(sql, table, params=params).fetchall()[0][0]

    def stream_range(self, table: TableConfig, schema: pa.Schema, batch_rows: int, rng: KeyRange) -> Iterator[pa.RecordBatch]:
        cond, params = rng.sql()
        self.use_limit_for(table, schema, batch_rows)
        return self._read(f"{select_sql(table, schema)} WHERE {cond}", table, schema, batch_rows, params)

    def stream(self, table: TableConfig, schema: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]:
        if (rows := self._batch.table_rows(table, schema, self._run)) is not None:  # small: read with its kind
            return iter(rows.combine_chunks().to_batches(max_chunksize=batch_rows))
        self.use_limit_for(table, schema, batch_rows)
        return self._read(select_sql(table, schema), table, schema, batch_rows, [])

    def sample_row_bytes(self, table: TableConfig, schema: pa.Schema) -> float | None:
        self.use_limit_for(table, schema, _SAMPLE_ROWS)
        width = self._widths[table.name] = sample_row_bytes(self.con, f"{select_sql(table, schema)} LIMIT {_SAMPLE_ROWS}")
        return width

    def _read(
        self, sql: str, table: TableConfig, schema: pa.Schema, batch_rows: int, params: list[Any]
    ) -> Iterator[pa.RecordBatch]:
        """Stream ``sql``. A read that runs out of the memory_limit before its first batch starts
        again with more memory; one that runs out later fails as transient, and the retry of the
        table streams with more memory from the start."""
        raised = table.name in self._needs_memory
        self._more_memory(+1 if raised else 0)
        self._reading += 1
        try:
            while True:
                yielded = False
                try:
                    chunk = _mem.read_rows(schema, batch_rows)
                    reader = self._run(sql, table, arrow=True, batch_rows=chunk, params=params)
                    target = _mem.batch_target(schema, batch_rows, self._widths.get(table.name))
                    mapped = _mem.chunks(reader, table.name, lambda e: self._error(e, table))
                    for batch in _mem.gathered(mapped, chunk * (batch_rows // chunk), target):
                        yielded = True
                        yield batch
                    return
                except SourceOutOfMemoryError as exc:
                    if raised or not below_ceiling(self.memory_limit, self.ceiling):
                        raise beyond_ceiling(exc, table.name, "reading it", self.ceiling) from exc
                    self._needs_memory.add(table.name)
                    log.warning("%s; reading it again with memory_limit = %s", exc, with_ceiling(self.ceiling))
                    if yielded:
                        # Batches are out already: the table starts over, and reads with more memory then.
                        raise TransientSourceError(
                            f"{exc}; the table is read again from the start with memory_limit = {with_ceiling(self.ceiling)}"
                        ) from exc
                    self._more_memory(+1)
                    raised = True
        finally:
            self._reading -= 1
            self._more_memory(-1 if raised else 0)
            _mem.release_cache(self)

    supports_unload = True

    def unload_refusal(self, table: TableConfig, schema: pa.Schema) -> str | None:
        """DuckDB types whose Parquet form reads back as another Arrow type than its Arrow export
        (HUGEINT as DOUBLE, ENUM, INTERVAL, TIMESTAMP_S/MS/NS, TIME, nested types, JSON ...)."""
        return dsql.unloadable(self._run(f"DESCRIBE SELECT * FROM {relation_sql(table)}", table).fetchall(), schema.names)

    def unload(self, table: TableConfig, schema: pa.Schema, folder: Any, *, compression: str, row_group_rows: int) -> None:
        """``COPY (SELECT ...) TO folder/data_0.parquet`` in a child process on a read-only connection
        of its own (the run's moment: no writer can open the file while the run holds it; see
        :mod:`syncer.sources.duckdb_unload`): one file, written by all threads without insertion order
        (``preserve_insertion_order = false`` for the COPY only: DuckDB's ordered COPY under the
        unload's memory limit ran about one thread's speed, 2x the wall), with row groups aligned
        to the storage's (:func:`unload_row_group`): each row group is one contiguous run of the
        table's rows, so a key the table is stored in order of is proven unique by one pass over
        the key column, row group by row group in key order, instead of an exact scan. Every
        column is wrapped so DuckDB writes it nullable, as the stream path does."""
        uuids = {r[0] for r in self._run(f"DESCRIBE SELECT * FROM {relation_sql(table)}", table).fetchall() if r[1] == "UUID"}
        os.makedirs(folder)
        path = os.path.join(str(folder), "data_0.parquet")
        sql = dsql.unload_sql(relation_sql(table), schema.names, uuids, path, compression, dsql.unload_row_group(row_group_rows))
        threads = max(int(self._run("SELECT current_setting('threads')", table).fetchall()[0][0]), min(os.cpu_count() or 1, 4))
        limit = f"{min(_memory.parse_size(_UNLOAD_LIMIT), self.ceiling)}B"  # never above the ceiling
        try:  # in a child: DuckDB 2.0 hangs or crashes when a multi-threaded COPY fails part-way
            got = _mem.copy_retrying(run_copy, (str(self.path), sql, threads), limit, self.ceiling, table.name, held=True)
        except UnloadCrashed as exc:
            raise SourceError(
                f"table {table.name!r}: {exc}; nothing of it was published, it keeps its old data{_STREAM_HINT}"
            ) from None
        if not got.get("ok"):
            kind = getattr(duckdb, str(got.get("kind")), duckdb.Error)
            kind = kind if isinstance(kind, type) and issubclass(kind, duckdb.Error) else duckdb.Error
            raise self._error(kind(str(got.get("message"))), table) from None

    def close(self) -> None:
        with contextlib.suppress(duckdb.Error):
            if self._profile_con is not None:
                self._profile_con.close()
            self.con.close()

    def _run(
        self,
        sql: str,
        table: TableConfig,
        *,
        arrow: bool = False,
        batch_rows: int = 131_072,
        con: Any = None,
        params: list[Any] | None = None,
    ) -> Any:
        con = con or self.con
        try:
            if arrow:
                return con.sql(sql, params=params or None).to_arrow_reader(batch_rows)
            return con.execute(sql, params or [])
        except (duckdb.Error, RuntimeError) as exc:
            raise self._error(exc, table) from exc

    def _error(self, exc: BaseException, table: TableConfig) -> BaseException:
        """Ours for DuckDB's ``exc`` (called while it is handled); Ctrl-C stays an interrupt, and a
        RuntimeError that is not DuckDB's is re-raised as it is."""
        if is_interrupt(exc):
            return KeyboardInterrupt()
        if isinstance(exc, RuntimeError):
            raise exc
        relation = f"query of table {table.name!r}" if table.query else f"source table {table.source!r}"
        ctx = DuckDBContext(Stage.READ, table.name, self.path, relation, shown(self.memory_limit, self._auto))
        return map_duckdb_error(exc, ctx)
