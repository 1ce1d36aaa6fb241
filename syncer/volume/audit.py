"""The audit trail: who did what (rollbacks, manual syncs, refused or blocked actions), in the run history."""

from __future__ import annotations

import logging
from typing import Any

from syncer import _clock as clock
from syncer._clock import iso
from syncer._exceptions import SyncError
from syncer.config import Config
from syncer.volume.history import History
from syncer.volume.layout import Volume

__all__ = ["record_event"]

log = logging.getLogger("syncer")


def record_event(cfg: Config, kind: str, *, user: str | None, **detail: Any) -> None:
    """Write an audit entry; an unwritable trail is logged, never raised (it must not change the outcome)."""
    vol = Volume(cfg.root)
    try:
        vol.ensure()
        History(vol.db_path).event(kind, iso(clock.utcnow()), user=user, **detail)
    except SyncError as exc:
        log.warning("could not record %s by %s in the audit trail: %s", kind, user, exc)
