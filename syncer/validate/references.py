"""Declared relationships (``[[tables]] references``), checked in the files of the snapshot about
to be published -- after export, before publish, never in the warehouse (no warehouse cost).

Each reference of a table counts its *orphans*: rows whose key columns are all non-null and match
no row of the target table (SQL's MATCH SIMPLE: a row with a null in its key references nothing).
The target is what the new snapshot will actually hold: the file this run exported, or -- when the
target was carried over or not re-exported -- the previous snapshot's file. An in-process DuckDB
scans the files (an anti-join: bounded memory, spills to disk).

Verdicts are :class:`~syncer.volume.manifest.Check` records named ``references:<columns>`` with
the orphan count and a sample of orphan keys. Severity ``error`` fails a table exported by this run
(its staged file is dropped, so its previous data is carried over); ``warn`` publishes and records.
A table not exported by this run cannot fail; its checks are recorded as warnings. When a table
fails, the tables referencing it are checked again, against the data the snapshot now keeps.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from syncer._memory import memory_ceiling
from syncer.config import Config, Reference, TableConfig
from syncer.formats import iter_batches, parquet_files, remove_output, schema_from_b64
from syncer.sources.base import quote_ident
from syncer.volume.manifest import Check, Manifest, ManifestEntry

if TYPE_CHECKING:
    from syncer.export.table import TableOutcome

__all__ = ["SAMPLE", "Holding", "check_references", "with_reference_checks"]

#: orphan keys kept in a check as examples
SAMPLE = 5
PREFIX = "references:"


@dataclass(frozen=True)
class Holding:
    """Where a table's data in the snapshot about to be published lives."""

    entry: ManifestEntry
    folder: Path
    #: fresh (exported by this run), carried_over (its export failed), earlier_run (not re-exported)
    state: str

    @property
    def fresh(self) -> bool:
        return self.state == "fresh"

    def describe(self, name: str) -> str:
        if self.fresh:
            return f"{name} as exported by this run"
        why = "its export failed" if self.state == "carried_over" else "not re-exported"
        return f"{name} kept from run {self.entry.exported_in or '?'} ({why})"


def check_references(
    cfg: Config,
    outcomes: dict[str, TableOutcome],
    staging: Path,
    prev: Manifest | None,
    prev_dir: Path | None,
    spill_dir: Path | None,
) -> dict[str, tuple[Check, ...]]:
    """Check every declared reference of the snapshot about to be published.

    Tables exported by this run get their checks in their outcome (and entry); one failing an
    ``error`` reference is failed here, its staged file removed. Returns the checks of tables kept
    from the previous snapshot (for :func:`with_reference_checks`)."""
    while True:
        held = _holdings(cfg, outcomes, staging, prev, prev_dir)
        verdicts = {
            t.name: tuple(reference_check(t, ref, held, spill_dir) for ref in t.references)
            for t in cfg.tables
            if t.references and t.name in held
        }
        failing = [n for n, checks in verdicts.items() if held[n].fresh and any(c.failed for c in checks)]
        if not failing:
            break
        for name in failing:  # the targets changed: check again against what the snapshot keeps now
            _fail(outcomes[name], verdicts[name], staging)
    kept: dict[str, tuple[Check, ...]] = {}
    for name, checks in verdicts.items():
        if held[name].fresh:
            out = outcomes[name]
            out.checks.extend(checks)
            assert out.entry is not None
            out.entry = dataclasses.replace(out.entry, checks=out.entry.checks + checks)
        else:
            kept[name] = tuple(dataclasses.replace(c, severity="warning") for c in checks)
    return kept


def with_reference_checks(entries: dict[str, ManifestEntry], kept: Mapping[str, tuple[Check, ...]]) -> dict[str, ManifestEntry]:
    """``entries`` with the reference checks of kept tables replacing the ones they were published with."""
    out = dict(entries)
    for name, checks in kept.items():
        if name in out:
            old = tuple(c for c in out[name].checks if not c.name.startswith(PREFIX))
            out[name] = dataclasses.replace(out[name], checks=old + checks)
    return out


def _holdings(
    cfg: Config, outcomes: Mapping[str, TableOutcome], staging: Path, prev: Manifest | None, prev_dir: Path | None
) -> dict[str, Holding]:
    held: dict[str, Holding] = {}
    for t in cfg.tables:
        out = outcomes.get(t.name)
        old = prev.tables.get(t.name) if prev else None
        if out is not None and out.ok and out.entry is not None:
            held[t.name] = Holding(out.entry, staging, "fresh")
        elif old is not None and prev_dir is not None:
            held[t.name] = Holding(old, prev_dir, "earlier_run" if out is None else "carried_over")
    return held


def _fail(out: TableOutcome, checks: tuple[Check, ...], staging: Path) -> None:
    out.checks.extend(checks)
    bad = [c for c in checks if c.failed]
    out.ok = False
    why = "; ".join(f"{c.name}: {c.detail}" for c in bad)
    out.error = f"{out.error}; {why}" if out.error else why
    if out.entry is not None:
        remove_output(staging / out.entry.file)


