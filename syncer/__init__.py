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
    "BadRowsError": "_exceptions",
    "Config": "_config",
    "ConfigError": "_exceptions",
    "History": "volume.history",
    "HistoryError": "_exceptions",
    "Identity": "admin.auth",
    "Job": "admin.jobs",
    "JobRunner": "admin.jobs",
    "LockHeldError": "_exceptions",
    "NoSnapshotError": "_exceptions",
    "NotAuthorizedError": "_exceptions",
    "PublishError": "_exceptions",
    "QuarantinedRowsWarning": "reader",
    "SnapshotFallbackWarning": "reader",
    "SourceError": "_exceptions",
    "SourceNotFoundError": "_exceptions",
    "SourceOutOfMemoryError": "_exceptions",
    "SourceUnavailableError": "_exceptions",
    "StaleDataWarning": "reader",
    "StartupGate": "admin.server",
    "SyncError": "_exceptions",
    "TableConfig": "_config",
    "TransientSourceError": "_exceptions",
    "USER_HEADER": "admin.auth",
    "ValidationError": "_exceptions",
    "VolumeError": "_exceptions",
    "WriteError": "_exceptions",
    "app_config_path": "admin.server",
    "begin_startup": "admin.server",
    "build_demo": "sources.demo",
    "current_snapshot": "reader",
    "freshness": "admin.server",
    "identify": "admin.auth",
    "job_runner": "admin.jobs",
    "load_config": "_config",
    "next_run": "engine",
    "open_history": "admin.server",
    "quarantined": "admin.server",
    "read_quarantined": "admin.server",
    "read_table": "reader",
    "readiness": "admin.server",
    "ready_endpoint": "admin.server",
    "repair": "engine",
    "request_rollback": "admin.server",
    "request_sync": "admin.server",
    "require_operator": "admin.auth",
    "rollback": "engine",
    "rollback_preview": "admin.server",
    "run_scheduler": "schedule.scheduler",
    "scheduled_sync": "schedule.scheduler",
    "scheduler_info": "schedule.scheduler",
    "serving_lifespan": "admin.server",
    "snapshots": "engine",
    "start_scheduler": "schedule.scheduler",
    "startup": "engine",
    "startup_state": "admin.server",
    "status": "engine",
    "stop_scheduler": "schedule.scheduler",
    "sync": "engine",
    "verify": "engine",
}

if TYPE_CHECKING:
    from syncer._config import Config, TableConfig, load_config
    from syncer._exceptions import (
        BadRowsError,
        ConfigError,
        HistoryError,
        LockHeldError,
        NoSnapshotError,
        NotAuthorizedError,
        PublishError,
        SourceError,
        SourceNotFoundError,
        SourceOutOfMemoryError,
        SourceUnavailableError,
        SyncError,
        TransientSourceError,
        ValidationError,
        VolumeError,
        WriteError,
    )
    from syncer.admin.auth import USER_HEADER, Identity, identify, require_operator
    from syncer.admin.jobs import Job, JobRunner, job_runner
    from syncer.admin.server import (
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
    from syncer.engine import next_run, repair, rollback, snapshots, startup, status, sync, verify
    from syncer.reader import QuarantinedRowsWarning, SnapshotFallbackWarning, StaleDataWarning, current_snapshot, read_table
    from syncer.schedule.scheduler import run_scheduler, scheduled_sync, scheduler_info, start_scheduler, stop_scheduler
    from syncer.sources.demo import build_demo
    from syncer.volume.history import History


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
    "BadRowsError",
    "Config",
    "ConfigError",
    "History",
    "HistoryError",
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
    "SourceNotFoundError",
    "SourceOutOfMemoryError",
    "SourceUnavailableError",
    "StaleDataWarning",
    "StartupGate",
    "SyncError",
    "TableConfig",
    "TransientSourceError",
    "ValidationError",
    "VolumeError",
    "WriteError",
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
