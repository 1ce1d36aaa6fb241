"""The DuckDB source's SQL and file helpers that need no connection: the profile's aggregate
groups, row filters, the types its Parquet unload keeps, the warehouse file's identity."""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import duckdb

from syncer._memory import PROFILE_COLUMNS
from syncer.sources.base import RowFilter, quote_ident
from syncer.sources.errors import DuckDBContext, Stage, map_duckdb_error
from syncer.validate.profile import ColumnPlan, build_profile

__all__ = [
    "SMALL_ROWS",
    "STORAGE_ROW_GROUP",
    "UNLOADABLE",
    "UNLOAD_DICTIONARY_LIMIT",
    "by_columns",
    "connect_read_only",
    "file_identity",
    "profile_expressions",
    "profile_from_row",
    "profile_groups",
    "unload_row_group",
    "unload_sql",
    "unloadable",
    "where_sql",
]


#: DuckDB types that DuckDB's Parquet writer stores as the same Arrow type its Arrow export gives
#: (UUID once cast to VARCHAR in the unload's SELECT)
UNLOADABLE = re.compile(
    r"^(BOOLEAN|TINYINT|SMALLINT|INTEGER|BIGINT|FLOAT|DOUBLE|VARCHAR|BLOB|DATE|TIMESTAMP|TIMESTAMP WITH TIME ZONE|UUID"
    r"|DECIMAL\(\d+,\d+\))$"
)


#: entries a column's Parquet dictionary may take in one row group of the unload before DuckDB's
#: writer gives up on it and writes the column PLAIN. DuckDB's own limit lets a column of unique
#: values (an id, a UUID as text, an amount) fill a hash table of most of a row group's values
#: before it falls back to PLAIN, for every row group: ~13 % of the COPY's CPU on the benchmark's
#: orders table (20M rows: 11.87 -> 10.29 s with the UUID, 5.91 -> 5.10 s without), byte for byte
#: the same files there, because its low-cardinality columns (4 states, 2,500 dates) stay far below.
#: A column with more distinct values than this in a row group is written PLAIN, then compressed.
UNLOAD_DICTIONARY_LIMIT = 4096

#: rows per row group of DuckDB's storage (its default ``ROW_GROUP_SIZE``): a parallel scan hands
#: each thread one storage row group at a time
STORAGE_ROW_GROUP = 122_880


def unload_row_group(rows: int) -> int:
    """The unload's Parquet ``ROW_GROUP_SIZE`` for at most ``rows`` rows a group: a divisor of
    DuckDB's storage row group that is a whole number of its 2,048-row vectors. A COPY without
    insertion order then writes every Parquet row group from one contiguous run of the table's
    rows (one thread's morsel), so a key stored in order is strictly increasing inside each group
    and the groups' key ranges do not overlap: the key-order pass proves it unique
    (:mod:`syncer.export.engine`); a larger or unaligned size mixes two morsels in a group."""
    vectors = STORAGE_ROW_GROUP // 2048
    for d in range(vectors, 0, -1):
        if vectors % d == 0 and d * 2048 <= rows:
            return d * 2048
    return 2048


def unload_sql(relation: str, names: Sequence[str], uuids: set[str], path: str, compression: str, row_group: int) -> str:
    """The engine unload's ``COPY (SELECT ...) TO path``: UUID columns as text (as their Arrow
    export gives them; the Parquet writer would store 16 raw bytes), every column wrapped so DuckDB
    writes it nullable (as the stream path does), zstd at level 1 as the stream path's pyarrow
    writer (Arrow's default), not DuckDB's 3: the same files' size class, and ~30 % less CPU in the
    COPY (5M rows: 3.8 s vs 5.3 s); dictionaries of at most :data:`UNLOAD_DICTIONARY_LIMIT`
    entries a row group (a column of unique values stops trying early)."""
    value = {n: f"CAST({quote_ident(n)} AS VARCHAR)" if n in uuids else quote_ident(n) for n in names}
    cols = ", ".join(
        f"CASE WHEN {value[n]} IS NULL AND {value[n]} IS NOT NULL THEN NULL ELSE {value[n]} END AS {quote_ident(n)}"
        for n in names
    )
    codec = "uncompressed" if compression == "none" else compression
    level = ", COMPRESSION_LEVEL 1" if codec == "zstd" else ""
    target = path.replace("'", "''")
    return (
        f"COPY (SELECT {cols} FROM {relation}) TO '{target}' (FORMAT parquet, "
        f"COMPRESSION {codec}{level}, ROW_GROUP_SIZE {row_group}, DICTIONARY_SIZE_LIMIT {UNLOAD_DICTIONARY_LIMIT}, "
        "PARQUET_VERSION V1)"
    )


