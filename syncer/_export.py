"""Export one table: stream it from the source into its writer in staging, then validate.

Everything is computed on the way through, one batch at a time: the written profile (Arrow compute),
the sha256 (hashed as the bytes are written) and the row count. After the file is closed it is
re-opened for its row count and stored schema, and its key columns are scanned by DuckDB for
duplicates (exact, spills to disk, never holds the keys as Python objects).
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ._config import Config, TableConfig
from ._exceptions import SourceError, SyncError, ValidationError
from ._formats import WrittenFile, conform, count_rows, file_schema, iter_batches, open_writer, schema_to_b64
from ._pipeline import KeyOrder, Prefetch
from ._profile import ProfileAccumulator, compare_profiles
from ._source import Source, quote_ident
from ._volume import iso, utcnow

__all__ = ["TableOutcome", "export_table", "schema_contract", "schema_drift"]

log = logging.getLogger("syncer")

Progress = Callable[[dict[str, Any]], None]

#: batches queued for the writer thread beyond the one it is encoding (bounds memory)
_WRITE_DEPTH = 3


@dataclass
class TableOutcome:
    name: str
    ok: bool
    checks: list[dict[str, Any]] = field(default_factory=list)
    entry: dict[str, Any] | None = None
    error: str | None = None
    rows: int = 0
    bytes: int = 0
    timings: dict[str, float] = field(default_factory=dict)


def check(name: str, ok: bool, detail: str, severity: str = "error") -> dict[str, Any]:
    return {"name": name, "ok": bool(ok), "severity": severity, "detail": detail}


def schema_contract(schema: pa.Schema) -> list[dict[str, Any]]:
    return [{"name": f.name, "type": _type_name(f), "nullable": f.nullable} for f in schema]


def _type_name(f: pa.Field) -> str:
    t = str(f.type)
    if f.metadata and f.metadata.get(b"syncer.logical_type") == b"json":
        return "json"
    return t


def schema_drift(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    """Readable differences between two schema contracts (nullability is not part of the contract)."""
    o = {c["name"]: c["type"] for c in old}
    n = {c["name"]: c["type"] for c in new}
    out = [f"added {k} ({n[k]})" for k in n if k not in o]
    out += [f"removed {k} ({o[k]})" for k in o if k not in n]
    out += [f"retyped {k}: {o[k]} -> {n[k]}" for k in n if k in o and o[k] != n[k]]
    return out


def export_table(
    source: Source,
    table: TableConfig,
    cfg: Config,
    staging: Path,
    previous: dict[str, Any] | None,
    *,
    accept_schema_change: bool = False,
    progress: Progress | None = None,
    spill_dir: Path | None = None,
) -> TableOutcome:
    """Export and validate ``table`` into ``staging``; never raises for a table-level failure."""
    out = TableOutcome(table.name, ok=False)
    path = staging / table.file_name
    t0 = time.perf_counter()
    emit = progress or (lambda _e: None)
    writer = None
    try:
        with source.pinned(table) as pin:
            full = source.schema(table)
            schema = _project(table, full)
            exported_at = utcnow()
            source_rows = source.count(table)
            emit({"event": "table_start", "table": table.name, "total": source_rows})
            writer = open_writer(table.format, path, schema, compression=cfg.compression, row_group_rows=cfg.row_group_rows)
            acc = ProfileAccumulator(schema)
            keys = KeyOrder(schema, table.primary_key)
            with ThreadPoolExecutor(2, thread_name_prefix="syncer-check") as pool:
                # The source profiles the same pinned data while we stream it, when it can do so
                # on its own connection; otherwise it runs first.
                t_prof = time.perf_counter()
                if source.concurrent_profile:
                    profile_future = pool.submit(source.profile, table, schema)
                else:
                    source_profile = source.profile(table, schema)
                    out.timings["source_profile_s"] = time.perf_counter() - t_prof
                # Three stages overlap: the source reads ahead (Prefetch), the writer encodes on its
                # own thread (a few batches behind, bounded), and each batch is profiled meanwhile.
                writes: deque[Future[None]] = deque()
                with (
                    Prefetch(source.stream(table, schema, cfg.batch_rows)) as batches,
                    ThreadPoolExecutor(1, thread_name_prefix="syncer-write") as write_pool,
                ):
                    for raw in batches:
                        try:
                            batch = conform(raw, schema)
                        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                            raise ValidationError(
                                f"table {table.name!r}: a batch does not fit the table's schema: {exc}"
                            ) from exc
                        observed = pool.submit(_observe, acc, keys, batch)
                        writes.append(write_pool.submit(writer.write, batch))
                        while len(writes) > _WRITE_DEPTH:
                            writes.popleft().result()
                        observed.result()
                        emit({"event": "rows", "table": table.name, "done": acc.rows, "total": source_rows})
                    while writes:
                        writes.popleft().result()
                if source.concurrent_profile:
                    source_profile = profile_future.result()
                    out.timings["source_profile_s"] = time.perf_counter() - t_prof
            written = writer.close()
            writer = None
        out.timings["export_s"] = time.perf_counter() - t0
        out.rows, out.bytes = acc.rows, written.bytes
        t1 = time.perf_counter()
        out.checks = _validate(
            table, schema, source_rows, source_profile, acc, keys, written, previous, accept_schema_change, spill_dir
        )
        out.timings["validate_s"] = time.perf_counter() - t1
        out.ok = all(c["ok"] for c in out.checks if c["severity"] == "error")
        failed = [c for c in out.checks if not c["ok"] and c["severity"] == "error"]
        if failed:
            out.error = "; ".join(f"{c['name']}: {c['detail']}" for c in failed)
        out.entry = {
            "file": table.file_name,
            "format": table.format,
            "rows": acc.rows,
            "bytes": written.bytes,
            "sha256": written.sha256,
            "schema": schema_contract(schema),
            "arrow_schema": schema_to_b64(schema),
            "primary_key": list(table.primary_key),
            "exported_at": iso(exported_at),
            "status": "fresh",
            "source_rows": source_rows,
            "source": {"table": table.source} if table.source else {"query": table.query},
            "consistency": pin,
            "checks": out.checks,
            "profile": acc.result(),
        }
    except SyncError as exc:
        out.error = str(exc)
        out.checks.append(check("export", False, str(exc)))
        log.warning("table %s failed: %s", table.name, exc, extra={"table": table.name, "step": "export"})
    finally:
        if writer is not None:
            writer.abort()
        if not out.ok:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        out.timings["total_s"] = time.perf_counter() - t0
        emit({"event": "table_done", "table": table.name, "ok": out.ok, "rows": out.rows})
    return out


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


def _validate(
    table: TableConfig,
    schema: pa.Schema,
    source_rows: int,
    source_profile: dict[str, Any],
    acc: ProfileAccumulator,
    keys: KeyOrder,
    written: WrittenFile,
    previous: dict[str, Any] | None,
    accept_schema_change: bool,
    spill_dir: Path | None,
) -> list[dict[str, Any]]:
    checks = []
    rows = acc.rows
    checks.append(check("row_count", rows == source_rows, f"source {source_rows:,} rows, written {rows:,}"))

    contract = schema_contract(schema)
    if previous is None or "schema" not in previous:
        checks.append(check("schema", True, f"first export sets the contract ({len(contract)} columns)"))
    else:
        drift = schema_drift(previous["schema"], contract)
        if not drift:
            checks.append(check("schema", True, f"matches the previous snapshot's contract ({len(contract)} columns)"))
        elif accept_schema_change:
            checks.append(check("schema", True, "change accepted by the operator: " + "; ".join(drift)))
        else:
            checks.append(
                check(
                    "schema",
                    False,
                    "schema drift from the previous snapshot: "
                    + "; ".join(drift)
                    + ". If intended, re-run with `syncer sync --accept-schema-change "
                    + table.name
                    + "`",
                )
            )

    written_profile = acc.result()
    cols = written_profile["columns"]
    key_nulls = {c: cols[c]["nulls"] for c in table.primary_key if cols[c]["nulls"]}
    checks.append(
        check(
            "primary_key_not_null",
            not key_nulls,
            "no nulls in " + ", ".join(table.primary_key)
            if not key_nulls
            else "null primary key values: " + ", ".join(f"{c} has {n:,}" for c, n in key_nulls.items()),
        )
    )
    checks.append(_key_check(table, schema, keys, written, spill_dir))

    if table.not_null:
        bad = {c: cols[c]["nulls"] for c in table.not_null if cols[c]["nulls"]}
        checks.append(
            check(
                "not_null",
                not bad,
                "no nulls in " + ", ".join(table.not_null)
                if not bad
                else "nulls in not_null columns: " + ", ".join(f"{c} has {n:,}" for c, n in bad.items()),
            )
        )

    if table.allow_empty:
        checks.append(check("non_empty", True, f"{rows:,} rows (empty allowed)"))
    else:
        checks.append(
            check(
                "non_empty",
                rows > 0,
                f"{rows:,} rows" if rows else "the table is empty; set allow_empty = true for this table if that is expected",
            )
        )

    diffs = compare_profiles(source_profile, written_profile, schema)
    checks.append(
        check(
            "profile",
            not diffs,
            f"{len(schema)} columns agree with the source (nulls, min, max, sum)"
            if not diffs
            else "written data differs from the source: "
            + "; ".join(diffs[:10])
            + (f" (+{len(diffs) - 10} more)" if len(diffs) > 10 else ""),
        )
    )

    try:
        on_disk = written.path.stat().st_size
    except OSError as exc:
        on_disk = -1
        detail = f"cannot stat {written.path.name}: {exc.strerror}"
    else:
        detail = f"sha256 {written.sha256} of {on_disk:,} bytes"
    checks.append(
        check(
            "sha256",
            on_disk == written.bytes,
            detail if on_disk == written.bytes else f"{detail}; {written.bytes:,} bytes were written",
        )
    )

    try:
        reread = count_rows(table.format, written.path, schema)
        stored = file_schema(table.format, written.path)
        problems = []
        if reread != rows:
            problems.append(f"re-opened file has {reread:,} rows, {rows:,} were written")
        if stored is not None and not stored.equals(schema, check_metadata=False):
            problems.append(f"stored schema differs: {stored} vs {schema}")
        checks.append(check("reopen", not problems, "; ".join(problems) or f"re-opened {written.path.name}: {reread:,} rows"))
    except (OSError, pa.ArrowException) as exc:
        checks.append(check("reopen", False, f"cannot re-open {written.path.name}: {exc}"))
    return checks


def _observe(acc: ProfileAccumulator, keys: KeyOrder, batch: pa.RecordBatch) -> None:
    acc.update(batch)
    keys.update(batch)


def _key_check(
    table: TableConfig, schema: pa.Schema, order: KeyOrder, written: WrittenFile, spill_dir: Path | None
) -> dict[str, Any]:
    """Key uniqueness of the written rows: proven while streaming when the keys arrived strictly
    increasing, else an exact duplicate scan of the written file's key columns by DuckDB (bounded
    memory, spills to disk)."""
    keys = list(table.primary_key)
    if order.proven:
        return check("primary_key_unique", True, f"{keys[0]} unique (strictly increasing in the written order)")
    if table.format == "parquet":
        scan: Any = None
        relation = "read_parquet(?)"
        params: list[Any] = [str(written.path)]
    else:
        key_schema = pa.schema([schema.field(k) for k in keys])
        scan = pa.RecordBatchReader.from_batches(key_schema, iter_batches(table.format, written.path, schema, keys))
        relation = "keys_scan"
        params = []
    cols = ", ".join(quote_ident(k) for k in keys)
    not_null = " AND ".join(f"{quote_ident(k)} IS NOT NULL" for k in keys)
    con = duckdb.connect(
        config={"threads": 2, "memory_limit": "256MB", **({"temp_directory": str(spill_dir)} if spill_dir else {})}
    )
    try:
        if scan is not None:
            con.register("keys_scan", scan)
        rows = con.execute(
            f"SELECT {cols}, c, count(*) OVER () AS groups, sum(c) OVER () AS dup_rows FROM ("
            f"SELECT {cols}, count(*) AS c FROM {relation} WHERE {not_null} GROUP BY ALL HAVING count(*) > 1"
            f") ORDER BY c DESC LIMIT 5",
            params,
        ).fetchall()
    except (duckdb.Error, pa.ArrowException) as exc:
        raise SourceError(f"table {table.name!r}: duplicate-key scan of {written.path.name} failed: {exc}") from exc
    finally:
        con.close()
    if not rows:
        return check("primary_key_unique", True, f"{', '.join(keys)} unique")
    groups, dup_rows = rows[0][-2], rows[0][-1]
    examples = ", ".join("(" + ", ".join(repr(v) for v in r[: len(keys)]) + f") x{r[len(keys)]}" for r in rows)
    return check(
        "primary_key_unique",
        False,
        f"{groups:,} duplicate {', '.join(keys)} value(s) covering {int(dup_rows):,} rows, e.g. {examples}",
    )
