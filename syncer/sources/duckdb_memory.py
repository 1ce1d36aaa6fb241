"""DuckDB's memory_limit in a sync: derived per table (``memory_limit = "auto"``), retried up to
the container's ceiling, and the one line for a table that does not fit under it."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

from syncer import _memory
from syncer._exceptions import SourceError, SourceOutOfMemoryError
from syncer.sources.errors import first_line, is_interrupt

__all__ = [
    "SCHEMA_WIDE",
    "VECTOR_ROWS",
    "auto_limit",
    "batch_target",
    "below_ceiling",
    "beyond_ceiling",
    "chunks",
    "columns_only",
    "copy_retrying",
    "gathered",
    "read_rows",
    "release_cache",
    "releasing",
    "sample_row_bytes",
    "shown",
    "with_ceiling",
]

T = TypeVar("T")
log = logging.getLogger("syncer")


def auto_limit(schema: pa.Schema, batch_rows: int, ceiling: int, threads: int = 1) -> str:
    """The limit a scan of ``schema`` in batches of ``batch_rows`` on ``threads`` needs, never above ``ceiling``."""
    need = _memory.duckdb_limit_for(schema, ceiling, batch_bytes=batch_rows * _memory.row_bytes(schema), threads=threads)
    return f"{need}B"


#: a source's limit at least this far over the floor is lowered to the floor once its reads end
#: (:func:`release_cache`): ~50 columns and more (a 20-column table's limit is ~37 MiB)
RELEASE_ABOVE = 32 * 2**20


def release_cache(source: Any) -> None:
    """Hand back the blocks DuckDB keeps cached after a table's reads (``memory_limit = "auto"``),
    once no stream and no profile of the source is running: DuckDB keeps every block it read while
    it is below its limit, and the limit of a 300-column table (211 MiB) held 125 MiB of blocks no
    query needed any more while the CSV or JSONL file was read back (a 300-column CSV sync peaked
    at 489 MiB that way, 453 without). Lowered to the floor, DuckDB drops them at once; the next
    query of the table derives its limit again (``use_limit_for``). A limit less than
    :data:`RELEASE_ABOVE` over the floor is kept: what it can cache is small, and setting it again
    for each of many small tables costs more than it saves."""
    if not source._auto or not source._profile_lock.acquire(blocking=False):
        return  # a profile is running: it releases when it ends
    try:
        with source._raised_lock:
            if source._reading or source._raised:
                return  # a stream is running (it releases when it ends), or a query has the ceiling
            floor = f"{_memory.DUCKDB_BASE}B"
            if _memory.parse_size(source.memory_limit) < _memory.DUCKDB_BASE + RELEASE_ABOVE:
                return
            try:
                source._set_limit(floor)
            except duckdb.Error:
                return  # held by a query still (out of memory), or the source is closed: best effort
            source.memory_limit, source._limit_of, source._lowered = floor, None, True
    finally:
        source._profile_lock.release()


def releasing(method: Callable[..., T]) -> Callable[..., T]:
    """``method`` of the source, then :func:`release_cache` (on an error too)."""

    @functools.wraps(method)
    def run(source: Any, *args: Any, **kwargs: Any) -> T:
        try:
            return method(source, *args, **kwargs)
        finally:
            release_cache(source)

    return run


def below_ceiling(limit: str, ceiling: int) -> bool:
    """Whether a retry at the ceiling would give a query that ran out at ``limit`` more memory."""
    return _memory.parse_size(limit) < ceiling


def shown(limit: str, auto: bool) -> str:
    """A limit as a message shows it (``"34.2 MiB, auto"``; an explicit one as it was written)."""
    return f"{_memory.format_size(_memory.parse_size(limit))}, auto" if auto else limit


def with_ceiling(ceiling: int) -> str:
    return f"{_memory.format_size(ceiling)} (this container's ceiling)"


def beyond_ceiling(exc: BaseException, table: str, what: str, ceiling: int) -> SourceOutOfMemoryError:
    """The one line for a table that does not fit: what it needed, the ceiling, the way out."""
    return SourceOutOfMemoryError(
        f"table {table!r}: {what} needs more memory than this container's ceiling of {_memory.format_size(ceiling)} "
        f"for DuckDB (container memory {_memory.format_size(_memory.container_limit_here())}; DuckDB said: "
        f"{first_line(exc.__cause__ or exc)}); the previous data is kept: give the container more memory, lower "
        "[export] batch_bytes, or export fewer columns (exclude_columns) or a narrower query"
    )


def sample_row_bytes(con: Any, sql: str) -> float | None:
    """Arrow bytes per row of ``sql`` (the table's first rows: how wide its strings are), to size its batches."""
    try:
        sample = con.sql(sql).to_arrow_table()
    except (duckdb.Error, RuntimeError) as exc:
        if is_interrupt(exc):
            raise KeyboardInterrupt from exc
        return None  # the stream reports the table's own error
    return sample.nbytes / sample.num_rows if sample.num_rows else None


#: the rows DuckDB hands over at a time when a table's row width is a guess (strings, lists): one of
#: its vectors, the unit it scans and converts in anyway, so nothing is read ahead of what is measured
VECTOR_ROWS = 2048


def read_rows(schema: pa.Schema, batch_rows: int) -> int:
    """Rows per read from DuckDB's Arrow stream: ``batch_rows`` when the schema fixes a row's size,
    else at most a vector, gathered into batches by their measured bytes (:func:`gathered`). A
    whole fraction of ``batch_rows`` (2,682 rows: reads of 1,341): a batch is whole chunks, never a
    copy of two halves of chunks (300 columns read in 2,048s cost a concat of every batch)."""
    if not _memory.has_variable_width(schema) or batch_rows <= VECTOR_ROWS:
        return batch_rows
    return batch_rows // -(-batch_rows // VECTOR_ROWS)


def batch_target(schema: pa.Schema, batch_rows: int, width: float | None) -> int:
    """The Arrow bytes past which :func:`gathered` closes a batch early: :data:`syncer._memory.TARGET_SLACK` times
    what a batch of ``batch_rows`` was sized to hold (the table's sampled or estimated row width)."""
    return max(1, int(_memory.TARGET_SLACK * batch_rows * (width or _memory.row_bytes(schema))))


def gathered(chunks: Iterator[pa.RecordBatch], batch_rows: int, target: int) -> Iterator[pa.RecordBatch]:
    """Batches of ``batch_rows`` rows (the last one fewer), each closed early once it holds about
    ``target`` bytes, as measured: chunks are gathered (split where a batch fills up), and a chunk
    bigger than ``target`` on its own (rows far wider than the sample said, one value of many MB)
    goes on in slices of about ``target`` bytes, at least one row each. So what the writers, the
    profile and the encoders hold per batch follows the bytes, not a row count from the first rows."""
    held: list[pa.RecordBatch] = []
    rows, size = 0, 0.0
    for chunk in chunks:
        per_row = chunk.nbytes / max(1, chunk.num_rows)  # measured once: a slice's nbytes counts shared buffers whole
        while chunk.num_rows:
            if held and size + per_row * min(chunk.num_rows, batch_rows - rows) > target:
                yield _joined(held)
                held, rows, size = [], 0, 0.0
            if not held and per_row * chunk.num_rows > target and chunk.num_rows > 1:
                step = max(1, int(target // per_row))
                yield chunk.slice(0, step)
                chunk = chunk.slice(step)
                continue
            take = min(chunk.num_rows, batch_rows - rows)
            held.append(chunk if take == chunk.num_rows else chunk.slice(0, take))
            rows, size = rows + take, size + per_row * take
            chunk = chunk.slice(take)
            if rows == batch_rows:
                yield _joined(held)
                held, rows, size = [], 0, 0.0
    if held:
        yield _joined(held)


def _joined(held: list[pa.RecordBatch]) -> pa.RecordBatch:
    return held[0] if len(held) == 1 else pa.concat_batches(held)


def chunks(reader: Any, table: str, mapped: Callable[[BaseException], BaseException]) -> Iterator[pa.RecordBatch]:
    """The batches of DuckDB's Arrow stream ``reader``, its errors as ours (``mapped``: the source's mapping)."""
    while True:
        try:
            yield reader.read_next_batch()
        except StopIteration:
            return
        except (duckdb.Error, OSError, RuntimeError) as exc:
            raise mapped(exc) from exc  # DuckDB's errors inside the Arrow stream reach us as pyarrow's OSError
        except pa.ArrowException as exc:
            raise SourceError(f"table {table!r}: reading from DuckDB failed: {exc}") from exc


#: columns from which the schema query (``LIMIT 0``) gets a limit of its own: it needs ~33 KiB a
#: column (1,200 columns: ~40 MB), so DuckDB's 16 MiB floor holds ~480; below this no ``SET`` is made
SCHEMA_WIDE = 256


def columns_only(columns: int) -> pa.Schema:
    """A stand-in schema of ``columns`` one-byte columns: what DuckDB's limit for a query of that many
    columns is derived from before the real schema is known (even ``LIMIT 0`` of 1,200 columns needs
    ~40 MB: one vector's buffers per column)."""
    return pa.schema([pa.field(f"c{i}", pa.int8()) for i in range(columns)])


def copy_retrying(
    copy: Callable[..., dict[str, Any]], args: tuple[str, str, int], limit: str, ceiling: int, table: str, **extra: Any
) -> dict[str, Any]:
    """The engine's COPY (``copy(path, sql, threads=, memory_limit=)``, in its child) at ``limit``; once more with the
    ceiling when it ran out of that (a value of MBs: DuckDB materialises a vector of them at once),
    as a stream's read is. A table that fits the container is not refused by the engine's limit.
    ``extra``: passed to both calls (``held``: the run holds the file open, see ``run_copy``)."""
    path, sql, threads = args
    got = copy(path, sql, threads=threads, memory_limit=limit, **extra)
    if got.get("ok") or got.get("kind") != "OutOfMemoryException" or not below_ceiling(limit, ceiling):
        return got
    log.warning(
        "table %r: DuckDB's COPY ran out of its memory_limit (%s): %s; running it again with memory_limit = %s",
        table,
        shown(limit, False),
        first_line(Exception(str(got.get("message")))),
        with_ceiling(ceiling),
        extra={"table": table},
    )
    return copy(path, sql, threads=threads, memory_limit=f"{ceiling}B", **extra)
