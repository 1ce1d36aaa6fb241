"""The volume: snapshot folders, the manifest, the atomic ``current`` pointer, permissions, retention.

Layout under ``root`` (see ARCHITECTURE.md)::

    current -> snapshots/<id>      relative symlink, swapped with symlink-to-temp + rename(2)
    snapshots/<id>/manifest.json   written last, before the folder is renamed into snapshots/
    staging/<id>/                  work in progress, swept at start
    quarantine/<id>/               isolated bad records
    syncer.db                      run history
    .lock                          one writer at a time

Published files are 0444 and snapshot folders 0555. Nothing here deletes a published snapshot except
retention, which never touches ``current`` or the snapshot before it.

The OS's errors are raised as :class:`VolumeError` (publishing: :class:`PublishError`) naming the
path and the way out; reading helpers report problems as text instead of raising.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import secrets
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncer import _clock as clock
from syncer._exceptions import NoSnapshotError, PublishError, VolumeError

__all__ = ["MANIFEST", "SnapshotInfo", "Volume", "fsync_dir"]

MANIFEST = "manifest.json"
FILE_MODE = 0o444
DIR_MODE = 0o555


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class SnapshotInfo:
    id: str
    path: Path
    manifest: dict[str, Any] | None = None
    error: str | None = None
    created_at: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.manifest is not None and not self.problems and self.error is None


class Volume:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.snapshots = self.root / "snapshots"
        self.staging = self.root / "staging"
        self.quarantine = self.root / "quarantine"
        self.current = self.root / "current"
        self.db_path = self.root / "syncer.db"
        self.lock_path = self.root / ".lock"

    # --- set-up ----------------------------------------------------------------------------------

    def ensure(self) -> None:
        try:
            created = False
            for d in (self.root, self.snapshots, self.staging, self.quarantine):
                if not d.is_dir():
                    d.mkdir(parents=True, exist_ok=True)
                    created = True
            if created:
                # The folders' own entries must survive a power loss before anything is published in them.
                fsync_dir(self.root)
                with contextlib.suppress(OSError):
                    fsync_dir(self.root.parent)
        except OSError as exc:
            raise VolumeError(
                f"cannot create the volume layout under {self.root}: {exc.strerror or exc} ({exc.filename or self.root}); "
                "check [volume] root in the config, the mount and its permissions"
            ) from exc

    @staticmethod
    def new_snapshot_id(now: dt.datetime | None = None) -> str:
        now = now or clock.utcnow()
        return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)

    def snapshot_dir(self, snapshot_id: str) -> Path:
        return self.snapshots / snapshot_id

    # --- reading ---------------------------------------------------------------------------------

    def current_id(self) -> str | None:
        """The id ``current`` names, or None when it is missing or not a link into snapshots/."""
        try:
            target = os.readlink(self.current)
        except (FileNotFoundError, OSError):
            return None
        p = Path(target)
        if p.parent.name != "snapshots" or not p.name:
            return None
        return p.name

    @staticmethod
    def read_manifest(snapshot_dir: Path) -> dict[str, Any]:
        path = snapshot_dir / MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PublishError(f"snapshot {snapshot_dir.name} has no manifest ({path})") from None
        except PermissionError as exc:
            raise PublishError(f"snapshot {snapshot_dir.name}: manifest {path} is not readable; run `syncer repair`") from exc
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise PublishError(f"snapshot {snapshot_dir.name}: manifest {path} is corrupt ({exc}); run `syncer repair`") from exc
        if not isinstance(data, dict) or not isinstance(data.get("tables"), dict) or "id" not in data:
            raise PublishError(f"snapshot {snapshot_dir.name}: manifest {path} is incomplete; run `syncer repair`")
        return data

    def inspect(self, snapshot_id: str, *, deep: bool = False) -> SnapshotInfo:
        """Load a snapshot's manifest and check its files (size always; sha256 when ``deep``)."""
        d = self.snapshot_dir(snapshot_id)
        info = SnapshotInfo(snapshot_id, d)
        try:
            info.manifest = self.read_manifest(d)
        except PublishError as exc:
            info.error = str(exc)
            return info
        info.created_at = str(info.manifest.get("created_at", ""))
        info.problems = check_files(d, info.manifest, deep=deep)
        return info

    def list_snapshots(self) -> list[SnapshotInfo]:
        """Every folder in snapshots/, oldest first (by the manifest's created_at, then id)."""
        try:
            names = [p.name for p in self.snapshots.iterdir() if p.is_dir() and not p.name.startswith(".")]
        except (FileNotFoundError, PermissionError):
            # An unreadable snapshots/ folder holds nothing a reader could use; `syncer repair` restores it.
            return []
        infos = [self.inspect(n) for n in names]
        infos.sort(key=lambda i: (i.created_at or "", i.id))
        return infos

    def newest_intact(self, exclude: set[str] | None = None) -> SnapshotInfo | None:
        for info in reversed(self.list_snapshots()):
            if info.ok and info.id not in (exclude or set()):
                return info
        return None

    def current_manifest(self) -> dict[str, Any] | None:
        """The manifest behind ``current`` if it is intact, else None (no exception)."""
        cid = self.current_id()
        if cid is None:
            return None
        info = self.inspect(cid)
        return info.manifest if info.ok else None

    # --- writing ---------------------------------------------------------------------------------

    def write_manifest(self, folder: Path, manifest: dict[str, Any]) -> None:
        """Write ``manifest.json`` via a temporary file (fsynced, then renamed): complete or absent, never torn.

        The rename's directory entry is made durable by :meth:`publish` (fsync of the folder).
        """
        tmp = folder / (MANIFEST + ".tmp")
        # Serialise first: a value JSON cannot hold fails here, before anything touches the disk.
        text = json.dumps(manifest, indent=2, sort_keys=False) + "\n"
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, folder / MANIFEST)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise PublishError(
                f"could not write the manifest of snapshot {folder.name} in {folder}: {_os_reason(exc)}; "
                "nothing was published, the current snapshot is unchanged"
            ) from exc

    def publish(self, snapshot_id: str) -> Path:
        """staging/<id> -> snapshots/<id> (read-only, durable), then swap ``current`` to it."""
        src = self.staging / snapshot_id
        dst = self.snapshot_dir(snapshot_id)
        try:
            # Files 0444 and sub-folders 0555 now; the folder itself only once it has moved: Linux lets
            # a folder move to another parent only if its owner may write it (its ".." entry changes;
            # root skips that check). Until `current` names it, no reader looks inside.
            seal(src, top=False)
            # Everything `current` will name must be on disk before the swap: the files' bytes (writers
            # fsync them, but a carried-over copy or any future writer might not), their read-only
            # modes, and the folder's entries. fsync of an already clean file costs next to nothing.
            fsync_tree(src)
            os.rename(src, dst)
            os.chmod(dst, DIR_MODE)
            fsync_dir(dst)
            fsync_dir(self.snapshots)
            fsync_dir(self.staging)
        except OSError as exc:
            raise PublishError(
                f"could not publish snapshot {snapshot_id} into {self.snapshots}: {_os_reason(exc)}; "
                "the current snapshot is unchanged"
            ) from exc
        self.point_current(snapshot_id)
        return dst

    def point_current(self, snapshot_id: str) -> None:
        """Atomically make ``current`` name snapshots/<id> (readers see old or new, never neither)."""
        if not self.snapshot_dir(snapshot_id).is_dir():
            raise NoSnapshotError(f"snapshot {snapshot_id} does not exist under {self.snapshots}")
        tmp = self.root / f".current.tmp-{os.getpid()}-{secrets.token_hex(3)}"
        try:
            os.symlink(os.path.join("snapshots", snapshot_id), tmp)
            os.rename(tmp, self.current)
            fsync_dir(self.root)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise PublishError(f"could not point current at {snapshot_id}: {exc}") from exc

    def sweep(self) -> list[str]:
        """Remove leftovers of interrupted runs: staging folders and temporary links."""
        removed: list[str] = []
        try:
            if self.staging.is_dir():
                for p in self.staging.iterdir():
                    remove_tree(p)
                    removed.append(f"staging/{p.name}")
        except OSError as exc:
            raise VolumeError(
                f"cannot sweep {self.staging}: {_os_reason(exc)} ({exc.filename or self.staging}); "
                "fix its permissions or remove the leftovers by hand (`syncer repair` restores access)"
            ) from exc
        for pattern in (".current.tmp-*", ".lock.json.tmp-*"):
            for p in self.root.glob(pattern):
                with contextlib.suppress(OSError):
                    p.unlink()
                    removed.append(p.name)
        return removed

    def remove_snapshot(self, snapshot_id: str) -> None:
        """Delete a snapshot: first moved out of snapshots/ (one rename), so it never appears half-gone.

        Raises :class:`VolumeError`; the snapshot is then either still whole in snapshots/ or gone
        from it (its trash is swept by the next run)."""
        src = self.snapshot_dir(snapshot_id)
        trash = self.staging / f".trash-{snapshot_id}-{secrets.token_hex(2)}"
        try:
            self.staging.mkdir(parents=True, exist_ok=True)
            if not src.is_symlink():
                # A sealed (0555) folder cannot move to another parent unless its owner may write it.
                os.chmod(src, 0o755)
            os.rename(src, trash)
            fsync_dir(self.snapshots)
            remove_tree(trash)
            q = self.quarantine / snapshot_id
            if q.exists():
                remove_tree(q)
        except OSError as exc:
            raise VolumeError(
                f"retention could not remove snapshot {snapshot_id} ({exc.filename or src}): {_os_reason(exc)}; "
                "it is kept for now: fix the permissions of snapshots/ (`syncer repair`) and the next sync retries"
            ) from exc

    def retention(self, retain: int) -> list[str]:
        """Keep the newest ``retain`` snapshots, plus always ``current`` and the one before it.

        Raises :class:`VolumeError` at the first snapshot it cannot remove (those before it are gone).
        It runs after the swap: what is published is complete either way."""
        infos = self.list_snapshots()
        order = [i.id for i in infos]
        keep = set(order[-retain:])
        cid = self.current_id()
        if cid in order:
            keep.add(cid)
            idx = order.index(cid)
            if idx > 0:
                keep.add(order[idx - 1])
        removed = []
        for sid in order:
            if sid not in keep:
                self.remove_snapshot(sid)
                removed.append(sid)
        return removed

    def move_aside(self, path: Path, name: str) -> Path:
        """Rename ``path`` (something that is not ours to delete) to ``root/name``; raises :class:`VolumeError`."""
        aside = self.root / name
        try:
            os.rename(path, aside)
        except OSError as exc:
            raise VolumeError(
                f"cannot move {path} aside to {aside}: {_os_reason(exc)}; move or remove it by hand, then run `syncer repair`"
            ) from exc
        return aside

    def previous_of(self, snapshot_id: str | None) -> str | None:
        """The intact snapshot published just before ``snapshot_id``."""
        infos = [i for i in self.list_snapshots() if i.ok]
        ids = [i.id for i in infos]
        if snapshot_id in ids:
            idx = ids.index(snapshot_id)
            return ids[idx - 1] if idx > 0 else None
        return ids[-1] if ids else None


