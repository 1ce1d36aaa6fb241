"""Read models of the run page, the table page and the History grid (runs x tables).

Everything here is in the run history (``syncer.db``) and the retained snapshots' manifests; the
pages render these records. A run or table that is not there is a :class:`ConfigError` naming what
exists, so a stale link says what to click instead.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from syncer._exceptions import ConfigError
from syncer.admin.history_models import RunRow, run_row
from syncer.config import Config
from syncer.volume.history import History
from syncer.volume.layout import Volume
from syncer.volume.manifest import Record

__all__ = [
    "GridCell",
    "RunCheck",
    "RunDetail",
    "RunTable",
    "SchemaChange",
    "TableDetail",
    "TableRun",
    "TableSnapshot",
    "run_detail",
    "runs_grid",
    "table_detail",
]

#: runs looked at for a table's history and the grid
HISTORY_RUNS = 200


@dataclass(frozen=True)
class RunTable(Record):
    """One table of one run: what happened to it and how long each step took."""

    table: str
    status: str
    rows: int
    bytes: int
    export_s: float | None
    validate_s: float | None
    total_s: float | None
    rows_per_s: float | None
    #: attempts made (more than 1: transient source errors were retried)
    attempts: int
    quarantined: int
    error: str | None
    #: every attempt: {"attempt", "ok", "error", "retry_in_s"}
    attempt_log: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class RunCheck(Record):
    table: str
    check: str
    result: str
    severity: str
    detail: str


@dataclass(frozen=True)
class RunDetail(Record):
    run: RunRow
    host: str | None
    pid: int | None
    #: the tables asked for (None: all)
    tables_requested: tuple[str, ...] | None
    tables: tuple[RunTable, ...]
    checks: tuple[RunCheck, ...]
    #: audited events that name this run
    events: tuple[dict[str, Any], ...]


def _runs(cfg: Config, limit: int = HISTORY_RUNS) -> list[dict[str, Any]]:
    return History(Volume(cfg.root).db_path).runs(limit=limit)


def _run_table(r: dict[str, Any]) -> RunTable:
    attempts = r.get("attempts") or []
    return RunTable(
        table=r["table_name"],
        status=r["status"],
        rows=int(r.get("rows") or 0),
        bytes=int(r.get("bytes") or 0),
        export_s=r.get("export_s"),
        validate_s=r.get("validate_s"),
        total_s=r.get("total_s"),
        rows_per_s=r.get("rows_per_s"),
        attempts=len(attempts),
        quarantined=int(r.get("quarantined") or 0),
        error=r.get("error"),
        attempt_log=tuple(attempts),
    )


def run_detail(cfg: Config, run_id: str) -> RunDetail:
    """Everything the run history holds about run ``run_id``."""
    hist = History(Volume(cfg.root).db_path)
    runs = hist.runs(limit=10_000)
    raw = next((r for r in runs if r["id"] == run_id), None)
    if raw is None:
        recent = ", ".join(r["id"] for r in runs[:5]) or "none yet"
        raise ConfigError(f"run {run_id!r} is not in the run history; the latest runs: {recent} (see History)")
    order = {t.name: i for i, t in enumerate(cfg.tables)}
    tables = sorted((_run_table(r) for r in hist.table_results(run_id)), key=lambda t: order.get(t.table, len(order)))
    checks = tuple(
        RunCheck(c.get("table_name") or "(run)", c["name"], "pass" if c["ok"] else "FAIL", c["severity"], c.get("detail") or "")
        for c in hist.checks(run_id)
    )
    events = tuple(e for e in hist.events(limit=1000) if e.get("run_id") == run_id)
    requested = raw.get("tables_requested")
    return RunDetail(
        run=run_row(raw),
        host=raw.get("host"),
        pid=raw.get("pid"),
        tables_requested=tuple(requested) if requested else None,
        tables=tuple(tables),
        checks=tuple(sorted(checks, key=lambda c: c.result != "FAIL")),
        events=events,
    )


# --- the table page ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableSnapshot(Record):
    """The table in one retained snapshot."""

    snapshot: str
    created_at: str | None
    current: bool
    rows: int
    status: str
    exported_at: str
    columns: int
    checks_failed: int


@dataclass(frozen=True)
class TableRun(Record):
    """The table in one run (from the run history)."""

    run: str
    started_at: str
    trigger: str
    status: str
    rows: int
    total_s: float | None
    attempts: int
    quarantined: int
    checks_passed: int
    checks_failed: int
    error: str | None


@dataclass(frozen=True)
class SchemaChange(Record):
    """What changed in the table's columns from one retained snapshot to the next."""

    snapshot: str
    previous: str
    added: tuple[str, ...]
    removed: tuple[str, ...]
    #: "name: old -> new"
    retyped: tuple[str, ...]


