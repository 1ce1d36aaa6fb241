"""Read models of the History page: the runs, their time per step, and the audit trail.

:func:`history_view` reads the run history (SQLite on the volume) once and returns typed records; the
page renders them and never walks the history's rows itself. A history that cannot be read is a
:class:`~syncer.HistoryError` (a :class:`~syncer.SyncError`) naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from syncer.config import Config
from syncer.volume.history import History
from syncer.volume.layout import Volume
from syncer.volume.manifest import Record

__all__ = [
    "AuditRow",
    "HistoryView",
    "RunRow",
    "StepTime",
    "audit_text",
    "history_view",
    "run_row",
    "step_name",
]


@dataclass(frozen=True)
class RunRow(Record):
    """One run (sync or startup), as the runs grid lists it."""

    id: str
    started_at: str
    trigger: str
    user: str | None
    #: running | ok | partial | failed | aborted
    status: str
    #: None while the run is still going (or was killed before it finished)
    duration_s: float | None
    rows: int
    bytes: int
    snapshot_id: str | None
    error: str | None
    #: rows over the run's duration; None without a duration
    rows_per_s: float | None
    finished_at: str | None = None
    #: seconds per step of the run (export_validate_s, publish_s, ...), in the order the run took them
    steps: dict[str, float] | None = None
    #: "all tables", or the tables asked for ("courses"; "2 tables")
    scope: str = "all tables"

    @property
    def finished(self) -> bool:
        return self.duration_s is not None


@dataclass(frozen=True)
class StepTime(Record):
    """The seconds one step of one finished run took (the bars of the time-budget chart)."""

    run: str
    step: str
    seconds: float


@dataclass(frozen=True)
class AuditRow(Record):
    """One audited action: rollback, repair, manual sync, a refused or blocked action."""

    at: str
    #: the event's kind: rollback, repair, manual_sync, refused, busy, ...
    action: str
    user: str | None
    run: str | None
    #: the event's details in words, in full ("from A to B, reason: ...")
    detail: str


@dataclass(frozen=True)
class HistoryView(Record):
    """Everything the History page shows."""

    #: newest first
    runs: tuple[RunRow, ...]
    #: the finished runs' steps, oldest run first
    steps: tuple[StepTime, ...]
    #: newest first
    audit: tuple[AuditRow, ...]
    #: ``[export] time_budget_seconds``
    budget_s: float
    #: the largest sum of steps of one run shown (None without steps)
    slowest_s: float | None

    @property
    def finished(self) -> tuple[RunRow, ...]:
        return tuple(r for r in self.runs if r.finished)


def history_view(cfg: Config, *, limit: int = 200, audit_limit: int = 300) -> HistoryView:
    """The last ``limit`` runs with their steps, and the last ``audit_limit`` audited actions."""
    hist = History(Volume(cfg.root).db_path)
    runs = tuple(run_row(r) for r in hist.runs(limit=limit))
    audit = tuple(_audit_row(e) for e in hist.events(limit=audit_limit))
    steps = tuple(
        StepTime(r.id, step_name(step), float(seconds))
        for r in reversed(runs)
        if r.finished and r.steps
        for step, seconds in r.steps.items()
    )
    totals: dict[str, float] = {}
    for s in steps:
        totals[s.run] = totals.get(s.run, 0.0) + s.seconds
    return HistoryView(
        runs=runs,
        steps=steps,
        audit=audit,
        budget_s=float(cfg.time_budget_seconds),
        slowest_s=max(totals.values()) if totals else None,
    )


def run_row(r: dict[str, Any]) -> RunRow:
    """A run of the run history (its row as :class:`History` returns it) as the pages show it."""
    duration = r.get("duration_s")
    rows = int(r.get("rows") or 0)
    steps = r.get("steps")
    return RunRow(
        id=r["id"],
        started_at=r["started_at"],
        trigger=r["trigger"],
        user=r.get("user"),
        status=r["status"],
        duration_s=duration,
        rows=rows,
        bytes=int(r.get("bytes") or 0),
        snapshot_id=r.get("snapshot_id"),
        error=r.get("error"),
        rows_per_s=rows / duration if duration else None,
        finished_at=r.get("finished_at"),
        steps={str(k): float(v) for k, v in steps.items()} if isinstance(steps, dict) else None,
        scope=_scope(r.get("tables_requested")),
    )


def _scope(requested: Any) -> str:
    if not requested:
        return "all tables"
    names = list(requested)
    return names[0] if len(names) == 1 else f"{len(names)} tables"


#: how the pages name the run's steps (the history stores them as export_validate_s, publish_s, ...)
STEP_NAMES = {
    "export_validate_s": "export + validate",
    "references_s": "reference checks",
    "publish_s": "publish",
    "retention_s": "retention",
}


def step_name(key: str) -> str:
    return STEP_NAMES.get(key, key.removesuffix("_s").replace("_", " "))


def audit_text(detail: dict[str, Any]) -> str:
    """An audit entry's details in words, in full: ``from X to Y``, then ``key: value`` pairs."""
    d = dict(detail)
    parts = []
    if "from" in d or "to" in d:
        parts.append(f"from {d.pop('from', None) or 'nothing'} to {d.pop('to', None) or '-'}")
    for key, value in d.items():
        if value is None or value == "" or value == []:
            continue
        if isinstance(value, list | tuple):
            value = "; ".join(str(v) for v in value)
        parts.append(f"{key.replace('_', ' ')}: {value}")
    return ", ".join(parts)


def _audit_row(e: dict[str, Any]) -> AuditRow:
    return AuditRow(
        at=e["at"],
        action=e["kind"],
        user=e.get("user"),
        run=e.get("run_id"),
        detail=audit_text(e.get("detail") or {}),
    )
