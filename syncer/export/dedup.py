"""Rows of duplicated keys, set aside: the staged file is rewritten without them (within max_bad_rows)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from syncer.config import Config, TableConfig
from syncer.export.failures import abandon, open_table_writer, write_failure
from syncer.export.quarantine import Quarantine
from syncer.formats import WrittenFile, iter_batches, parquet_layout, remove_output
from syncer.validate.keys import DupResult
from syncer.validate.profile import ProfileAccumulator

__all__ = ["drop_duplicates"]


def drop_duplicates(
    table: TableConfig, schema: pa.Schema, cfg: Config, path: Path, q: Quarantine, dup: DupResult
) -> tuple[WrittenFile, ProfileAccumulator]:
    """Rewrite the staged file without the rows of duplicated keys; those go to quarantine."""
    tmp = path.with_name(path.name + ".dedup")
    remove_output(tmp)
    wanted = pa.array([_joined_key(k) for k in dup.keys], pa.string())
    parts, segmented = parquet_layout(path) if table.format == "parquet" else (1, False)
    writer = open_table_writer(table, tmp, schema, cfg, parts, segmented)
    acc = ProfileAccumulator(schema)
    try:
        for batch in iter_batches(table.format, path, schema):
            mask = pc.is_in(_key_strings(batch, table.primary_key), value_set=wanted)
            bad = batch.filter(mask)
            if bad.num_rows:
                keys = table.primary_key
                q.add_rows(bad, [f"duplicate primary key {', '.join(keys)}"] * bad.num_rows, "check")
            good = batch.filter(pc.invert(mask))
            acc.update(good)
            writer.write(good)
        written = writer.close()
    except BaseException as exc:
        abandon(writer, tmp, table, exc)
    try:
        remove_output(path)
        os.replace(tmp, path)
    except OSError as exc:
        raise write_failure(table, path, exc) from exc
    return dataclasses.replace(written, path=path), acc


def _key_strings(batch: pa.RecordBatch, keys: tuple[str, ...]) -> pa.Array:
    parts = [pc.cast(batch.column(k), pa.string()) for k in keys]
    return parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "\x1f")


def _joined_key(values: tuple[Any, ...]) -> str:
    # The same text pc.cast(..., string) gives, so the keys match in _key_strings.
    return "\x1f".join(pa.array([v]).cast(pa.string())[0].as_py() for v in values)
