"""Read model of the Freshness page: what apps read now, table by table, and what needs attention.

"What apps read now" is the reader's answer, not the ``current`` link's: when ``current`` is broken
the reader serves the newest intact snapshot, so Freshness, Validation and Data preview all show that
one (with one banner saying so), instead of Freshness claiming nothing is published while the other
pages show data.

The per-table states, in the order of attention (:data:`STATES`): ``future`` (exported after "now":
clock skew or an edited manifest — an error, never fresh), ``mismatch`` (the manifest's rows
disagree with the file), ``failed``, ``missing``, ``stale``,
``carried over``, ``quarantined`` (fresh, but some source rows were set aside), ``unchanged`` (the
source confirmed it did not change since its export: fresh, aged from that confirmation), ``fresh``.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any

import syncer.admin.fmt as fmt
from syncer._exceptions import HistoryError, NoSnapshotError
from syncer.admin.history_models import RunRow, run_row
from syncer.config import Config
from syncer.engine import status
from syncer.engine.results import TableStatus
from syncer.engine.state import _missing, _table_status
from syncer.schedule.scheduler import next_fire, scheduler_info
from syncer.volume.history import History
from syncer.volume.layout import Volume
from syncer.volume.manifest import Manifest, Record

__all__ = ["STATES", "FreshnessRow", "FreshnessView", "Served", "collapse_error", "freshness", "next_run_of", "served"]

#: every state a table can be in -> (colour, is it an error); the legend lists them in this order
STATES: dict[str, tuple[str, bool]] = {
    "fresh": ("#2e7d32", False),
    "unchanged": ("#43a047", False),
    "quarantined": ("#f9a825", False),
    "carried over": ("#ef6c00", False),
    "stale": ("#c62828", True),
    "missing": ("#616161", True),
    "failed": ("#b71c1c", True),
    "future": ("#6a1b9a", True),
    "mismatch": ("#880e4f", True),
}


def next_run_of(cfg: Config) -> str | None:
    """The running scheduler's next fire time; without one (CLI, AppTest), the cron's."""
    info = scheduler_info()
    if info is not None:
        return info["next_run"]
    return next_fire(cfg)


@dataclass(frozen=True)
class Served(Record):
    """The snapshot apps read now: ``current``'s, or the reader's fallback when ``current`` is broken."""

    manifest: Manifest | None
    #: what ``current`` names (None: nothing is published)
    current_id: str | None
    fallback: bool
    #: why ``current`` is not what is served (one sentence), else None
    problem: str | None


def served(cfg: Config) -> Served:
    from syncer.reader import _resolve

    vol = Volume(cfg.root)
    cid = vol.current_id()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            manifest, fell_back = _resolve(vol)
        except NoSnapshotError as exc:
            problem = None if cid is None and not vol.list_snapshots() else str(exc)
            return Served(None, cid, False, problem)
    problem = str(caught[0].message) if fell_back and caught else None
    return Served(manifest, cid, fell_back, problem)


@dataclass(frozen=True)
class FreshnessRow(Record):
    table: str
    #: one of :data:`STATES`
    status: str
    rows: int | None
    exported_at: str | None
    age_hours: float | None
    #: the age as the page and the chart write it ("5 min", "2.5 h")
    age: str
    #: within SLA | over SLA | n/a
    sla: str
    #: the snapshot whose export produced this data
    snapshot: str | None
    #: source rows set aside in quarantine by the export that produced this data
    quarantined: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class FreshnessView(Record):
    snapshot: dict[str, Any] | None
    #: True when ``current`` is broken and the reader's fallback snapshot is shown
    fallback: bool
    sla_hours: float
    tables: tuple[FreshnessRow, ...]
    fresh: int
    total: int
    last_run: RunRow | None
    #: who holds the volume lock while a sync runs (pid, host, trigger, user, started_at)
    running: dict[str, Any] | None
    next_run: str | None
    scheduler: dict[str, Any] | None
    #: (severity "error" | "warning", text): each problem once
    banners: tuple[tuple[str, str], ...]
    #: the served snapshot's cut (one consistent moment or mixed), as the manifest records it
    consistency: dict[str, Any] | None = None


#: the engine's table statuses this page knows; any other is shown as it is, as an error
_ENGINE_STATUSES = ("fresh", "unchanged", "quarantined", "carried_over", "missing")


def _state_of(t: TableStatus, failed_last_run: set[str]) -> str:
    if t.status == "future" or (t.age_seconds is not None and t.age_seconds < -300):
        return "future"
    if t.status not in _ENGINE_STATUSES:
        return t.status  # "mismatch" (the manifest's rows disagree with the file), or newer ones
    if t.status == "missing":
        return "failed" if t.name in failed_last_run else "missing"
    if t.status == "carried_over":
        return "carried over"
    if t.stale:
        return "stale"
    return t.status if t.status in ("quarantined", "unchanged") else "fresh"


def freshness(cfg: Config, tz: str | None = None) -> FreshnessView:
    """Everything the Freshness page shows, one row per configured table of the snapshot apps read."""
    st = status(cfg)
    srv = served(cfg)
    last = st.last_run
    failed_last: set[str] = set()
    if last is not None:
        try:
            results = History(Volume(cfg.root).db_path).table_results(last["id"])
        except HistoryError:
            results = []
        failed_last = {r["table_name"] for r in results if r["status"] == "failed"}
    man = srv.manifest
    snaps: list[Any] = []  # the retained snapshots, read once and only if an origin needs them
    rows = []
    for t in cfg.tables:
        entry = man.tables.get(t.name) if man else None
        ts = _missing(t) if entry is None or man is None else _table_status(cfg, t, entry, Volume(cfg.root).snapshot_dir(man.id))
        age_h = ts.age_seconds / 3600 if ts.age_seconds is not None else None
        q = (entry.quarantine or {}).get("rows") if entry is not None and entry.status == "quarantined" else None
        rows.append(
            FreshnessRow(
                table=t.name,
                status=_state_of(ts, failed_last),
                rows=ts.rows,
                exported_at=ts.exported_at,
                age_hours=round(age_h, 2) if age_h is not None else None,
                age=fmt.age(ts.age_seconds),
                sla="n/a" if age_h is None else ("over SLA" if ts.stale else "within SLA"),
                snapshot=_origin(cfg, man, t.name, snaps),
                quarantined=int(q) if q else None,
                error=ts.error,
            )
        )
    return FreshnessView(
        snapshot={"id": man.id, "created_at": man.created_at} if man else None,
        fallback=srv.fallback,
        sla_hours=cfg.sla_hours,
        tables=tuple(rows),
        fresh=sum(1 for r in rows if r.status in ("fresh", "unchanged", "quarantined")),
        total=len(rows),
        last_run=run_row(last) if last else None,
        running=st.running,
        next_run=next_run_of(cfg),
        scheduler=scheduler_info(),
        banners=tuple(_banners(cfg, srv, rows, last, st.warnings, tz)),
        consistency=man.consistency.to_json() if man is not None and man.consistency is not None else None,
    )


def _origin(cfg: Config, man: Manifest | None, name: str, snaps: list[Any]) -> str | None:
    """The snapshot whose export produced ``name``'s data: the manifest's ``exported_in``, else the
    oldest retained snapshot with the same ``exported_at`` (hard links carry the entry over)."""
    if man is None or name not in man.tables:
        return None
    entry = man.tables[name]
    if entry.exported_in:
        return entry.exported_in
    if not snaps:
        snaps.extend(Volume(cfg.root).list_snapshots())  # oldest first
    for info in snaps:
        other = info.manifest.tables.get(name) if info.manifest else None
        if other is not None and other.exported_at == entry.exported_at:
            return info.id
    return man.id


def collapse_error(text: str | None, tables: list[str]) -> str:
    """``prefix: a: E; b: E; c: E`` (one error per table, all the same) as ``prefix: E (tables a, b, c)``."""
    if not text:
        return ""
    head, sep, rest = text.partition(": ")
    # an error may hold "; " itself: split only where the next table's name follows
    names = "|".join(re.escape(t) for t in sorted(tables, key=len, reverse=True))
    parts = re.split(f"; (?=(?:{names}): )", rest) if sep and names else []
    per: dict[str, list[str]] = {}
    for part in parts:
        name, colon, err = part.partition(": ")
        if not colon or name not in tables:
            return text
        per.setdefault(err, []).append(name)
    if not per:
        return text
    pieces = [f"{err} (table{'s' if len(names) > 1 else ''} {', '.join(names)})" for err, names in per.items()]
    return f"{head}: " + "; ".join(pieces)


def _names(rows: list[FreshnessRow], state: str) -> list[str]:
    return [r.table for r in rows if r.status == state]


def _banners(
    cfg: Config, srv: Served, rows: list[FreshnessRow], last: dict[str, Any] | None, engine: tuple[str, ...], tz: str | None
) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if srv.problem:
        out.append(("error", fmt.sentence(srv.problem) + ". An operator can repair it on Controls."))
    elif srv.manifest is None:
        out.append(("warning", "Nothing is published yet; an operator can start a sync on Controls."))
    if last is not None and last["status"] in ("failed", "aborted", "partial"):
        err = collapse_error(last.get("error"), [t.name for t in cfg.tables])
        started = fmt.when(last["started_at"], tz)
        out.append(("warning", f"The last run ({last['trigger']}, {started}) {last['status']}" + (f": {err}" if err else ".")))
    if future := _names(rows, "future"):
        out.append(("error", f"Exported in the future (clock skew or an edited manifest): {', '.join(future)}."))
    # error states the engine names itself ("mismatch", or one newer than this page): said once each
    for state in sorted({r.status for r in rows if r.status == "mismatch" or r.status not in STATES}):
        bad = [r for r in rows if r.status == state]
        detail = "; ".join(f"{r.table}: {r.error}" for r in bad if r.error) or ", ".join(r.table for r in bad)
        out.append(("error", f"Tables in state {state!r}: {detail}."))
    if stale := _names(rows, "stale"):
        out.append(("warning", f"Over the {cfg.sla_hours:g} h freshness SLA: {', '.join(stale)}."))
    carried = [r for r in rows if r.status == "carried over"]
    if carried:
        text = f"Kept their previous data because their last export failed: {', '.join(r.table for r in carried)}"
        errors = {r.error for r in carried if r.error}
        shown_err = last.get("error") or "" if last else ""
        if len(errors) == 1 and next(iter(errors)) not in shown_err:
            text += f" ({next(iter(errors))})"
        out.append(("warning", text + "."))
    for r in rows:
        if r.quarantined:
            out.append(("warning", f"{r.table}: {r.quarantined:,} source row(s) set aside in quarantine; see Validation."))
    for w in engine:  # the engine's own words for what is not a table state (an unreadable history)
        if not w.startswith(("table ", "nothing is published", "current snapshot ")):
            out.append(("warning", fmt.sentence(w)))
    return out
