"""The engine export path: the warehouse writes the Parquet files itself, in parallel.

``[[tables]] export = "engine"`` (or ``"auto"`` above ``[export] engine_min_rows`` source rows)
has a source that can unload (DuckDB: ``COPY (SELECT ...) TO '<dir>' (FORMAT parquet,
PER_THREAD_OUTPUT true, ...)`` on the run's read-only connection, the same moment as the count
and the profile) write the table into a work folder inside the run's staging folder. The files
are then renamed to the names the stream path uses (``<table>.parquet``, or
``<table>/part-NNNNN.parquet`` for several), hashed, and handed back to the export, which
validates them exactly like streamed files: a streaming re-read through the profile and the key
order, row count against ``count(*)``, the profile against the source's, the schema contract,
duplicate keys, sha256 and re-open. A ``not_null`` or key violation found on the re-read sends
the table through the stream path (which quarantines by key-range bisection); a failure leaves
nothing staged; a crash leaves only the run's staging folder, which the next run sweeps.

Types: the files must hold the Arrow types the stream path publishes. Only types that DuckDB's
Parquet writer gives back unchanged are unloaded (signed integers, float32/64, bool, string,
decimal128, date32, timestamp[us] with or without UTC, binary; DuckDB's UUID cast to text); a
table with any other column (HUGEINT, ENUM, INTERVAL, TIMESTAMP_S/MS/NS, TIME, lists, structs, JSON, ...) goes through
the stream path, and the log says which column. Every column is written nullable (DuckDB marks a
column REQUIRED when its statistics show no NULL, which would change the stored schema). The
files use only PLAIN, dictionary and RLE encodings (``PARQUET_VERSION V1``; no DELTA_*: see
docs/compatibility.md), checked in every footer before anything is published.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from syncer._exceptions import ValidationError
from syncer.config import Config, TableConfig
from syncer.export.failures import remove_outputs
from syncer.formats import WrittenFile, WrittenPart, iter_batches, parquet_files, parquet_ranges, parts_digest, stored_schema
from syncer.sources.base import Source
from syncer.validate.keys import KeyOrder
from syncer.validate.profile import JSON_META, ProfileAccumulator

__all__ = ["ENCODINGS", "engine_refusal", "ranges_from_footer", "unload_and_reread", "unload_table", "wants_engine"]

log = logging.getLogger("syncer")

#: the Parquet encodings every reader the project supports decodes
ENCODINGS = frozenset({"PLAIN", "PLAIN_DICTIONARY", "RLE_DICTIONARY", "RLE", "BIT_PACKED"})


def wants_engine(source: Source, table: TableConfig, cfg: Config, source_rows: int) -> bool:
    """Whether this export of ``table`` should go through the source's engine."""
    if table.export == "stream" or table.format != "parquet":
        return False
    if not source.supports_unload:
        if table.export == "engine":
            log.warning(
                "table %s: export = engine, but the %s source cannot unload yet; streaming it",
                table.name,
                source.kind,
                extra={"table": table.name, "step": "engine"},
            )
        return False
    return table.export == "engine" or source_rows >= cfg.engine_min_rows


def _type_ok(t: pa.DataType) -> bool:
    if pa.types.is_timestamp(t):
        return t.unit == "us" and t.tz in (None, "UTC", "Etc/UTC")
    if pa.types.is_integer(t):
        return pa.types.is_signed_integer(t)
    if pa.types.is_floating(t):
        return not pa.types.is_float16(t)
    if pa.types.is_decimal(t):
        return isinstance(t, pa.Decimal128Type)
    return pa.types.is_boolean(t) or pa.types.is_string(t) or pa.types.is_date32(t) or pa.types.is_binary(t)


def engine_refusal(schema: pa.Schema) -> str | None:
    """Why the engine cannot write ``schema`` with exactly the stream path's types (None: it can)."""
    for f in schema:
        if (f.metadata and JSON_META.keys() & f.metadata.keys()) or not _type_ok(f.type):
            return f"column {f.name!r} ({f.type}) is not written by the engine with the stream path's type"
    return None


def unload_table(source: Source, table: TableConfig, schema: pa.Schema, cfg: Config, staging: Path) -> WrittenFile:
    """Unload ``table`` into ``staging`` (``<table>.parquet`` or ``<table>/part-*.parquet``) and hash
    it; raises a :class:`SyncError` with nothing left staged when the unload or a footer fails."""
    work = staging / f".engine-{table.name}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        source.unload(table, schema, work, compression=cfg.compression, row_group_rows=cfg.row_group_rows)
        files = sorted(p for p in work.iterdir() if p.suffix == ".parquet")
        files = [f for f in files if pq.ParquetFile(f).metadata.num_rows > 0] or files[:1]
        for f in files:
            _check_encodings(table, f)
        return _place(table, files, staging)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _type_difference(written: WrittenFile, schema: pa.Schema) -> str | None:
    """The first column whose type in the unloaded files is not the stream path's (None: all agree)."""
    want = stored_schema("parquet", schema)
    for f in parquet_files(written.path):
        got = pq.read_schema(f)
        for field in want:
            i = got.get_field_index(field.name)
            if i < 0 or not got.field(i).type.equals(field.type):
                found = got.field(i).type if i >= 0 else "missing"
                return f"the unloaded column {field.name!r} is {found}, the stream path writes {field.type}"
    return None


