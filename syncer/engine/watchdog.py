"""The run watchdog: a sync that runs past its limit stops with one line naming where it was.

``[export] time_budget_seconds`` is what a run should take (over it, the run is flagged with a
warning); ``[export] watchdog_seconds`` (default three budgets) is what a run may take. Past it the
run is stopped, wherever it is:

* soft stop: :class:`RunTimeout` is raised in the thread running the sync. In the main thread it
  comes with ``SIGALRM``, which also breaks a blocking system call (``EINTR``), unless the process
  already has an alarm armed (pytest-timeout, the caller's own): that one is left alone. Otherwise
  (the admin app's thread) it is raised asynchronously, at the thread's next Python step, and again
  at each progress event. The run unwinds as from any failure: staging is removed, nothing already
  published changes, the history records the run as failed, and :func:`timeout_error` turns it into
  the one error line.
* hard stop, for the CLI only (``sync(..., exit_when_stuck=True)``; a library never ends its caller's process):
  a run that is stuck where no Python runs (a system call that never returns, native code) gets
  ``grace`` seconds more; then the watchdog writes the one line itself and ends the process (exit 1). ``current`` is
  replaced by ``rename(2)`` only, so a process ended at any moment leaves it whole (the crash tests
  prove it with SIGKILL), and the next run sweeps staging and closes the run left ``running``.

Not a :class:`SyncError` on purpose: a table's export turns a ``SyncError`` into that table's
failure and goes on to the next table; a timeout must end the whole run.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType

from syncer._exceptions import SyncError

__all__ = ["RunTimeout", "RunTimeoutError", "Watchdog"]


class RunTimeout(Exception):
    """Raised in the thread running a sync when the watchdog's limit has passed."""


class RunTimeoutError(SyncError):
    """The run was stopped by the watchdog (exit 1); the message names the step, the table and the limits."""


class Watchdog:
    """Arm with ``with Watchdog(...) as dog:``; say where the run is with :meth:`at`."""

    def __init__(
        self, run_id: str, limit_s: float, budget_s: float, *, exit_when_stuck: bool = False, grace_s: float | None = None
    ) -> None:
        self.run_id, self.limit_s, self.budget_s = run_id, limit_s, budget_s
        #: end the process when a stopped run does not unwind (only the process's owner, the CLI, asks)
        self.exit_when_stuck = exit_when_stuck
        self.grace_s = grace_s if grace_s is not None else max(2.0, min(30.0, limit_s / 4))
        self.step, self.table = "start", ""
        #: the run's snapshot became ``current`` (what the last line must say)
        self.published = False
        #: the swap of ``current`` is under way: a soft stop waits for it to finish
        self.critical = False
        self.expired = threading.Event()
        self._done = threading.Event()
        self._guard = threading.Lock()  # the asynchronous stop never lands after the run has ended
        self._thread_id = threading.get_ident()
        self._main = threading.current_thread() is threading.main_thread()
        self._alarm = False  # SIGALRM armed by us (only in the main thread, only if no alarm was armed)
        self._old_handler: object = None
        self._t0 = time.monotonic()

    # --- where the run is --------------------------------------------------------------------------

    def at(self, step: str, table: str = "") -> None:
        self.step, self.table = step, table
        self.check()

    def check(self) -> None:
        """Raise :class:`RunTimeout` when the limit has passed (called at each step and progress event)."""
        if self.expired.is_set() and not self.critical and not self._done.is_set():
            raise RunTimeout(self.message())

    def where(self) -> str:
        return f"{self.step} of table {self.table}" if self.table else self.step

    def message(self) -> str:
        served = f"snapshot {self.run_id} is published and current" if self.published else "the current snapshot is unchanged"
        return (
            f"sync run {self.run_id} stopped by the watchdog after {self.limit_s:g}s, during {self.where()} "
            f"([export] watchdog_seconds = {self.limit_s:g}; time_budget_seconds = {self.budget_s:g}); {served}; "
            "find why it is slow or stuck (a hung volume or warehouse, a table past its size), or raise "
            "watchdog_seconds, then sync again"
        )

    # --- arming ------------------------------------------------------------------------------------

    def __enter__(self) -> Watchdog:
        if self._main and signal.getitimer(signal.ITIMER_REAL)[0] == 0:
            self._alarm = True
            self._old_handler = signal.signal(signal.SIGALRM, self._on_alarm)
            signal.setitimer(signal.ITIMER_REAL, self.limit_s)
        threading.Thread(target=self._watch, name=f"watchdog-{self.run_id}", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._guard:
            self._done.set()
        if self._alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            with contextlib.suppress(TypeError, ValueError):
                signal.signal(signal.SIGALRM, self._old_handler)  # type: ignore[arg-type]

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        self.expired.set()
        self.check()

    def _watch(self) -> None:
        if self._done.wait(self.limit_s):
            return
        self.expired.set()
        if not self._alarm:
            # the admin app's thread (or an alarm taken): raised at its next Python step (a blocked call finishes first)
            dog = self

            class Stop(RunTimeout):  # raised as a class, made without arguments: it brings its message
                def __init__(self, *args: object) -> None:
                    super().__init__(*(args or (dog.message(),)))

            with self._guard:
                if not self._done.is_set():
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._thread_id), ctypes.py_object(Stop))
        if not (self.exit_when_stuck and self._main) or self._done.wait(self.grace_s):
            return
        line = f"error: {self.message()} (stuck: no Python ran for {self.grace_s:g}s more, the process was ended)\n"
        with contextlib.suppress(OSError):
            os.write(2, line.encode("utf-8", "replace"))
        os._exit(1)


@contextlib.contextmanager
def timeout_error(dog: Watchdog) -> Iterator[None]:
    """Turn the watchdog's stop into the run's one error line (a :class:`RunTimeoutError`)."""
    try:
        yield
    except RunTimeout:
        raise RunTimeoutError(dog.message()) from None
