"""The one exception tree of the engine.

Every failure the engine expects is a :class:`SyncError`; third-party errors (DuckDB, Snowflake,
sqlite3, pyarrow, the OS) are wrapped once, where they enter, with ``raise ... from exc``. What to
do about a failure is decided by its class, never by a flag on it::

    SyncError                      root: catch this at the edge (CLI, pages)
    ├── ConfigError                sync.toml is wrong: names the key/table and the fix      (exit 2)
    ├── LockHeldError              another writer holds the volume lock; names the holder    (exit 3)
    ├── NotAuthorizedError         an operator action asked for by someone who is not an operator
    ├── SourceError                the warehouse could not be read; the table fails
    │   ├── SourceUnavailableError the warehouse cannot be opened at all (missing, corrupt or
    │   │                          locked file, no session): every table fails
    │   ├── SourceNotFoundError    the table (or an object its query names) does not exist
    │   ├── TransientSourceError   worth retrying as is (connection drop, timeout, busy file)
    │   ├── SourceOutOfMemoryError the query ran out of the source's memory limit: run it again
    │   │                          with more memory, or raise [source] memory_limit
    │   └── BadRowsError           a value the source cannot read or convert: the export re-reads
    │                              by key ranges and quarantines the rows that carry it
    ├── ValidationError            an exported table failed a check (kept out of the snapshot)
    └── VolumeError                a path on the volume cannot be read or written; names the path
        ├── WriteError             a table's file could not be written in staging (disk full,
        │                          read-only volume): that table fails, its old data is kept
        ├── HistoryError           the run history (syncer.db) cannot be opened, read or written
        │   └── HistoryCorruptError    it is not a usable SQLite database (garbage, truncated, a
        │                              folder in its place): `syncer repair` moves it aside
        └── PublishError           a snapshot could not be published, or a published one is broken
            ├── NoSnapshotError    nothing is published yet (or nothing intact is left)
            └── CurrentMovedError  a rollback's preview is out of date: `current` moved since

Messages name the culprit (table, column, snapshot id, path) and the way out.
"""

from __future__ import annotations

__all__ = [
    "BadRowsError",
    "ConfigError",
    "CurrentMovedError",
    "HistoryCorruptError",
    "HistoryError",
    "LockHeldError",
    "NoSnapshotError",
    "NotAuthorizedError",
    "PublishError",
    "SourceError",
    "SourceNotFoundError",
    "SourceOutOfMemoryError",
    "SourceUnavailableError",
    "SyncError",
    "TransientSourceError",
    "ValidationError",
    "VolumeError",
    "WriteError",
]


class SyncError(Exception):
    """Root of every error the engine raises on purpose."""

    #: CLI exit code for this kind of failure (see README "Exit codes").
    exit_code = 1


class ConfigError(SyncError):
    """The configuration file is invalid."""

    exit_code = 2


class LockHeldError(SyncError):
    """Another process (or thread) is already writing to the volume."""

    exit_code = 3

    def __init__(self, message: str, holder: dict | None = None) -> None:
        super().__init__(message)
        self.holder = holder or {}


class NotAuthorizedError(SyncError):
    """The visitor may not perform this action (not an operator, or an invalid user header)."""


# --- the source ---------------------------------------------------------------------------------------


class SourceError(SyncError):
    """The source warehouse could not be read (a wrong query, an unsupported type, ...)."""


class SourceUnavailableError(SourceError):
    """The warehouse cannot be opened: the file is missing, corrupt or locked, or no session opens."""


class SourceNotFoundError(SourceError):
    """The source table, or an object the table's query names, does not exist (or may not be read)."""


class TransientSourceError(SourceError):
    """Worth retrying as is: a dropped connection, a timeout, a busy or briefly unreadable file."""


class SourceOutOfMemoryError(SourceError):
    """The query ran out of the source's memory limit; it may succeed with more memory."""


class BadRowsError(SourceError):
    """A value the source cannot read or convert; carried by rows, so the export isolates them by
    re-reading smaller key ranges and quarantines them (within the table's ``max_bad_rows``)."""


# --- validation -----------------------------------------------------------------------------------------


class ValidationError(SyncError):
    """An exported table failed a validation check."""


# --- the volume -----------------------------------------------------------------------------------------


class VolumeError(SyncError):
    """A path on the volume cannot be read or written (the message names it and the way out)."""


class WriteError(VolumeError):
    """A table's file could not be written in staging (no space, read-only volume, ...)."""


class HistoryError(VolumeError):
    """The run history database cannot be opened, read or written."""


class HistoryCorruptError(HistoryError):
    """The run history file is not a usable SQLite database; ``repair`` keeps it aside and starts a new one."""


class PublishError(VolumeError):
    """A snapshot could not be published, or a published snapshot is broken."""


class NoSnapshotError(PublishError):
    """There is no (intact) published snapshot to read from."""


class CurrentMovedError(PublishError):
    """``current`` is no longer what the rollback's preview showed: nothing changed; review it again."""
