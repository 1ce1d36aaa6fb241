"""A sync in a child process, for long-lived processes: the admin app and the scheduler.

The server must outlive a sync whose native code aborts (DuckDB's ``INTERNAL`` errors end the process
with SIGABRT, where no ``except`` runs). :func:`sync_in_child` runs ``python -m syncer sync --json``
through :func:`syncer.supervise.run_child` and gives back what :func:`syncer.engine.sync` would: the
:class:`RunReport` (read from the child's JSON), the progress events as they happen, and the same
exceptions (:class:`LockHeldError` for another writer, :class:`ConfigError`, :class:`SyncError` with
the child's one line, the signal and the served snapshot's state included, when it died).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from syncer._exceptions import ConfigError, LockHeldError, SyncError
from syncer.config import Config
from syncer.engine.run import Progress, sync
from syncer.supervise import ChildResult, run_child
from syncer.volume.manifest import RunReport

__all__ = ["sync_in_child"]

#: the child's exit code -> the exception the in-process sync would have raised
_BY_EXIT: dict[int, type[SyncError]] = {ConfigError.exit_code: ConfigError, LockHeldError.exit_code: LockHeldError}


def sync_in_child(
    cfg: Config,
    tables: Sequence[str] | None = None,
    *,
    trigger: str = "cli",
    user: str | None = None,
    progress: Progress | None = None,
    force: bool = False,
) -> RunReport:
    """:func:`syncer.engine.sync` in a child process (in this one when the config has no file to pass on)."""
    if cfg.path is None:
        return sync(cfg, tables, trigger=trigger, user=user, progress=progress, force=force)
    args = ["--config", str(cfg.path), "sync", *(tables or ()), "--json", "--trigger", trigger]
    if force:
        args.append("--force")
    env = {k: v for k, v in os.environ.items() if k != "SYNCER_CONFIG"}
    if user:
        env["SYNCER_USER"] = user
    res = run_child(args, on_event=progress, capture_stdout=True, env=env)
    if res.signal is None and res.stdout.strip():
        try:
            return RunReport.from_json(json.loads(res.stdout))
        except ValueError:
            pass  # not a report: the child failed before it had one; say what it said
    raise _error(res)


def _error(res: ChildResult) -> SyncError:
    if res.line:  # died by a signal: the supervisor's one line
        return SyncError(res.line)
    said = res.last_stderr.removeprefix("error: ").strip() or f"the sync process ended with exit code {res.exit_code}"
    kind = _BY_EXIT.get(res.exit_code, SyncError)
    return kind(said)
