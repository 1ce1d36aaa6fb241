"""Volume Data Sync: export warehouse tables to validated, atomic snapshots on a container volume.

This module is the public face: the CLI, the Streamlit pages and end-user apps import only from here.

    from syncer import read_table
    df = read_table("participants")
"""

from __future__ import annotations

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
from ._reader import SnapshotFallbackWarning, StaleDataWarning, current_snapshot, read_table

__all__ = [
    "Config",
    "ConfigError",
    "History",
    "LockHeldError",
    "NoSnapshotError",
    "PublishError",
    "SnapshotFallbackWarning",
    "SourceError",
    "StaleDataWarning",
    "SyncError",
    "TableConfig",
    "ValidationError",
    "build_demo",
    "current_snapshot",
    "load_config",
    "next_run",
    "read_table",
    "repair",
    "rollback",
    "snapshots",
    "startup",
    "status",
    "sync",
    "verify",
]
