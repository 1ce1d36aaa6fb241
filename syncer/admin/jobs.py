"""A process-wide job runner: long admin work (a re-sync) on a background thread.

A Streamlit script run must not block for a whole export, and a job must outlive the page that
started it (navigating away or closing the tab does not cancel it). So the page submits the work
here and polls :meth:`JobRunner.get`; the job records progress from the engine's callback events
(``table_start`` / ``rows`` / ``table_done``).

One job runs at a time: the volume has one writer. A second submit while a job runs raises
:class:`LockHeldError` naming the running job; a writer in another process (the CLI, another
replica) is found by the engine's own lock, and the job ends in state ``busy`` with its message.
Threads are daemons: on SIGTERM the process exits without waiting, and the next sync marks the
interrupted run ``aborted`` and sweeps its staging folder. A re-sync runs in a child process
(:func:`syncer.engine.supervised.sync_in_child`): a native abort there (DuckDB) ends the job as
``failed`` with the supervisor's one line, never the server; the child dies with the server
(``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from syncer import _clock as clock
from syncer._clock import iso
from syncer._exceptions import LockHeldError, SyncError

__all__ = ["Job", "JobRunner", "job_runner"]

log = logging.getLogger("syncer")

#: states a job can end in; "running" is the only other one
FINAL_STATES = ("ok", "partial", "failed", "busy", "error")

Progress = Callable[[dict[str, Any]], None]


@dataclass
class Job:
    id: str
    kind: str
    label: str
    user: str | None
    tables_total: int
    submitted_at: str
    state: str = "running"
    finished_at: str | None = None
    #: what ``work`` returned (a sync's RunReport), once it finished
    result: Any = None
    error: str | None = None
    # progress, updated from the engine's callback
    table: str | None = None
    rows_done: int = 0
    rows_total: int = 0
    tables_done: int = 0
    tables_failed: list[str] = field(default_factory=list)
    #: expected rows per table (the last published counts); replaced by the source's count when a table starts
    weights: dict[str, int] = field(default_factory=dict)
    #: rows of the tables already finished
    rows_finished: int = 0
    started_monotonic: float = field(default_factory=time.monotonic, repr=False)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def fraction(self) -> float:
        """Share of the work done, 0..1, weighted by rows: a 20M-row table counts for 20M, a
        100-row one for 100 (without any counts, tables count equally). Never 1 before the
        job has finished: validating and publishing come after the last row."""
        if self.finished:
            return 1.0
        if not self.tables_total:
            return 0.0
        total = self.expected_rows
        if total <= 0:
            part = (self.rows_done / self.rows_total) if self.rows_total else 0.0
            return min(0.99, (self.tables_done + part) / self.tables_total)
        return min(0.99, (self.rows_finished + self.rows_done) / total)

    @property
    def expected_rows(self) -> int:
        """Every table's expected rows (each at least 1, so an empty table still counts a little)."""
        if not self.weights:
            return 0
        return sum(max(1, int(n)) for n in self.weights.values())

    @property
    def eta_s(self) -> float | None:
        """Seconds left, from the rate so far; None until there is a rate to go by."""
        f = self.fraction
        if self.finished or f < 0.02:
            return None
        elapsed = time.monotonic() - self.started_monotonic
        return max(0.0, elapsed * (1 - f) / f)

    @property
    def message(self) -> str:
        """One line for the progress bar or the result banner."""
        if self.state == "running":
            if self.table is None:
                return f"{self.label}: starting…"
            eta = self.eta_s
            left = f", about {_short_duration(eta)} left" if eta is not None else ""
            if self.tables_done >= self.tables_total:
                return f"{self.label}: validating and publishing ({self.fraction:.0%}){left}"
            return (
                f"{self.label}: table {self.table} ({self.tables_done + 1} of {self.tables_total}), "
                f"{self.rows_done:,} of {self.rows_total:,} rows ({self.fraction:.0%}){left}"
            )
        if self.state in ("ok", "partial"):
            snap = (self.result or {}).get("snapshot_id")
            text = f"{self.label}: published snapshot {snap}"
            if self.state == "partial":
                text += f" ({', '.join(self.tables_failed) or 'some tables'} kept their previous data)"
            return text
        if self.state == "busy":
            return f"{self.label} did not start: {self.error}"
        return f"{self.label} failed: {self.error}"

    def on_progress(self, ev: dict[str, Any]) -> None:
        kind = ev.get("event")
        if kind == "table_start":
            self.table, self.rows_done, self.rows_total = ev["table"], 0, int(ev.get("total") or 0)
            if self.weights and ev.get("total") is not None:
                self.weights[ev["table"]] = int(ev["total"])  # the source's count beats last time's
        elif kind == "rows":
            self.rows_done, self.rows_total = int(ev["done"]), int(ev.get("total") or self.rows_total)
        elif kind == "table_done":
            self.tables_done += 1
            if self.weights:
                self.rows_finished += max(1, self.weights.get(ev["table"], 0))
            self.rows_done = 0
            if not ev.get("ok", True):
                self.tables_failed.append(ev["table"])

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has finished; True if it did within ``timeout``."""
        return self._done.wait(timeout)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "label": self.label,
            "user": self.user,
            "state": self.state,
            "submitted_at": self.submitted_at,
            "finished_at": self.finished_at,
            "fraction": self.fraction,
            "message": self.message,
            "error": self.error,
            "snapshot_id": (self.result or {}).get("snapshot_id"),
        }


class JobRunner:
    """Runs one job at a time on a daemon thread and keeps the last few for the pages to show."""

    def __init__(self, keep: int = 20) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._order: list[str] = []
        self._keep = keep
        self._ids = itertools.count(1)

    def active(self) -> Job | None:
        with self._lock:
            for jid in reversed(self._order):
                job = self._jobs[jid]
                if not job.finished:
                    return job
        return None

    def submit(
        self,
        kind: str,
        work: Callable[[Progress], Any],
        *,
        label: str,
        user: str | None,
        tables_total: int,
        weights: dict[str, int] | None = None,
    ) -> Job:
        """Start ``work(progress)`` on a thread; raises :class:`LockHeldError` while another job runs."""
        with self._lock:
            for jid in self._order:
                running = self._jobs[jid]
                if not running.finished:
                    raise LockHeldError(
                        f"{running.label} started by {running.user or 'unknown'} at {running.submitted_at} is still running "
                        "in this app; wait for it to finish",
                        {"job": running.id, "user": running.user, "started_at": running.submitted_at},
                    )
            job = Job(
                id=f"{time.strftime('%H%M%S')}-{next(self._ids)}",
                kind=kind,
                label=label,
                user=user,
                tables_total=tables_total,
                submitted_at=iso(clock.utcnow()),
                weights=dict(weights or {}),
            )
            self._jobs[job.id] = job
            self._order.append(job.id)
            for old in self._order[: -self._keep]:
                if self._jobs[old].finished:
                    self._order.remove(old)
                    del self._jobs[old]
            thread = threading.Thread(target=self._run, args=(job, work), name=f"syncer-job-{job.id}", daemon=True)
            thread.start()
        return job

    def _run(self, job: Job, work: Callable[[Progress], dict[str, Any]]) -> None:
        try:
            result = work(job.on_progress)
            job.result = result
            job.error = result.get("error")
            job.state = result.get("status", "ok") if result.get("status") in ("ok", "partial", "failed") else "ok"
        except LockHeldError as exc:
            job.state, job.error = "busy", str(exc)
        except SyncError as exc:
            job.state, job.error = "failed", str(exc)
        except Exception as exc:  # a bug, not an expected failure: keep the runner alive and say so
            log.exception("job %s (%s) crashed", job.id, job.label)
            job.state, job.error = "error", f"{type(exc).__name__}: {exc}"
        finally:
            job.finished_at = iso(clock.utcnow())
            job._done.set()

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def latest(self, kind: str | None = None) -> Job | None:
        with self._lock:
            for jid in reversed(self._order):
                if kind is None or self._jobs[jid].kind == kind:
                    return self._jobs[jid]
        return None

    def jobs(self) -> list[Job]:
        with self._lock:
            return [self._jobs[j] for j in reversed(self._order)]


def _short_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


_RUNNER = JobRunner()


def job_runner() -> JobRunner:
    """The process-wide runner (shared by every browser session of this server)."""
    return _RUNNER
