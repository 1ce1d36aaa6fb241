"""Keeping the volume servable: rollback, repair and verify.

``repair`` runs under the volume lock (a running sync owns staging: then nothing is changed). Every
change is one line in ``actions``, logged, and recorded as one ``repair`` event in the run history.
A ``current`` that names an intact snapshot is left alone, even when a newer one exists: that is a
rollback, or a sync killed between publishing and the swap, and either way it is complete.
"""

from __future__ import annotations

import logging
import os
import stat

from syncer import _clock as clock
from syncer._clock import iso
from syncer._exceptions import (
    CurrentMovedError,
    HistoryCorruptError,
    HistoryError,
    LockHeldError,
    NoSnapshotError,
    PublishError,
    VolumeError,
)
from syncer.alerts import after_verify
from syncer.config import Config
from syncer.engine.results import RepairResult, RollbackResult, TableVerdict, VerifyReport
from syncer.volume.history import History
from syncer.volume.layout import SnapshotInfo, Volume, fsync_dir, permission_problems, seal, unexpected_files
from syncer.volume.lock import lock_file, volume_lock
from syncer.volume.served import LOG_MODE
from syncer.volume.verify import check_contents

__all__ = ["repair", "rollback", "verify"]

log = logging.getLogger("syncer")


def rollback(
    cfg: Config, to: str | None = None, *, user: str | None = None, expect_current: str | object | None = ...
) -> RollbackResult:
    """Point ``current`` at snapshot ``to`` (default: the one before the current one). With
    ``expect_current`` (what a preview showed), refuse with :class:`CurrentMovedError` when
    ``current`` is another snapshot by the time the volume lock is held."""
    vol = Volume(cfg.root)
    vol.ensure()
    info = {"trigger": "rollback", "user": user, "started_at": iso(clock.utcnow())}
    with volume_lock(vol.lock_path, info):
        cur = vol.current_id()
        if expect_current is not ... and cur != expect_current:
            raise CurrentMovedError(
                f"current moved from {expect_current or 'nothing'} to {cur or 'nothing'} since the preview "
                f"(another sync or rollback published); nothing was rolled back — review the rollback to {to} again"
            )
        target = to or vol.previous_of(cur)
        if target is None:
            raise NoSnapshotError("there is no earlier snapshot to roll back to; see `syncer snapshots`")
        if target == cur:
            raise PublishError(f"snapshot {target} is already current")
        t = vol.inspect(target, deep=True)  # every file's sha256: a byte changed since it was served is not served again
        if not vol.snapshot_dir(target).is_dir():
            known = ", ".join(i.id for i in vol.list_snapshots()) or "none"
            raise NoSnapshotError(f"snapshot {target} does not exist; retained snapshots: {known}")
        if not t.ok:
            raise PublishError(f"snapshot {target} is not intact ({t.error or '; '.join(t.problems)}); choose another")
        vol.point_current(target, why="rollback", user=user)
        log.info("rolled back current from %s to %s", cur, target, extra={"step": "rollback"})
        try:
            History(vol.db_path).event("rollback", iso(clock.utcnow()), user=user, **{"from": cur, "to": target})
        except HistoryError as exc:  # the rollback happened: say the audit entry is missing, do not undo it
            log.warning("rollback %s -> %s is not in the audit trail: %s", cur, target, exc, extra={"step": "rollback"})
            return RollbackResult(cur, target, warnings=(f"not recorded in the audit trail: {exc}",))
        return RollbackResult(cur, target)


def repair(cfg: Config, *, user: str | None = None, reason: str = "manual") -> RepairResult:
    """Sweep staging, restore read-only permissions, re-point a broken ``current`` at the newest intact snapshot."""
    vol = Volume(cfg.root)
    # Layout folders someone made unusable to their owner: give access back first, or nothing below works;
    # a layout folder replaced by a file, or by a link out of the volume, is moved aside (not ours to delete).
    actions = _restore_layout_access(vol)
    actions += _move_aside_bad_layout(vol)
    actions += _move_aside_bad_lock_folder(vol)
    vol.ensure()
    info = {"trigger": "repair", "user": user, "started_at": iso(clock.utcnow())}
    try:
        with volume_lock(vol.lock_path, info):
            return _repair_locked(vol, actions, user, reason)
    except LockHeldError:
        # A sync is running: it owns staging; only report, change nothing. (Nothing inside raises it.)
        return RepairResult(skipped="a sync is running; nothing repaired", current=vol.current_id())


