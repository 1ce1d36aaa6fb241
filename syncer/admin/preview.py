"""Data preview: the first rows of a published table, read without reading the table.

The page shows ``limit`` rows; reading a 20M-row table to show 100 of them took seconds and
gigabytes in the process that also syncs. So only the first batches are read (Parquet row groups
one at a time, Arrow IPC record batches memory-mapped, CSV/JSONL streamed), through the same
format readers ``read_table`` uses, and stopped as soon as ``limit`` rows are in. The rows go to
pandas through the reader's exact dtype path; where that path looks at the whole column (an
integer column with a null anywhere becomes ``Int64``), the manifest's profile of the whole
column decides, so the preview's dtypes are the ones ``read_table`` gives.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from syncer._exceptions import NoSnapshotError
from syncer.config import Config
from syncer.volume.layout import Volume
from syncer.volume.manifest import ManifestEntry, Record

__all__ = ["TablePreview", "preview_table"]


@dataclass(frozen=True)
class TablePreview(Record):
    table: str
    snapshot_id: str
    #: the table's rows (from the manifest), not the rows read
    rows: int
    columns: int
    #: rows read and shown (at most the limit)
    shown: int
    #: the reader's warnings for this table (stale, carried over, quarantined, fallback)
    warnings: tuple[str, ...]
    #: the first rows as pandas
    frame: Any = None


def preview_table(cfg: Config, name: str, limit: int = 100) -> TablePreview:
    """The first ``limit`` rows of ``name`` as apps read it now (:mod:`syncer.reader`'s snapshot choice)."""
    import pyarrow as pa

    from syncer.formats import iter_batches
    from syncer.reader import _resolve, _schema, _warn_if_stale, to_pandas

    vol = Volume(cfg.root)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        manifest, _ = _resolve(vol)
        entry = manifest.tables.get(name)
        if entry is None:
            known = ", ".join(sorted(manifest.tables)) or "none"
            raise NoSnapshotError(f"table {name!r} is not in snapshot {manifest.id}; published tables: {known}")
        _warn_if_stale(name, entry, manifest)
    schema = _schema(entry)
    batches: list[pa.RecordBatch] = []
    have = 0
    if limit > 0 and entry.rows:
        for batch in iter_batches(entry.format, vol.snapshot_dir(manifest.id) / entry.file, schema):
            batches.append(batch.slice(0, limit - have))
            have += batches[-1].num_rows
            if have >= limit:
                break
    head = pa.Table.from_batches(batches, schema=schema)
    frame = _exact(head, entry, to_pandas)
    return TablePreview(
        table=name,
        snapshot_id=manifest.id,
        rows=entry.rows,
        columns=len(schema),
        shown=head.num_rows,
        warnings=tuple(str(w.message) for w in caught),
        frame=frame,
    )


def _exact(head: Any, entry: ManifestEntry, to_pandas: Any) -> Any:
    """``to_pandas(head, "exact")``, with the whole column's nulls and NaNs (from the profile) deciding."""
    import pandas as pd
    import pyarrow as pa

    frame = to_pandas(head, "exact")
    profile = (entry.profile or {}).get("columns") or {}
    for field in head.schema:
        col = profile.get(field.name) or {}
        if not col.get("nulls") or head.column(field.name).null_count:
            continue  # the head already shows what the whole column needs
        t = field.type
        dtype: Any = None
        if pa.types.is_integer(t):
            dtype = pd.api.types.pandas_dtype(str(t).capitalize().replace("Uint", "UInt"))
        elif pa.types.is_floating(t) and col.get("nans") and not pa.types.is_float16(t):
            dtype = pd.Float32Dtype() if t == pa.float32() else pd.Float64Dtype()
        if dtype is not None:
            frame[field.name] = head.column(field.name).to_pandas(types_mapper=lambda _t, d=dtype: d)
    return frame
