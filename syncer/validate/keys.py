"""Primary-key uniqueness of the written rows.

Proven while streaming when the keys arrived strictly increasing (``KeyOrder``); otherwise an exact
scan of the written file's key columns by an in-process DuckDB, used here as a query engine over the
files (not as the source): bounded memory, spills to disk, never holds the keys as Python objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from syncer._exceptions import ValidationError
from syncer._memory import memory_ceiling
from syncer.config import TableConfig
from syncer.formats import WrittenFile, iter_batches, parquet_files
from syncer.sources.base import quote_ident
from syncer.sources.errors import DuckDBContext, Stage, is_interrupt, map_duckdb_error

__all__ = ["DupResult", "KeyOrder", "scan_duplicate_keys"]


@dataclass
class DupResult:
    """Duplicate keys found in the written file (``keys`` holds at most the scan's limit)."""

    groups: int = 0
    rows: int = 0
    keys: list[tuple[Any, ...]] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    proven_by_order: bool = False
    quarantined: bool = False


def scan_duplicate_keys(
    table: TableConfig,
    schema: pa.Schema,
    order: KeyOrder,
    written: WrittenFile,
    spill_dir: Path | None,
    limit: int,
) -> DupResult:
    """Duplicate keys of the written rows: none when ``order`` proved them strictly increasing, else
    an exact scan of the written file's key columns. Returns up to ``limit`` duplicated keys (at
    least 5, for the message)."""
    if order.proven:
        return DupResult(proven_by_order=True)
    keys = list(table.primary_key)
    rows = _scan(table, schema, written, spill_dir, max(int(limit), 5))
    if not rows:
        return DupResult()
    n = len(keys)
    return DupResult(
        groups=int(rows[0][-2]),
        rows=int(rows[0][-1]),
        keys=[tuple(r[:n]) for r in rows],
        counts=[int(r[n]) for r in rows],
    )


def _scan(table: TableConfig, schema: pa.Schema, written: WrittenFile, spill_dir: Path | None, limit: int) -> list[Any]:
    import duckdb  # only for the scan: a reader of the volume never needs it

    keys = list(table.primary_key)
    if table.format == "parquet":
        scan: Any = None
        relation = "read_parquet(?)"
        params: list[Any] = [[str(f) for f in parquet_files(written.path)]]
    else:
        key_schema = pa.schema([schema.field(k) for k in keys])
        scan = pa.RecordBatchReader.from_batches(key_schema, iter_batches(table.format, written.path, schema, keys))
        relation = "keys_scan"
        params = []
    cols = ", ".join(quote_ident(k) for k in keys)
    not_null = " AND ".join(f"{quote_ident(k)} IS NOT NULL" for k in keys)
    config: dict[str, Any] = {"threads": 2, "memory_limit": f"{min(256 * 10**6, memory_ceiling())}B"}  # spills past it
    if spill_dir is not None:
        config["temp_directory"] = str(spill_dir)
    con = duckdb.connect(config=config)
    try:
        if scan is not None:
            con.register("keys_scan", scan)
        return con.execute(
            # aliases that cannot collide with a key column's name
            f"SELECT {cols}, __syncer_n, count(*) OVER () AS __syncer_groups, sum(__syncer_n) OVER () AS __syncer_rows "
            f"FROM (SELECT {cols}, count(*) AS __syncer_n FROM {relation} WHERE {not_null} GROUP BY {cols} "
            f"HAVING count(*) > 1) ORDER BY __syncer_n DESC LIMIT {limit}",
            params,
        ).fetchall()
    except (duckdb.Error, RuntimeError) as exc:
        if is_interrupt(exc):
            raise KeyboardInterrupt from exc
        if isinstance(exc, RuntimeError):
            raise
        ctx = DuckDBContext(Stage.CHECK, table.name, written.path, what=f"the duplicate-key scan of {written.path.name}")
        raise map_duckdb_error(exc, ctx) from exc
    except pa.ArrowException as exc:
        raise ValidationError(
            f"table {table.name!r}: the duplicate-key scan of {written.path.name} could not read it back: {exc}"
        ) from exc
    finally:
        con.close()


class KeyOrder:
    """Proves a single-column key unique while it streams, in O(1) memory, when the keys arrive in
    strictly increasing order (the common case: tables scanned in key order). Any strict order
    proves distinctness. When the order breaks, ``proven`` turns False and the caller falls back to
    an exact scan of the written file."""

    def __init__(self, schema: pa.Schema, keys: tuple[str, ...]) -> None:
        self.column = keys[0] if len(keys) == 1 else None
        t = schema.field(self.column).type if self.column else None
        orderable = t is not None and (
            pa.types.is_integer(t)
            or pa.types.is_decimal(t)
            or pa.types.is_string(t)
            or pa.types.is_large_string(t)
            or pa.types.is_date(t)
            or pa.types.is_timestamp(t)
        )
        self.proven = bool(orderable)
        self._last: Any = None

    def update(self, batch: pa.RecordBatch) -> None:
        if not self.proven or batch.num_rows == 0:
            return
        arr = batch.column(self.column)
        if arr.null_count:
            self.proven = False  # nulls are reported by primary_key_not_null; the exact scan decides the rest
            return
        n = len(arr)
        if n > 1 and not pc.all(pc.less(arr.slice(0, n - 1), arr.slice(1))).as_py():
            self.proven = False
            return
        if pa.types.is_timestamp(arr.type):
            # compared as integers (the same order): pyarrow's datetime of a zoned or nanosecond
            # timestamp imports pandas, mid-run
            arr = arr.cast(pa.int64())
        first = arr[0].as_py()
        if self._last is not None and not self._last < first:
            self.proven = False
            return
        self._last = arr[n - 1].as_py()
