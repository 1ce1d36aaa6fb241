"""What end-user apps import: read a published table, never a half-written one.

``read_table`` resolves ``current`` once per call, reads the table file named by that snapshot's
manifest with the exact schema recorded there, warns (:class:`StaleDataWarning`) when the table is
older than the freshness SLA or was carried over after a failed export, and falls back to the newest
intact snapshot (with :class:`SnapshotFallbackWarning`) when ``current`` is missing or broken.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Any

import pyarrow as pa

from syncer import _clock as clock
from syncer._clock import parse_iso
from syncer._exceptions import NoSnapshotError, PublishError
from syncer.formats import read_file, schema_from_b64
from syncer.volume.layout import Volume
from syncer.volume.manifest import Manifest, ManifestEntry

__all__ = [
    "QuarantinedRowsWarning",
    "SnapshotFallbackWarning",
    "StaleDataWarning",
    "current_snapshot",
    "read_table",
    "resolve_root",
]


class StaleDataWarning(UserWarning):
    """The data read is older than the freshness SLA (or kept after a failed export)."""


class QuarantinedRowsWarning(UserWarning):
    """The table was published without some source rows, set aside in quarantine (within the
    table's ``max_bad_rows``): the data read is complete except for those rows."""


class SnapshotFallbackWarning(StaleDataWarning):
    """``current`` was broken; an older intact snapshot was read instead."""


def resolve_root(root: str | os.PathLike | None = None, config: Any = None) -> Path:
    """Where the volume is: ``root``, else the config's, else ``$SYNCER_ROOT``, else the default config's."""
    if root is not None:
        return Path(root)
    if config is not None:
        return Path(config.root)
    if os.environ.get("SYNCER_ROOT"):
        return Path(os.environ["SYNCER_ROOT"])
    from syncer.config import default_config_path, load_config

    path = default_config_path()
    if path.exists():
        return load_config(path).root
    raise NoSnapshotError(
        "cannot tell where the data volume is: pass root=..., set SYNCER_ROOT (e.g. /data), "
        f"or run from the folder holding {path}"
    )


def current_snapshot(root: str | os.PathLike | None = None, *, config: Any = None) -> Manifest:
    """The manifest of the snapshot apps read now (after any fallback), with ``fallback`` set:
    True when ``current`` is broken and the newest intact snapshot is served instead."""
    vol = Volume(resolve_root(root, config))
    manifest, fell_back = _resolve(vol)
    return dataclasses.replace(manifest, fallback=fell_back)


def _resolve(vol: Volume) -> tuple[Manifest, bool]:
    cid = vol.current_id()
    reason = "missing"
    if cid is not None:
        info = vol.inspect(cid)
        if info.ok:
            assert info.manifest is not None
            return info.manifest, False
        reason = info.error or "; ".join(info.problems)
        if not vol.snapshot_dir(cid).is_dir():
            reason = f"points at {cid}, which does not exist"
    best = vol.newest_intact(exclude={cid} if cid else None)
    if best is None or best.manifest is None:
        raise NoSnapshotError(f"no intact snapshot under {vol.root} (current is {reason}); run `syncer sync` or `syncer repair`")
    warnings.warn(
        f"current snapshot under {vol.root} is {reason}; reading the newest intact snapshot {best.id} instead "
        "(run `syncer repair`)",
        SnapshotFallbackWarning,
        stacklevel=3,
    )
    return best.manifest, True


def read_table(
    name: str,
    *,
    as_arrow: bool = False,
    columns: list[str] | None = None,
    root: str | os.PathLike | None = None,
    config: Any = None,
) -> Any:
    """Read table ``name`` from the published snapshot: a pandas DataFrame, or a ``pyarrow.Table``."""
    vol = Volume(resolve_root(root, config))
    manifest, _ = _resolve(vol)
    entry = manifest.tables.get(name)
    if entry is None:
        known = ", ".join(sorted(manifest.tables)) or "none"
        raise NoSnapshotError(f"table {name!r} is not in snapshot {manifest.id}; published tables: {known}")
    schema = _schema(entry)
    if columns:
        unknown = [c for c in columns if c not in schema.names]
        if unknown:
            raise PublishError(f"table {name!r} has no column(s) {unknown}; columns: {', '.join(schema.names)}")
    path = vol.snapshot_dir(manifest.id) / entry.file
    try:
        table = read_file(entry.format, path, schema, columns)
    except _READ_ERRORS as exc:
        # The manifest and the file's size were fine, yet the bytes do not parse (modified in place,
        # or unreadable to this user): an older snapshot that holds this table in another file still
        # serves it, with a warning, rather than nothing at all.
        older = _read_from_older(vol, name, manifest.id, path, columns)
        if older is None:
            raise PublishError(
                f"cannot read table {name!r} from snapshot {manifest.id} ({path}): {exc}; "
                "no older snapshot holds a readable copy; run `syncer verify`, then `syncer repair` or `syncer sync`"
            ) from exc
        manifest, entry, table = older
        warnings.warn(
            f"table {name!r} in snapshot {path.parent.name} cannot be read ({_short(exc)}); reading it from the "
            f"older intact snapshot {manifest.id} instead (run `syncer verify`, then `syncer repair`)",
            SnapshotFallbackWarning,
            stacklevel=2,
        )
    _warn_if_stale(name, entry, manifest)
    return table if as_arrow else table.to_pandas()


# What a damaged or unreadable file raises while it is parsed (JSON/CSV text errors are ValueErrors).
_READ_ERRORS = (OSError, ValueError, ArithmeticError, pa.ArrowException)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _schema(entry: ManifestEntry) -> pa.Schema:
    if not entry.arrow_schema:
        raise PublishError(f"the manifest entry of {entry.file} has no arrow_schema; run `syncer sync` to republish it")
    return schema_from_b64(entry.arrow_schema)


def _read_from_older(
    vol: Volume, name: str, failed_id: str, failed_path: Path, columns: list[str] | None
) -> tuple[Manifest, ManifestEntry, pa.Table] | None:
    """The table read from the newest other intact snapshot whose copy is not the very file that failed."""
    try:
        failed_ino = os.stat(failed_path).st_ino
    except OSError:
        failed_ino = None
    for info in reversed(vol.list_snapshots()):
        if info.id == failed_id or not info.ok or info.manifest is None:
            continue
        entry = info.manifest.tables.get(name)
        if entry is None:
            continue
        path = info.path / entry.file
        try:
            if failed_ino is not None and os.stat(path).st_ino == failed_ino:
                continue  # a hard link to the same damaged bytes
            schema = _schema(entry)
            if columns and any(c not in schema.names for c in columns):
                continue
            return info.manifest, entry, read_file(entry.format, path, schema, columns)
        except (*_READ_ERRORS, PublishError):
            continue
    return None


def _warn_if_stale(name: str, entry: ManifestEntry, manifest: Manifest) -> None:
    sla_hours = float(manifest.sla_hours if manifest.sla_hours is not None else 24)
    age = (clock.utcnow() - parse_iso(entry.exported_at)).total_seconds() / 3600
    if entry.carried_over:
        warnings.warn(
            f"table {name!r} holds data exported {age:.1f} h ago: the last export failed ({entry.error})",
            StaleDataWarning,
            stacklevel=3,
        )
    elif age > sla_hours:
        warnings.warn(
            f"table {name!r} is stale: exported {age:.1f} h ago, the freshness SLA is {sla_hours:g} h",
            StaleDataWarning,
            stacklevel=3,
        )
    q = entry.quarantine
    if entry.status == "quarantined" and q:
        reasons = "; ".join(f"{r} ({n:,})" for r, n in list(q.get("reasons", {}).items())[:3])
        warnings.warn(
            f"table {name!r}: {q.get('rows', 0):,} source row(s) were set aside in quarantine by its export "
            f"({reasons}){'; see ' + q['file'] if q.get('file') else ''}",
            QuarantinedRowsWarning,
            stacklevel=3,
        )
