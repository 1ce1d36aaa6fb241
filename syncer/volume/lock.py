"""One writer at a time: an OS lock (``flock``) on ``<root>/.writer/lock``, a file no app user can open.

The kernel releases it when the holder dies, even under ``kill -9``. The holder describes itself in
``.lock.json`` (pid, host, trigger, user, start time) so a second writer can name it; that file may
outlive a killed holder, which is harmless: only the OS lock decides who holds the volume.

Why a private folder: ``flock`` works on any descriptor, a read-only one included, so a lock file an
app user may open is a lock an app user may take, and a sync then refuses to start for as long as
that user likes. The lock file is ``0600`` in a ``0700`` folder, both the syncing user's: nobody
else can open it, whatever its mode, so nobody else can hold it. (The first releases locked
``<root>/.lock``, a 0644 file; it is no longer used and may be deleted.)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from syncer import _child as supervise
from syncer._exceptions import LockHeldError, VolumeError
from syncer.volume.manifest import strict_dumps

__all__ = ["PRIVATE_DIR", "lock_file", "lock_holder", "volume_lock"]

log = logging.getLogger("syncer")

#: the folder of the writers' lock file under the volume root (0700: app users cannot enter it)
PRIVATE_DIR = ".writer"

# flock is per open file, so two threads of one process would each get their own lock on the same
# file only if they open it separately; this guard makes the in-process case explicit and cheap.
_in_process = threading.Lock()


def lock_holder(lock_path: Path) -> dict[str, Any]:
    try:
        return json.loads(lock_path.with_name(lock_path.name + ".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _holder_soon(lock_path: Path, wait: float = 0.5) -> dict[str, Any]:
    """The holder writes its description just after it takes the lock; give that a moment to appear."""
    deadline = time.monotonic() + wait
    holder = lock_holder(lock_path)
    while not holder and time.monotonic() < deadline:
        time.sleep(0.01)
        holder = lock_holder(lock_path)
    return holder


def describe_holder(holder: dict[str, Any]) -> str:
    if not holder:
        return "another process (no holder details recorded)"
    supervisor = f" (its supervisor: pid {holder['supervisor_pid']})" if holder.get("supervisor_pid") else ""
    return (
        f"pid {holder.get('pid')}{supervisor} on {holder.get('host')} (trigger {holder.get('trigger')}"
        f"{', user ' + str(holder['user']) if holder.get('user') else ''}, started {holder.get('started_at')})"
    )


def _describe_self(lock_path: Path, info: dict[str, Any]) -> None:
    """Write who holds the lock next to it, for the message a second writer gets. Best effort: the
    lock itself is what keeps writers apart, and a full disk must not stop a sync here."""
    record = {**info, "pid": os.getpid(), "host": socket.gethostname()}
    if supervise.supervisor_pid is not None:  # the `syncer` process that runs this one (it holds no lock)
        record["supervisor_pid"] = supervise.supervisor_pid
    side = lock_path.with_name(lock_path.name + ".json")
    tmp = side.with_name(side.name + f".tmp-{os.getpid()}")
    try:
        tmp.write_text(strict_dumps(record), encoding="utf-8")
        os.replace(tmp, side)
    except OSError as exc:
        log.warning("cannot record the lock holder in %s: %s", side, exc.strerror or exc, extra={"step": "lock"})
        with contextlib.suppress(OSError):
            tmp.unlink()


def lock_file(lock_path: Path) -> Path:
    """The file the writers ``flock`` for the volume whose lock is named ``lock_path`` (``<root>/.lock``)."""
    return lock_path.parent / PRIVATE_DIR / "lock"


def _open_private(lock_path: Path) -> int:
    """A read-write descriptor of the lock file, made (or kept) private: folder 0700, file 0600."""
    path = lock_file(lock_path)
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(path.parent, 0o700)
        st = os.lstat(path.parent)
        if not stat.S_ISDIR(st.st_mode):
            raise OSError(errno.ENOTDIR, "not a folder (something else was put in its place)", str(path.parent))
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.chmod(path.parent, 0o700)  # opened up by hand: close it before anyone else gets in
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise VolumeError(
            f"cannot take the volume lock {path}: {exc.strerror or exc} ({exc.filename or path}); check that the "
            "volume is mounted writable and owned by the syncing user, then run `syncer repair`"
        ) from exc
    with contextlib.suppress(OSError):
        if stat.S_IMODE(os.fstat(fd).st_mode) != 0o600:
            os.fchmod(fd, 0o600)
    return fd


@contextlib.contextmanager
def _flock(lock_path: Path) -> Iterator[None]:
    """Hold the OS lock or raise :class:`LockHeldError` at once naming the holder."""
    fd = _open_private(lock_path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder_soon(lock_path)
            raise LockHeldError(
                f"another sync holds the volume lock {lock_file(lock_path)}: {describe_holder(holder)}; "
                "wait for it to finish (the lock is released automatically if that process dies)",
                holder,
            ) from None
        except OSError as exc:
            raise VolumeError(
                f"cannot take the volume lock {lock_file(lock_path)}: {exc.strerror or exc}; check that the volume "
                "is mounted writable and its permissions (`syncer repair`)"
            ) from exc
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the flock


@contextlib.contextmanager
def volume_lock(lock_path: Path, info: dict[str, Any]) -> Iterator[None]:
    """Hold the volume's writer lock or raise :class:`LockHeldError` at once naming the holder."""
    if not _in_process.acquire(blocking=False):
        holder = _holder_soon(lock_path)
        raise LockHeldError(
            f"a sync is already running in this process: {describe_holder(holder)}; wait for it to finish", holder
        )
    try:
        with _flock(lock_path):
            try:
                _describe_self(lock_path, info)
                yield
            finally:
                with contextlib.suppress(OSError):
                    lock_path.with_name(lock_path.name + ".json").unlink()
    finally:
        _in_process.release()
