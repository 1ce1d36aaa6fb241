"""The volume: snapshot folders, the manifest, the atomic ``current`` pointer, permissions, retention.

Layout under ``root`` (see ARCHITECTURE.md)::

    current -> snapshots/<id>      relative symlink, swapped with symlink-to-temp + rename(2)
    snapshots/<id>/manifest.json   written last, before the folder is renamed into snapshots/
    staging/<id>/                  work in progress, swept at start
    quarantine/<id>/               isolated bad records
    served.jsonl                   the serving order: one line per swap of ``current`` (served.py)
    syncer.db                      run history
    .lock                          one writer at a time

Published files are 0444 and snapshot folders 0555. Nothing here deletes a published snapshot except
retention, which never touches ``current``, the snapshot served before it, nor the one rollback
goes to. "Previous", rollback and retention follow the serving order (:mod:`syncer.volume.served`),
not snapshot ids: the clock can jump.

Nothing outside the volume is trusted: ``current`` must be the link ``snapshots/<id>`` to a real
folder, and a ``snapshots``, ``staging`` or ``quarantine`` that is a link out of the root (or not a
folder) is refused -- never read from, never written through -- until ``repair`` moves it aside.

The OS's errors are raised as :class:`VolumeError` (publishing: :class:`PublishError`) naming the
path and the way out; reading helpers report problems as text instead of raising.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncer import _clock as clock
from syncer._exceptions import NoSnapshotError, PublishError, VolumeError
from syncer.volume import manifest_cache
from syncer.volume.files import DIR_MODE, FILE_MODE, fsync_dir, fsync_tree, os_reason, permission_problems, remove_tree, seal
from syncer.volume.manifest import Manifest, manifest_text
from syncer.volume.served import SERVED_LOG, ServedEntry, ServedLog, ServingOrder, serving_order
from syncer.volume.verify import MANIFEST, check_files, check_files_by_table, is_plain_file_name, unexpected_files

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "MANIFEST",
    "SnapshotInfo",
    "Volume",
    "check_files",
    "fsync_dir",
    "permission_problems",
    "remove_tree",
    "seal",
    "unexpected_files",
]


@dataclass
class SnapshotInfo:
    id: str
    path: Path
    manifest: Manifest | None = None
    error: str | None = None
    created_at: str = ""
    problems: list[str] = field(default_factory=list)
    #: the same problems, by the table whose files have them
    table_problems: dict[str, list[str]] = field(default_factory=dict)

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
        self.served_log = ServedLog(self.root / SERVED_LOG)

    # --- set-up ----------------------------------------------------------------------------------

    def ensure(self) -> None:
        for d in (self.snapshots, self.staging, self.quarantine):
            problem = self.layout_problem(d)
            if problem:
                raise VolumeError(f"{problem}: nothing is read from or written through it; run `syncer repair` (moves it aside)")
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

    def layout_problem(self, d: Path) -> str | None:
        """Why the layout folder ``d`` cannot be used (a link out of the volume, not a folder), or None."""
        try:
            if d.is_symlink():
                real = d.resolve()
                if not real.is_relative_to(self.root.resolve()):
                    return f"{d} is a symbolic link to {real}, outside the volume {self.root}"
            if os.path.lexists(d) and not d.is_dir():
                return f"{d} is not a folder (a file or a broken link took its place)"
        except (OSError, RuntimeError) as exc:  # a loop of links, an unreadable parent
            return f"{d} cannot be resolved ({exc})"
        return None

    @staticmethod
    def new_snapshot_id(now: dt.datetime | None = None) -> str:
        now = now or clock.utcnow()
        return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)

    def unused_snapshot_id(self, now: dt.datetime | None = None) -> str:
        """A new id no snapshot, staging or quarantine folder and no served-log entry of this volume has:
        two runs in one second (or a clock moved back onto a used second) may draw the same 16 bits."""
        served = {e.id for e in self.served_log.entries()}
        stamp, suffix = self.new_snapshot_id(now).rsplit("-", 1)
        for k in range(0x10000):
            sid = f"{stamp}-{(int(suffix, 16) + k) % 0x10000:04x}"
            if sid not in served and not any(os.path.lexists(d / sid) for d in (self.snapshots, self.staging, self.quarantine)):
                return sid
        raise VolumeError(f"every snapshot id of the second {stamp} is in use under {self.root}; sync again in a second")

    def snapshot_dir(self, snapshot_id: str) -> Path:
        return self.snapshots / snapshot_id

    # --- reading ---------------------------------------------------------------------------------

    def current_id(self) -> str | None:
        """The id ``current`` names, or None when it is missing or not a link to a folder of snapshots/
        inside the volume (:meth:`current_problem` says why)."""
        return self._read_current()[0]

    def current_problem(self) -> str | None:
        """Why ``current`` names no snapshot of this volume ("missing", "pointing outside ..."), or None."""
        return self._read_current()[1]

    def _read_current(self) -> tuple[str | None, str | None]:
        try:
            target = os.readlink(self.current)
        except FileNotFoundError:
            return None, "missing"
        except OSError:
            return None, "not a symbolic link" if os.path.lexists(self.current) else "unreadable"
        parts = Path(target).parts
        # Exactly the relative link `snapshots/<id>` this engine writes: an absolute path or any `..`
        # could lead out of the volume, and nothing outside it is served.
        if os.path.isabs(target) or len(parts) != 2 or parts[0] != "snapshots" or not is_plain_file_name(parts[1]):
            return None, f"pointing outside the volume's snapshots folder ({target})"
        problem = self.layout_problem(self.snapshots)
        if problem:
            return None, f"pointing at {parts[1]} through {problem}"
        if os.path.islink(self.snapshot_dir(parts[1])):
            return None, f"pointing at snapshots/{parts[1]}, a symbolic link, not a snapshot folder"
        return parts[1], None

    @staticmethod
    def read_manifest(snapshot_dir: Path) -> Manifest:
        """The snapshot's manifest, or :class:`PublishError` saying why it cannot be used."""
        return manifest_cache.load(snapshot_dir, Volume.read_manifest_json, _manifest_record)[1]

    @staticmethod
    def read_manifest_json(snapshot_dir: Path, text: str | None = None) -> dict[str, Any]:
        """The manifest as JSON (its ``text`` when already read), checked only for its outline (id and tables)."""
        path = snapshot_dir / MANIFEST
        if os.path.islink(path):
            raise PublishError(f"snapshot {snapshot_dir.name}: manifest {path} is a symbolic link, not the published file")
        try:
            data = json.loads(text if text is not None else path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PublishError(f"snapshot {snapshot_dir.name} has no manifest ({path})") from None
        except PermissionError as exc:
            raise PublishError(f"snapshot {snapshot_dir.name}: manifest {path} is not readable; run `syncer repair`") from exc
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise PublishError(f"snapshot {snapshot_dir.name}: manifest {path} is corrupt ({exc}); run `syncer repair`") from exc
        if not isinstance(data, dict):
            what = f"not a JSON object but {type(data).__name__}"
        elif "id" not in data:
            what = "without 'id'"
        elif not isinstance(data.get("tables"), dict):
            what = f"'tables' is {type(data.get('tables')).__name__ if 'tables' in data else 'missing'}, not an object of tables"
        else:
            return data
        raise PublishError(f"snapshot {snapshot_dir.name}: manifest {path} is incomplete ({what}); run `syncer repair`")

    def inspect(self, snapshot_id: str, *, deep: bool = False) -> SnapshotInfo:
        """Load a snapshot's manifest and check its files (size always; sha256 when ``deep``)."""
        d = self.snapshot_dir(snapshot_id)
        info = SnapshotInfo(snapshot_id, d)
        if not is_plain_file_name(snapshot_id):
            info.error = f"{snapshot_id!r} is not a snapshot id (a path would lead outside {self.snapshots})"
            return info
        outside = self.layout_problem(self.snapshots) or (
            f"{d} is a symbolic link, not a snapshot folder" if os.path.islink(d) else None
        )
        if outside:
            info.error = f"snapshot {snapshot_id} is not served: {outside}"
            return info
        try:
            raw, info.manifest = manifest_cache.load(d, self.read_manifest_json, _manifest_record)
        except PublishError as exc:
            info.error = str(exc)
            return info
        info.created_at = str(info.manifest.created_at or "")
        # The files are checked against the JSON as written: a tampered entry is reported, not trusted.
        info.table_problems = check_files_by_table(d, raw, deep=deep)
        info.problems = [p for ps in info.table_problems.values() for p in ps]
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

    def serving_order(self, infos: list[SnapshotInfo] | None = None) -> ServingOrder:
        """The order snapshots were served in: the served log, else (an older volume) by creation."""
        cur = self.current_id()
        if self.served_log.exists():
            return serving_order(self.served_log.entries(), cur)
        return serving_order(None, cur, [i.id for i in (self.list_snapshots() if infos is None else infos)])

    def ranked(self, infos: list[SnapshotInfo] | None = None) -> list[SnapshotInfo]:
        """The snapshots, most recently served first, then the never served ones, newest first."""
        infos = self.list_snapshots() if infos is None else infos
        by_id = {i.id: i for i in infos}
        recency = [by_id[s] for s in self.serving_order(infos).recency if s in by_id]
        seen = {i.id for i in recency}
        return recency + [i for i in reversed(infos) if i.id not in seen]

    def newest_intact(self, exclude: set[str] | None = None) -> SnapshotInfo | None:
        """The intact snapshot served most recently (a never served one only when none was)."""
        for info in self.ranked():
            if info.ok and info.id not in (exclude or set()):
                return info
        return None

    def current_manifest(self) -> Manifest | None:
        """The manifest behind ``current`` if it is intact, else None (no exception)."""
        cid = self.current_id()
        if cid is None:
            return None
        info = self.inspect(cid)
        return info.manifest if info.ok else None

    # --- writing ---------------------------------------------------------------------------------

    def write_manifest(self, folder: Path, manifest: Manifest) -> None:
        """Write ``manifest.json`` via a temporary file (fsynced, then renamed): complete or absent, never torn.

        The rename's directory entry is made durable by :meth:`publish` (fsync of the folder).
        """
        tmp = folder / (MANIFEST + ".tmp")
        # Serialise first: a value JSON cannot hold fails here, before anything touches the disk.
        text = manifest_text(manifest.to_json()) + "\n"
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
                f"could not write the manifest of snapshot {folder.name} in {folder}: {os_reason(exc)}; "
                "nothing was published, the current snapshot is unchanged"
            ) from exc

    def publish(self, snapshot_id: str) -> Path:
        """staging/<id> -> snapshots/<id> (read-only, durable), then swap ``current`` to it."""
        src = self.staging / snapshot_id
        dst = self.snapshot_dir(snapshot_id)
        problem = self.layout_problem(self.snapshots) or self.layout_problem(self.staging)
        if problem:
            raise PublishError(f"snapshot {snapshot_id} is not published: {problem}; run `syncer repair`")
        try:
            # Files 0444 and sub-folders 0555 now; the folder itself only once it has moved: Linux lets
            # a folder move to another parent only if its owner may write it (its ".." entry changes;
            # root skips that check). Until `current` names it, no reader looks inside.
            seal(src, top=False)
            # Everything `current` will name must be on disk before the swap: the files' bytes (the
            # writers leave that to this one plan: each file once, many at a time), their read-only
            # modes, and the folders' entries; the snapshot folder itself once, after its move.
            fsync_tree(src, top=False)
            os.rename(src, dst)
            os.chmod(dst, DIR_MODE)
            fsync_dir(dst)
            fsync_dir(self.snapshots)
            fsync_dir(self.staging)
        except OSError as exc:
            raise PublishError(
                f"could not publish snapshot {snapshot_id} into {self.snapshots}: {os_reason(exc)}; "
                "the current snapshot is unchanged"
            ) from exc
        self.point_current(snapshot_id)
        return dst

    def point_current(self, snapshot_id: str, *, why: str = "sync", user: str | None = None) -> None:
        """Atomically make ``current`` name snapshots/<id> (readers see old or new, never neither).

        The swap is first appended to the served log (fsynced): a crash before the swap leaves an entry
        the log's recovery rule reads as never served (:mod:`syncer.volume.served`)."""
        d = self.snapshot_dir(snapshot_id)
        if not is_plain_file_name(snapshot_id) or os.path.islink(d) or not d.is_dir():
            raise NoSnapshotError(f"snapshot {snapshot_id} does not exist under {self.snapshots}")
        problem = self.layout_problem(self.snapshots)
        if problem:
            raise PublishError(f"current is not pointed at {snapshot_id}: {problem}; run `syncer repair`")
        self._log_serving(snapshot_id, why, user)
        tmp = self.root / f".current.tmp-{os.getpid()}-{secrets.token_hex(3)}"
        try:
            os.symlink(os.path.join("snapshots", snapshot_id), tmp)
            os.rename(tmp, self.current)
            fsync_dir(self.root)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise PublishError(f"could not point current at {snapshot_id}: {exc}") from exc

    def _log_serving(self, snapshot_id: str, why: str, user: str | None) -> None:
        now = clock.iso(clock.utcnow())
        entries, cur = [], self.current_id()
        if cur is not None and not self.served_log.exists():
            # An older volume: write down the order it was served in by the first release's rule first.
            seq = self.serving_order().sequence
            entries = [ServedEntry(sid, now, seq[k - 1] if k else None, "seed") for k, sid in enumerate(seq)]
        # who and why: what this process's lock record says (the writer holds the lock while it swaps);
        # imported here: the lock needs filelock, which readers (who never swap) do not install
        from syncer.volume.lock import lock_holder

        holder = lock_holder(self.lock_path)
        mine = holder.get("pid") == os.getpid()
        user = user or (holder.get("user") if mine else None)
        entries.append(ServedEntry(snapshot_id, now, cur, why, user, holder.get("trigger") if mine else None))
        try:
            self.served_log.append(entries)
        except OSError as exc:
            raise PublishError(
                f"could not record serving snapshot {snapshot_id} in {self.served_log.path}: {os_reason(exc)}; "
                "the current snapshot is unchanged"
            ) from exc

    def sweep(self) -> list[str]:
        """Remove leftovers of interrupted runs: staging folders and temporary links."""
        removed: list[str] = []
        problem = self.layout_problem(self.staging)
        if problem:  # never delete through a link out of the volume
            raise VolumeError(f"cannot sweep staging: {problem}; run `syncer repair` (moves it aside)")
        try:
            if self.staging.is_dir():
                for p in self.staging.iterdir():
                    remove_tree(p)
                    removed.append(f"staging/{p.name}")
        except OSError as exc:
            raise VolumeError(
                f"cannot sweep {self.staging}: {os_reason(exc)} ({exc.filename or self.staging}); "
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
                f"retention could not remove snapshot {snapshot_id} ({exc.filename or src}): {os_reason(exc)}; "
                "it is kept for now: fix the permissions of snapshots/ (`syncer repair`) and the next sync retries"
            ) from exc

    def retention(self, retain: int) -> list[str]:
        """Keep the ``retain`` snapshots served last (then never served ones, newest first), plus always
        ``current``, the snapshot served just before it and the one rollback goes to.

        Raises :class:`VolumeError` at the first snapshot it cannot remove (those before it are gone).
        It runs after the swap: what is published is complete either way."""
        # the trash goes into staging: never through a link out of the volume (a file there fails below)
        problem = self.layout_problem(self.snapshots) or (self.staging.is_symlink() and self.layout_problem(self.staging))
        if problem:
            raise VolumeError(f"retention removes nothing: {problem}; run `syncer repair`")
        infos = [i for i in self.list_snapshots() if not os.path.islink(i.path)]  # a planted link is not ours
        ranked = [i.id for i in self.ranked(infos)]
        cid = self.current_id()
        keep = set(ranked[:retain]) | {cid, self.previous_of(cid)}
        keep |= set([s for s in ranked if s != cid][:1])  # served just before current (or the newest other)
        removed = []
        for sid in [i.id for i in infos]:
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
                f"cannot move {path} aside to {aside}: {os_reason(exc)}; move or remove it by hand, then run `syncer repair`"
            ) from exc
        return aside

    def previous_of(self, snapshot_id: str | None) -> str | None:
        """The intact snapshot served before ``snapshot_id`` in the serving chain: where rollback goes."""
        infos = self.list_snapshots()
        intact = {i.id for i in infos if i.ok}
        chain = list(self.serving_order(infos).chain)
        below = chain[: chain.index(snapshot_id)] if snapshot_id in chain else chain
        return next((s for s in reversed(below) if s in intact and s != snapshot_id), None)


def _manifest_record(snapshot_dir: Path, data: dict[str, Any]) -> Manifest:
    try:
        return Manifest.from_json(data)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        path = snapshot_dir / MANIFEST
        raise PublishError(f"snapshot {snapshot_dir.name}: manifest {path} is malformed ({exc}); run `syncer repair`") from exc
