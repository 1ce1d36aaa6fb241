"""Alert state and the alert log, in the run history database (``syncer.db``), tables of their own.

``alert_state`` keeps the last known state per subject (``run``, ``table:<name>:freshness``,
``table:<name>:quarantine``, ``verify``, ``startup``). :meth:`AlertStore.transitions` compares new
observations with it in one ``BEGIN IMMEDIATE`` transaction, so two processes observing the same
change still alert once. ``alerts`` holds one row per alert and channel: when, what, where it
went, delivered or the error.

Every sqlite3 error becomes :class:`AlertStoreError`; callers log it once and carry on (alerting is
never a gate on a sync).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syncer._exceptions import HistoryError

__all__ = ["Alert", "AlertRow", "AlertStore", "AlertStoreError", "Observation"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_state (
    subject TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    since TEXT NOT NULL,
    message TEXT
);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    subject TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    previous TEXT,
    message TEXT NOT NULL,
    channel TEXT NOT NULL,
    delivered INTEGER,
    attempts INTEGER DEFAULT 0,
    error TEXT,
    delivered_at TEXT
);
CREATE INDEX IF NOT EXISTS alerts_at ON alerts(at);
"""


class AlertStoreError(HistoryError):
    """The alert tables of the run history cannot be read or written."""


@dataclass(frozen=True)
class Observation:
    """What a subject looks like now; ``bad`` states alert, a good one after a bad one is a recovery."""

    subject: str
    state: str
    bad: bool
    message: str


@dataclass(frozen=True)
class Alert:
    """One change of state worth telling someone about."""

    at: str
    subject: str
    #: problem (a good or unknown state turned bad, or one bad state turned into another) | recovered
    kind: str
    state: str
    previous: str | None
    message: str

    def title(self) -> str:
        return f"{'RECOVERED' if self.kind == 'recovered' else 'PROBLEM'} {self.subject}: {self.state}"

    def text(self) -> str:
        return f"[Volume Data Sync] {self.title()} — {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {
            "source": "volume-data-sync",
            "at": self.at,
            "subject": self.subject,
            "kind": self.kind,
            "state": self.state,
            "previous": self.previous,
            "message": self.message,
            "text": self.text(),
        }


@dataclass(frozen=True)
class AlertRow:
    """One alert on one channel, as the admin app lists it."""

    id: int
    at: str
    subject: str
    kind: str
    state: str
    previous: str | None
    message: str
    channel: str
    #: True delivered, False gave up (see error), None still pending (or the process ended first)
    delivered: bool | None
    attempts: int
    error: str | None
    delivered_at: str | None


class AlertStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @contextlib.contextmanager
    def _connect(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        try:
            if not write and not self.path.exists():
                con = sqlite3.connect(":memory:")  # reading never creates the database
            else:
                con = sqlite3.connect(self.path, timeout=10, isolation_level=None)
                con.execute("PRAGMA busy_timeout=10000")
            con.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise AlertStoreError(
                f"alert log in {self.path} cannot be opened: {exc}; alerts are not recorded or sent until it is fixed "
                "(check the volume, or move the file aside; published snapshots are not affected)"
            ) from exc
        con.row_factory = sqlite3.Row
        try:
            yield con
        except sqlite3.Error as exc:
            raise AlertStoreError(
                f"alert log in {self.path} cannot be {'written' if write else 'read'}: {exc}; check free space and "
                "permissions on the volume (published snapshots are not affected)"
            ) from exc
        finally:
            con.close()

    def transitions(self, observations: Sequence[Observation], at: str) -> list[Alert]:
        """Store the new states; the alerts their changes call for (a first good state is silent)."""
        alerts: list[Alert] = []
        with self._connect(write=True) as con:
            con.execute("BEGIN IMMEDIATE")
            known = {r["subject"]: r["state"] for r in con.execute("SELECT subject, state FROM alert_state")}
            for obs in observations:
                before = known.get(obs.subject)
                if before == obs.state:
                    continue
                con.execute(
                    "INSERT OR REPLACE INTO alert_state (subject, state, since, message) VALUES (?,?,?,?)",
                    (obs.subject, obs.state, at, obs.message),
                )
                known[obs.subject] = obs.state
                if obs.bad:
                    alerts.append(Alert(at, obs.subject, "problem", obs.state, before, obs.message))
                elif before is not None and _was_bad(con, obs.subject):
                    alerts.append(Alert(at, obs.subject, "recovered", obs.state, before, obs.message))
            con.execute("COMMIT")
        return alerts

    def record(self, alert: Alert, channel: str, *, delivered: bool | None = None, error: str | None = None) -> int:
        with self._connect(write=True) as con:
            cur = con.execute(
                "INSERT INTO alerts (at, subject, kind, state, previous, message, channel, delivered, error,"
                " delivered_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    alert.at,
                    alert.subject,
                    alert.kind,
                    alert.state,
                    alert.previous,
                    alert.message,
                    channel,
                    None if delivered is None else int(delivered),
                    error,
                    alert.at if delivered else None,
                ),
            )
            return int(cur.lastrowid or 0)

    def delivered(self, row_id: int, *, ok: bool, attempts: int, error: str | None, at: str) -> None:
        with self._connect(write=True) as con:
            con.execute(
                "UPDATE alerts SET delivered = ?, attempts = ?, error = ?, delivered_at = ? WHERE id = ?",
                (int(ok), attempts, error, at if ok else None, row_id),
            )

    def recent(self, limit: int = 200) -> list[AlertRow]:
        with self._connect(write=False) as con:
            rows = con.execute("SELECT * FROM alerts ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [AlertRow(**{**dict(r), "delivered": None if r["delivered"] is None else bool(r["delivered"])}) for r in rows]

    def states(self) -> dict[str, str]:
        with self._connect(write=False) as con:
            return {r["subject"]: r["state"] for r in con.execute("SELECT subject, state FROM alert_state")}


def _was_bad(con: sqlite3.Connection, subject: str) -> bool:
    """A recovery is news only after a problem was alerted (not after a silent first state)."""
    row = con.execute("SELECT kind FROM alerts WHERE subject = ? ORDER BY id DESC LIMIT 1", (subject,)).fetchone()
    return row is not None and row["kind"] == "problem"
