"""What end-user apps import: read a published table, never a half-written one.

``read_table`` resolves ``current`` once per call, reads the table file named by that snapshot's
manifest with the exact schema recorded there, warns (:class:`StaleDataWarning`) when the table is
older than the freshness SLA, was carried over after a failed export or was exported "in the future"
(its ``exported_at`` after now: the clock moved or the manifest was edited), and falls back to the
intact snapshot served most recently (with :class:`SnapshotFallbackWarning`) when ``current`` is
missing, broken or points outside the volume. A snapshot that retention removes while it is being
read (a slow reader, two syncs meanwhile) is not an error: the read starts again from the new
``current``, with a :class:`SnapshotFallbackWarning`.

To pandas, no value is changed on the way (``dtype_backend``, README "Reader API"): a column keeps
the NumPy dtype pandas would give it wherever that dtype holds every value exactly, and gets an
exact dtype where it would not -- pandas' nullable integers (``Int64``...) for integers with nulls
(NumPy would make them float64, rounding above 2**53), ``Float64`` for floats holding both nulls
and NaN, ``pd.ArrowDtype`` for nested values and nanosecond times. ``"pyarrow"`` gives every column
``pd.ArrowDtype``; ``"numpy"`` is pyarrow's plain ``Table.to_pandas()``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import stat
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import pyarrow as pa

from syncer import _clock as clock
from syncer._clock import age_seconds, future_message
from syncer._digest import parts_digest
from syncer._exceptions import NoSnapshotError, PublishError
from syncer.formats import read_file, schema_from_b64
from syncer.volume import manifest_cache
from syncer.volume.layout import Volume
from syncer.volume.layout import _manifest_record as manifest_record  # the records inspect() caches
from syncer.volume.manifest import Manifest, ManifestEntry
from syncer.volume.verify import is_plain_file_name

_F = TypeVar("_F", bound=Callable[..., Any])

__all__ = [
    "DtypeBackend",
    "QuarantinedRowsWarning",
    "SnapshotFallbackWarning",
    "StaleDataWarning",
    "current_snapshot",
    "read_table",
    "resolve_root",
    "to_pandas",
]


#: How ``read_table`` converts to pandas: "exact" (the default), "pyarrow" or "numpy" (module docstring).
DtypeBackend = Literal["exact", "pyarrow", "numpy"]
_BACKENDS = ("exact", "pyarrow", "numpy")


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


def _os_errors_as_ours(fn: _F) -> _F:
    """The OS's errors (EIO, a folder replaced by a file, ...) as the library's own: one class to catch."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except OSError as exc:
            raise PublishError(
                f"cannot read the published data ({exc.filename or 'the volume'}): {exc.strerror or exc}; "
                "check the volume and its mount, then run `syncer verify` (and `syncer repair`)"
            ) from exc

    return wrapper  # type: ignore[return-value]


@_os_errors_as_ours
def current_snapshot(root: str | os.PathLike | None = None, *, config: Any = None) -> Manifest:
    """The manifest of the snapshot apps read now (after any fallback), with ``fallback`` set:
    True when ``current`` is broken and the newest intact snapshot is served instead."""
    vol = Volume(resolve_root(root, config))
    manifest, fell_back = _resolve(vol)
    return dataclasses.replace(manifest, fallback=fell_back)


def _resolve(vol: Volume, stacklevel: int = 4) -> tuple[Manifest, bool]:
    return _resolve_from(vol, vol.current_id(), stacklevel + 1)


def _resolve_from(vol: Volume, cid: str | None, stacklevel: int) -> tuple[Manifest, bool]:
    """The manifest to read, ``current`` having been read once as ``cid``: its own when intact, else
    (with a warning) the newest intact snapshot's."""
    reason = "missing"
    for attempt in range(_ATTEMPTS):
        if attempt:
            cid = vol.current_id()
        if cid is None:
            reason = vol.current_problem() or "missing"
            break
        manifest = _intact(vol, cid)
        if manifest is not None:
            return manifest, False
        info = vol.inspect(cid)  # the files changed since, or something is wrong: the full check says what
        if info.ok:
            assert info.manifest is not None
            return info.manifest, False
        if vol.current_id() == cid:  # not swapped meanwhile (a sync and its retention): really broken
            reason = info.error or "; ".join(info.problems)
            if not vol.snapshot_dir(cid).is_dir():
                reason = f"a link that points at {cid}, which does not exist"
            break
    best = vol.newest_intact(exclude={cid} if cid else None)
    if best is None or best.manifest is None:
        raise NoSnapshotError(f"no intact snapshot under {vol.root} (current is {reason}); run `syncer sync` or `syncer repair`")
    warnings.warn(
        f"current snapshot under {vol.root} is {reason}; reading the newest intact snapshot {best.id} instead "
        "(run `syncer repair`)",
        SnapshotFallbackWarning,
        stacklevel=stacklevel,
    )
    return best.manifest, True


