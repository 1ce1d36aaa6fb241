"""The engine export path: the warehouse writes the Parquet files itself, in parallel.

``[[tables]] export = "engine"`` (or ``"auto"`` above ``[export] engine_min_rows`` source rows)
has a source that can unload (DuckDB: ``COPY (SELECT ...) TO '<dir>/data_0.parquet' (FORMAT
parquet, ...)`` on the run's read-only connection, the same moment as the count and the profile:
one file, written by every thread without insertion order, each row group one contiguous run of
the table's rows, the groups in no particular order) write the table into a work folder
inside the run's staging folder. The files are then renamed to the names the stream path uses
(``<table>.parquet``, or ``<table>/part-NNNNN.parquet`` for several, e.g. Snowflake's) and checked
exactly like streamed files -- the same checks, computed without pulling the rows through Python:
the written profile by one DuckDB aggregate query over the files (the source's own definitions,
see :mod:`syncer.validate.files_profile`) while, on two threads, the files are fsynced and hashed
and their key column is checked for strict order (row group by row group, in the order of their
smallest key); then row count against ``count(*)``, the
profile against the source's, the schema contract, duplicate keys (proven by the order, else the
exact scan), sha256 and re-open. A ``not_null`` or key violation found in the profile sends the
table through the stream path (which quarantines by key-range bisection); a failure leaves
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
import re
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from syncer._exceptions import ValidationError
from syncer.config import Config, TableConfig
from syncer.export.failures import remove_outputs
from syncer.formats import WrittenFile, WrittenPart, iter_batches, parquet_ranges, parts_digest, stored_schema
from syncer.sources.base import Source
from syncer.validate.files_profile import profile_files
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


def unload_table(source: Source, table: TableConfig, schema: pa.Schema, cfg: Config, staging: Path) -> list[Path]:
    """Unload ``table`` into ``staging`` (``<table>.parquet`` or ``<table>/part-*.parquet``, in the
    engine's order); raises a :class:`SyncError` with nothing left staged when the unload or a
    footer fails. The files are hashed by :func:`unload_and_reread`, while they are profiled."""
    work = staging / f".engine-{table.name}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        source.unload(table, schema, work, compression=cfg.compression, row_group_rows=cfg.row_group_rows)
        files = sorted((p for p in work.iterdir() if p.suffix == ".parquet"), key=_natural)
        files = [f for f in files if pq.ParquetFile(f).metadata.num_rows > 0] or files[:1]
        for f in files:
            _check_encodings(table, f)
        return _place(table, files, staging)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _natural(path: Path) -> list[Any]:
    """Sort key that puts ``data_2`` before ``data_10`` (the engine numbers its files in order)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def _type_difference(files: list[Path], schema: pa.Schema) -> str | None:
    """The first column whose type in the unloaded files is not the stream path's (None: all agree)."""
    want = stored_schema("parquet", schema)
    for f in files:
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


def _place(table: TableConfig, files: list[Path], staging: Path) -> list[Path]:
    """Move the engine's files to the stream path's names, in order."""
    if len(files) == 1:
        dest = staging / table.file_name
        os.rename(files[0], dest)
        return [dest]
    folder = staging / table.name
    folder.mkdir()
    placed = []
    for i, f in enumerate(files):
        placed.append(folder / f"part-{i:05d}.parquet")
        os.rename(f, placed[-1])
    return placed


def _written(files: list[Path]) -> WrittenFile:
    """Sizes, rows and sha256 of the placed files (each made durable first)."""
    if len(files) == 1:
        size, digest = _hash(files[0])
        return WrittenFile(files[0], size, digest, rows=pq.ParquetFile(files[0]).metadata.num_rows)
    parts = []
    for f in files:
        size, digest = _hash(f)
        parts.append(WrittenPart(f.name, pq.ParquetFile(f).metadata.num_rows, size, digest))
    return WrittenFile(
        files[0].parent, sum(p.bytes for p in parts), parts_digest(parts), parts=tuple(parts), rows=sum(p.rows for p in parts)
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


def _key_order(schema: pa.Schema, table: TableConfig, files: list[Path]) -> tuple[KeyOrder, ProfileAccumulator | None]:
    """One pass over the key column of the files, row group by row group in the order of the
    groups' smallest key (their footer statistics): proves the key unique when every group is
    strictly increasing and each starts above the one before ends (else the exact duplicate-key
    scan decides, as for a streamed table). The engine writes its row groups in no particular
    order, each one a contiguous run of the table's rows (see ``DuckDBSource.unload``), so a key
    the table is stored in order of passes. The proof rests on the values read, not on the
    statistics: they only choose the order, and a wrong one fails the pass. The pass reads the
    whole column even once the order breaks: it also profiles it (the second value, the files
    profile's query leaves that column out rather than decode it again); None when there is no
    single orderable key to read."""
    keys = KeyOrder(schema, table.primary_key)
    if not (keys.proven and keys.column is not None):
        return keys, None
    acc = ProfileAccumulator(pa.schema([schema.field(keys.column)]))
    for f, groups in _runs_by_file(_groups_by_first_key(files, keys.column)):
        for batch in f.iter_batches(batch_size=1 << 17, row_groups=groups, columns=[keys.column], use_threads=False):
            keys.update(batch)
            acc.update(batch)
    return keys, acc


def _single_key(schema: pa.Schema, table: TableConfig) -> str | None:
    """The key column the key pass reads (and profiles), or None."""
    keys = KeyOrder(schema, table.primary_key)
    return keys.column if keys.proven else None


def _runs_by_file(groups: list[tuple[pq.ParquetFile, int]]) -> list[tuple[pq.ParquetFile, list[int]]]:
    """Consecutive row groups of one file as one read (batches run on across them, in this order)."""
    runs: list[tuple[pq.ParquetFile, list[int]]] = []
    for f, g in groups:
        if runs and runs[-1][0] is f:
            runs[-1][1].append(g)
        else:
            runs.append((f, [g]))
    return runs


def _groups_by_first_key(files: list[Path], column: str) -> list[tuple[pq.ParquetFile, int]]:
    """Every row group of ``files``, by the smallest ``column`` value its footer records (in file
    order when a group has no such statistic: the pass then proves only what that order shows)."""
    groups: list[tuple[pq.ParquetFile, int]] = []
    firsts: list[Any] = []
    for path in files:
        f = pq.ParquetFile(path)
        md = f.metadata
        j = md.schema.to_arrow_schema().get_field_index(column)
        for g in range(md.num_row_groups):
            st = md.row_group(g).column(j).statistics if j >= 0 else None
            groups.append((f, g))
            firsts.append(st.min if st is not None and st.has_min_max else None)
    if any(v is None for v in firsts):
        return groups
    try:
        order = sorted(range(len(groups)), key=firsts.__getitem__)
    except TypeError:  # values the footer gives as types that do not compare
        return groups
    return [groups[i] for i in order]


def unload_and_reread(
    source: Source,
    table: TableConfig,
    schema: pa.Schema,
    cfg: Config,
    staging: Path,
    after_unload: Callable[[], object] | None = None,
) -> tuple[WrittenFile, ProfileAccumulator, KeyOrder] | None:
    """Unload, then check the files: their profile (DuckDB over the files, see
    :mod:`syncer.validate.files_profile`) while they are hashed and their key column is checked for
    order, each on a thread of its own. None, with nothing staged, when the table goes through the
    stream path instead: types the engine would change, or null keys / ``not_null`` values, which
    the stream path quarantines. ``after_unload`` is called once the files are written (the
    export starts the source's profile there, so it overlaps the checks, not the COPY: sharing
    DuckDB's bounded memory with the COPY made the COPY up to twice as slow)."""
    refusal = engine_refusal(schema) or source.unload_refusal(table, schema)
    if refusal is not None:
        log.info("table %s: streamed, not unloaded: %s", table.name, refusal, extra={"table": table.name, "step": "engine"})
        return None
    files = unload_table(source, table, schema, cfg, staging)
    if after_unload is not None:
        after_unload()
    spill = staging / f".engine-{table.name}-spill"
    try:
        differs = _type_difference(files, schema)
        if differs is not None:
            log.warning("table %s: %s; exporting it through the stream path", table.name, differs, extra={"table": table.name})
            remove_outputs(staging / table.file_name, table)
            return None
        key = _single_key(schema, table)
        with ThreadPoolExecutor(2, thread_name_prefix="syncer-check") as pool:
            hashed = pool.submit(_written, files)
            ordered = pool.submit(_key_order, schema, table, files)
            elsewhere = frozenset() if key is None else frozenset({schema.get_field_index(key)})
            acc = profile_files(table, schema, files, spill, threads=min(os.cpu_count() or 1, 4), elsewhere=elsewhere)
            written, (keys, key_profile) = hashed.result(), ordered.result()
        if key_profile is not None:
            acc.fill(schema.get_field_index(keys.column), key_profile)
    except BaseException:
        remove_outputs(staging / table.file_name, table)
        raise
    finally:
        shutil.rmtree(spill, ignore_errors=True)
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
