"""Export one table: stream it from the source into its writer in staging, then validate.

Everything is computed on the way through, one batch at a time: the written profile (Arrow compute),
the sha256 (hashed as the bytes are written) and the row count. After the file is closed it is
re-opened for its row count and stored schema, and its key columns are scanned by DuckDB for
duplicates (exact, spills to disk, never holds the keys as Python objects).
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import tenacity

from syncer import _clock as clock
from syncer._clock import iso
from syncer._exceptions import BadRowsError, SyncError, TransientSourceError, ValidationError
from syncer._memory import ROW_GROUP_BATCHES, batch_rows_for, has_variable_width, needs_segments, row_bytes, table_batch_bytes
from syncer._stage import Pipeline, Stage, inline
from syncer.config import Config, TableConfig
from syncer.export.dedup import drop_duplicates
from syncer.export.engine import ranges_from_footer, unload_and_reread, wants_engine
from syncer.export.failures import abandon, open_table_writer, remove_outputs
from syncer.export.quarantine import Quarantine, convert, ranged_batches, screen
from syncer.formats import (
    TableWriter,
    WrittenFile,
    format_dialect,
    get_format,
    refusal,
    remove_output,
    schema_to_b64,
    unsupported_columns,
)
from syncer.sources.base import Source
from syncer.validate.checks import Evidence, check, schema_contract, validate_table
from syncer.validate.keys import KeyOrder, scan_duplicate_keys
from syncer.validate.profile import ProfileAccumulator
from syncer.volume.manifest import Check, ManifestEntry, Part

__all__ = ["TableOutcome", "export_table"]

log = logging.getLogger("syncer")

#: the footer-range helper moved to syncer.export.engine (both paths use it); its old name stays
_ranges_from_footer = ranges_from_footer

Progress = Callable[[dict[str, Any]], None]

#: batches the source reads ahead of the one being converted
_READ_DEPTH = 1
#: batches queued for the writer thread beyond the one it is encoding (bounds memory)
_WRITE_DEPTH = 2
#: columns from which one Parquet encoder writes the table: each part holds a writer per column, and
#: a second part cost 28 MiB of peak (300 columns x 250k rows: 423 -> 395 MiB) for 8 % less CPU
WIDE_COLUMNS = 150


@dataclass
class TableOutcome:
    name: str
    ok: bool
    checks: list[Check] = field(default_factory=list)
    entry: ManifestEntry | None = None
    error: str | None = None
    rows: int = 0
    bytes: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    quarantined: int = 0
    quarantine: dict[str, Any] | None = None


def export_table(
    source: Source,
    table: TableConfig,
    cfg: Config,
    staging: Path,
    previous: ManifestEntry | None,
    *,
    accept_schema_change: bool = False,
    progress: Progress | None = None,
    spill_dir: Path | None = None,
    quarantine_dir: Path | None = None,
) -> TableOutcome:
    """Export and validate ``table`` into ``staging``; never raises for a table-level failure.

    Transient source errors are retried (``[retry]``: exponential backoff with jitter); every
    attempt is kept in ``outcome.attempts``. Every :class:`SyncError` fails the table (its previous
    data is carried over by the caller); nothing else is caught here.
    """
    out = TableOutcome(table.name, ok=False)
    path = staging / table.file_name
    t0 = time.perf_counter()
    emit = progress or (lambda _e: None)
    q = Quarantine(quarantine_dir or staging / ".quarantine", table, cfg.quarantine_gid)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        out.attempts.append({"attempt": state.attempt_number, "ok": False, "error": str(exc), "retry_in_s": round(wait, 2)})
        log.warning(
            "table %s: attempt %d failed (%s); retrying in %.1fs",
            table.name,
            state.attempt_number,
            exc,
            wait,
            extra={"table": table.name, "step": "retry"},
        )

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(cfg.retry_attempts),
        wait=tenacity.wait_exponential_jitter(
            multiplier=cfg.retry_backoff_seconds, max=cfg.retry_max_backoff_seconds, jitter=cfg.retry_backoff_seconds
        ),
        retry=tenacity.retry_if_exception_type(TransientSourceError),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        for attempt in retrying:
            with attempt:
                remove_outputs(path, table)
                q.discard()
                job = _Export(source, table, cfg, path, previous, accept_schema_change, emit, spill_dir, q, out)
                _export_once(job)
        out.attempts.append({"attempt": len(out.attempts) + 1, "ok": True, "error": None})
    except SyncError as exc:
        out.ok = False
        out.error = str(exc)
        out.attempts.append({"attempt": len(out.attempts) + 1, "ok": False, "error": str(exc)})
        out.checks.append(check("export", False, str(exc)))
        log.warning("table %s failed: %s", table.name, exc, extra={"table": table.name, "step": "export"})
    finally:
        _finish(out, q, path, table)
        out.timings["total_s"] = time.perf_counter() - t0
        emit({"event": "table_done", "table": table.name, "ok": out.ok, "rows": out.rows})
    return out


def _finish(out: TableOutcome, q: Quarantine, path: Path, table: TableConfig) -> None:
    """Close the quarantine file and, for a failed table, free what it staged. A failure here
    fails a table that was ok (its quarantine file is incomplete) and never hides the first error."""
    try:
        q.close()
    except SyncError as exc:
        if out.ok:
            out.ok, out.error = False, str(exc)
            out.checks.append(check("export", False, str(exc)))
        log.warning("table %s: %s", table.name, exc, extra={"table": table.name, "step": "export"})
    if not out.ok:
        try:
            remove_outputs(path, table)
        except SyncError as exc:
            log.warning("table %s: %s", table.name, exc, extra={"table": table.name, "step": "export"})
    out.quarantined = q.count
    out.quarantine = q.summary(q.folder.parent.parent) if q.count else None


@dataclass
class _Export:
    """One attempt at exporting one table: what it reads from, where it writes, what it is held to."""

    source: Source
    table: TableConfig
    cfg: Config
    path: Path
    previous: ManifestEntry | None
    accept_schema_change: bool
    emit: Progress
    spill_dir: Path | None
    q: Quarantine
    out: TableOutcome
    #: set by _validate: the file as published (rewritten without duplicated keys, if any) and its profile
    written: WrittenFile = field(init=False)
    acc: ProfileAccumulator = field(init=False)
    #: "engine" when the warehouse wrote the files (None: streamed)
    export: str | None = None


def _export_once(job: _Export) -> None:
    """One attempt: the table's schema and count at its pinned moment, the stream, the checks, the entry."""
    source, table, cfg, out, emit = job.source, job.table, job.cfg, job.out, job.emit
    t0 = time.perf_counter()
    out.checks = []
    with source.pinned(table) as pin:
        schema = _project(table, source.schema(table))
        exported_at = clock.utcnow()
        source_rows = source.count(table)
        # this table's batch and row group sizes, by bytes: every step below reads them from job.cfg
        job.cfg = cfg = sized_for(source, table, schema, cfg, source_rows)
        parts = cfg.parquet_parts(source_rows) if table.format == "parquet" else 1
        # a table whose parts' footers would outgrow their budget is written in segments (formats/parquet.py)
        segmented = table.format == "parquet" and needs_segments(schema, source_rows, cfg.row_group_rows, parts)
        if parts > 1 or segmented:
            job.path = job.path.with_name(table.name)  # a folder of part files
        emit({"event": "table_start", "table": table.name, "total": source_rows})
        # the warehouse writes the files (syncer.export.engine) when asked to and able; else the stream
        unloaded = _unload(job, schema) if source_rows and wants_engine(source, table, cfg, source_rows) else None
        if unloaded is None:
            written, acc, keys, source_profile, profile_error = _stream_and_profile(job, schema, source_rows, (parts, segmented))
        else:
            written, acc, keys, source_profile, profile_error = unloaded
        out.timings["export_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        _validate(job, schema, source_rows, written, acc, keys, source_profile, profile_error)
        out.timings["validate_s"] = time.perf_counter() - t1
    failed = [c for c in out.checks if c.failed]
    out.ok = not failed
    out.error = "; ".join(f"{c.name}: {c.detail}" for c in failed) if failed else None
    out.entry = _entry(job, schema, source_rows, exported_at, pin)


def _stream_and_profile(
    job: _Export, schema: pa.Schema, source_rows: int, layout: tuple[int, bool]
) -> tuple[WrittenFile, ProfileAccumulator, KeyOrder, dict[str, Any] | None, BadRowsError | None]:
    """Stream the table into its writer while the source profiles the same pinned data (on its own
    connection when it can, else first). A value the source cannot read: re-read by key ranges."""
    source, table, cfg, q = job.source, job.table, job.cfg, job.q
    # A table of one batch has nothing to overlap: its stages run on this thread (no thread to
    # start and join per table, which is most of a small table's cost).
    small = source_rows <= cfg.batch_rows
    with ThreadPoolExecutor(1, thread_name_prefix="syncer-check") as pool, inline(small):
        t_prof = time.perf_counter()
        profile_future: Future[dict[str, Any]] | None = None
        source_profile: dict[str, Any] | None = None
        profile_error: BadRowsError | None = None
        if source.concurrent_profile and not small:
            profile_future = pool.submit(source.profile, table, schema)
        else:
            try:
                source_profile = source.profile(table, schema)
            except BadRowsError as exc:
                profile_error = exc  # the same bad values; profiled again without them below
        try:
            batches = source.stream(table, schema, cfg.batch_rows)
            written, acc, keys = _stream_into(batches, table, schema, cfg, job.path, q, job.emit, source_rows, layout)
        except BadRowsError as exc:
            if not source.supports_key_ranges:
                raise
            log.warning(
                "table %s: %s; re-reading by key ranges to isolate the bad rows",
                table.name,
                exc,
                extra={"table": table.name, "step": "bisect"},
            )
            remove_output(job.path)
            q.discard()
            ranges = ranged_batches(source, table, schema, cfg.batch_rows, q)
            written, acc, keys = _stream_into(ranges, table, schema, cfg, job.path, q, job.emit, source_rows, layout)
        if profile_future is not None:
            try:
                source_profile = profile_future.result()
            except BadRowsError as exc:
                profile_error = exc
        job.out.timings["source_profile_s"] = time.perf_counter() - t_prof
    return written, acc, keys, source_profile, profile_error


def sized_for(source: Source, table: TableConfig, schema: pa.Schema, cfg: Config, source_rows: int) -> Config:
    """``cfg`` with this table's rows per batch and per Parquet row group: ``[export] batch_bytes``
    over its row width (the schema's estimate, or a sample of its rows when strings make that a
    guess and the table is more than one batch), at most ``batch_rows`` / ``row_group_rows``. A
    row group holds ROW_GROUP_BATCHES batches: the writer keeps one per part while it encodes.
    A table of WIDE_COLUMNS or more is one Parquet file unless ``[export] writers`` says otherwise."""
    width: float = row_bytes(schema)
    # less for many columns, and for a format whose encoder holds more (syncer._memory)
    batch_bytes = table_batch_bytes(schema, cfg.batch_bytes, get_format(table.format).encoder_batches)
    if has_variable_width(schema) and source_rows * width > batch_bytes:
        width = source.sample_row_bytes(table, schema) or width
    rows = batch_rows_for(schema, batch_bytes, cfg.batch_rows, width=width)
    group = batch_rows_for(schema, ROW_GROUP_BATCHES * batch_bytes, cfg.row_group_rows, width=width)
    log.debug(
        "table %s: %d rows per batch, %d per row group (%.0f bytes a row)",
        table.name,
        rows,
        group,
        width,
        extra={"table": table.name},
    )
    writers = 1 if not cfg.writers and len(schema) >= WIDE_COLUMNS else cfg.writers
    if (rows, group, writers) == (cfg.batch_rows, cfg.row_group_rows, cfg.writers):
        return cfg
    return dataclasses.replace(cfg, batch_rows=rows, row_group_rows=group, writers=writers)


def _validate(
    job: _Export,
    schema: pa.Schema,
    source_rows: int,
    written: WrittenFile,
    acc: ProfileAccumulator,
    keys: KeyOrder,
    source_profile: dict[str, Any] | None,
    profile_error: BadRowsError | None,
) -> None:
    """Key checks (quarantining the rows of duplicated keys within max_bad_rows), then every check."""
    table, q = job.table, job.q
    dup = scan_duplicate_keys(table, schema, keys, written, job.spill_dir, limit=table.max_bad_rows + 1)
    if dup.rows and q.count + dup.rows <= table.max_bad_rows:
        written, acc = drop_duplicates(table, schema, job.cfg, job.path, q, dup)
        dup = scan_duplicate_keys(table, schema, KeyOrder(schema, ()), written, job.spill_dir, limit=1)
        dup.quarantined = True
    if q.count:
        # Compare like with like: the source without the quarantined rows.
        source_profile = job.source.profile(table, schema, where=q.exclusion())
    elif profile_error is not None:
        raise profile_error
    assert source_profile is not None
    job.out.rows, job.out.bytes = acc.rows, written.bytes
    job.written, job.acc = written, acc
    evidence = Evidence(table, schema, source_rows, source_profile, acc, dup, q, written, job.previous, job.accept_schema_change)
    job.out.checks = validate_table(evidence)


def _entry(job: _Export, schema: pa.Schema, source_rows: int, exported_at: Any, pin: dict[str, Any]) -> ManifestEntry:
    table, q, written, acc = job.table, job.q, job.written, job.acc
    return ManifestEntry(
        file=written.path.name,
        format=table.format,
        rows=acc.rows,
        bytes=written.bytes,
        sha256=written.sha256,
        parts=tuple(Part(p.name, p.rows, p.bytes, p.sha256) for p in written.parts) if written.parts else None,
        schema=schema_contract(schema),
        arrow_schema=schema_to_b64(schema),
        dialect=format_dialect(table.format),
        primary_key=tuple(table.primary_key),
        exported_at=iso(exported_at),
        exported_in=job.path.parent.name,  # the run (= snapshot id) whose export produced this file
        status="quarantined" if q.count else "fresh",
        source_rows=source_rows,
        source={"table": table.source} if table.source else {"query": table.query},
        consistency=pin,
        checks=tuple(job.out.checks),
        profile=acc.result(),
        quarantine=q.summary(q.folder.parent.parent) if q.count else None,
        export=job.export,
    )


def _unload(
    job: _Export, schema: pa.Schema
) -> tuple[WrittenFile, ProfileAccumulator, KeyOrder, dict[str, Any] | None, BadRowsError | None] | None:
    """The engine's files, re-read (see :func:`syncer.export.engine.unload_and_reread`), and the
    source's profile, taken meanwhile on its own connection when it can; None: stream it."""
    source, table = job.source, job.table
    with ThreadPoolExecutor(1, thread_name_prefix="syncer-check") as pool:
        started: list[Future[dict[str, Any]]] = []
        # while the files are checked, not during the unload: the two compete for DuckDB's memory
        start = (lambda: started.append(pool.submit(source.profile, table, schema))) if source.concurrent_profile else None
        got = unload_and_reread(source, table, schema, job.cfg, job.path.parent, after_unload=start)
        if got is None:
            return None
        job.path, job.export = got[0].path, "engine"
        try:
            return (*got, started[0].result() if started else source.profile(table, schema), None)
        except BadRowsError as exc:
            return (*got, None, exc)


def _stream_into(
    batches: Iterator[pa.RecordBatch],
    table: TableConfig,
    schema: pa.Schema,
    cfg: Config,
    path: Path,
    q: Quarantine,
    emit: Progress,
    total: int,
    layout: tuple[int, bool] = (1, False),
) -> tuple[WrittenFile, ProfileAccumulator, KeyOrder]:
    """Source batches -> convert -> screen -> (profile || write), see :func:`_pump`; the written
    file is closed here, or thrown away on any error."""
    unwritable = unsupported_columns(table.format, schema)
    if unwritable:
        raise ValidationError(refusal(table.format, table.name, unwritable))
    acc = ProfileAccumulator(schema, footer_ranges=table.format == "parquet")
    keys = KeyOrder(schema, table.primary_key)
    writer = open_table_writer(table, path, schema, cfg, *layout)
    try:
        _pump(batches, writer, acc, keys, table, schema, q, emit, total)
        written = writer.close()
        if acc.deferred:
            ranges_from_footer(acc, table, schema, written)
    except BaseException as exc:
        abandon(writer, path, table, exc)
    return written, acc, keys


def _pump(
    batches: Iterator[pa.RecordBatch],
    writer: TableWriter,
    acc: ProfileAccumulator,
    keys: KeyOrder,
    table: TableConfig,
    schema: pa.Schema,
    q: Quarantine,
    emit: Progress,
    total: int,
) -> None:
    """Feed every batch through the stages, which overlap: the source reads ahead on a thread, each
    batch is profiled on another while the next one is read, and the writer encodes on threads of
    its own (Parquet: one per part) or on a writer thread, a bounded number of batches behind.
    Every thread is joined before this returns, on an error too, so the source's connection is free
    again; the first error of any stage is the one raised."""
    seen = 0
    with Pipeline() as stages:
        ahead = stages.reader(batches, bound=_READ_DEPTH, name="syncer-read")
        # One batch profiled at a time, in order (the profile and the key order are sequential).
        profile: Stage[pa.RecordBatch] = stages.worker(lambda b: _observe(acc, keys, b), bound=1, name="syncer-profile")
        # A threaded writer (Parquet) encodes on stages of its own; the others get a writer thread.
        write: Callable[[pa.RecordBatch], None] = (
            writer.write if writer.threaded else stages.worker(writer.write, bound=_WRITE_DEPTH + 1, name="syncer-write").put
        )
        for raw in ahead:
            seen += raw.num_rows
            for converted in convert(raw, schema, table, q):
                batch = screen(converted, table, q)
                if batch.num_rows:
                    profile.put(batch)
                    write(batch)
            emit({"event": "rows", "table": table.name, "done": seen, "total": total})


def _project(table: TableConfig, full: pa.Schema) -> pa.Schema:
    names = full.names
    for label, cols in (
        ("exclude_columns", table.exclude_columns),
        ("primary_key", table.primary_key),
        ("not_null", table.not_null),
    ):
        for col in cols:
            if col not in names:
                close = difflib.get_close_matches(col, names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; source columns: {', '.join(names)}"
                raise ValidationError(f"table {table.name!r}: {label} names column {col!r}, which the source does not have{hint}")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValidationError(f"table {table.name!r}: the source has duplicate column names {dup}; alias them in a query")
    return pa.schema([f for f in full if f.name not in table.exclude_columns])


def _observe(acc: ProfileAccumulator, keys: KeyOrder, batch: pa.RecordBatch) -> None:
    acc.update(batch)
    keys.update(batch)
