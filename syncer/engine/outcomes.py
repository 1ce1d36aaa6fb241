"""What a run makes of each table's outcome: its result row, its carried-over entry, the time-budget
check, and the quarantine folders that go with retention (pure helpers of :mod:`syncer.engine.run`)."""

from __future__ import annotations

import dataclasses
import shutil

from syncer import _clock as clock
from syncer._clock import iso, parse_iso
from syncer.config import Config
from syncer.export.table import TableOutcome
from syncer.validate.checks import check
from syncer.volume.layout import Volume
from syncer.volume.manifest import Check, ManifestEntry, TableResult

__all__ = ["budget_check", "carried_over", "prune_quarantine", "table_result"]


def carried_over(old: ManifestEntry, out: TableOutcome) -> ManifestEntry:
    """The previous snapshot's entry, kept because this export failed, saying why."""
    return dataclasses.replace(
        old,
        status="carried_over",
        error=out.error,
        failed_at=iso(clock.utcnow()),
        failed_checks=tuple(c for c in out.checks if not c.ok),
        failed_quarantine=out.quarantine or None,
    )


def table_result(out: TableOutcome, status: str) -> TableResult:
    export_s = out.timings.get("export_s")
    return TableResult(
        table=out.name,
        status=status,
        ok=out.ok,
        rows=out.rows,
        bytes=out.bytes,
        error=out.error,
        checks=tuple(out.checks),
        export_s=export_s,
        validate_s=out.timings.get("validate_s"),
        total_s=out.timings.get("total_s"),
        rows_per_s=(out.rows / export_s) if export_s else None,
        attempts=tuple(out.attempts),
        quarantined=out.quarantined,
        quarantine=out.quarantine,
    )


def prune_quarantine(vol: Volume) -> None:
    """Quarantine folders older than the oldest retained snapshot go with it."""
    infos = vol.list_snapshots()
    if not infos or not infos[0].created_at or not vol.quarantine.is_dir():
        return
    kept = {i.id for i in infos}
    oldest = parse_iso(infos[0].created_at).timestamp()
    for folder in vol.quarantine.iterdir():
        try:
            old = folder.is_dir() and folder.name not in kept and folder.stat().st_mtime < oldest
        except OSError:
            continue  # best effort: the next run looks again
        if old:
            shutil.rmtree(folder, ignore_errors=True)


def budget_check(cfg: Config, seconds: float) -> Check:
    ok = seconds <= cfg.time_budget_seconds
    over = "" if ok else " (over budget)"
    return check("time_budget", ok, f"run took {seconds:.1f}s of a {cfg.time_budget_seconds:g}s budget{over}", severity="warning")