def unloadable(described: Sequence[Sequence[Any]], names: Sequence[str]) -> str | None:
    """Why the engine cannot unload a table (``DESCRIBE`` rows), or None: a column of the published
    ``names`` whose type DuckDB's Parquet writer stores as another type than its Arrow export."""
    wanted = set(names)
    for row in described:
        name, type_ = row[0], row[1]
        if name in wanted and not UNLOADABLE.match(str(type_)):
            return f"column {name!r} is {type_}, which DuckDB's Parquet writer stores as another type"
    return None


#: a table of at most this many rows (one DuckDB row group) is profiled in one query: its scan is
#: cheap and its memory small, and each query costs ~1 ms of planning (200 small tables: 0.6 s)
SMALL_ROWS = STORAGE_ROW_GROUP


def file_identity(path: Any, versions: str = "") -> str | None:
    """``file:<dev>:<inode>:<size>:<mtime_ns>:<ctime_ns>[:<versions>]`` of the database file, or
    None while a WAL beside it holds changes the file itself does not show. ``versions``: of what
    shapes the Arrow export besides the file (an upgrade then re-exports every table once)."""
    if os.path.exists(f"{path}.wal"):
        return None
    st = os.stat(path)
    return f"file:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}" + (f":{versions}" if versions else "")


def opened_identity(path: Any, versions: str, connect: Callable[[], Any]) -> tuple[Any, str | None]:
    """``connect()``'s connection and the change marker of the file it opened: the identity taken
    *before* the open (a file replaced or rewritten while the open runs -- ``mv copy x.duckdb``,
    ``cp -p`` -- is then a change to the next run, never the marker of a file this run did not
    read), and None when the identity after the open differs (nothing is confirmed this run)."""
    before = file_identity(path, versions)
    con = connect()
    return con, (before if before == file_identity(path, versions) else None)


def profile_expressions(
    plans: Sequence[ColumnPlan], approx_sum: frozenset[str] = frozenset(), known: frozenset[int] = frozenset()
) -> list[tuple[str, int, str]]:
    """``(sql, column index, stat)`` for every statistic of the profile (index -1: the row count)
    but those of the ``known`` columns: the one definition of the DuckDB source's profile query and
    of the engine's files profile (the same definitions on the same engine compare exactly)."""
    exprs: list[tuple[str, int, str]] = [("count(*)", -1, "rows")]
    for i, plan in enumerate(plans):
        if i in known:
            continue
        c = quote_ident(plan.name)
        exprs.append((f"count({c})", i, "count"))
        if plan.floating:
            keep = f" FILTER (WHERE NOT isnan({c}))"
            exprs += [(f"min({c}){keep}", i, "min"), (f"max({c}){keep}", i, "max")]
            exprs += [(f"sum({c}){keep}", i, "sum"), (f"count(*) FILTER (WHERE isnan({c}))", i, "nans")]
            continue
        if plan.nanos:
            # integer nanoseconds: DuckDB hands TIMESTAMP_NS/TIME_NS to Python cut to microseconds
            exprs += [(f"epoch_ns(min({c}))", i, "min"), (f"epoch_ns(max({c}))", i, "max")]
        elif plan.minmax:
            exprs += [(f"min({c})", i, "min"), (f"max({c})", i, "max")]
        if plan.total:
            # sum of an integer column is HUGEINT in DuckDB: exact far beyond int64
            exprs.append((f"sum({c}::DOUBLE)" if plan.name in approx_sum else f"sum({c})", i, "sum"))
    return exprs


