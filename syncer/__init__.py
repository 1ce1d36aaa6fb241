"""Volume Data Sync: export warehouse tables to validated, atomic snapshots on a container volume.

This module is the public face: the CLI, the Streamlit pages and end-user apps import only from here.

    from syncer import read_table
    df = read_table("participants")
"""

from __future__ import annotations

from ._auth import USER_HEADER, Identity, NotAuthorizedError, identify, require_operator
from ._config import Config, TableConfig, load_config
from ._demo import build_demo
from ._engine import next_run, repair, rollback, snapshots, startup, status, sync, verify
from ._exceptions import (
    ConfigError,
    LockHeldError,
    NoSnapshotError,
    PublishError,
    SourceError,
    SyncError,
    ValidationError,
)
from ._history import History
from ._jobs import Job, JobRunner, job_runner
from ._reader import SnapshotFallbackWarning, StaleDataWarning, current_snapshot, read_table
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
