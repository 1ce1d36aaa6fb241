"""The operations, orchestrating the rooms: ``sync`` (export → validate → publish), ``startup``,
``rollback``, ``repair``, ``verify``, ``status``, ``snapshots``, ``next_run``.

Each returns a typed record (:mod:`syncer.volume.manifest`, :mod:`syncer.engine.results`).
"""

from __future__ import annotations

from syncer.engine.maintain import repair, rollback, verify
from syncer.engine.run import TRIGGERS, Progress, sync
from syncer.engine.start import startup
from syncer.engine.state import next_run, snapshots, status

__all__ = ["TRIGGERS", "Progress", "next_run", "repair", "rollback", "snapshots", "startup", "status", "sync", "verify"]