def _repair_locked(vol: Volume, actions: list[str], user: str | None, reason: str) -> RepairResult:
    hist = History(vol.db_path)
    actions = [*actions, *_sweep(vol, hist), *_served_log(vol), *_reseal_snapshots(vol), *_fix_current(vol)]
    for a in actions:
        log.warning("repair: %s", a, extra={"step": "repair"})
    if actions:
        try:
            hist.event("repair", iso(clock.utcnow()), user=user, reason=reason, actions=actions)
        except HistoryError as exc:
            log.warning("repair: not recorded in the run history: %s", exc, extra={"step": "repair"})
    return RepairResult(actions=tuple(actions), current=vol.current_id())


def _sweep(vol: Volume, hist: History) -> list[str]:
    """Leftovers of interrupted runs, and their runs marked aborted; what cannot be done is an action line."""
    actions = []
    try:
        actions += [f"removed {p}" for p in vol.sweep()]
    except VolumeError as exc:
        actions.append(f"could not sweep staging: {exc}")
    if os.path.lexists(vol.db_path):
        why = "the process running it stopped before it finished (killed or crashed)"
        try:
            aborted = hist.abort_running(why, iso(clock.utcnow()), vol.current)
        except HistoryCorruptError as exc:  # a record, not a gate: keep the broken one aside, start anew
            actions.append(_history_aside(hist, exc))
        except HistoryError as exc:
            actions.append(f"could not mark interrupted runs as aborted: {exc}")
        else:
            if aborted:
                actions.append(f"marked {aborted} interrupted run(s) as aborted")
    return actions


def _served_log(vol: Volume) -> list[str]:
    """A served log that cannot be the log (a folder, a link: every swap fails on it) is moved aside, not
    deleted; the next swap starts a new one, seeded with the order the snapshots were made in. One its
    owner cannot write (chmod 0444) gets its mode back."""
    log_ = vol.served_log
    problem = log_.problem()
    if problem is None:
        if log_.path.is_file() and not os.access(log_.path, os.W_OK):
            try:
                os.chmod(log_.path, LOG_MODE)
            except OSError as exc:
                return [f"could not restore write access to {log_.path}: {exc.strerror}"]
            return [f"restored write access to {log_.path.name} (mode {LOG_MODE:o})"]
        return []
    stamp = clock.utcnow().strftime("%Y%m%dT%H%M%SZ")
    try:
        aside = vol.move_aside(log_.path, f"{log_.path.name}.broken-{stamp}")
    except VolumeError as exc:
        return [f"{problem}, and it could not be moved aside: {exc}"]
    return [f"{problem}; moved it to {aside.name}; the next swap starts a new served log"]


def _history_aside(hist: History, exc: HistoryCorruptError) -> str:
    try:
        aside = hist.move_aside(clock.utcnow().strftime("%Y%m%dT%H%M%SZ"))
    except HistoryError as err:
        return f"the run history is broken and could not be moved aside: {err}"
    return f"the run history was broken ({exc}); kept it as {aside.name if aside else '-'} and started a new one"


def _restore_layout_access(vol: Volume) -> list[str]:
    actions = []
    for d in (vol.root, vol.snapshots, vol.staging, vol.quarantine):
        try:
            mode = os.lstat(d).st_mode & 0o7777
        except OSError:
            continue
        if mode & 0o700 != 0o700:
            try:
                os.chmod(d, mode | 0o755)
                actions.append(f"restored access to {d.name}/ (mode {mode:o} -> {mode | 0o755:o})")
            except OSError as exc:
                actions.append(f"could not restore access to {d}: {exc.strerror}")
    return actions


def _move_aside_bad_layout(vol: Volume) -> list[str]:
    """``snapshots``/``staging``/``quarantine`` that are not folders of this volume; ``staging`` (scratch
    only) also when its owner cannot use it. ``ensure`` then makes fresh folders."""
    actions = []
    stamp = clock.utcnow().strftime("%Y%m%dT%H%M%SZ")
    for d in (vol.snapshots, vol.staging, vol.quarantine):
        problem = vol.layout_problem(d)
        usable = os.access(d, os.R_OK | os.W_OK | os.X_OK)
        if problem is None and d == vol.staging and d.is_dir() and not d.is_symlink() and not usable:
            st = os.lstat(d)
            problem = f"{d} cannot be used by this user (mode {st.st_mode & 0o7777:o}, owner uid {st.st_uid})"
        if problem is None:
            continue
        try:
            aside = vol.move_aside(d, f"{d.name}.moved-aside-{stamp}")
        except VolumeError as exc:
            actions.append(f"{problem}, and it could not be moved aside: {exc}")
            continue
        actions.append(f"{problem}; moved it to {aside.name} and made a new {d.name}/")
    return actions


