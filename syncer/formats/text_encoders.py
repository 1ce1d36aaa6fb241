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

**Read back while written.** The re-open check parses every value of a text file back as a reader
does and profiles what comes back (a spelling that loses a digit differs from the profile of the
batches written). That parse of the closed file was a text sync's longest step after the export
(1.75 s of a 5M-row table's 4.1 s to CSV), on one core. Here, once the writer has handed a batch's
bytes to the file, a read-back stage streams that byte range back from the file (in the parser's
blocks: the bytes the file holds, not the ones in memory), parses it as the format's reader does
(:meth:`ParallelTextWriter.parse`) and profiles it, while the next batches are spelled and
written; ``close`` checks the header's bytes too, and returns the result as
:attr:`WrittenFile.read_back` (:class:`ReadBack`) for the check. A range that does not parse is
recorded, not raised: the check fails naming it, the export does not.
"""

from __future__ import annotations

import abc
import dataclasses
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from syncer._stage import Cancelled, Pipeline, Stage
from syncer.formats.base import WrittenFile
from syncer.formats.files import StreamTableWriter
from syncer.validate.profile import ProfileAccumulator

__all__ = ["ENCODERS", "ParallelTextWriter", "ReadBack"]

#: encoder threads (two cores in the container; more would only queue more spelled batches)
ENCODERS = max(1, min(2, os.cpu_count() or 1))
#: seconds between the writer's looks at the pipeline while it waits for a batch to be spelled
_POLL_S = 0.05
#: written ranges waiting to be read back (each is a batch's bytes, in the page cache already)
_READ_BACK_DEPTH = 2


class _Slot:
    """One batch's place in the file: filled by its encoder, written by the writer in order."""

    __slots__ = ("data", "done")

    def __init__(self) -> None:
        self.data: Sequence[Any] | None = None
        self.done = threading.Event()


@dataclasses.dataclass
class ReadBack:
    """A text file's bytes as they parsed back while it was written: the rows, their profile, and
    the first range that did not (``error``; nothing after it is parsed)."""

    acc: ProfileAccumulator
    rows: int = 0
    error: str | None = None


class ParallelTextWriter(StreamTableWriter):
    """A text writer whose batches are spelled by :meth:`encode` on ``encoders`` threads and, when
    it ``reads_back``, parsed back from the file while it is written (the module docstring)."""

    threaded = True
    #: the format parses its bytes back while they are written (it has :meth:`parse`)
    reads_back = False

    def __init__(self, path: Path, schema: pa.Schema, *, encoders: int = ENCODERS) -> None:
        super().__init__(path, schema)
        self.encoders = max(1, encoders)
        self._pipeline = Pipeline()
        self._encoding: list[Stage[tuple[_Slot, pa.RecordBatch]]] = [
            self._pipeline.worker(self._encoder(k), bound=1, name=f"syncer-encode-{k}") for k in range(self.encoders)
        ]
        self._writing: Stage[_Slot] = self._pipeline.worker(self._write_slot, bound=self.encoders + 1, name="syncer-write")
        self._next = 0
        self.read_back = ReadBack(ProfileAccumulator(schema)) if self.reads_back else None
        #: the bytes every file of this format begins with (a CSV header), checked at close
        self.head = b""
        self._file: pa.NativeFile | None = None  # the file, opened again to read back what was written
        self._reading: Stage[tuple[int, int]] | None = (
            self._pipeline.worker(self._read_range, bound=_READ_BACK_DEPTH, name="syncer-read-back") if self.reads_back else None
        )

    def write_head(self, head: bytes) -> None:
        """Write the bytes the file begins with (before any batch)."""
        self.head = head
        self.stream.write(head)

    def parse(self, opened: Callable[[], pa.NativeFile]) -> Iterator[pa.RecordBatch]:
        """The batches of ``schema`` a reader parses from a range of whole lines of this writer
        (after the head; ``opened()`` gives a stream of it, again if the parse starts over): the
        format's own parse, as its reader does it."""
        raise NotImplementedError(f"{type(self).__name__} cannot parse its bytes back")

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
        start = self.stream.tell()
        for buf in slot.data:
            self.stream.write(buf)
        slot.data = None
        if self._reading is not None:
            end = self.stream.tell()
            self.stream.flush()  # the range is in the file (the OS's page cache) before it is read back
            self.sink.flush()
            self._reading.put((start, end))

    def _read_range(self, span: tuple[int, int]) -> None:
        rb = self.read_back
        assert rb is not None
        if rb.error is not None:
            return  # the first range that did not parse is the check's answer
        start, end = span
        try:
            file = self._opened()
            size = os.fstat(file.fileno()).st_size
            if size < end:
                raise OSError(f"the file ends at byte {size:,}, {end:,} were written")
            # the range streamed from the file in the parser's blocks (never held whole)
            for batch in self.parse(lambda: file.get_stream(start, end - start)):
                rb.rows += batch.num_rows
                rb.acc.update(batch)
        except (OSError, pa.ArrowException, ValueError, ArithmeticError) as exc:
            # ValueError: a value that is not its column's spelling (bad base64, a bad date);
            # ArithmeticError: a decimal that is not digits
            rb.error = f"bytes {start:,} to {end:,} do not parse back: {exc}"

    def _opened(self) -> pa.NativeFile:
        if self._file is None:
            self._file = pa.OSFile(str(self.path), "r")
        return self._file

    def _check_head(self) -> None:
        rb = self.read_back
        if rb is None or rb.error is not None or not self.head:
            return
        self.stream.flush()
        self.sink.flush()
        try:
            got = self._opened().read_at(len(self.head), 0)
        except OSError as exc:
            rb.error = f"its first line cannot be read back: {exc}"
            return
        if got != self.head:
            rb.error = f"its first line reads back as {got[:200]!r}, {self.head[:200]!r} was written"

    def _close_file(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()

    def _write(self, batch: pa.RecordBatch) -> None:
        if not batch.num_rows:
            return
        slot = _Slot()
        self._encoding[self._next % self.encoders].put((slot, batch))
        self._next += 1
        self._writing.put(slot)

    def close(self) -> WrittenFile:
        try:
            self._pipeline.finish()  # waits for every batch to be written and read back, or raises the first error
            self._check_head()
        finally:
            self._close_file()
        written = super().close()
        return dataclasses.replace(written, read_back=self.read_back) if self.read_back is not None else written

    def abort(self) -> None:
        self._pipeline.join()  # a batch being spelled is finished, the ones waiting are dropped
        self._close_file()
        super().abort()
