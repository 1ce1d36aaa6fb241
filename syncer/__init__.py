"""Volume Data Sync: export warehouse tables to validated, atomic snapshots on a container volume.

This module is the public face, for end-user apps, scripts and the CLI: the reader, the operations,
the configuration, the records they return and the exceptions. The admin app's pieces have their
own face, :mod:`syncer.admin`; the scheduler's is :mod:`syncer.schedule`.

    from syncer import read_table
    df = read_table("participants")

Names are imported on first use (PEP 562): ``from syncer import read_table`` loads the reader and
pyarrow, never the engine, DuckDB, Snowpark, APScheduler or Streamlit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncer._lazy import lazy_names

#: every public name -> the module that defines it; tests/test_packaging.py holds __all__ and the
#: TYPE_CHECKING imports to this list
_FACE: dict[str, str] = {
    # the reader
    "read_table": "syncer.reader",
    "current_snapshot": "syncer.reader",
    "StaleDataWarning": "syncer.reader",
    "SnapshotFallbackWarning": "syncer.reader",
    "QuarantinedRowsWarning": "syncer.reader",
    # the operations
    "sync": "syncer.engine",
    "startup": "syncer.engine",
    "rollback": "syncer.engine",
    "repair": "syncer.engine",
    "verify": "syncer.engine",
    "status": "syncer.engine",
    "snapshots": "syncer.engine",
    "next_run": "syncer.engine",
    "run_scheduler": "syncer.schedule.scheduler",
    "build_demo": "syncer.sources.demo",
    "History": "syncer.volume.history",
    "configure_logging": "syncer._log",
    # configuration
    "Config": "syncer.config",
    "TableConfig": "syncer.config",
    "load_config": "syncer.config",
    # records
    "Check": "syncer.volume.manifest",
    "Consistency": "syncer.volume.manifest",
    "cut_summary": "syncer.volume.consistency",
    "Manifest": "syncer.volume.manifest",
    "ManifestEntry": "syncer.volume.manifest",
    "RunReport": "syncer.volume.manifest",
    "TableResult": "syncer.volume.manifest",
    # exceptions
    "SyncError": "syncer._exceptions",
    "ConfigError": "syncer._exceptions",
    "SourceError": "syncer._exceptions",
    "ValidationError": "syncer._exceptions",
    "PublishError": "syncer._exceptions",
    "LockHeldError": "syncer._exceptions",
    "CurrentMovedError": "syncer._exceptions",
    "NoSnapshotError": "syncer._exceptions",
    "NotAuthorizedError": "syncer._exceptions",
    "BadRowsError": "syncer._exceptions",
    "HistoryError": "syncer._exceptions",
    "HistoryCorruptError": "syncer._exceptions",
    "SourceNotFoundError": "syncer._exceptions",
    "SourceOutOfMemoryError": "syncer._exceptions",
    "SourceUnavailableError": "syncer._exceptions",
    "TransientSourceError": "syncer._exceptions",
    "VolumeError": "syncer._exceptions",
    "WriteError": "syncer._exceptions",
}

if TYPE_CHECKING:  # for type checkers and editors; tests/test_packaging.py checks it matches _FACE
    from syncer._exceptions import (
        BadRowsError,
        ConfigError,
        CurrentMovedError,
        HistoryCorruptError,
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
    from syncer._log import configure_logging
    from syncer.config import Config, TableConfig, load_config
    from syncer.engine import next_run, repair, rollback, snapshots, startup, status, sync, verify
    from syncer.reader import QuarantinedRowsWarning, SnapshotFallbackWarning, StaleDataWarning, current_snapshot, read_table
    from syncer.schedule.scheduler import run_scheduler
    from syncer.sources.demo import build_demo
    from syncer.volume.consistency import cut_summary
    from syncer.volume.history import History
    from syncer.volume.manifest import Check, Consistency, Manifest, ManifestEntry, RunReport, TableResult


__getattr__ = lazy_names("syncer", _FACE, globals())


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "BadRowsError",
    "Check",
    "Config",
    "ConfigError",
    "Consistency",
    "CurrentMovedError",
    "History",
    "HistoryCorruptError",
    "HistoryError",
    "LockHeldError",
    "Manifest",
    "ManifestEntry",
    "NoSnapshotError",
    "NotAuthorizedError",
    "PublishError",
    "QuarantinedRowsWarning",
    "RunReport",
    "SnapshotFallbackWarning",
    "SourceError",
    "SourceNotFoundError",
    "SourceOutOfMemoryError",
    "SourceUnavailableError",
    "StaleDataWarning",
    "SyncError",
    "TableConfig",
    "TableResult",
    "TransientSourceError",
    "ValidationError",
    "VolumeError",
    "WriteError",
    "build_demo",
    "configure_logging",
    "current_snapshot",
    "cut_summary",
    "load_config",
    "next_run",
    "read_table",
    "repair",
    "rollback",
    "run_scheduler",
    "snapshots",
    "startup",
    "status",
    "sync",
    "verify",
]
