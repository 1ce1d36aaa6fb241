"""The DuckDB source's SQL and file helpers that need no connection: the profile's aggregate
groups, row filters, the types its Parquet unload keeps, the warehouse file's identity."""

from __future__ import annotations

import os
import re
from typing import Any

from syncer.sources.base import RowFilter, quote_ident
from syncer.validate.profile import ColumnPlan

__all__ = ["UNLOADABLE", "file_identity", "profile_groups", "where_sql"]


#: DuckDB types that DuckDB's Parquet writer stores as the same Arrow type its Arrow export gives
#: (UUID once cast to VARCHAR in the unload's SELECT)
UNLOADABLE = re.compile(
    r"^(BOOLEAN|TINYINT|SMALLINT|INTEGER|BIGINT|FLOAT|DOUBLE|VARCHAR|BLOB|DATE|TIMESTAMP|TIMESTAMP WITH TIME ZONE|UUID"
    r"|DECIMAL\(\d+,\d+\))$"
)


def file_identity(path: Any) -> str | None:
    """``file:<dev>:<inode>:<size>:<mtime_ns>:<ctime_ns>`` of the database file, or None while a
    WAL beside it holds changes the file itself does not show."""
    if os.path.exists(f"{path}.wal"):
        return None
    st = os.stat(path)
    return f"file:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def profile_groups(plans: list[ColumnPlan], approx_sum: frozenset[str] | set[str]) -> list[list[tuple[str, int, str]]]:
    """The profile's aggregates as (SQL, column index or -1 for the row count, statistic), in groups
    DuckDB answers fast on their own: counts, plain min/max, sums, NaN-aware float statistics."""
    counts: list[tuple[str, int, str]] = [("count(*)", -1, "rows")]
    minmax: list[tuple[str, int, str]] = []
    sums: list[tuple[str, int, str]] = []
    floats: list[tuple[str, int, str]] = []
    for i, plan in enumerate(plans):
        c = quote_ident(plan.name)
        counts.append((f"count({c})", i, "count"))
        if plan.floating:
            keep = f" FILTER (WHERE NOT isnan({c}))"
            floats += [(f"min({c}){keep}", i, "min"), (f"max({c}){keep}", i, "max")]
            floats += [(f"sum({c}){keep}", i, "sum"), (f"count(*) FILTER (WHERE isnan({c}))", i, "nans")]
            continue
        if plan.nanos:
            # integer nanoseconds: DuckDB hands TIMESTAMP_NS/TIME_NS to Python cut to microseconds
            minmax += [(f"epoch_ns(min({c}))", i, "min"), (f"epoch_ns(max({c}))", i, "max")]
        elif plan.minmax:
            minmax += [(f"min({c})", i, "min"), (f"max({c})", i, "max")]
        if plan.total:
            # sum of an integer column is HUGEINT in DuckDB: exact far beyond int64
            sums.append((f"sum({c}::DOUBLE)" if plan.name in approx_sum else f"sum({c})", i, "sum"))
    return [counts, minmax, sums, floats]


def where_sql(where: RowFilter | None) -> tuple[str, list[Any]]:
    if where is None:
        return "", []
    cond, params = where.sql()
    return f" WHERE {cond}", params
