"""The operations, orchestrating the rooms: ``sync`` (export → validate → publish), ``startup``,
``rollback``, ``repair``, ``verify``, ``status``, ``snapshots``, ``next_run``.

Each returns a typed record (:mod:`syncer.volume.manifest`, :mod:`syncer.engine.results`).
"""

from __future__ import annotations

from syncer.engine.maintain import repair, rollback, verify
from syncer.engine.startup import startup
from syncer.engine.status import next_run, snapshots, status
from syncer.engine.sync import TRIGGERS, Progress, sync

__all__ = ["TRIGGERS", "Progress", "next_run", "repair", "rollback", "snapshots", "startup", "status", "sync", "verify"]
