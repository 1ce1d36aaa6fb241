"""Files and folders of the volume: read-only modes, durability, removal.

Published files are 0444 and snapshot folders 0555 (:func:`seal`); :func:`permission_problems`
finds what is not; :func:`fsync_tree` / :func:`fsync_dir` make a folder durable before it is
published; :func:`remove_tree` deletes a sealed folder as its (non-root) owner.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from syncer._exceptions import PublishError

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "carry_over",
    "fsync_dir",
    "fsync_tree",
    "os_reason",
    "permission_problems",
    "remove_tree",
    "seal",
]

FILE_MODE = 0o444
DIR_MODE = 0o555


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: fsyncs in flight at once: ext4/xfs commit the journal once for all the fsyncs waiting on it, so
#: many small files cost a few commits instead of one each (200 small tables: about 5x faster)
_FSYNC_THREADS = 8


def fsync_tree(folder: Path, *, top: bool = True) -> None:
    """The snapshot's one fsync plan: every regular file under ``folder`` once (several at a time:
    the writers leave it to this), then every folder once, deepest first (``top=False``: not
    ``folder`` itself, for a caller that fsyncs it after moving it). The first error is raised."""
    files: list[str] = []
    folders: list[str] = []
    for dirpath, _dirnames, filenames in os.walk(folder, topdown=False, onerror=_raise):
        files += [p for p in (os.path.join(dirpath, n) for n in filenames) if not os.path.islink(p)]
        folders.append(dirpath)
    if len(files) > 1:
        # leaving the block waits for every fsync; map raises the first error in file order
        with ThreadPoolExecutor(min(_FSYNC_THREADS, len(files)), thread_name_prefix="syncer-fsync") as pool:
            list(pool.map(_fsync_file, files))
    else:
        for p in files:
            _fsync_file(p)
    for d in folders if top else folders[:-1]:
        fsync_dir(Path(d))


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _raise(exc: OSError) -> None:
    raise exc


def os_reason(exc: OSError) -> str:
    """An OSError in words an operator acts on (ENOSPC: "no space left on device ... free space")."""
    import errno

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
            f"cannot carry {src.name} over from snapshot {src.parent.name} into {dst.parent}: {os_reason(exc)}; "
            "nothing was published, the current snapshot is unchanged"
        ) from exc


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
