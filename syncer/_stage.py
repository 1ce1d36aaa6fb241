"""The one stage helper: bounded, cancellable stages on threads of their own (the export's read-ahead,
its batch profile and writer thread, the Parquet writer's part encoders).

The two cores are used by overlapping work, never by holding more data: the source produces the
next batch (a reader stage) while the writer encodes the current one (worker stages, one per
Parquet part) and another worker profiles it. Every queue is bounded, so memory grows with the
batch size, not with the table.

Stages that work on the same data belong to one :class:`Pipeline`: they fail together. The first
error raised anywhere (in a stage or in the thread driving them) cancels every stage; closing the
pipeline joins every thread and re-raises that first error. Later errors are logged and attached to
it as notes, never raised in its place. A thread stuck inside a blocking call (a source query that
does not return) cannot be interrupted from Python: closing then waits for the call to return,
logging a warning every ``JOIN_WARN_S`` seconds, because whatever comes next may reuse the
connection that thread is on. (The threads are daemons, so a call that never returns does not keep
the interpreter alive at exit.)
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar

__all__ = ["Cancelled", "Pipeline", "Stage", "inline"]

log = logging.getLogger("syncer")

T = TypeVar("T")

#: seconds between the warnings while close() waits for a thread stuck in a call
JOIN_WARN_S = 30.0

_END: Any = object()

#: ``pipeline``: the pipeline whose stage runs on this thread (a stage may drive another pipeline)
_here = threading.local()
#: ``on``: pipelines made on this thread run their stages on it, in order, without threads
_inline = threading.local()


@contextlib.contextmanager
def inline(enabled: bool = True) -> Iterator[None]:
    """Within the block, every :class:`Pipeline` made on this thread runs its stages inline: a
    reader is iterated by its consumer, a worker's ``fn`` runs inside ``put``. For work too small to
    overlap (a table of one batch), starting and joining threads would cost more than it saves;
    the order of the work, the bounds and the first-error rule are the same."""
    before = getattr(_inline, "on", False)
    _inline.on = enabled
    try:
        yield
    finally:
        _inline.on = before


class Cancelled(Exception):
    """A stage was used after its pipeline was cancelled without an error (it is closing)."""


class Pipeline:
    """Stages that fail together; use as a context manager.

    Leaving the block normally waits for every worker to finish what it was given, then joins every
    thread and raises the first error, if a stage had one. Leaving it by an exception cancels every
    stage, joins every thread, and raises the first error of all (which may be a stage's, raised
    before the block's own).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._cancelled = False
        self.stages: list[Stage[Any]] = []
        #: stages run on the thread that uses them (see :func:`inline`), fixed when it is made
        self.inline: bool = getattr(_inline, "on", False)

    @property
    def error(self) -> BaseException | None:
        """The first error raised in any stage (or handed to :meth:`fail`)."""
        return self._error

    def reader(self, items: Iterable[T], *, bound: int = 1, name: str = "syncer-read") -> Stage[T]:
        """Iterate ``items`` on a thread of its own, at most ``bound`` items ahead of the consumer
        (who iterates the returned stage). The iterator is closed on that thread when it ends."""
        stage: Stage[T] = Stage(self, bound, name)
        stage.start(stage._produce, items)
        return stage

    def worker(self, fn: Callable[[T], None], *, bound: int = 1, name: str = "syncer-work") -> Stage[T]:
        """Call ``fn`` on every item ``put`` into the returned stage, in order, on a thread of its
        own; ``bound`` counts the items given and not yet done (the one in ``fn`` included), so
        ``bound = 1`` makes ``put`` wait until ``fn`` returned for the previous item."""
        stage: Stage[T] = Stage(self, bound, name, worker=True)
        stage.start(stage._work, fn)
        return stage

    def fail(self, exc: BaseException) -> None:
        """Record ``exc`` and cancel every stage; only the first error is kept to be raised."""
        with self._lock:
            if exc is self._error or isinstance(exc, Cancelled):
                return
            first = self._error is None
            if first:
                self._error = exc
                self._cancelled = True  # with the error, so no stage sees one without the other
        if first:
            self.cancel()
            return
        assert self._error is not None
        log.warning("pipeline: a later error (%r) after the first one (%r)", exc, self._error)
        self._error.add_note(f"then, in another stage: {type(exc).__name__}: {exc}")

    def check(self) -> None:
        """Raise the first error, or :class:`Cancelled` once the pipeline is cancelled. The
        pipeline's own stage threads get :class:`Cancelled` either way: only a thread driving it
        raises the first error, so its traceback is not rewritten by many threads."""
        if self._error is not None and getattr(_here, "pipeline", None) is not self:
            raise self._error
        if self._cancelled:
            raise Cancelled("the pipeline was cancelled")

    def cancel(self) -> None:
        """Wake every stage waiting to put or get; they stop at their next item."""
        self._cancelled = True
        for stage in self.stages:
            stage.wake()

    def finish(self) -> None:
        """Let every worker finish the items it was given, in the order they were made (a worker
        may feed the ones made after it), then :meth:`close`. (A reader nobody iterated to its end
        is cancelled, not waited for.)"""
        for stage in self.stages:
            if stage.worker:
                stage.end()
                stage.join()
        self.close()

    def join(self) -> None:
        """Cancel and join every thread (no timeout, see the module docstring); raises nothing."""
        self.cancel()
        for stage in self.stages:
            stage.join()

    def close(self) -> None:
        """Cancel, join every thread, raise the first error."""
        self.join()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is None:
            self.finish()
            return
        self.fail(exc)
        self.join()
        if self._error is not None and self._error is not exc:
            raise self._error  # a stage failed first; exc is attached to it as a note


class Stage(Generic[T]):
    """One thread and the bounded queue in front of it (made by :meth:`Pipeline.reader` or
    :meth:`Pipeline.worker`). ``peak`` is the most items it ever held, never more than ``bound``."""

    def __init__(self, pipeline: Pipeline, bound: int, name: str, *, worker: bool = False) -> None:
        if bound < 1:
            raise ValueError(f"stage {name!r}: bound must be at least 1, not {bound}")
        self.pipeline = pipeline
        self.bound = bound
        self.name = name
        self.worker = worker
        self.held = 0  # items put and not yet done
        self.peak = 0
        self._items: deque[T] = deque()
        self._ended = False
        self._drain = False  # hand out the queued items despite the cancel (see _guard)
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._inline_arg: Any = None
        pipeline.stages.append(self)

    def start(self, target: Callable[[Any], None], arg: Any) -> None:
        if self.pipeline.inline:
            self._inline_arg = arg  # the items to iterate, or the fn to call, on the user's thread
            return
        self._thread = threading.Thread(target=self._guard, args=(target, arg), name=self.name, daemon=True)
        self._thread.start()

    def _guard(self, target: Callable[[Any], None], arg: Any) -> None:
        _here.pipeline = self.pipeline
        try:
            target(arg)
        except BaseException as exc:
            self.pipeline.fail(exc)
            if exc is self.pipeline.error:
                # This stage failed first: what it queued before the error still reaches a consumer
                # that iterates it, so the error arrives at the point it happened.
                with self._cond:
                    self._drain = True
                    self._cond.notify_all()

    def put(self, item: T) -> None:
        """Wait for room (at most ``bound`` items held), then queue ``item``; raises the pipeline's
        first error (or :class:`Cancelled`) instead of waiting once it is cancelled."""
        if self.pipeline.inline:
            self.pipeline.check()
            self.peak = max(self.peak, 1)
            self._inline_arg(item)  # a worker's fn, here and now
            return
        with self._cond:
            while True:
                self.pipeline.check()
                if self.held < self.bound:
                    break
                self._cond.wait()
            self._items.append(item)
            self.held += 1
            self.peak = max(self.peak, self.held)
            self._cond.notify_all()

    def _take(self) -> T:
        """The next item, or ``_END`` once the input ended and every item was taken."""
        with self._cond:
            while True:
                if self._items and self._drain:
                    return self._items.popleft()
                self.pipeline.check()
                if self._items:
                    return self._items.popleft()
                if self._ended:
                    return _END
                self._cond.wait()

    def _done(self) -> None:
        with self._cond:
            self.held -= 1
            self._cond.notify_all()

    def __iter__(self) -> Iterator[T]:
        """A reader stage's items, in order; raises the pipeline's first error where it happened."""
        if self.pipeline.inline:
            yield from self._iterate_inline()
            return
        while (item := self._take()) is not _END:
            self._done()
            yield item

    def end(self) -> None:
        """No more items will be put; the stage stops when it has done the ones it holds."""
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def join(self) -> None:
        """Wait for the thread to stop, however long its current call takes (never silently gives up)."""
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return
        while True:
            thread.join(JOIN_WARN_S)
            if not thread.is_alive():
                return
            log.warning(
                "still waiting for thread %s to return from its current call; nothing reuses what it holds (a source connection, a file) before it does",
                self.name,
            )

    def _iterate_inline(self) -> Iterator[T]:
        it = iter(self._inline_arg)
        try:
            for item in it:
                self.pipeline.check()
                self.peak = max(self.peak, 1)
                yield item
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()

    def _produce(self, items: Iterable[T]) -> None:
        it = iter(items)
        try:
            for item in it:
                self.put(item)
            self.end()
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):  # closing an exhausted or aborted generator
                    close()

    def _work(self, fn: Callable[[T], None]) -> None:
        while (item := self._take()) is not _END:
            try:
                fn(item)
            finally:
                self._done()
