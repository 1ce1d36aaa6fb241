"""What a sync run says about itself at its edges: the one line when the volume stops it, and the
description of its source in the manifest (kept out of ``run.py``, which holds the steps)."""

from __future__ import annotations

from typing import Any

from syncer._exceptions import VolumeError
from syncer.config import Config
from syncer.volume.files import os_reason
from syncer.volume.layout import Volume

__all__ = ["describe_source", "volume_error"]


def volume_error(exc: OSError, run_id: str, vol: Volume, snapshot_id: str | None) -> VolumeError:
    """An OS error no step wrapped, as the run's one line: what failed, where, what is served, what to do."""
    where = exc.filename or vol.root
    served = (
        f"snapshot {snapshot_id} is published and current"
        if snapshot_id and vol.current_id() == snapshot_id
        else "the current snapshot is unchanged"
    )
    return VolumeError(
        f"sync run {run_id} stopped: {os_reason(exc)} ({where}); {served}; fix the cause and sync again "
        "(`syncer repair` sweeps what the run left in staging)"
    )


def describe_source(cfg: Config) -> dict[str, Any]:
    if cfg.source.kind == "snowflake":
        # The Snowflake source's own description (connection method, account, database, ...; no secrets).
        from syncer.sources.snowflake import describe_config

        return describe_config(cfg.source)
    d: dict[str, Any] = {"kind": cfg.source.kind}
    if cfg.source.path is not None:
        d["path"] = str(cfg.source.path)
    return d