def reference_check(table: TableConfig, ref: Reference, held: Mapping[str, Holding], spill_dir: Path | None) -> Check:
    """The verdict on one reference of ``table`` against the snapshot's data (``held``)."""
    name = PREFIX + ",".join(ref.columns)
    severity = "error" if ref.severity == "error" else "warning"
    label = f"{table.name}.{ref.label}"
    info: dict[str, Any] = {
        "reference": {"columns": list(ref.columns), "table": ref.target, "target_columns": list(ref.target_columns)}
    }
    src, tgt = held[table.name], held.get(ref.target)
    if tgt is None:
        detail = f"{label}: table {ref.target!r} is not in this snapshot (it has never been exported successfully)"
        return Check(name, False, detail, severity, {**info, "orphans": None})
    info["target"] = {"table": ref.target, "state": tgt.state, "exported_in": tgt.entry.exported_in}
    for side, tname, cols in ((src, table.name, ref.columns), (tgt, ref.target, ref.target_columns)):
        have = [c.name for c in side.entry.schema]
        missing = [c for c in cols if c not in have]
        if missing:
            detail = (
                f"{label}: column {missing[0]!r} is not in table {tname!r} (its columns: {', '.join(have)}); "
                "fix the column name in references"
            )
            return Check(name, False, detail, "error", {**info, "orphans": None})
    try:
        orphans, sample = count_orphans(src, ref.columns, tgt, ref.target_columns, spill_dir)
    except Exception as exc:  # DuckDB's or Arrow's: one line, the check fails
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        detail = f"{label}: the orphan scan failed ({type(exc).__name__}: {first}); check that the key types match"
        return Check(name, False, detail, "error", {**info, "orphans": None})
    where = tgt.describe(ref.target)
    if not orphans:
        return Check(
            name,
            True,
            f"{label}: every key of {src.entry.rows:,} row(s) is in {where}",
            severity,
            {**info, "orphans": 0, "sample": []},
        )
    shown = "; ".join(", ".join(f"{c}={v!r}" for c, v in zip(ref.columns, key, strict=True)) for key in sample)
    detail = f"{label}: {orphans:,} of {src.entry.rows:,} row(s) reference no row of {where} (e.g. {shown})"
    return Check(name, False, detail, severity, {**info, "orphans": orphans, "sample": [[_plain(v) for v in k] for k in sample]})


def count_orphans(
    src: Holding, cols: tuple[str, ...], tgt: Holding, tcols: tuple[str, ...], spill_dir: Path | None
) -> tuple[int, list[tuple[Any, ...]]]:
    """(rows of ``src`` whose non-null ``cols`` match no ``tcols`` of ``tgt``, up to SAMPLE of their keys)."""
    import duckdb  # only for the scan: a reader of the volume never needs it

    config: dict[str, Any] = {"threads": 2, "memory_limit": f"{min(256 * 10**6, memory_ceiling())}B"}  # spills past it
    if spill_dir is not None:
        config["temp_directory"] = str(spill_dir)
    con = duckdb.connect(config=config)
    try:
        s_rel, s_params = _relation(con, "ref_src", src, cols)
        t_rel, t_params = _relation(con, "ref_tgt", tgt, tcols)
        s_cols = ", ".join(f"s.{quote_ident(c)}" for c in cols)
        not_null = " AND ".join(f"s.{quote_ident(c)} IS NOT NULL" for c in cols)
        on = " AND ".join(f"s.{quote_ident(c)} = t.{quote_ident(tc)}" for c, tc in zip(cols, tcols, strict=True))
        orphans = f"SELECT {s_cols} FROM {s_rel} AS s WHERE {not_null} AND NOT EXISTS (SELECT 1 FROM {t_rel} AS t WHERE {on})"
        order = ", ".join(str(i + 1) for i in range(len(cols)))
        rows = con.execute(
            f"SELECT *, count(*) OVER () AS __syncer_orphans FROM ({orphans}) ORDER BY {order} LIMIT {SAMPLE}",
            s_params + t_params,
        ).fetchall()
    finally:
        con.close()
    if not rows:
        return 0, []
    return int(rows[0][-1]), [tuple(r[:-1]) for r in rows]


def _relation(con: Any, alias: str, held: Holding, cols: tuple[str, ...]) -> tuple[str, list[Any]]:
    """The FROM text (and parameters) reading ``cols`` of a held table's written file(s)."""
    path = held.folder / held.entry.file
    if held.entry.format == "parquet":
        return "read_parquet(?)", [[str(f) for f in parquet_files(path)]]
    if held.entry.arrow_schema is None:
        raise ValueError(f"the manifest of {held.entry.file} has no Arrow schema to read it with")
    schema = schema_from_b64(held.entry.arrow_schema)
    sub = pa.schema([schema.field(c) for c in cols])
    con.register(alias, pa.RecordBatchReader.from_batches(sub, iter_batches(held.entry.format, path, schema, list(cols))))
    return alias, []


def _plain(v: Any) -> Any:
    """A sample value as JSON can hold it."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # NaN never matches a key; the manifest is strict JSON
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, dt.datetime | dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return str(v)
    return str(v)