def _move_aside_bad_lock_folder(vol: Volume) -> list[str]:
    """The writers' lock folder replaced by a file or a link: no writer can take the lock, repair
    included, so it is moved aside before the lock is taken (nothing can hold a lock in it)."""
    folder = lock_file(vol.lock_path).parent
    try:
        st = os.lstat(folder)
    except OSError:
        return []  # missing: the lock makes it; unreadable: the lock says so
    if stat.S_ISDIR(st.st_mode):
        return []
    what = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a folder"
    try:
        aside = vol.move_aside(folder, f"{folder.name}.moved-aside-{clock.utcnow().strftime('%Y%m%dT%H%M%SZ')}")
    except VolumeError as exc:
        return [f"the lock folder {folder} is {what}, and it could not be moved aside: {exc}"]
    return [f"the lock folder {folder} was {what}; moved it to {aside.name} and made a new one"]


def _reseal_snapshots(vol: Volume) -> list[str]:
    """Every snapshot folder, intact or not: a manifest made unreadable is exactly what this fixes."""
    try:
        entries = sorted(vol.snapshots.iterdir())
        # Never a link: sealing follows it, and a planted link must not make us chmod what it names.
        folders = [p for p in entries if not p.is_symlink() and p.is_dir() and not p.name.startswith(".")]
    except OSError as exc:
        return [f"could not list {vol.snapshots}: {exc.strerror}"]
    actions = []
    for folder in folders:
        try:
            changed = seal(folder)
            if changed:
                fsync_dir(folder)
                actions.append(f"reset permissions of snapshot {folder.name} ({changed} entries)")
        except OSError as exc:
            actions.append(f"could not reset permissions of {folder.name}: {exc.strerror}")
    return actions


def _fix_current(vol: Volume) -> list[str]:
    actions = []
    if vol.current.exists() and not vol.current.is_symlink():
        # Not ours to delete (someone's folder or file): move it aside so `current` can be a link again.
        try:
            aside = vol.move_aside(vol.current, f"current.not-a-link-{clock.utcnow().strftime('%Y%m%dT%H%M%SZ')}")
        except VolumeError as exc:
            return [f"current is not a symbolic link and could not be moved aside: {exc}"]
        actions.append(f"current was not a symbolic link; moved it to {aside.name}")
    cur = vol.current_id()
    cur_info = vol.inspect(cur) if cur else None
    if cur_info is not None and cur_info.ok:
        return actions
    why = _why_broken(vol, cur, cur_info)
    best = vol.newest_intact()
    if best is not None:
        vol.point_current(best.id, why="repair")
        actions.append(f"current was {why}; now points at {best.id}")
    elif cur is not None or vol.current.is_symlink():
        actions.append(f"current is {why} and no intact snapshot is left; a sync is needed")
    return actions


def _why_broken(vol: Volume, cur: str | None, info: SnapshotInfo | None) -> str:
    if cur is None:
        return vol.current_problem() or "missing"
    if not vol.snapshot_dir(cur).is_dir():
        return f"pointing at {cur}, which does not exist"
    problems = (info.error or "; ".join(info.problems)) if info else "unknown"
    return f"pointing at {cur}, which is broken ({problems})"


def verify(cfg: Config) -> VerifyReport:
    """Re-check every file of ``current`` against its manifest: presence, size, sha256, permissions, extra
    files, and what the files hold (rows, schema, parts)."""
    report = _verify(cfg)
    after_verify(cfg, report)  # a mismatch (and its end) alerts once; never raises
    return report


def _verify(cfg: Config) -> VerifyReport:
    vol = Volume(cfg.root)
    cur = vol.current_id()
    if cur is None:
        what = vol.current_problem() or "missing"
        return VerifyReport(
            False, None, (f"no current snapshot under {cfg.root} (current is {what}); run `syncer repair` or `syncer sync`",)
        )
    if not vol.snapshot_dir(cur).is_dir():
        return VerifyReport(False, cur, (f"current points at snapshot {cur}, which does not exist; run `syncer repair`",))
    info = vol.inspect(cur, deep=True)
    problems = [info.error] if info.error else list(info.problems)
    tables: dict[str, TableVerdict] = {}
    if info.manifest is not None:
        man = info.manifest
        if man.id != cur:
            problems.append(f"the manifest of snapshot {cur} names snapshot {man.id!r} (copied or edited)")
        problems += permission_problems(info.path)
        problems += unexpected_files(info.path, man.to_json())
        problems += [f"configured table {t.name!r} is not in snapshot {cur}" for t in cfg.tables if t.name not in man.tables]
        # the manifest held against what the files hold (rows, schema, parts): a hash says nothing of an edit
        contents = check_contents(info.path, man, skip=set(info.table_problems))
        problems += [p for ps in contents.values() for p in ps]
        for name, t in man.tables.items():
            # a table's verdict comes from the checks of its own files, not from matching messages
            ok = not info.table_problems.get(name) and not contents.get(name)
            tables[name] = TableVerdict(t.file, t.rows, t.sha256, ok=ok)
    return VerifyReport(not problems, cur, tuple(problems), tables)
