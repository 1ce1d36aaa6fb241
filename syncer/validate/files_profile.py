"""The profile of Parquet files the warehouse wrote (``export = "engine"``), computed by DuckDB.

The stream path profiles the batches it hands to the writer (Arrow compute, one batch at a time).
The engine path has no batches: the warehouse wrote the files. Re-reading them into Python to
profile them cost almost half the unload again (3.9 s re-read + 3.0 s key scan after a 16 s
unload at 5M rows, see README *Engine path against the stream path*), so here one aggregate
query of an in-process DuckDB over ``read_parquet(<the staged files>)`` computes the profile, on a
connection of its own (bounded memory, spills to the run's spill folder), in parallel with the
sha256 of the files and the key-order pass.

The values are exactly comparable with the source's profile because they are the source's own
definitions: the expressions below are those of ``DuckDBSource._profile`` (``count(col)`` for
nulls, ``min``/``max``, exact ``sum`` -- HUGEINT for integers, DECIMAL for decimals -- floats with
NaN counted apart and kept out of min/max/sum), evaluated by the same engine over the written files
instead of the source table, and the raw values go through the same
:func:`~syncer.validate.profile.build_profile`. Only float sums are compared with a tolerance (as
for every engine: summation order differs), and a wide decimal's sum that overflows 38 digits falls
back to a DOUBLE sum exactly as the source's does. tests/test_engine_export.py proves the two
agree value for value with the stream path's Arrow profile on every type the engine unloads.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from syncer._exceptions import ValidationError
from syncer.config import TableConfig
from syncer.formats.stats import footer_stats
from syncer.sources.duckdb_sql import profile_expressions
from syncer.sources.errors import is_interrupt
from syncer.validate.profile import ColumnPlan, ProfileAccumulator, build_profile, plan_for, range_from_footer

__all__ = ["FilesProfile", "footer_known", "profile_expressions", "profile_files"]

#: memory of the profile query's connection: aggregate states without GROUP BY are a few bytes per
#: column, so this only bounds the Parquet reader's buffers (a row group of the numeric and boolean
#: columns per thread: ~10 MB for the benchmark's table)
_MEMORY_LIMIT = "128MB"


class FilesProfile(ProfileAccumulator):
    """A profile computed elsewhere (by DuckDB over the files): the accumulator's interface for the
    checks (``rows``, ``result()``), nothing left to accumulate."""

    def __init__(self, schema: pa.Schema, rows: int, raw: list[dict[str, Any]], pending: frozenset[int] = frozenset()) -> None:
        super().__init__(schema)
        self.rows = rows
        self._raw = raw
        self._pending = set(pending)  # columns the caller fills (the query left them out)

    def update(self, batch: pa.RecordBatch) -> None:
        raise TypeError("a FilesProfile is computed from the files; it takes no batches")

    def fill(self, i: int, other: ProfileAccumulator) -> None:
        """Column ``i``'s statistics from ``other``, a one-column accumulator that read it (the
        engine's key pass, which decodes the key column anyway: the query leaves it out)."""
        self._raw[i] = other.column_stats(0)
        self._pending.discard(i)

    def result(self) -> dict[str, Any]:
        if self._pending:  # a column nobody computed must not pass as "no nulls, no values"
            raise RuntimeError(
                f"the files profile of {sorted(self.schema.field(i).name for i in self._pending)} was never filled"
            )
        return build_profile(self.rows, self.plans, self._raw)


def profile_files(
    table: TableConfig,
    schema: pa.Schema,
    files: Sequence[Path],
    spill_dir: Path | None,
    threads: int = 2,
    elsewhere: frozenset[int] = frozenset(),
) -> FilesProfile:
    """The profile of ``files`` (one aggregate query; a decimal sum past 38 digits is taken as
    DOUBLE, as the source does) but the ``elsewhere`` columns, which the caller fills
    (:meth:`FilesProfile.fill`); raises :class:`ValidationError` naming the
    table and the file when they cannot be read."""
    import duckdb  # a reader of the volume never needs it

    config: dict[str, Any] = {"threads": max(1, threads), "memory_limit": _MEMORY_LIMIT}
    if spill_dir is not None:
        config["temp_directory"] = str(spill_dir)
    con = duckdb.connect(config=config)
    try:
        con.execute("SET TimeZone = 'UTC'")
        try:
            return _run(con, schema, files, frozenset(), elsewhere)
        except duckdb.OutOfRangeException as exc:
            wide = frozenset(f.name for f in schema if pa.types.is_decimal(f.type) and f.type.precision > 18)
            if not (wide and "Overflow" in str(exc)):
                raise
            return _run(con, schema, files, wide, elsewhere)
    except (duckdb.Error, RuntimeError, pa.ArrowException, OSError) as exc:
        if is_interrupt(exc):
            raise KeyboardInterrupt from exc
        names = ", ".join(p.name for p in files[:3]) + (" ..." if len(files) > 3 else "")
        raise ValidationError(
            f"table {table.name!r}: the profile of the unloaded files ({names}) could not be computed: "
            f'{str(exc).splitlines()[0]}; nothing was published; set export = "stream" for this table if it persists'
        ) from exc
    finally:
        con.close()


def footer_known(schema: pa.Schema, files: Sequence[Path]) -> dict[int, dict[str, Any]]:
    """nulls, min and max of the columns whose every one is in the footers: text, dates and
    timestamps that need no sum (numbers are decoded for their sums anyway, and their min/max with
    them); a column with a row group lacking statistics is left to the query. DuckDB's Parquet
    writer writes a text column's min/max whole or not at all (none past 10,000 bytes), never cut,
    and pyarrow gives them back as the Python values DuckDB's own min/max give (the stream path's
    profile relies on the same, see ``syncer.formats.stats``)."""
    plans = [plan_for(f) for f in schema]
    wanted = {f.name: i for i, (f, p) in enumerate(zip(schema, plans, strict=True)) if _from_footer(f, p)}
    stats = footer_stats(files, list(wanted))
    return {wanted[n]: st for n, st in stats.items() if st is not None and st["nulls"] is not None}


def _from_footer(field: pa.Field, plan: ColumnPlan) -> bool:
    return plan.minmax and not plan.total and not plan.floating and not plan.nanos and range_from_footer(field)


def _run(
    con: Any, schema: pa.Schema, files: Sequence[Path], approx_sum: frozenset[str], elsewhere: frozenset[int]
) -> FilesProfile:
    plans = [plan_for(f) for f in schema]
    footer = footer_known(schema, files)
    exprs = profile_expressions(plans, approx_sum, frozenset(footer) | elsewhere)
    sql = f"SELECT {', '.join(e for e, _, _ in exprs)} FROM read_parquet(?)"
    row = con.execute(sql, [[str(f) for f in files]]).fetchall()[0]
    raw: list[dict[str, Any]] = [dict(footer.get(i, {})) for i in range(len(plans))]
    rows = 0
    for (_, i, stat), value in zip(exprs, row, strict=True):
        if i < 0:
            rows = int(value)
        else:
            raw[i][stat] = value
    for st in raw:
        if "count" in st:
            st["nulls"] = rows - st.pop("count")
    return FilesProfile(schema, rows, raw, elsewhere)
