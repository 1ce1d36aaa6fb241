"""The engine unload's ``COPY ... TO`` in a process of its own (``python -m syncer.sources.duckdb_unload``).

DuckDB 2.0.0 does not survive a multi-threaded ``COPY ... TO`` Parquet that fails part-way: a value
the query cannot compute, or a full disk, half-way through ends either in a deadlock (the thread that
aborts the writes holds the async write queue's lock while it waits for the write tasks, which wait
for that lock: ``ManagedAsyncWriteStreamQueue::AbortWrites`` -> ``TaskExecutor::DrainTasks``) or in a
segmentation fault; measured here with 2 and 4 threads, one file or one per thread, with and without
a memory limit (``tests/test_engine_export.py`` keeps the cases). In a child, either costs the child
only: the table fails with one line naming what happened, keeps its old data, and the run goes on.

The child opens the warehouse read-only, as the run's own connection does: while the run holds the
file open read-only DuckDB's file lock keeps every writer out, so the child reads the run's moment --
provided the path still names the file the run holds (a file moved into its place is refused: the
child checks it against the run's open descriptors, ``/proc/<run>/fd``).
A hang is told from a long COPY by CPU time: a COPY that makes progress uses CPU; the deadlocked
child uses none, and is ended after :data:`STALL_S` seconds without any (a COPY waiting that long on
a disk that stopped answering is ended too: the stream path would wait on the same disk).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

__all__ = ["STALL_S", "UnloadCrashed", "run_copy"]

#: seconds without CPU time after which the child's COPY is taken for hung (DuckDB's deadlock)
STALL_S = 10.0
_POLL_S = 0.05


class UnloadCrashed(Exception):
    """The child died by a signal or hung; the message says which (the caller makes it a table's error)."""


def run_copy(
    path: str, sql: str, *, threads: int, memory_limit: str, stall_s: float | None = None, held: bool = False
) -> dict[str, Any]:
    """Run ``sql`` (a COPY) on ``path`` read-only in a child; its answer: ``{"ok": True}`` or
    ``{"ok": False, "kind": <duckdb exception class>, "message": ...}``. Raises :class:`UnloadCrashed`.
    ``held``: this process holds ``path`` open (the run's connection): the child refuses another file
    found at ``path`` (one moved into its place since)."""
    stall_s = STALL_S if stall_s is None else stall_s
    request = {"path": path, "sql": sql, "threads": threads, "memory_limit": memory_limit, "parent": os.getpid(), "held": held}
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncer.sources.duckdb_unload"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C at the terminal reaches the run, which ends this child
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(request).encode())
        proc.stdin.close()
        _wait(proc, stall_s)
        answer = proc.stdout.read().decode(errors="replace")
    finally:
        if proc.poll() is None:  # an interrupt or the watchdog in this process: the child goes with it
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        raise UnloadCrashed(f"DuckDB's COPY crashed ({name}): DuckDB 2.0 cannot end a COPY that fails part-way")
    try:
        out = json.loads(answer)
    except ValueError:
        raise UnloadCrashed(f"DuckDB's COPY ended without an answer (exit {proc.returncode})") from None
    return out if isinstance(out, dict) else {"ok": False, "kind": "Error", "message": str(out)}


def _wait(proc: subprocess.Popen[bytes], stall_s: float) -> None:
    cpu, since = _cpu(proc.pid), time.monotonic()
    while proc.poll() is None:
        time.sleep(_POLL_S)
        now = _cpu(proc.pid)
        if now != cpu:
            cpu, since = now, time.monotonic()
        elif time.monotonic() - since > stall_s:
            proc.kill()
            proc.wait()
            raise UnloadCrashed(
                f"DuckDB's COPY stopped ({stall_s:g} s without CPU time, its deadlock after a COPY fails part-way) and was ended"
            )


def _cpu(pid: int) -> int | None:
    """The process's user+system clock ticks (None where /proc cannot say: then no stall is seen)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


def _replaced(path: str) -> str:
    return (
        f"the warehouse file {path} was replaced while the run read it (the file there now is not the one the run "
        "holds open), so this table would come from another file than the run's other tables; nothing of it is "
        "published; run the sync again once the file stays put"
    )


def _held_by(parent: int, path: str) -> bool:
    """Is the file at ``path`` the one the run (``parent``) holds open? The child opens the warehouse by
    its path: a file put there since the run opened its own (``mv copy warehouse.duckdb``) would give
    this table another moment than every other table of the run (and than its count and profile)."""
    try:
        here = os.stat(path)
        fds = os.listdir(f"/proc/{parent}/fd")
    except OSError:
        return not os.path.exists(f"/proc/{parent}")  # no /proc to ask: as before; the file gone: not held
    for fd in fds:
        try:
            st = os.stat(f"/proc/{parent}/fd/{fd}")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (here.st_dev, here.st_ino):
            return True
    return False


def _child() -> None:
    request = json.loads(sys.stdin.read())
    from syncer._child import adopt

    adopt(None, request["parent"])  # dies with the run (PR_SET_PDEATHSIG), never outlives it
    import duckdb

    try:
        con = duckdb.connect(
            request["path"], read_only=True, config={"threads": request["threads"], "memory_limit": request["memory_limit"]}
        )
        if request.get("held") and not _held_by(request["parent"], request["path"]):
            sys.stdout.write(json.dumps({"ok": False, "kind": "IOException", "message": _replaced(request["path"])}))
            sys.stdout.flush()
            os._exit(0)
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET preserve_insertion_order = false")
        settings = con.execute("SELECT current_setting('threads'), current_setting('preserve_insertion_order')").fetchall()[0]
        con.execute(request["sql"]).fetchall()
        out: dict[str, Any] = {"ok": True, "threads": settings[0], "preserve_insertion_order": settings[1]}
    except duckdb.Error as exc:
        out = {"ok": False, "kind": type(exc).__name__, "message": str(exc)}
    sys.stdout.write(json.dumps(out))
    sys.stdout.flush()
    os._exit(0)  # no teardown: after a failed COPY, DuckDB's destructors are where it can still hang


if __name__ == "__main__":
    _child()
