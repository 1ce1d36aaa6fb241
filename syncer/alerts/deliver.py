"""Delivery off the sync's critical path: one background thread per process behind a bounded queue.

:func:`submit` never blocks and never raises: a full queue drops the alert (recorded as an error in
the alert log). The worker tries each channel with a per-attempt timeout, ``retries`` more times with
a doubling back-off, and records the outcome. At process exit :func:`flush` waits at most
``exit_deadline_seconds`` for what is still queued (``atexit``): a hanging receiver can delay the end
of ``syncer sync`` by that much, never the sync itself.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from dataclasses import dataclass

from syncer import _clock as clock
from syncer._clock import iso
from syncer.alerts.channels import Channel, DeliveryError
from syncer.alerts.store import Alert, AlertStore, AlertStoreError
from syncer.config.model import AlertsConfig

__all__ = ["Job", "flush", "pending", "submit"]

log = logging.getLogger("syncer")


@dataclass(frozen=True)
class Job:
    alert: Alert
    channel: Channel
    row_id: int
    store: AlertStore
    limits: AlertsConfig


class _Worker:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queue: queue.Queue[Job] | None = None
        self.thread: threading.Thread | None = None
        self.deadline = 10.0
        self.stop = threading.Event()

    def submit(self, job: Job) -> bool:
        with self.lock:
            if self.queue is None:
                self.queue = queue.Queue(maxsize=job.limits.queue_size)
            self.deadline = job.limits.exit_deadline_seconds
            if self.thread is None or not self.thread.is_alive():
                self.stop.clear()
                self.thread = threading.Thread(target=self._run, args=(self.queue,), name="syncer-alerts", daemon=True)
                self.thread.start()
            q = self.queue
        try:
            q.put_nowait(job)
        except queue.Full:
            return False
        return True

    def _run(self, q: queue.Queue[Job]) -> None:
        while True:
            job = q.get()
            try:
                _deliver(job, self.stop)
            except Exception:  # a bug here must not kill the worker (and with it every later alert)
                log.exception("alert delivery crashed", extra={"step": "alerts"})
            finally:
                q.task_done()


_WORKER = _Worker()


def submit(job: Job) -> None:
    if not _WORKER.submit(job):
        msg = f"not sent: the alert queue is full ({job.limits.queue_size} waiting); is the receiver down?"
        log.warning("alert %s on %s %s", job.alert.title(), job.channel.name, msg, extra={"step": "alerts"})
        _outcome(job, ok=False, attempts=0, error=msg)


def pending() -> int:
    q = _WORKER.queue
    return q.unfinished_tasks if q is not None else 0


def flush(timeout: float | None = None) -> bool:
    """Wait until every queued alert was delivered or given up, at most ``timeout`` seconds
    (default: ``exit_deadline_seconds``); True when nothing is left."""
    limit = _WORKER.deadline if timeout is None else timeout
    end = time.monotonic() + limit
    while pending() and time.monotonic() < end:
        time.sleep(0.02)
    return pending() == 0


def _at_exit() -> None:
    if pending() and not flush():
        _WORKER.stop.set()  # the worker gives up its retries; what it has not sent stays "pending"
        log.warning(
            "%d alert(s) not delivered within the %gs exit deadline; they stay listed as pending",
            pending(),
            _WORKER.deadline,
            extra={"step": "alerts"},
        )


atexit.register(_at_exit)


def _deliver(job: Job, stop: threading.Event) -> None:
    limits, error, attempt = job.limits, "", 0
    for attempt in range(1, limits.retries + 2):
        try:
            job.channel.send(job.alert, limits.timeout_seconds)
        except DeliveryError as exc:
            error = str(exc)
            log.info("alert %s: attempt %d on %s failed: %s", job.alert.title(), attempt, job.channel.name, error)
        else:
            _outcome(job, ok=True, attempts=attempt, error=None)
            return
        if attempt <= limits.retries and stop.wait(limits.backoff_seconds * 2 ** (attempt - 1)):
            break
    msg = f"gave up after {attempt} attempt(s): {error}"
    log.warning("alert %s on %s %s", job.alert.title(), job.channel.name, msg, extra={"step": "alerts"})
    _outcome(job, ok=False, attempts=attempt, error=msg)


def _outcome(job: Job, *, ok: bool, attempts: int, error: str | None) -> None:
    try:
        job.store.delivered(job.row_id, ok=ok, attempts=attempts, error=error, at=iso(clock.utcnow()))
    except AlertStoreError as exc:
        log.warning("%s", exc, extra={"step": "alerts"})
