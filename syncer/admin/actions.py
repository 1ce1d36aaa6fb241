"""The operator actions of the admin app: re-sync, rollback and repair.

Each checks the operator itself (never trusting that the page hid the button), then runs through
the process-wide job runner or the engine's rollback; each is audited with the user.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from syncer._exceptions import CurrentMovedError, LockHeldError
from syncer.admin.auth import record_event, require_operator
from syncer.admin.jobs import Job, job_runner
from syncer.config import Config
from syncer.engine import repair, rollback
from syncer.engine.results import RepairResult, RollbackResult
from syncer.engine.supervised import sync_in_child
from syncer.volume.layout import Volume
from syncer.volume.manifest import RunReport

__all__ = ["CurrentMovedError", "request_repair", "request_rollback", "request_sync"]


def request_sync(cfg: Config, headers: Any, tables: Sequence[str] | None = None) -> Job:
    """Start a manual sync (all tables, or ``tables``) on the job runner, as the operator in ``headers``.

    Raises :class:`NotAuthorizedError` (recorded) for a non-operator, :class:`ConfigError` for an
    unknown table, :class:`LockHeldError` while another job of this app runs. A writer in another
    process is found when the job starts: the job ends ``busy`` with the holder named.
    """
    who = require_operator(cfg, headers, "sync", tables=list(tables) if tables else "all")
    names = [cfg.table(n).name for n in tables] if tables else None

    def work(progress: Callable[[dict[str, Any]], None]) -> RunReport:
        try:
            # an operator's re-sync exports again, also what the source confirms unchanged; in a child
            # process, so a native abort (DuckDB) ends this job with one line, not the server
            return sync_in_child(cfg, names, trigger="manual", user=who.user, progress=progress, force=True)
        except LockHeldError as exc:
            record_event(cfg, "busy", user=who.user, action="sync", reason=str(exc))
            raise

    label = "re-sync of " + (", ".join(names) if names else "all tables")
    weights = expected_rows(cfg, names or [t.name for t in cfg.tables])
    try:
        return job_runner().submit(
            "sync", work, label=label, user=who.user, tables_total=len(names or cfg.tables), weights=weights
        )
    except LockHeldError as exc:
        record_event(cfg, "busy", user=who.user, action="sync", reason=str(exc))
        raise


def expected_rows(cfg: Config, names: Sequence[str]) -> dict[str, int]:
    """Rows each table is expected to have, for progress weighted by rows: the source's count at
    the last export (the published count without one); a table never exported counts as the mean
    of the others. Empty when nothing is published (then tables count equally)."""
    manifest = Volume(cfg.root).current_manifest()
    if manifest is None:
        return {}
    known = {n: int(e.source_rows if e.source_rows is not None else e.rows) for n, e in manifest.tables.items() if n in names}
    if not known:
        return {}
    mean = sum(known.values()) // len(known)
    return {n: known.get(n, mean) for n in names}


def request_rollback(cfg: Config, headers: Any, to: str, *, seen_current: str | object | None = ...) -> RollbackResult:
    """Point ``current`` at snapshot ``to``, as the operator in ``headers`` (audited by the engine).

    ``seen_current`` is the ``current`` the operator's preview showed: when ``current`` has moved
    since (a sync or another rollback published in between), nothing changes and
    :class:`CurrentMovedError` says so, so a snapshot the operator never saw is not dropped.
    """
    who = require_operator(cfg, headers, "rollback", to=to)
    running = job_runner().active()
    if running is not None:
        raise LockHeldError(f"{running.label} started by {running.user} is still running; roll back after it finishes")
    try:
        # the engine compares under the volume lock, so nothing can publish between check and swap
        return rollback(cfg, to, user=who.user, expect_current=seen_current)
    except CurrentMovedError:
        now = Volume(cfg.root).current_id()
        record_event(
            cfg, "refused", user=who.user, action="rollback", to=to, reason=f"current moved from {seen_current} to {now}"
        )
        raise


def request_repair(cfg: Config, headers: Any) -> RepairResult:
    """Run the engine's repair (fix ``current``, sweep staging, reset permissions) as the operator in ``headers``."""
    who = require_operator(cfg, headers, "repair")
    running = job_runner().active()
    if running is not None:
        raise LockHeldError(f"{running.label} started by {running.user} is still running; repair after it finishes")
    return repair(cfg, user=who.user, reason="admin app")
