"""Run history and audit trail in SQLite (WAL) on the volume.

Tables: ``runs`` (one per sync/startup), ``table_results`` (rows, bytes, time per step), ``checks``
(every validation result) and ``events`` (rollback, repair, manual sync ... with who did it). WAL mode
lets readers (status, pages) read while a sync writes; every write is a short transaction.

A sync writes twice, each time on one connection (an open costs a schema check, a close a WAL
checkpoint): its start (:meth:`History.held` around the writes) and its outcome, in one transaction
(:meth:`History.record_outcome`); until then its ``running`` row is the truth (the next run closes it if
the process died). A connection is never held across the export: a file replaced meanwhile (a repair,
damage) must be seen as it is, and closing a connection writes its WAL back into the file.

Every sqlite3 error, opening, reading or writing, is raised as :class:`HistoryError` naming the
file and the way out. The history is bookkeeping: a caller that already published decides whether
such an error fails anything (the engine logs it and reports it; the snapshot stays published).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from syncer._exceptions import HistoryCorruptError, HistoryError
from syncer.volume.manifest import strict_dumps

__all__ = ["History"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    snapshot_id TEXT,
    trigger TEXT NOT NULL,
    user TEXT,
    host TEXT,
    pid INTEGER,
    tables_requested TEXT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    error TEXT,
    rows INTEGER DEFAULT 0,
    bytes INTEGER DEFAULT 0,
    duration_s REAL,
    steps TEXT
);
CREATE INDEX IF NOT EXISTS runs_started ON runs(started_at);
CREATE TABLE IF NOT EXISTS table_results (
    run_id TEXT NOT NULL REFERENCES runs(id),
    table_name TEXT NOT NULL,
    status TEXT NOT NULL,
    rows INTEGER,
    bytes INTEGER,
    export_s REAL,
    validate_s REAL,
    total_s REAL,
    rows_per_s REAL,
    error TEXT,
    attempts TEXT,
    quarantined INTEGER DEFAULT 0,
    PRIMARY KEY (run_id, table_name)
);
CREATE TABLE IF NOT EXISTS checks (
    run_id TEXT NOT NULL REFERENCES runs(id),
    table_name TEXT,
    name TEXT NOT NULL,
    ok INTEGER NOT NULL,
    severity TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS checks_run ON checks(run_id);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    user TEXT,
    run_id TEXT,
    detail TEXT
);
"""