def check_files(folder: Path, manifest: dict[str, Any], *, deep: bool = False) -> list[str]:
    """Problems with the files a manifest lists: missing, unreadable, wrong size, wrong sha256."""
    from syncer.formats import parts_digest

    problems = []
    for name, t in manifest.get("tables", {}).items():
        file_name = str(t.get("file", ""))
        if not is_plain_file_name(file_name):
            # A tampered manifest must not make a reader open something outside the snapshot.
            problems.append(f"table {name!r}: file name {file_name!r} is not a plain file name inside the snapshot")
            continue
        parts = t.get("parts")
        if parts is None:
            problems += _check_file(name, folder / file_name, t.get("bytes"), t.get("sha256"), deep)
            continue
        # A table written in parts: a folder of files, each listed with its size and sha256.
        sub = folder / file_name
        if sub.is_symlink() or not sub.is_dir():
            problems.append(f"table {name!r}: {file_name}/ is missing or not a folder")
            continue
        if not isinstance(parts, list) or not all(
            isinstance(p, dict) and is_plain_file_name(str(p.get("name", ""))) for p in parts
        ):
            problems.append(f"table {name!r}: the manifest's list of parts is malformed")
            continue
        if parts_digest(parts) != t.get("sha256") or sum(int(p.get("bytes") or 0) for p in parts) != t.get("bytes"):
            problems.append(f"table {name!r}: the manifest's parts do not add up to its size and sha256 (modified)")
            continue
        for p in parts:
            problems += _check_file(name, sub / str(p["name"]), p.get("bytes"), p.get("sha256"), deep)
    return problems


