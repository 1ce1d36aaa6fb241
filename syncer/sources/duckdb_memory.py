"""DuckDB's memory_limit in a sync: derived per table (``memory_limit = "auto"``), retried up to
the container's ceiling, and the one line for a table that does not fit under it."""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

from syncer import _memory
from syncer._exceptions import SourceOutOfMemoryError
from syncer.sources.errors import first_line, is_interrupt

__all__ = ["auto_limit", "below_ceiling", "beyond_ceiling", "sample_row_bytes", "shown", "with_ceiling"]


def auto_limit(schema: pa.Schema, batch_rows: int, ceiling: int) -> str:
    """The limit a scan of ``schema`` in batches of ``batch_rows`` needs, never above ``ceiling``."""
    need = _memory.duckdb_limit_for(schema, ceiling, batch_bytes=batch_rows * _memory.row_bytes(schema))
    return f"{need}B"


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
