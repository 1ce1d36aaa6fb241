"""The operator actions of the admin app: re-sync and rollback.

Each checks the operator itself (never trusting that the page hid the button), then runs through
the process-wide job runner or the engine's rollback; each is audited with the user.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from syncer._exceptions import LockHeldError
from syncer.admin.auth import record_event, require_operator
from syncer.admin.jobs import Job, job_runner
from syncer.config import Config
from syncer.engine import rollback, sync
from syncer.engine.results import RollbackResult
from syncer.volume.manifest import RunReport

__all__ = ["request_rollback", "request_sync"]


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
            return sync(cfg, names, trigger="manual", user=who.user, progress=progress)
        except LockHeldError as exc:
            record_event(cfg, "busy", user=who.user, action="sync", reason=str(exc))
            raise

    label = "re-sync of " + (", ".join(names) if names else "all tables")
    try:
        return job_runner().submit("sync", work, label=label, user=who.user, tables_total=len(names or cfg.tables))
    except LockHeldError as exc:
        record_event(cfg, "busy", user=who.user, action="sync", reason=str(exc))
        raise


def request_rollback(cfg: Config, headers: Any, to: str) -> RollbackResult:
    """Point ``current`` at snapshot ``to``, as the operator in ``headers`` (audited by the engine)."""
    who = require_operator(cfg, headers, "rollback", to=to)
    running = job_runner().active()
    if running is not None:
        raise LockHeldError(f"{running.label} started by {running.user} is still running; roll back after it finishes")
    return rollback(cfg, to, user=who.user)
