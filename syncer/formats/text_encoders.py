"""Text formats encoded on both cores: batches spelled by ``ENCODERS`` threads, written in order.

CSV's Arrow-compute lines and JSONL's DuckDB projection each spell one batch on one thread (Arrow's
kernels and a DuckDB scan of one Arrow batch are single-threaded), and that was a text sync's
slowest stage: the writer thread of a 5M-row orders table spent ~4 s spelling CSV while the other
core mostly waited. Here batch ``k`` goes to encoder ``k % ENCODERS``, each encoder spells on a
thread of its own (both release the GIL), and one more thread writes the spelled bytes in the
order the batches came, hashing them on their way to disk (:class:`~syncer.formats.files.HashingFile`):
the file is byte for byte the one a single encoder writes (``tests/test_text_encoders.py``).

Memory stays O(batch): each encoder holds one batch, and at most ``ENCODERS + 1`` spelled batches
wait for the writer. The stages are one :class:`~syncer._stage.Pipeline`: the first error anywhere
(an encoder's, the disk's) stops them all and is raised by the next ``write`` or by ``close``.
"""

from __future__ import annotations

import abc
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from syncer._stage import Cancelled, Pipeline, Stage
from syncer.formats.base import WrittenFile
from syncer.formats.files import StreamTableWriter

__all__ = ["ENCODERS", "ParallelTextWriter"]

#: encoder threads (two cores in the container; more would only queue more spelled batches)
ENCODERS = max(1, min(2, os.cpu_count() or 1))
#: seconds between the writer's looks at the pipeline while it waits for a batch to be spelled
_POLL_S = 0.05


class _Slot:
    """One batch's place in the file: filled by its encoder, written by the writer in order."""

    __slots__ = ("data", "done")

    def __init__(self) -> None:
        self.data: Sequence[Any] | None = None
        self.done = threading.Event()


class ParallelTextWriter(StreamTableWriter):
    """A text writer whose batches are spelled by :meth:`encode` on ``encoders`` threads."""

    threaded = True

    def __init__(self, path: Path, schema: pa.Schema, *, encoders: int = ENCODERS) -> None:
        super().__init__(path, schema)
        self.encoders = max(1, encoders)
        self._pipeline = Pipeline()
        self._encoding: list[Stage[tuple[_Slot, pa.RecordBatch]]] = [
            self._pipeline.worker(self._encoder(k), bound=1, name=f"syncer-encode-{k}") for k in range(self.encoders)
        ]
        self._writing: Stage[_Slot] = self._pipeline.worker(self._write_slot, bound=self.encoders + 1, name="syncer-write")
        self._next = 0

    @abc.abstractmethod
    def encode(self, encoder: int, batch: pa.RecordBatch) -> Sequence[Any]:
        """The batch's bytes (buffers or bytes, in order), spelled on encoder thread ``encoder``:
        whatever an encoder keeps (a DuckDB cursor) is its own, indexed by it."""

    def _encoder(self, k: int) -> Any:
        def run(item: tuple[_Slot, pa.RecordBatch]) -> None:
            slot, batch = item
            try:
                slot.data = self.encode(k, batch)
            finally:
                slot.done.set()  # the writer never waits for a batch whose encoder gave up

        return run

    def _write_slot(self, slot: _Slot) -> None:
        while not slot.done.wait(_POLL_S):
            self._pipeline.check()  # an encoder failed or the writer is being aborted
        if slot.data is None:
            raise Cancelled("a batch was not spelled")  # its encoder's error is the pipeline's
        for buf in slot.data:
            self.stream.write(buf)
        slot.data = None

    def _write(self, batch: pa.RecordBatch) -> None:
        if not batch.num_rows:
            return
        slot = _Slot()
        self._encoding[self._next % self.encoders].put((slot, batch))
        self._next += 1
        self._writing.put(slot)

    def close(self) -> WrittenFile:
        self._pipeline.finish()  # waits for every batch to be written, or raises the first error
        return super().close()

    def abort(self) -> None:
        self._pipeline.join()  # a batch being spelled is finished, the ones waiting are dropped
        super().abort()