def _check_encodings(table: TableConfig, path: Path) -> None:
    md = pq.ParquetFile(path).metadata
    for g in range(md.num_row_groups):
        rg = md.row_group(g)
        for c in range(rg.num_columns):
            bad = set(rg.column(c).encodings) - ENCODINGS
            if bad:
                raise ValidationError(
                    f"table {table.name!r}: the engine wrote column {rg.column(c).path_in_schema!r} with "
                    f"{', '.join(sorted(bad))}, which not every reader decodes; nothing was published; "
                    'set export = "stream" for this table'
                )


def _place(table: TableConfig, files: list[Path], staging: Path) -> WrittenFile:
    """Move the engine's files to the stream path's names; sizes, rows and sha256 of each."""
    if len(files) == 1:
        dest = staging / table.file_name
        os.rename(files[0], dest)
        size, digest = _hash(dest)
        return WrittenFile(dest, size, digest, rows=pq.ParquetFile(dest).metadata.num_rows)
    folder = staging / table.name
    folder.mkdir()
    parts = []
    for i, f in enumerate(files):
        dest = folder / f"part-{i:05d}.parquet"
        os.rename(f, dest)
        size, digest = _hash(dest)
        parts.append(WrittenPart(dest.name, pq.ParquetFile(dest).metadata.num_rows, size, digest))
    return WrittenFile(
        folder, sum(p.bytes for p in parts), parts_digest(parts), parts=tuple(parts), rows=sum(p.rows for p in parts)
    )


def _hash(path: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        os.fsync(f.fileno())
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def unload_and_reread(
    source: Source, table: TableConfig, schema: pa.Schema, cfg: Config, staging: Path
) -> tuple[WrittenFile, ProfileAccumulator, KeyOrder] | None:
    """Unload, then re-read the files through the profile and the key order. None, with nothing
    staged, when the table goes through the stream path instead: types the engine would change, or
    null keys / ``not_null`` values, which the stream path quarantines."""
    refusal = engine_refusal(schema) or source.unload_refusal(table, schema)
    if refusal is not None:
        log.info("table %s: streamed, not unloaded: %s", table.name, refusal, extra={"table": table.name, "step": "engine"})
        return None
    written = unload_table(source, table, schema, cfg, staging)
    differs = _type_difference(written, schema)
    if differs is not None:
        log.warning("table %s: %s; exporting it through the stream path", table.name, differs, extra={"table": table.name})
        remove_outputs(written.path, table)
        return None
    acc, keys = ProfileAccumulator(schema, footer_ranges=True), KeyOrder(schema, table.primary_key)
    try:
        for batch in iter_batches(table.format, written.path, schema):
            acc.update(batch)
            keys.update(batch)
        if acc.deferred:
            ranges_from_footer(acc, table, schema, written)
    except BaseException:
        remove_outputs(written.path, table)
        raise
    checked = (*table.primary_key, *table.not_null)
    nulls = {c: v["nulls"] for c, v in acc.result()["columns"].items() if v["nulls"] and c in checked}
    if nulls:
        log.warning(
            "table %s: the unloaded files hold nulls in %s; exporting it through the stream path to quarantine them",
            table.name,
            ", ".join(f"{c} ({n:,})" for c, n in nulls.items()),
            extra={"table": table.name, "step": "engine"},
        )
        remove_outputs(written.path, table)
        return None
    return written, acc, keys


def ranges_from_footer(acc: ProfileAccumulator, table: TableConfig, schema: pa.Schema, written: WrittenFile) -> None:
    """min/max of the deferred columns from the written file's footer statistics; a column the
    footer has no statistics for (values too long for them) is read back and computed."""
    names = [schema.field(i).name for i in sorted(acc.deferred)]
    for name, rng in parquet_ranges(written.path, names).items():
        i = schema.get_field_index(name)
        if rng is None:
            again = ProfileAccumulator(pa.schema([schema.field(i)]))
            for batch in iter_batches(table.format, written.path, schema, [name]):
                again.update(batch)
            rng = again.column_range(0)
        acc.merge_range(i, *rng)