class History:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        #: the write connection kept open by :meth:`held` (on the thread that holds it), opened lazily
        self._held: sqlite3.Connection | None = None
        self._holder: int | None = None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Writes inside the block (on this thread) share one connection, opened at the first write
        and closed at the end. A failed write drops it: the next write opens a new one, as without."""
        if self._holder is not None:
            yield
            return
        self._holder = threading.get_ident()
        try:
            yield
        finally:
            self._holder = None
            self._drop_held()

    def _drop_held(self) -> None:
        con, self._held = self._held, None
        if con is not None:
            with contextlib.suppress(sqlite3.Error):
                con.close()

    @contextlib.contextmanager
    def _connect(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        """A connection; every sqlite3 error inside the ``with`` block becomes a :class:`HistoryError`."""
        keep = write and self._holder == threading.get_ident()
        try:
            con = self._held if keep and self._held is not None else self._open(write)
        except (sqlite3.Error, OSError) as exc:
            raise self._error(exc, "opened") from exc
        if keep:
            self._held = con
        try:
            yield con
        except sqlite3.Error as exc:
            if keep:
                self._drop_held()  # an open transaction is rolled back with it
            raise self._error(exc, "written" if write else "read") from exc
        except BaseException:
            if keep and con.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    con.execute("ROLLBACK")
            raise
        finally:
            if not keep:
                con.close()

    def _error(self, exc: BaseException, what: str) -> HistoryError:
        if _corrupt(exc) or self.path.is_dir() or self.path.is_symlink():
            return HistoryCorruptError(
                f"run history {self.path} cannot be {what}: {_reason(exc, self.path)}; run `syncer repair` (it keeps "
                "the broken file aside and starts a new history; published snapshots are not affected)"
            )
        return HistoryError(
            f"run history {self.path} cannot be {what}: {_reason(exc, self.path)}; check free space and permissions "
            "on the volume (published snapshots are not affected)"
        )

    def _open(self, write: bool) -> sqlite3.Connection:
        if self.path.is_symlink():  # never read or written through a link (it may lead out of the volume)
            raise OSError(errno.ELOOP, "it is a symbolic link, not the volume's own file", str(self.path))
        if not write and not self.path.exists():
            # Reading never creates the database (a status on an empty volume stays empty).
            con = sqlite3.connect(":memory:")
            con.executescript(_SCHEMA)
        elif not write:
            con = _open_read_only(self.path)
        else:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            try:
                con.execute("PRAGMA journal_mode=WAL")
                con.execute("PRAGMA synchronous=NORMAL")
                con.execute("PRAGMA busy_timeout=30000")
                con.executescript(_SCHEMA)
                _migrate(con)
            except BaseException:
                con.close()
                raise
        con.row_factory = sqlite3.Row
        return con

    def move_aside(self, at: str) -> Path | None:
        """Keep a broken history as ``syncer.db.broken-<at>`` (with its -wal/-shm); the next write starts a new one.

        Returns where it went (None when there was nothing); raises :class:`HistoryError`."""
        if not os.path.lexists(self.path):
            return None
        aside = self.path.with_name(f"{self.path.name}.broken-{at}")
        try:
            for suffix in ("-wal", "-shm", "-journal"):
                side = self.path.with_name(self.path.name + suffix)
                if os.path.lexists(side):
                    os.replace(side, aside.with_name(aside.name + suffix))
            os.replace(self.path, aside)
        except OSError as exc:
            raise HistoryError(
                f"cannot move the broken run history {self.path} aside to {aside}: {exc.strerror or exc}; "
                "move or remove it by hand"
            ) from exc
        return aside

    def _write(self, sql: str, params: tuple[Any, ...] | list[tuple[Any, ...]], many: bool = False) -> None:
        with self._connect(write=True) as con:
            con.execute("BEGIN IMMEDIATE")
            (con.executemany if many else con.execute)(sql, params)
            con.execute("COMMIT")

    # --- runs -------------------------------------------------------------------------------------

    def start_run(self, run: dict[str, Any], *, exists_ok: bool = False) -> None:
        """Record a run as running (``exists_ok``: keep the row if it is there already)."""
        sql = _START_SQL.replace("INSERT", "INSERT OR IGNORE", 1) if exists_ok else _START_SQL
        self._write(sql, _start_params(run))

    def finish_run(self, run_id: str, **fields: Any) -> None:
        if "steps" in fields:
            fields["steps"] = strict_dumps(fields["steps"])
        cols = ", ".join(f"{k} = ?" for k in fields)
        self._write(f"UPDATE runs SET {cols} WHERE id = ?", (*fields.values(), run_id))

    def abort_running(self, reason: str, finished_at: str, current: Path | None = None) -> int:
        """Close the runs still marked running (call it holding the volume lock: their process is gone).

        A run whose snapshot ``current`` (the volume's link) names published it (snapshot id = run id)
        and only its own record was not finished: it is closed as ``ok`` (``partial`` when a table it
        asked for kept its previous data) with its snapshot id. The others are ``aborted``, ``reason``."""
        with self._connect(write=True) as con:
            rows = con.execute("SELECT id, tables_requested FROM runs WHERE status = 'running'").fetchall()
            for run_id, requested in rows:
                published = _published_status(current, run_id, requested)
                if published is None:
                    con.execute(
                        "UPDATE runs SET status = 'aborted', error = ?, finished_at = ? WHERE id = ?",
                        (reason, finished_at, run_id),
                    )
                else:
                    note = f"published snapshot {run_id}; the run's own record was not finished (the history was not writable)"
                    con.execute(
                        "UPDATE runs SET status = ?, snapshot_id = ?, error = ?, finished_at = ? WHERE id = ?",
                        (published, run_id, note, finished_at, run_id),
                    )
            _record_unrecorded_current(con, current)
            return len(rows)

    def record_table(self, run_id: str, result: dict[str, Any], checks: list[dict[str, Any]]) -> None:
        with self._connect(write=True) as con:
            con.execute("BEGIN IMMEDIATE")
            _insert_table(con, run_id, result, checks)
            con.execute("COMMIT")

    def record_outcome(
        self,
        run: dict[str, Any],
        tables: list[tuple[dict[str, Any], list[dict[str, Any]]]],
        run_checks: list[dict[str, Any]],
        **finish: Any,
    ) -> None:
        """A run's outcome in ONE transaction: its row (added if its start never landed), each table's
        result and checks, the run's own checks and its final fields (``status``, ``finished_at`` ...)."""
        if "steps" in finish:
            finish["steps"] = strict_dumps(finish["steps"])
        run_id = run["id"]
        with self._connect(write=True) as con:
            con.execute("BEGIN IMMEDIATE")
            con.execute(_START_SQL.replace("INSERT", "INSERT OR IGNORE", 1), _start_params(run))
            for result, checks in tables:
                _insert_table(con, run_id, result, checks)
            con.executemany(_CHECK_SQL, [_check_row(run_id, None, c) for c in run_checks])
            if finish:
                cols = ", ".join(f"{k} = ?" for k in finish)
                con.execute(f"UPDATE runs SET {cols} WHERE id = ?", (*finish.values(), run_id))
            con.execute("COMMIT")

    def record_checks(self, run_id: str, table: str | None, checks: list[dict[str, Any]]) -> None:
        self._write(_CHECK_SQL, [_check_row(run_id, table, c) for c in checks], many=True)

    def event(self, kind: str, at: str, *, user: str | None = None, run_id: str | None = None, **detail: Any) -> None:
        self._write(
            "INSERT INTO events (at, kind, user, run_id, detail) VALUES (?,?,?,?,?)",
            (at, kind, user, run_id, strict_dumps(detail, default=str)),
        )

    # --- reading ----------------------------------------------------------------------------------

    def runs(self, limit: int = 50) -> list[dict[str, Any]]:
        with self._connect(write=False) as con:
            rows = con.execute("SELECT * FROM runs ORDER BY started_at DESC LIMIT ?", (limit,)).fetchall()
        return [_run_dict(r) for r in rows]

    def last_run(self) -> dict[str, Any] | None:
        runs = self.runs(limit=1)
        return runs[0] if runs else None

    def table_results(self, run_id: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        with self._connect(write=False) as con:
            if run_id:
                rows = con.execute("SELECT * FROM table_results WHERE run_id = ?", (run_id,)).fetchall()
            else:
                rows = con.execute(
                    "SELECT t.*, r.started_at FROM table_results t JOIN runs r ON r.id = t.run_id "
                    "ORDER BY r.started_at DESC LIMIT ?",
                    (limit,),
                ).fetchall()
        return [{**dict(r), "attempts": json.loads(r["attempts"] or "[]")} for r in rows]

    def checks(self, run_id: str) -> list[dict[str, Any]]:
        with self._connect(write=False) as con:
            rows = con.execute("SELECT * FROM checks WHERE run_id = ?", (run_id,)).fetchall()
        return [{**dict(r), "ok": bool(r["ok"])} for r in rows]

    def events(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._connect(write=False) as con:
            rows = con.execute("SELECT * FROM events ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [{**dict(r), "detail": json.loads(r["detail"] or "{}")} for r in rows]


_START_SQL = "INSERT INTO runs (id, trigger, user, host, pid, tables_requested, started_at, status) VALUES (?,?,?,?,?,?,?,?)"
_CHECK_SQL = "INSERT INTO checks VALUES (?,?,?,?,?,?)"


def _start_params(run: dict[str, Any]) -> tuple[Any, ...]:
    requested = strict_dumps(run.get("tables_requested"))
    return (run["id"], run["trigger"], run.get("user"), run.get("host"), run.get("pid"), requested, run["started_at"], "running")


def _check_row(run_id: str, table: str | None, c: dict[str, Any]) -> tuple[Any, ...]:
    return (run_id, table, c["name"], int(bool(c["ok"])), c.get("severity", "error"), c.get("detail"))


def _insert_table(con: sqlite3.Connection, run_id: str, result: dict[str, Any], checks: list[dict[str, Any]]) -> None:
    con.execute(
        "INSERT OR REPLACE INTO table_results (run_id, table_name, status, rows, bytes, export_s, validate_s,"
        " total_s, rows_per_s, error, attempts, quarantined) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            run_id,
            result["table"],
            result["status"],
            result.get("rows"),
            result.get("bytes"),
            result.get("export_s"),
            result.get("validate_s"),
            result.get("total_s"),
            result.get("rows_per_s"),
            result.get("error"),
            strict_dumps(result.get("attempts") or []),
            result.get("quarantined") or 0,
        ),
    )
    con.executemany(_CHECK_SQL, [_check_row(run_id, result["table"], c) for c in checks])


def _open_read_only(path: Path) -> sqlite3.Connection:
    """Read without writing anything: ``mode=ro``, and ``immutable=1`` where even that needs a write
    (a WAL database on a read-only volume cannot create its ``-shm`` file)."""
    uri = "file:" + urllib.parse.quote(str(path.resolve()))
    for flags in ("?mode=ro", "?immutable=1"):
        con = sqlite3.connect(uri + flags, uri=True, timeout=30, isolation_level=None)
        try:
            con.execute("PRAGMA busy_timeout=30000")
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
            # an empty database (0 bytes, never written) reads as empty; a missing table is damage: it fails
            if not con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'").fetchone():
                con.executescript(_SCHEMA.replace("CREATE TABLE IF NOT EXISTS ", "CREATE TEMP TABLE IF NOT EXISTS "))
            return con
        except sqlite3.OperationalError as exc:
            con.close()
            if flags == "?immutable=1" or _corrupt(exc):
                raise
        except BaseException:
            con.close()
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def _corrupt(exc: BaseException) -> bool:
    """Is this the file itself (not space, permissions or a busy writer)?"""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.DatabaseError) and any(
        w in text for w in ("not a database", "malformed", "file is encrypted", "disk image")
    )


def _reason(exc: BaseException, path: Path) -> str:
    if path.is_symlink():
        return f"it is a symbolic link to {os.readlink(path)!r}, not the volume's own file"
    if path.is_dir():
        return "it is a folder, not a database file"
    return str(getattr(exc, "strerror", None) or exc)


def _record_unrecorded_current(con: sqlite3.Connection, current: Path | None) -> None:
    """A run that published while the history could not be written at all has no row: add it from its
    manifest (snapshot id = run id), so the history never misses what is served."""
    if current is None:
        return
    try:
        sid = os.path.basename(os.readlink(current))
        manifest = json.loads((current / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not isinstance(manifest, dict) or manifest.get("id") != sid:
        return
    if con.execute("SELECT 1 FROM runs WHERE id = ?", (sid,)).fetchone():
        return
    run: dict[str, Any] = manifest["run"] if isinstance(manifest.get("run"), dict) else {}
    requested = run.get("tables_requested")
    status = _published_status(current, sid, strict_dumps(requested) if requested else None) or "ok"
    con.execute(
        "INSERT INTO runs (id, snapshot_id, trigger, user, tables_requested, started_at, finished_at, status, error)"
        " VALUES (?,?,?,?,?,?,?,?,?)",
        (
            sid,
            sid,
            str(run.get("trigger") or "unknown"),
            run.get("user"),
            strict_dumps(requested),
            str(manifest.get("created_at") or ""),
            manifest.get("created_at"),
            status,
            f"published snapshot {sid}; recorded by a later run (the run itself could not write the history)",
        ),
    )


def _published_status(current: Path | None, run_id: str, requested: str | None) -> str | None:
    """``ok`` or ``partial`` if ``current`` names the run's snapshot, else None (a snapshot folder alone
    is no proof: a run killed between the rename and the swap leaves one that was never served)."""
    if current is None:
        return None
    try:
        if os.path.basename(os.readlink(current)) != run_id:
            return None
        manifest = json.loads((current / "manifest.json").read_text(encoding="utf-8"))
        tables = manifest["tables"]
        wanted = json.loads(requested) if requested else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if manifest.get("id") != run_id or not isinstance(tables, dict):
        return None
    kept = [n for n, t in tables.items() if isinstance(t, dict) and t.get("status") == "carried_over" and t.get("failed_at")]
    return "partial" if any(wanted is None or n in wanted for n in kept) else "ok"


def _migrate(con: sqlite3.Connection) -> None:
    """Columns added after the first release (CREATE TABLE IF NOT EXISTS does not add them)."""
    have = {row[1] for row in con.execute("PRAGMA table_info(table_results)")}
    for col, decl in (("attempts", "TEXT"), ("quarantined", "INTEGER DEFAULT 0")):
        if col not in have:
            con.execute(f"ALTER TABLE table_results ADD COLUMN {col} {decl}")


def _run_dict(r: sqlite3.Row) -> dict[str, Any]:
    d = dict(r)
    for key in ("tables_requested", "steps"):
        if d.get(key):
            d[key] = json.loads(d[key])
    return d