def _intact(vol: Volume, cid: str) -> Manifest | None:
    """The manifest of snapshot ``cid`` when it passes :meth:`Volume.inspect`'s checks, found the cheap
    way: the manifest from the cache (keyed by the file's identity), and one ``lstat`` and ``access``
    per table file against the list of (path, size) the manifest names, made once per manifest. None
    whenever anything differs or cannot be told; the caller then runs the full check, which says why."""
    d = vol.snapshot_dir(cid)
    if not is_plain_file_name(cid) or os.path.islink(d):
        return None
    try:
        entry = manifest_cache.load_entry(d, Volume.read_manifest_json, manifest_record)
    except PublishError:
        return None
    if entry.files is None:
        try:
            entry.files = _file_list(entry.raw)
        except (TypeError, ValueError):  # a size or part that is not a number: the full check's to judge
            entry.files = False
    if entry.files is False:
        return None
    # relative to this folder: the same text may be the manifest of another folder too (a copy)
    folder = str(d)
    return entry.manifest if all(_files_ok(os.path.join(folder, sub), names) for sub, names in entry.files) else None


def _files_ok(folder: str, names: list[tuple[str, int | None]]) -> bool:
    """Each name in ``folder`` is a readable regular file of its size, or (size None) a folder:
    ``lstat`` and ``access`` relative to the folder, not resolving its path again for every file."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        for name, size in names:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if size is None:
                if not stat.S_ISDIR(st.st_mode):
                    return False
            elif not stat.S_ISREG(st.st_mode) or st.st_size != size or not os.access(name, os.R_OK, dir_fd=fd):
                return False
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def _file_list(raw: dict[str, Any]) -> list[tuple[str, list[tuple[str, int | None]]]] | bool:
    """Every file :func:`check_files_by_table` checks, by folder relative to the snapshot's ("" for
    the snapshot's own), with the size it must have (None: a folder of parts), or False when the
    manifest itself is wrong (a file name outside the snapshot, parts that do not add up): then
    only the full check may judge it."""
    top: list[tuple[str, int | None]] = []
    out = [("", top)]
    for t in raw.get("tables", {}).values():
        name = str(t.get("file", "")) if isinstance(t, dict) else ""
        if not is_plain_file_name(name):
            return False
        parts = t.get("parts")
        if parts is None:
            top.append((name, _size(t.get("bytes"))))
            continue
        if not isinstance(parts, list) or not all(
            isinstance(p, dict) and is_plain_file_name(str(p.get("name", ""))) for p in parts
        ):
            return False
        if parts_digest(parts) != t.get("sha256") or sum(int(p.get("bytes") or 0) for p in parts) != t.get("bytes"):
            return False
        top.append((name, None))
        out.append((name, [(str(p["name"]), _size(p.get("bytes"))) for p in parts]))
    if any(size == -1 for _, names in out for _, size in names):
        return False
    return out


def _size(value: Any) -> int:
    """A size the manifest records; -1 (never a file's size) for anything but an int."""
    return value if type(value) is int else -1


@_os_errors_as_ours
def read_table(
    name: str,
    *,
    as_arrow: bool = False,
    columns: list[str] | None = None,
    root: str | os.PathLike | None = None,
    config: Any = None,
    dtype_backend: DtypeBackend = "exact",
) -> Any:
    """Read table ``name`` from the published snapshot: a pandas DataFrame, or a ``pyarrow.Table``.

    ``dtype_backend`` (as in pandas' readers) chooses the pandas dtypes: ``"exact"`` NumPy dtypes
    wherever they hold every value, exact ones elsewhere; ``"pyarrow"`` ``pd.ArrowDtype`` for every
    column; ``"numpy"`` plain NumPy dtypes (integers with nulls become float64 and may round)."""
    if dtype_backend not in _BACKENDS:
        raise ValueError(f"dtype_backend must be one of {', '.join(map(repr, _BACKENDS))}, not {dtype_backend!r}")
    vol = Volume(resolve_root(root, config))
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            manifest, entry, table = _read_once(vol, name, columns)
        except _Vanished as gone:
            if attempt == _ATTEMPTS:
                raise PublishError(
                    f"cannot read table {name!r}: snapshot {gone.snapshot_id} was removed while it was read, "
                    f"{_ATTEMPTS} times in a row (syncs and retention faster than this reader); try again"
                ) from gone.__cause__
            warnings.warn(
                f"snapshot {gone.snapshot_id} was removed (or current moved on) while table {name!r} was read from it; "
                f"reading the new current {vol.current_id() or '(none)'} instead",
                SnapshotFallbackWarning,
                stacklevel=3,  # read_table's caller (past the OS-error wrapper)
            )
            continue
        break
    _warn_if_stale(name, entry, manifest)
    return table if as_arrow else to_pandas(table, dtype_backend)


#: how often a read starts again when its snapshot is removed under it
_ATTEMPTS = 3


class _Vanished(Exception):
    """The snapshot being read was removed by retention, or ``current`` moved on, during the read."""

    def __init__(self, snapshot_id: str) -> None:
        super().__init__(snapshot_id)
        self.snapshot_id = snapshot_id


def _read_once(vol: Volume, name: str, columns: list[str] | None) -> tuple[Manifest, ManifestEntry, pa.Table]:
    current_before = vol.current_id()  # read once: the snapshot read, and whether it moved on meanwhile
    manifest, _ = _resolve_from(vol, current_before, stacklevel=5)
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
        if not vol.snapshot_dir(manifest.id).is_dir() or vol.current_id() != current_before:
            raise _Vanished(manifest.id) from exc
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
            stacklevel=4,  # read_table's caller (past the OS-error wrapper)
        )
    return manifest, entry, table


