"""The operations, orchestrating the rooms: ``sync`` (export → validate → publish), ``startup``,
``rollback``, ``repair``, ``verify``, ``status``, ``snapshots``, ``next_run``.

Each returns a typed record (:mod:`syncer.volume.manifest`, :mod:`syncer.engine.results`).

Names load with their module on first use (PEP 562), as on :mod:`syncer`'s face: ``status`` and
``snapshots`` read the volume and never load the export (pyarrow.compute, DuckDB, the formats).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncer._lazy import lazy_names

_WHERE = {
    "repair": "syncer.engine.maintain",
    "rollback": "syncer.engine.maintain",
    "verify": "syncer.engine.maintain",
    "TRIGGERS": "syncer.engine.run",
    "Progress": "syncer.engine.run",
    "sync": "syncer.engine.run",
    "startup": "syncer.engine.start",
    "next_run": "syncer.engine.state",
    "snapshots": "syncer.engine.state",
    "status": "syncer.engine.state",
}

if TYPE_CHECKING:
    from syncer.engine.maintain import repair, rollback, verify
    from syncer.engine.run import TRIGGERS, Progress, sync
    from syncer.engine.start import startup
    from syncer.engine.state import next_run, snapshots, status


__getattr__ = lazy_names("syncer.engine", _WHERE, globals())


__all__ = ["TRIGGERS", "Progress", "next_run", "repair", "rollback", "snapshots", "startup", "status", "sync", "verify"]
