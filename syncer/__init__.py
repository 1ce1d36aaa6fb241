"""Volume Data Sync: export warehouse tables to validated, atomic snapshots on a container volume.

This module is the public face: the CLI, the Streamlit pages and end-user apps import only from here.

    from syncer import read_table
    df = read_table("participants")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Names are imported on first use (PEP 562): an app that only calls read_table loads the reader and
# pyarrow, not the engine, DuckDB, APScheduler or the web server.
_LAZY: dict[str, str] = {
    "Config": "_config",
    "ConfigError": "_exceptions",
    "History": "_history",
    "Identity": "_auth",
    "Job": "_jobs",
    "JobRunner": "_jobs",
    "LockHeldError": "_exceptions",
    "NoSnapshotError": "_exceptions",
    "NotAuthorizedError": "_exceptions",
    "PublishError": "_exceptions",
    "QuarantinedRowsWarning": "_reader",
    "SnapshotFallbackWarning": "_reader",
    "SourceError": "_exceptions",
    "StaleDataWarning": "_reader",
    "StartupGate": "_serving",
    "SyncError": "_exceptions",
    "TableConfig": "_config",
    "USER_HEADER": "_auth",
    "ValidationError": "_exceptions",
    "app_config_path": "_serving",
    "begin_startup": "_serving",
    "build_demo": "_demo",
    "current_snapshot": "_reader",
    "freshness": "_serving",
    "identify": "_auth",
    "job_runner": "_jobs",
    "load_config": "_config",
    "next_run": "_engine",
    "open_history": "_serving",
    "quarantined": "_serving",
    "read_quarantined": "_serving",
    "read_table": "_reader",
    "readiness": "_serving",
    "ready_endpoint": "_serving",
    "repair": "_engine",
    "request_rollback": "_serving",
    "request_sync": "_serving",
    "require_operator": "_auth",
    "rollback": "_engine",
    "rollback_preview": "_serving",
    "run_scheduler": "_scheduler",
    "scheduled_sync": "_scheduler",
    "scheduler_info": "_scheduler",
    "serving_lifespan": "_serving",
    "snapshots": "_engine",
    "start_scheduler": "_scheduler",
    "startup": "_engine",
    "startup_state": "_serving",
    "status": "_engine",
    "stop_scheduler": "_scheduler",
    "sync": "_engine",
    "verify": "_engine",
}

if TYPE_CHECKING:
    from ._auth import USER_HEADER, Identity, identify, require_operator
    from ._config import Config, TableConfig, load_config
    from ._demo import build_demo
    from ._engine import next_run, repair, rollback, snapshots, startup, status, sync, verify
    from ._exceptions import (
        ConfigError,
        LockHeldError,
        NoSnapshotError,
        NotAuthorizedError,
        PublishError,
        SourceError,
        SyncError,
        ValidationError,
    )
    from ._history import History
    from ._jobs import Job, JobRunner, job_runner
    from ._reader import QuarantinedRowsWarning, SnapshotFallbackWarning, StaleDataWarning, current_snapshot, read_table
    from ._scheduler import run_scheduler, scheduled_sync, scheduler_info, start_scheduler, stop_scheduler
    from ._serving import (
        StartupGate,
        app_config_path,
        begin_startup,
        freshness,
        open_history,
        quarantined,
        read_quarantined,
        readiness,
        ready_endpoint,
        request_rollback,
        request_sync,
        rollback_preview,
        serving_lifespan,
        startup_state,
    )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'syncer' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "USER_HEADER",
    "Config",
    "ConfigError",
    "History",
    "Identity",
    "Job",
    "JobRunner",
    "LockHeldError",
    "NoSnapshotError",
    "NotAuthorizedError",
    "PublishError",
    "QuarantinedRowsWarning",
    "SnapshotFallbackWarning",
    "SourceError",
    "StaleDataWarning",
    "StartupGate",
    "SyncError",
    "TableConfig",
    "ValidationError",
    "app_config_path",
    "begin_startup",
    "build_demo",
    "current_snapshot",
    "freshness",
    "identify",
    "job_runner",
    "load_config",
    "next_run",
    "open_history",
    "quarantined",
    "read_quarantined",
    "read_table",
    "readiness",
    "ready_endpoint",
    "repair",
    "request_rollback",
    "request_sync",
    "require_operator",
    "rollback",
    "rollback_preview",
    "run_scheduler",
    "scheduled_sync",
    "scheduler_info",
    "serving_lifespan",
    "snapshots",
    "start_scheduler",
    "startup",
    "startup_state",
    "status",
    "stop_scheduler",
    "sync",
    "verify",
]