def to_pandas(table: pa.Table, dtype_backend: DtypeBackend = "exact") -> Any:
    """``table`` as a pandas DataFrame with the dtypes ``dtype_backend`` chooses (module docstring)."""
    import pandas as pd  # only readers that ask for pandas import it

    if dtype_backend == "numpy":
        return table.to_pandas()
    if dtype_backend == "pyarrow":
        return table.to_pandas(types_mapper=pd.ArrowDtype)
    exact = {name: _exact_dtype(table.column(name), pd) for name in table.column_names}
    special = {name: dtype for name, dtype in exact.items() if dtype is not None}
    if not special:
        return table.to_pandas()
    df = table.drop_columns(list(special)).to_pandas()
    for name, dtype in special.items():
        df[name] = table.column(name).to_pandas(types_mapper=lambda _t, d=dtype: d)
    return df[table.column_names]


def _exact_dtype(col: pa.ChunkedArray, pd: Any) -> Any:
    """The dtype column ``col`` needs in pandas to keep every value, or None when NumPy's does."""
    t = col.type
    if pa.types.is_nested(t) or (pa.types.is_time64(t) and t.unit == "ns"):
        # NumPy turns a list of integers with a null into floats, and cannot hold a time's last 3 digits
        return pd.ArrowDtype(t)
    if pa.types.is_integer(t) and col.null_count:
        return pd.api.types.pandas_dtype(str(t).capitalize().replace("Uint", "UInt"))
    if pa.types.is_floating(t) and col.null_count and not pa.types.is_float16(t):
        import pyarrow.compute as pc

        if pc.any(pc.is_nan(col)).as_py():
            return pd.Float32Dtype() if t == pa.float32() else pd.Float64Dtype()  # NaN and null stay apart
    return None


# What a damaged or unreadable file raises while it is parsed (JSON/CSV text errors are ValueErrors).
_READ_ERRORS = (OSError, ValueError, ArithmeticError, pa.ArrowException)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _schema(entry: ManifestEntry) -> pa.Schema:
    if not entry.arrow_schema:
        raise PublishError(f"the manifest entry of {entry.file} has no arrow_schema; run `syncer sync` to republish it")
    return _decoded_schema(entry.arrow_schema)


@functools.lru_cache(maxsize=256)
def _decoded_schema(b64: str) -> pa.Schema:
    """A recorded schema, decoded once per text (a ``pa.Schema`` is immutable: shared)."""
    return schema_from_b64(b64)


def _read_from_older(
    vol: Volume, name: str, failed_id: str, failed_path: Path, columns: list[str] | None
) -> tuple[Manifest, ManifestEntry, pa.Table] | None:
    """The table read from the newest other intact snapshot whose copy is not the very file that failed."""
    try:
        failed_ino = os.stat(failed_path).st_ino
    except OSError:
        failed_ino = None
    for info in vol.ranked():
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
    age = age_seconds(entry.fresh_as_of, clock.utcnow()) / 3600  # unchanged: from its confirmation
    if age < 0:  # an error state, never fresh
        warnings.warn(f"table {name!r} is not fresh: {future_message(age * 3600)}", StaleDataWarning, stacklevel=4)
    elif entry.carried_over:
        warnings.warn(
            f"table {name!r} holds data exported {age:.1f} h ago: the last export failed ({entry.error})",
            StaleDataWarning,
            stacklevel=4,
        )
    elif age > sla_hours:
        warnings.warn(
            f"table {name!r} is stale: exported {age:.1f} h ago, the freshness SLA is {sla_hours:g} h",
            StaleDataWarning,
            stacklevel=4,
        )
    q = entry.quarantine
    if entry.status == "quarantined" and q:
        reasons = "; ".join(f"{r} ({n:,})" for r, n in list(q.get("reasons", {}).items())[:3])
        warnings.warn(
            f"table {name!r}: {q.get('rows', 0):,} source row(s) were set aside in quarantine by its export "
            f"({reasons}){'; see ' + q['file'] if q.get('file') else ''}",
            QuarantinedRowsWarning,
            stacklevel=4,
        )
