"""Read models: everything the admin app's pages show, computed here, typed.

The pages render these records and never walk the manifest, the run history or the volume
themselves. Each model is a frozen record (:class:`~syncer.volume.manifest.Record`).
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syncer import _clock as clock
from syncer._clock import parse_iso
from syncer._exceptions import ConfigError
from syncer.config import Config
from syncer.engine import snapshots
from syncer.engine.results import SnapshotSummary
from syncer.volume.history import History
from syncer.volume.layout import Volume
from syncer.volume.manifest import Check, Manifest, Record

__all__ = [
    "CheckRow",
    "PreviewRow",
    "QuarantineFile",
    "RollbackPreview",
    "open_history",
    "quarantined",
    "read_quarantined",
    "rollback_default",
    "rollback_preview",
    "validation_rows",
]


def open_history(cfg: Config) -> History:
    return History(Volume(cfg.root).db_path)


# --- Controls: rollback preview -------------------------------------------------------------------------


@dataclass(frozen=True)
class PreviewRow(Record):
    table: str
    rows_now: int | None
    rows_after: int | None
    rows_change: int
    age_now_hours: float | None
    age_after_hours: float | None
    exported_now: str | None
    exported_after: str | None
    changes: bool


@dataclass(frozen=True)
class RollbackPreview(Record):
    #: what ``current`` names now (None: nothing, or a link to a missing folder; see ``current_note``)
    previous: str | None
    to: str
    to_created_at: str | None
    ok: bool
    problems: tuple[str, ...]
    tables: tuple[PreviewRow, ...]
    #: what ``current`` is when it names no intact snapshot ("points at X, which does not exist")
    current_note: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        return {"from": data.pop("previous"), **data}

    @property
    def from_text(self) -> str:
        """How the preview names the snapshot it moves away from (never "None")."""
        if self.previous and not self.current_note:
            return self.previous
        return self.current_note or "nothing (no snapshot is published)"

    @property
    def changed(self) -> tuple[PreviewRow, ...]:
        return tuple(t for t in self.tables if t.changes)


def rollback_preview(cfg: Config, to: str) -> RollbackPreview:
    """What a rollback to ``to`` changes, table by table: rows and ages now and after."""
    snaps = {s.id: s for s in snapshots(cfg)}
    if to not in snaps:
        raise ConfigError(f"snapshot {to} is not retained; choose one of: {', '.join(snaps) or 'none'}")
    cur: SnapshotSummary | None = next((s for s in snaps.values() if s.current), None)
    now = clock.utcnow()

    def age(t: dict[str, Any] | None) -> float | None:
        return round((now - parse_iso(t["exported_at"])).total_seconds() / 3600, 2) if t else None

    names = [t.name for t in cfg.tables]
    rows = []
    for name in names + [n for n in snaps[to].tables if n not in names]:
        a = cur.tables.get(name) if cur else None
        b = snaps[to].tables.get(name)
        rows.append(
            PreviewRow(
                table=name,
                rows_now=a["rows"] if a else None,
                rows_after=b["rows"] if b else None,
                rows_change=(b["rows"] if b else 0) - (a["rows"] if a else 0),
                age_now_hours=age(a),
                age_after_hours=age(b),
                exported_now=a["exported_at"] if a else None,
                exported_after=b["exported_at"] if b else None,
                changes=a is None or b is None or a["exported_at"] != b["exported_at"] or a["rows"] != b["rows"],
            )
        )
    target = snaps[to]
    cid = Volume(cfg.root).current_id()
    note = None
    if cid is not None and cur is None:
        note = f"a broken current (it points at {cid}, which does not exist)"
    elif cur is not None and not cur.ok:
        note = f"the broken snapshot {cur.id}"
    return RollbackPreview(cid, to, target.created_at, target.ok, target.problems, tuple(rows), note)


def rollback_default(cfg: Config) -> str | None:
    """The snapshot a rollback goes to unless the operator picks another: the one before the
    current one, as ``syncer rollback`` without an id (the newest intact one if ``current`` is broken)."""
    vol = Volume(cfg.root)
    return vol.previous_of(vol.current_id())


# --- Validation ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckRow(Record):
    """One check of the current snapshot, as the Validation page lists it."""

    table: str
    check: str
    result: str
    severity: str
    detail: str


def validation_rows(manifest: Manifest) -> list[CheckRow]:
    """Every check in the manifest: per table (a carried-over table's failed attempt too), then the run's."""

    def row(table: str, c: Check, suffix: str = "", failed: bool = False) -> CheckRow:
        result = "FAIL" if failed or not c.ok else "pass"
        return CheckRow(table, c.name + suffix, result, c.severity, c.detail)

    rows = []
    for name, entry in manifest.tables.items():
        rows += [row(name, c) for c in entry.checks]
        # a carried-over table keeps its old (passing) checks; the failed attempt's checks are listed too
        rows += [row(name, c, " (last attempt)", failed=True) for c in entry.failed_checks or ()]
    rows += [row("(run)", c) for c in manifest.run_checks]
    return rows


# --- quarantined records ----------------------------------------------------------------------------------

_QUARANTINE_FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".arrow": "arrow"}


@dataclass(frozen=True)
class QuarantineFile(Record):
    table: str
    #: relative to the snapshot's quarantine folder
    file: str
    format: str
    bytes: int
    path: str

    def read_bytes(self) -> builtins.bytes:  # (the field "bytes" shadows the type here)
        """The file as it is (for a download button)."""
        return Path(self.path).read_bytes()


def quarantined(cfg: Config, snapshot_id: str | None = None) -> list[QuarantineFile]:
    """Quarantined record files of a snapshot (default: the current one), one entry per file."""
    vol = Volume(cfg.root)
    sid = snapshot_id or vol.current_id()
    if sid is None:
        return []
    folder = vol.quarantine / sid
    if not folder.is_dir():
        return []
    out = []
    for p in sorted(folder.rglob("*")):
        fmt = _QUARANTINE_FORMATS.get(p.suffix)
        if p.is_file() and fmt:
            out.append(QuarantineFile(p.stem, str(p.relative_to(folder)), fmt, p.stat().st_size, str(p)))
    return out


def read_quarantined(entry: QuarantineFile, limit: int | None = None) -> Any:
    """The records of one quarantine file as a pandas DataFrame (first ``limit`` rows)."""
    import pyarrow as pa

    path, fmt = Path(entry["path"]), entry["format"]
    if fmt == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
    elif fmt == "csv":
        import pyarrow.csv as pcsv

        table = pcsv.read_csv(path)
    elif fmt == "jsonl":
        # Quarantined rows are bad by definition (mixed types, missing keys): pandas reads them as they are.
        import pandas as pd

        return pd.read_json(path, lines=True, nrows=limit, dtype=False)
    else:
        with pa.memory_map(str(path)) as src:
            table = pa.ipc.open_file(src).read_all()
    if limit is not None:
        table = table.slice(0, limit)
    return table.to_pandas()