def profile_groups(
    plans: list[ColumnPlan],
    approx_sum: frozenset[str] | set[str],
    *,
    one: bool = False,
    scanned: frozenset[int] | None = None,
) -> list[list[tuple[str, int, str]]]:
    """:func:`profile_expressions` in groups DuckDB answers fast on their own: counts, plain
    min/max, sums, NaN-aware float statistics; all in ``one`` group for a table of at most
    :data:`SMALL_ROWS` (its scan costs nothing, each query ~1 ms of planning). With ``scanned`` (a
    whole table, no row filter: the columns whose min/max DuckDB scans for, text and booleans)
    those min/max are a query apart from the others' (numbers, dates, times): DuckDB answers a query's min/max from its storage's segment
    statistics, without a scan, only when it can answer every aggregate in it that way -- one long
    text column in the query made it scan all of them (20M rows of the engine benchmark's table:
    0.72 s of CPU for its min/max together, 0.32 s column by column, of which 0.30 s the one long
    text column). Two queries, not one a column: a query costs ~1 ms of planning, 0.2 s more for
    a 300-column table's profile."""
    if one:
        return [profile_expressions(plans, frozenset(approx_sum))]
    return [part for g in _kinds(plans, approx_sum, scanned) for part in by_columns(g, PROFILE_COLUMNS)]


def by_columns(group: list[tuple[str, int, str]], most: int) -> list[list[tuple[str, int, str]]]:
    """``group`` in pieces of at most ``most`` columns, each column's expressions in one piece
    (the row count, column ``-1``, goes with the first). A query pins a block (256 KiB) of every
    column it scans while it runs, beside the stream's scan of every column: in pieces, the
    profile's share of memory_limit is ``most`` columns' blocks, not the table's
    (:func:`syncer._memory.duckdb_limit_for`); each more query costs ~1 ms of planning."""
    piece_of: dict[int, int] = {-1: 0}
    pieces: list[list[tuple[str, int, str]]] = []
    for e in group:
        k = piece_of.setdefault(e[1], (len(piece_of) - 1) // most)
        while len(pieces) <= k:
            pieces.append([])
        pieces[k].append(e)
    return pieces


def _kinds(
    plans: list[ColumnPlan], approx_sum: frozenset[str] | set[str], scanned: frozenset[int] | None
) -> list[list[tuple[str, int, str]]]:
    counts: list[tuple[str, int, str]] = []
    minmax: dict[bool, list[tuple[str, int, str]]] = {}
    sums: list[tuple[str, int, str]] = []
    floats: list[tuple[str, int, str]] = []
    for e in profile_expressions(plans, frozenset(approx_sum)):
        _, i, stat = e
        if i < 0 or stat == "count":
            counts.append(e)
        elif plans[i].floating:
            floats.append(e)
        elif stat == "sum":
            sums.append(e)
        else:
            minmax.setdefault(scanned is not None and i in scanned, []).append(e)
    return [counts, *minmax.values(), sums, floats]


def profile_from_row(plans: list[ColumnPlan], exprs: Sequence[tuple[str, int, str]], row: Sequence[Any]) -> dict[str, Any]:
    """The profile from the values of ``exprs`` (:func:`profile_expressions`, in their order)."""
    raw: list[dict[str, Any]] = [{} for _ in plans]
    rows = 0
    for (_, i, stat), value in zip(exprs, row, strict=True):
        if i < 0:
            rows = value
        else:
            raw[i][stat] = value
    for st in raw:
        st["nulls"] = rows - st.pop("count")
    return build_profile(rows, plans, raw)


def where_sql(where: RowFilter | None) -> tuple[str, list[Any]]:
    if where is None:
        return "", []
    cond, params = where.sql()
    return f" WHERE {cond}", params


#: how long opening the warehouse waits for a writer process to release DuckDB's file lock
LOCK_WAIT_S = 2.0


def connect_read_only(path: Any, threads: Any, memory_limit: str) -> Any:
    """The run's read-only connection (UTC). A writer process holding the file (DuckDB's lock) is
    waited for up to :data:`LOCK_WAIT_S`: a writer's transactions are short, and the sync gets in
    between two of them; a writer that keeps the file open fails the open with the way out."""
    deadline = time.monotonic() + LOCK_WAIT_S
    pause = 0.001
    while True:
        try:
            # read_only: many readers may share the file, and a sync can never change the source.
            con = duckdb.connect(str(path), read_only=True, config={"threads": threads, "memory_limit": memory_limit})
            con.execute("SET TimeZone = 'UTC'")
            return con
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() + pause > deadline:
                raise map_duckdb_error(exc, DuckDBContext(Stage.OPEN, path=path)) from exc
        except duckdb.Error as exc:
            raise map_duckdb_error(exc, DuckDBContext(Stage.OPEN, path=path)) from exc
        # short pauses: a writer that commits in a loop leaves only brief gaps between transactions
        time.sleep(pause * (0.5 + random.random()))
        pause = min(pause * 2, 0.005)
