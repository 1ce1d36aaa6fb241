"""The one exception tree of the engine.

Every failure the engine expects is a :class:`SyncError`; third-party errors (DuckDB, Snowflake,
pyarrow, the OS) are wrapped once, where they enter, with ``raise ... from exc``::

    SyncError                      root: catch this at the edge (CLI, pages)
    ├── ConfigError                sync.toml is wrong: names the key/table and the fix
    ├── SourceError                the warehouse could not be read (missing table, connection)
    ├── ValidationError            an exported table failed a check (kept out of the snapshot)
    ├── PublishError               the volume could not be written / a snapshot is broken
    │   └── NoSnapshotError        nothing is published yet (or nothing intact is left)
    ├── LockHeldError              another writer holds the volume lock; names the holder
    └── NotAuthorizedError         an operator action asked for by someone who is not an operator

Messages name the culprit (table, column, snapshot id, path) and the way out.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "LockHeldError",
    "NoSnapshotError",
    "NotAuthorizedError",
    "PublishError",
    "SourceError",
    "SyncError",
    "ValidationError",
]


class SyncError(Exception):
    """Root of every error the engine raises on purpose."""

    #: CLI exit code for this kind of failure (see README "Exit codes").
    exit_code = 1


class ConfigError(SyncError):
    """The configuration file is invalid."""

    exit_code = 2


class SourceError(SyncError):
    """The source warehouse could not be read.

    ``transient``: worth retrying as is (connection drop, timeout, busy file).
    ``row_level``: carried by rows (a value that cannot be converted); the export isolates the rows
    by re-reading smaller key ranges and quarantines them.
    """

    def __init__(self, message: str, *, transient: bool = False, row_level: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
        self.row_level = row_level


class ValidationError(SyncError):
    """An exported table failed a validation check."""


class PublishError(SyncError):
    """The volume could not be written, or a published snapshot is broken."""


class NoSnapshotError(PublishError):
    """There is no (intact) published snapshot to read from."""


class LockHeldError(SyncError):
    """Another process (or thread) is already writing to the volume."""

    exit_code = 3

    def __init__(self, message: str, holder: dict | None = None) -> None:
        super().__init__(message)
        self.holder = holder or {}


class NotAuthorizedError(SyncError):
    """The visitor may not perform this action (not an operator, or an invalid user header)."""

    exit_code = 1
