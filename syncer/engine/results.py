"""What the operations return, besides the sync's :class:`~syncer.volume.manifest.RunReport`.

Typed, frozen records (the CLI prints their ``to_json()``; pages and the admin server read their
attributes). Like every record they also answer ``result["key"]`` for callers of the first release.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from syncer.volume.manifest import Consistency, Record, RunReport

__all__ = [
    "RepairResult",
    "RollbackResult",
    "SnapshotRef",
    "SnapshotSummary",
    "StartupResult",
    "StatusReport",
    "TableStatus",
    "TableVerdict",
    "VerifyReport",
]


@dataclass(frozen=True)
class RepairResult(Record):
    """What ``repair`` changed (one line per change) and what ``current`` names afterwards."""

    actions: tuple[str, ...] = ()
    current: str | None = None
    #: why nothing was repaired (a sync is running)
    skipped: str | None = None
    #: repair itself failed (e.g. the volume is not writable); set by startup, which goes on
    error: str | None = None

    _optional: ClassVar[frozenset[str]] = frozenset({"skipped", "error"})


@dataclass(frozen=True)
class RollbackResult(Record):
    previous: str | None
    to: str
    #: the rollback happened, but something around it did not (the audit entry)
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"from": self.previous, "to": self.to}
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


@dataclass(frozen=True)
class TableVerdict(Record):
    file: str
    rows: int
    sha256: str
    ok: bool


@dataclass(frozen=True)
class VerifyReport(Record):
    """``verify``: the current snapshot's files against its manifest; ``ok`` only with no problem at all."""

    ok: bool
    snapshot: str | None
    problems: tuple[str, ...] = ()
    tables: dict[str, TableVerdict] = field(default_factory=dict)


@dataclass(frozen=True)
class StartupResult(Record):
    """``startup``: whether data can be served now, what, and why (one sentence in ``reason``)."""

    #: skipped (fresh enough), synced (published, maybe partially), failed, busy (another writer)
    action: str
    repair: RepairResult
    servable: bool
    reason: str
    snapshot_id: str | None = None
    #: current is broken and the newest intact snapshot is served instead
    fallback: bool = False
    stale: bool = True
    stale_tables: tuple[str, ...] = ()
    run: RunReport | None = None

    _optional: ClassVar[frozenset[str]] = frozenset({"run"})


@dataclass(frozen=True)
class SnapshotRef(Record):
    id: str
    created_at: str


@dataclass(frozen=True)
class TableStatus(Record):
    """One configured table as ``status`` sees it (``missing``: not in the current snapshot)."""

    name: str
    status: str
    stale: bool
    format: str
    rows: int | None = None
    exported_at: str | None = None
    age_seconds: float | None = None
    file: str | None = None
    exported_in: str | None = None
    bytes: int | None = None
    checks_failed: tuple[str, ...] | None = None
    error: str | None = None

    _optional: ClassVar[frozenset[str]] = frozenset({"exported_in", "bytes", "checks_failed", "error"})


@dataclass(frozen=True)
class StatusReport(Record):
    """``status``: the current snapshot, every configured table's freshness, the last and next runs."""

    snapshot: SnapshotRef | None
    root: str
    sla_hours: float
    stale: bool
    tables: tuple[TableStatus, ...]
    last_run: dict[str, Any] | None
    running: dict[str, Any] | None
    next_run: str | None
    warnings: tuple[str, ...] = ()
    #: the current snapshot's consistency: one cut or mixed (None: not recorded, or nothing published)
    consistency: Consistency | None = None

    def table(self, name: str) -> TableStatus | None:
        return next((t for t in self.tables if t.name == name), None)


@dataclass(frozen=True)
class SnapshotSummary(Record):
    """One retained snapshot, as ``snapshots`` lists it."""

    id: str
    created_at: str | None
    current: bool
    ok: bool
    tables: dict[str, dict[str, Any]]
    rows: int
    bytes: int
    problems: tuple[str, ...] = ()
