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
from syncer.admin.history_models import RunRow, run_row
from syncer.config import Config
from syncer.engine import snapshots, status
from syncer.engine.results import SnapshotSummary, StatusReport, TableStatus
from syncer.schedule.scheduler import next_fire, scheduler_info
from syncer.volume.history import History
from syncer.volume.layout import Volume
from syncer.volume.manifest import Check, Manifest, Record

__all__ = [
    "CheckRow",
    "FreshnessRow",
    "FreshnessView",
    "PreviewRow",
    "QuarantineFile",
    "RollbackPreview",
    "freshness",
    "next_run_of",
    "open_history",
    "quarantined",
    "read_quarantined",
    "rollback_preview",
    "validation_rows",
]


def open_history(cfg: Config) -> History:
    return History(Volume(cfg.root).db_path)


def next_run_of(cfg: Config) -> str | None:
    """The running scheduler's next fire time; without one (CLI, AppTest), the cron's."""
    info = scheduler_info()
    if info is not None:
        return info["next_run"]
    return next_fire(cfg)


# --- Freshness ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FreshnessRow(Record):
    table: str
    #: fresh | stale | carried over | missing | failed
    status: str
    rows: int | None
    exported_at: str | None
    age_hours: float | None
    #: within SLA | over SLA | n/a
    sla: str
    #: the snapshot whose export produced this data
    snapshot: str | None
    error: str | None = None


@dataclass(frozen=True)
class FreshnessView(Record):
    snapshot: dict[str, Any] | None
    sla_hours: float
    tables: tuple[FreshnessRow, ...]
    fresh: int
    total: int
    last_run: RunRow | None
    #: who holds the volume lock while a sync runs (pid, host, trigger, user, started_at)
    running: dict[str, Any] | None
    next_run: str | None
    scheduler: dict[str, Any] | None
    banners: tuple[str, ...]


def _state_of(t: TableStatus, failed_last_run: set[str]) -> str:
    if t.status == "missing":
        return "failed" if t.name in failed_last_run else "missing"
    if t.status == "carried_over":
        return "carried over"
    return "stale" if t.stale else "fresh"


def freshness(cfg: Config) -> FreshnessView:
    """Everything the Freshness page shows, one row per configured table."""
    st = status(cfg)
    last = st.last_run
    failed_last: set[str] = set()
    if last is not None:
        failed_last = {r["table_name"] for r in open_history(cfg).table_results(last["id"]) if r["status"] == "failed"}
    origin = _origins(cfg, st)
    rows = []
    for t in st.tables:
        age_h = t.age_seconds / 3600 if t.age_seconds is not None else None
        rows.append(
            FreshnessRow(
                table=t.name,
                status=_state_of(t, failed_last),
                rows=t.rows,
                exported_at=t.exported_at,
                age_hours=round(age_h, 2) if age_h is not None else None,
                sla="n/a" if age_h is None else ("over SLA" if t.stale else "within SLA"),
                snapshot=origin.get(t.name),
                error=t.error,
            )
        )
    banners = list(st.warnings)
    if last is not None and last["status"] in ("failed", "aborted", "partial"):
        banners.insert(
            0, f"the last run ({last['trigger']}, {last['started_at']}) {last['status']}: {last.get('error') or ''}".rstrip(": ")
        )
    return FreshnessView(
        snapshot=st.snapshot.to_json() if st.snapshot else None,
        sla_hours=cfg.sla_hours,
        tables=tuple(rows),
        fresh=sum(1 for r in rows if r.status == "fresh"),
        total=len(rows),
        last_run=run_row(last) if last else None,
        running=st.running,
        next_run=next_run_of(cfg),
        scheduler=scheduler_info(),
        banners=tuple(banners),
    )


def _origins(cfg: Config, st: StatusReport) -> dict[str, str]:
    """For each table, the snapshot whose export produced the data ``current`` holds.

    A table that was not re-exported is hard-linked into the next snapshot with its manifest entry,
    so the origin is the oldest retained snapshot with the same ``exported_at``; if that one was
    removed by retention, the oldest retained one that still has it.
    """
    if st.snapshot is None:
        return {}
    out: dict[str, str] = {t.name: t.exported_in for t in st.tables if t.exported_in}
    want = {t.name: t.exported_at for t in st.tables if t.exported_at}
    for snap in snapshots(cfg):  # oldest first
        for name, t in snap.tables.items():
            if name in want and name not in out and t["exported_at"] == want[name]:
                out[name] = snap.id
    return out


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
    previous: str | None
    to: str
    to_created_at: str | None
    ok: bool
    problems: tuple[str, ...]
    tables: tuple[PreviewRow, ...]

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        return {"from": data.pop("previous"), **data}

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
    return RollbackPreview(cur.id if cur else None, to, target.created_at, target.ok, target.problems, tuple(rows))


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
