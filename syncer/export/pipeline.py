"""Streaming plumbing for the export: read ahead on a thread, and prove key order on the fly.

The two cores are used by overlapping work, never by holding more data: the source produces the
next batch (``Prefetch``) while the writer encodes the current one and a helper thread profiles
it. Queues are small and bounded, so memory grows with the batch size, not with the table.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["KeyOrder", "Prefetch"]

_END = object()


class Prefetch:
    """Iterate ``source`` on a background thread, ``depth`` items ahead.

    Errors raised by the source reach the consumer at the point they happened; ``close()`` stops
    the reader and waits for it (at most one batch of work).
    """

    def __init__(self, source: Iterator[Any], depth: int = 1, name: str = "syncer-read") -> None:
        self._q: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(source,), name=name, daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, source: Iterator[Any]) -> None:
        try:
            for item in source:
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as exc:
            self._put(exc)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):  # closing an exhausted or aborted generator
                    close()

    def __iter__(self) -> Iterator[Any]:
        while True:
            item = self._q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        while True:
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=60)

    def __enter__(self) -> Prefetch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class KeyOrder:
    """Proves a single-column key unique while it streams, in O(1) memory, when the keys arrive in
    strictly increasing order (the common case: tables scanned in key order). Any strict order
    proves distinctness. When the order breaks, ``proven`` turns False and the caller falls back to
    an exact scan of the written file."""

    def __init__(self, schema: pa.Schema, keys: tuple[str, ...]) -> None:
        self.column = keys[0] if len(keys) == 1 else None
        t = schema.field(self.column).type if self.column else None
        orderable = t is not None and (
            pa.types.is_integer(t)
            or pa.types.is_decimal(t)
            or pa.types.is_string(t)
            or pa.types.is_large_string(t)
            or pa.types.is_date(t)
            or pa.types.is_timestamp(t)
        )
        self.proven = bool(orderable)
        self._last: Any = None

    def update(self, batch: pa.RecordBatch) -> None:
        if not self.proven or batch.num_rows == 0:
            return
        arr = batch.column(self.column)
        if arr.null_count:
            self.proven = False  # nulls are reported by primary_key_not_null; the exact scan decides the rest
            return
        n = len(arr)
        if n > 1 and not pc.all(pc.less(arr.slice(0, n - 1), arr.slice(1))).as_py():
            self.proven = False
            return
        first = arr[0].as_py()
        if self._last is not None and not self._last < first:
            self.proven = False
            return
        self._last = arr[n - 1].as_py()