def _check_file(name: str, f: Path, size: Any, sha256: Any, deep: bool) -> list[str]:
    try:
        if f.is_symlink():
            return [f"table {name!r}: {f.name} is a symbolic link, not the published file (replaced)"]
        st = f.stat()
    except FileNotFoundError:
        return [f"table {name!r}: file {f.name} is missing"]
    except OSError as exc:
        return [f"table {name!r}: cannot stat {f.name}: {exc.strerror} (run `syncer repair`)"]
    if st.st_size != size:
        return [f"table {name!r}: {f.name} is {st.st_size} bytes, manifest says {size} (truncated or replaced)"]
    if not os.access(f, os.R_OK):
        return [f"table {name!r}: {f.name} is not readable"]
    if deep:
        from syncer.formats import sha256_file

        try:
            digest = sha256_file(f)
        except OSError as exc:
            return [f"table {name!r}: cannot read {f.name}: {exc.strerror}"]
        if digest != sha256:
            return [f"table {name!r}: sha256 of {f.name} is {digest[:12]}…, manifest says {str(sha256)[:12]}… (modified)"]
    return []


def is_plain_file_name(name: str) -> bool:
    """A single path component: no separators, no NUL, not empty, not ``.`` or ``..``."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in ("/", "\\", "\x00"))


def unexpected_files(folder: Path, manifest: dict[str, Any]) -> list[str]:
    """Entries of a snapshot folder that its manifest does not list (something was added after publishing)."""
    tables = manifest.get("tables", {}).values()
    listed = {MANIFEST, *(str(t.get("file", "")) for t in tables)}
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        return [f"cannot list {folder.name}/: {exc.strerror}"]
    out = [f"{folder.name}/{n} is not listed in the manifest (added after publishing?)" for n in names if n not in listed]
    for t in tables:
        parts = t.get("parts")
        sub = folder / str(t.get("file", ""))
        if not isinstance(parts, list) or sub.is_symlink() or not sub.is_dir():
            continue
        known = {str(p.get("name")) for p in parts if isinstance(p, dict)}
        try:
            inside = sorted(os.listdir(sub))
        except OSError as exc:
            out.append(f"cannot list {folder.name}/{sub.name}/: {exc.strerror}")
            continue
        out += [
            f"{folder.name}/{sub.name}/{n} is not listed in the manifest (added after publishing?)"
            for n in inside
            if n not in known
        ]
    return out


def carry_over(src: Path, dst: Path) -> None:
    """Put a published file (or a folder of parts, file by file) into a staged snapshot: a hard link,
    or a copy across filesystems. Raises :class:`PublishError` naming the file."""
    try:
        if src.is_dir() and not src.is_symlink():
            dst.mkdir()
            for f in sorted(src.iterdir()):
                carry_over(f, dst / f.name)
            return
        try:
            os.link(src, dst)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            shutil.copy2(src, dst)  # not on the same filesystem: a copy keeps the data all the same
    except OSError as exc:
        raise PublishError(
            f"cannot carry {src.name} over from snapshot {src.parent.name} into {dst.parent}: {_os_reason(exc)}; "
            "nothing was published, the current snapshot is unchanged"
        ) from exc


def fsync_tree(folder: Path) -> None:
    """fsync every regular file under ``folder``, then every folder (deepest first)."""
    for dirpath, _dirnames, filenames in os.walk(folder, topdown=False, onerror=_raise):
        for name in filenames:
            p = os.path.join(dirpath, name)
            if os.path.islink(p):
                continue
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def _raise(exc: OSError) -> None:
    raise exc


def _os_reason(exc: OSError) -> str:
    """An OSError in words an operator acts on (ENOSPC: "no space left on device ... free space")."""
    if exc.errno == errno.ENOSPC:
        return "no space left on device (the volume is full; free space or grow the volume, then sync again)"
    if exc.errno == errno.EDQUOT:
        return "disk quota exceeded (free space or raise the quota, then sync again)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied ({exc.filename or ''}); run `syncer repair`"
    if exc.errno == errno.EROFS:
        return "the volume is mounted read-only"
    return exc.strerror or str(exc)


def seal(folder: Path, *, top: bool = True) -> int:
    """Make a snapshot folder read-only: files 0444, folders 0555; returns how many entries changed.

    Top-down, so a folder someone made unreadable (say 000) is opened up to 0555 before it is listed:
    ``repair`` restores such a snapshot as the owner of its files, not only as root. ``top=False``
    leaves ``folder`` itself writable (and at least readable), for a folder that still has to move.
    """
    changed = 0
    if os.path.islink(folder):
        return 0  # chmod would act on what the link names, outside the volume perhaps

    def fix(path: str, mode: int) -> None:
        nonlocal changed
        if stat.S_IMODE(os.lstat(path).st_mode) != mode:
            os.chmod(path, mode)
            changed += 1

    if top:
        fix(str(folder), DIR_MODE)
    else:
        os.chmod(folder, stat.S_IMODE(os.lstat(folder).st_mode) | 0o755)
    stack = [str(folder)]
    while stack:
        d = stack.pop()
        with os.scandir(d) as it:
            entries = list(it)
        for e in entries:
            if e.is_symlink():
                continue
            if e.is_dir(follow_symlinks=False):
                fix(e.path, DIR_MODE)
                stack.append(e.path)
            else:
                fix(e.path, FILE_MODE)
    return changed


def permission_problems(folder: Path) -> list[str]:
    """Files or folders in a snapshot whose mode is not the published read-only mode."""
    out = []

    def unlistable(exc: OSError) -> None:
        # Only a non-root reader gets here (root lists anything): a folder it cannot list is a problem too.
        where = Path(exc.filename) if exc.filename else folder
        name = where.relative_to(folder.parent) if where.is_relative_to(folder.parent) else where
        out.append(f"{name}/ cannot be listed: {exc.strerror}")

    def mode_of(path: Path) -> int | None:
        try:
            return stat.S_IMODE(path.lstat().st_mode)
        except OSError as exc:
            out.append(f"{path.relative_to(folder.parent)} cannot be inspected: {exc.strerror}")
            return None

    top = mode_of(folder)
    if top is not None and top != DIR_MODE:
        out.append(f"{folder.name}/ has mode {top:o}, expected {DIR_MODE:o}")
    for dirpath, dirnames, filenames in os.walk(folder, onerror=unlistable):
        for name in filenames:
            p = Path(dirpath, name)
            mode = mode_of(p)
            if mode is not None and mode != FILE_MODE:
                out.append(f"{p.relative_to(folder.parent)} has mode {mode:o}, expected {FILE_MODE:o}")
        for name in dirnames:
            p = Path(dirpath, name)
            mode = mode_of(p)
            if mode is not None and mode != DIR_MODE:
                out.append(f"{p.relative_to(folder.parent)}/ has mode {mode:o}, expected {DIR_MODE:o}")
    return out


def remove_tree(path: Path) -> None:
    """rm -rf that first gives back the write bits a published snapshot took away."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
        return
    if not path.exists():
        return
    for dirpath, dirnames, _ in os.walk(path):
        with contextlib.suppress(OSError):  # best effort, like the rmtree below
            os.chmod(dirpath, 0o755)
        for d in dirnames:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(dirpath, d), 0o755)
    shutil.rmtree(path, ignore_errors=True)