@dataclass(frozen=True)
class TableDetail(Record):
    name: str
    format: str
    source: str
    primary_key: tuple[str, ...]
    #: newest first
    snapshots: tuple[TableSnapshot, ...]
    #: newest first
    runs: tuple[TableRun, ...]
    schema_changes: tuple[SchemaChange, ...]
    #: the current snapshot's columns: (name, type)
    schema: tuple[tuple[str, str], ...]
    last_success: TableRun | None
    last_failure: TableRun | None


def _table_runs(cfg: Config, name: str) -> list[TableRun]:
    hist = History(Volume(cfg.root).db_path)
    out = []
    for raw in _runs(cfg):
        res = next((r for r in hist.table_results(raw["id"]) if r["table_name"] == name), None)
        if res is None:
            continue
        checks = [c for c in hist.checks(raw["id"]) if c.get("table_name") == name]
        out.append(
            TableRun(
                run=raw["id"],
                started_at=raw["started_at"],
                trigger=raw["trigger"],
                status=res["status"],
                rows=int(res.get("rows") or 0),
                total_s=res.get("total_s"),
                attempts=len(res.get("attempts") or []),
                quarantined=int(res.get("quarantined") or 0),
                checks_passed=sum(1 for c in checks if c["ok"]),
                checks_failed=sum(1 for c in checks if not c["ok"]),
                error=res.get("error"),
            )
        )
    return out


def table_detail(cfg: Config, name: str) -> TableDetail:
    """The table's snapshots, runs, checks and schema changes over time, its last success and failure."""
    try:
        t = cfg.table(name)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (the table page lists configured tables only)") from None
    vol = Volume(cfg.root)
    cur = vol.current_id()
    snaps: list[TableSnapshot] = []
    schemas: list[tuple[str, dict[str, str]]] = []
    for info in vol.list_snapshots():  # oldest first
        entry = info.manifest.tables.get(t.name) if info.manifest else None
        if entry is None:
            continue
        snaps.append(
            TableSnapshot(
                snapshot=info.id,
                created_at=info.created_at or None,
                current=info.id == cur,
                rows=entry.rows,
                status=entry.status,
                exported_at=entry.exported_at,
                columns=len(entry.schema),
                checks_failed=sum(1 for c in entry.checks if not c.ok),
            )
        )
        schemas.append((info.id, {c.name: c.type for c in entry.schema}))
    changes = []
    for (prev_id, old), (sid, new) in itertools.pairwise(schemas):
        added = tuple(c for c in new if c not in old)
        removed = tuple(c for c in old if c not in new)
        retyped = tuple(f"{c}: {old[c]} -> {new[c]}" for c in new if c in old and old[c] != new[c])
        if added or removed or retyped:
            changes.append(SchemaChange(sid, prev_id, added, removed, retyped))
    runs = _table_runs(cfg, t.name)
    current_schema = schemas[[s.snapshot for s in snaps].index(cur)][1] if cur in [s.snapshot for s in snaps] else {}
    return TableDetail(
        name=t.name,
        format=t.format,
        source=t.source or "(query)",
        primary_key=tuple(t.primary_key),
        snapshots=tuple(reversed(snaps)),
        runs=tuple(runs),
        schema_changes=tuple(reversed(changes)),
        schema=tuple(current_schema.items()),
        last_success=next((r for r in runs if r.status in ("fresh", "quarantined", "ok")), None),
        last_failure=next((r for r in runs if r.status in ("failed", "carried_over")), None),
    )


# --- the History grid -----------------------------------------------------------------------------


@dataclass(frozen=True)
class GridCell(Record):
    """One cell of the runs x tables grid: the table's status in the run ("-": not in the run)."""

    run: str
    started_at: str
    run_status: str
    table: str
    status: str
    rows: int | None
    error: str | None


def runs_grid(cfg: Config, limit: int = 30) -> list[GridCell]:
    """The last ``limit`` runs (oldest first) x every configured table."""
    hist = History(Volume(cfg.root).db_path)
    cells = []
    for raw in reversed(hist.runs(limit=limit)):
        results = {r["table_name"]: r for r in hist.table_results(raw["id"])}
        for t in cfg.tables:
            r = results.get(t.name)
            cells.append(
                GridCell(
                    run=raw["id"],
                    started_at=raw["started_at"],
                    run_status=raw["status"],
                    table=t.name,
                    status=r["status"] if r else "-",
                    rows=int(r.get("rows") or 0) if r else None,
                    error=r.get("error") if r else None,
                )
            )
    return cells
