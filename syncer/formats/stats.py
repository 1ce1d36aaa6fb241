"""min/max of columns from the footer statistics of a written Parquet table, so the profile of a
long text column need not be computed while it streams."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from syncer.formats.files import parquet_footer
from syncer.formats.parquet import parquet_files
from syncer.validate.profile import utc_datetime

__all__ = ["parquet_ranges"]


def parquet_ranges(path: Path, names: Sequence[str]) -> dict[str, tuple[Any, Any] | None]:
    """min/max of top-level ``names`` from the footer statistics of a written Parquet table (all its
    parts): ``(None, None)`` for an all-null column, ``None`` where a row group holding values has
    no statistics for it (the caller computes that one from the data)."""
    out: dict[str, tuple[Any, Any] | None] = {n: (None, None) for n in names}
    for f in parquet_files(path):
        md = parquet_footer(f)  # read once for this and the re-open's checks
        arrow = md.schema.to_arrow_schema()
        # time-zone timestamps from their raw integers: pyarrow's own conversion imports pandas
        zoned = {n: arrow.field(n).type.unit for n in names if _zoned(arrow.field(n).type)}
        for g in range(md.num_row_groups):
            rg = md.row_group(g)
            index = {rg.column(j).path_in_schema: j for j in range(rg.num_columns)}
            for name in names:
                cur = out[name]
                if cur is None:
                    continue
                st = rg.column(index[name]).statistics
                if st is not None and st.has_null_count and st.null_count == rg.num_rows:
                    continue  # nothing but nulls here
                if st is None or not st.has_min_max:
                    out[name] = None
                    continue
                lo, hi = cur
                smin, smax = (
                    (utc_datetime(st.min_raw, zoned[name]), utc_datetime(st.max_raw, zoned[name]))
                    if name in zoned
                    else (st.min, st.max)
                )
                out[name] = (smin if lo is None or smin < lo else lo, smax if hi is None or smax > hi else hi)
    return out


def _zoned(t: pa.DataType) -> bool:
    return pa.types.is_timestamp(t) and bool(t.tz) and t.unit != "ns"
