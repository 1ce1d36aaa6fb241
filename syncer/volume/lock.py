"""One writer at a time: an OS lock (``flock``) on ``<root>/.lock``.

The kernel releases it when the holder dies, even under ``kill -9``. The holder describes itself in
``.lock.json`` (pid, host, trigger, user, start time) so a second writer can name it; that file may
outlive a killed holder, which is harmless: only the OS lock decides who holds the volume.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import filelock

from syncer._exceptions import LockHeldError, VolumeError
from syncer.volume.manifest import strict_dumps

__all__ = ["lock_holder", "volume_lock"]

log = logging.getLogger("syncer")

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
    return (
        f"pid {holder.get('pid')} on {holder.get('host')} (trigger {holder.get('trigger')}"
        f"{', user ' + str(holder['user']) if holder.get('user') else ''}, started {holder.get('started_at')})"
    )


def _describe_self(lock_path: Path, info: dict[str, Any]) -> None:
    """Write who holds the lock next to it, for the message a second writer gets. Best effort: the
    lock itself is what keeps writers apart, and a full disk must not stop a sync here."""
    record = {**info, "pid": os.getpid(), "host": socket.gethostname()}
    side = lock_path.with_name(lock_path.name + ".json")
    tmp = side.with_name(side.name + f".tmp-{os.getpid()}")
    try:
        tmp.write_text(strict_dumps(record), encoding="utf-8")
        os.replace(tmp, side)
    except OSError as exc:
        log.warning("cannot record the lock holder in %s: %s", side, exc.strerror or exc, extra={"step": "lock"})
        with contextlib.suppress(OSError):
            tmp.unlink()


@contextlib.contextmanager
def volume_lock(lock_path: Path, info: dict[str, Any]) -> Iterator[None]:
    """Hold the volume's writer lock or raise :class:`LockHeldError` at once naming the holder."""
    if not _in_process.acquire(blocking=False):
        holder = _holder_soon(lock_path)
        raise LockHeldError(
            f"a sync is already running in this process: {describe_holder(holder)}; wait for it to finish", holder
        )
    try:
        lock = filelock.FileLock(str(lock_path), timeout=0, thread_local=False)
        try:
            lock.acquire()
        except filelock.Timeout:
            holder = _holder_soon(lock_path)
            raise LockHeldError(
                f"another sync holds the volume lock {lock_path}: {describe_holder(holder)}; "
                "wait for it to finish (the lock is released automatically if that process dies)",
                holder,
            ) from None
        except OSError as exc:
            raise VolumeError(
                f"cannot take the volume lock {lock_path}: {exc.strerror or exc}; check that the volume is mounted "
                "writable and its permissions (`syncer repair`)"
            ) from exc
        try:
            _describe_self(lock_path, info)
            yield
        finally:
            with contextlib.suppress(OSError):
                lock_path.with_name(lock_path.name + ".json").unlink()
            lock.release()
    finally:
        _in_process.release()
