"""Parquet: zstd by default, statistics, row groups of ``row_group_rows``; a big table as a folder
of part files encoded in parallel.

A big Parquet table is written as ``parts`` files encoded on as many threads (the Parquet encoder
is single-threaded and the slowest stage of a sync): row group ``i`` goes to part ``i % parts``.
Every row group but the last is full, so reading takes row groups round-robin again and gives the
rows back in source order.

A Parquet writer keeps every row group's metadata in memory until it writes the footer (measured
with pyarrow 26: ~0.9 KB a column chunk, twice that while the footer is written: a 300-column table
of 1M rows in 368 row groups held 95 MB of it, 190 MB at close), so a file's footer grows with the
table, not the batch. A table whose parts would hold more than ``syncer._memory.FILE_CHUNKS`` column chunks each is
*segmented*: each part is sealed after ``groups_per_file`` row groups and goes on in a new file;
segment ``s`` holds the files ``part-SSSSS-PPPPP.parquet`` of every part ``P``, the next
``parts x groups_per_file`` row groups of the table. Sorted by name, the files are in segment
order; within a segment, row groups are dealt round-robin as above.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from syncer._memory import TARGET_SLACK, groups_per_file
from syncer._stage import Pipeline, Stage
from syncer.formats.base import Format, TableWriter, WrittenFile, WrittenPart, conform, read_rows, selected
from syncer.formats.files import parquet_footer, parts_digest

__all__ = [
    "ParquetFormat",
    "ParquetTableWriter",
    "dictionary_columns",
    "parquet_files",
    "parquet_layout",
    "parquet_options",
    "parquet_segments",
    "parquet_type",
]

_HASH_CHUNK = 1 << 20

#: the item that tells a part's encoder to write the footer (after its last row group)
_SEAL = None
_SEGMENT_FILE = re.compile(r"part-(\d{5})-(\d{5})\.parquet")


class ParquetTableWriter(TableWriter):
    """Parquet with statistics, row groups of ``row_group_rows``, PLAIN encoding and dictionaries
    for columns with few distinct values (:func:`parquet_options`).

    Encoding runs on one worker stage per part (see ``syncer._stage``), at most one row
    group given to a part and not yet encoded (memory grows with the row group, not the table); the
    first encoder error stops every part. Each part goes to a native file; after every row group its
    thread hashes the new bytes from the page cache (see ``_follow``), which costs less than handing
    every buffer to Python while the encoders run.
    """

    threaded = True
    #: row groups waiting per part while it encodes one (each costs a row group of memory)
    QUEUE = 0
    #: distinct/rows ratio in the first batch below which a column is dictionary-encoded
    DICTIONARY_RATIO = 0.3

    def __init__(
        self, path: Path, schema: pa.Schema, *, compression: str, row_group_rows: int, parts: int = 1, segmented: bool = False
    ) -> None:
        super().__init__(path, schema)
        self._compression = None if compression == "none" else compression
        self._row_group_rows = row_group_rows
        self._folder = parts > 1 or segmented
        self._per_file = groups_per_file(schema) if segmented else 0  # 0: one file a part, never sealed early
        self._segment = [0] * parts  # each part's segment (its file's number)
        self._file_groups = [0] * parts  # row groups in each part's open file
        self._earlier: list[WrittenPart] = []  # the files sealed at the end of a segment
        if self._folder:
            path.mkdir()  # refuses an existing folder, as a single file refuses an existing file
            self.files = [self._file_of(0, i) for i in range(parts)]
        else:
            self.files = [path]
        for f in self.files:
            f.touch(exist_ok=False)  # refuses to overwrite, like the other formats' writers
        self._options: dict[str, Any] | None = None
        self._writers: list[pq.ParquetWriter | None] = [None] * len(self.files)
        self._fds: list[int | None] = [None] * len(self.files)
        self._hashes = [hashlib.sha256() for _ in self.files]
        self._hashed = [0] * len(self.files)
        self._part_rows = [0] * len(self.files)
        self._sealed: list[WrittenPart | None] = [None] * len(self.files)
        self._next = 0  # index of the next row group
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._pending_bytes = 0.0
        self._group_bytes: float | None = None  # a row group's bytes, from the first batch (see _write)
        self.encoders = Pipeline()
        self.stages: list[Stage[list[pa.RecordBatch] | None]] = [
            self.encoders.worker(self._part_worker(i), bound=self.QUEUE + 1, name=f"syncer-parquet-{i}")
            for i in range(len(self.files))
        ]

    def _file_of(self, segment: int, part: int) -> Path:
        return self.path / (f"part-{segment:05d}-{part:05d}.parquet" if self._per_file else f"part-{part:05d}.parquet")

    def _part_worker(self, part: int) -> Any:
        def run(batches: list[pa.RecordBatch] | None) -> None:
            if batches is _SEAL:
                self._sealed[part] = self._seal(part)
            else:
                self._encode(part, batches)

        return run

    def _write(self, batch: pa.RecordBatch) -> None:
        if self._options is None:
            self._options = parquet_options(self.schema, batch, self.DICTIONARY_RATIO)
        per_row = batch.nbytes / max(1, batch.num_rows)  # measured per batch (a slice's nbytes counts shared buffers)
        if self._group_bytes is None and batch.num_rows:
            # the row count was sized from a sample's row width: a row group of rows far wider than
            # that (a skewed table, a value of many MB) closes on its bytes instead
            self._group_bytes = TARGET_SLACK * self._row_group_rows * per_row
        while batch.num_rows:
            room = (self._group_bytes or 0) - self._pending_bytes
            take = min(batch.num_rows, self._row_group_rows - self._pending_rows, max(1, int(room // max(per_row, 1e-9))))
            self._pending.append(batch.slice(0, take) if take < batch.num_rows else batch)
            self._pending_rows += take
            self._pending_bytes += per_row * take
            batch = batch.slice(take)
            if self._pending_rows == self._row_group_rows or self._pending_bytes >= (self._group_bytes or 0):
                self._submit()

    def _submit(self) -> None:
        part = self._next % len(self.files)
        self._next += 1
        batches, self._pending, self._pending_rows, self._pending_bytes = self._pending, [], 0, 0.0
        self.stages[part].put(batches)  # waits while the part still encodes its previous row group

    def _writer(self, part: int) -> pq.ParquetWriter:
        w = self._writers[part]
        if w is None:
            opts = self._options if self._options is not None else parquet_options(self.schema, None, self.DICTIONARY_RATIO)
            w = self._writers[part] = pq.ParquetWriter(
                str(self.files[part]),
                self.schema,
                compression=self._compression,
                # The system allocator hands freed pages back; mimalloc (Arrow's default) keeps them
                # per thread, about 35 MB more at peak with two encoder threads.
                memory_pool=pa.system_memory_pool(),
                **opts,
            )
        return w

    def _encode(self, part: int, batches: list[pa.RecordBatch]) -> None:
        if self._per_file and self._file_groups[part] == self._per_file:
            self._next_file(part)
        table = pa.Table.from_batches(batches, self.schema)
        self._writer(part).write_table(table, row_group_size=max(table.num_rows, 1))
        self._part_rows[part] += table.num_rows
        self._file_groups[part] += 1
        self._follow(part)

    def _next_file(self, part: int) -> None:
        """Seal the part's file (its footer's memory is handed back) and go on in the next segment's."""
        self._earlier.append(self._seal(part))
        fd = self._fds[part]
        if fd is not None:
            os.close(fd)
        self._segment[part] += 1
        self.files[part] = self._file_of(self._segment[part], part)
        self.files[part].touch(exist_ok=False)
        self._writers[part], self._fds[part], self._hashes[part] = None, None, hashlib.sha256()
        self._hashed[part] = self._part_rows[part] = self._file_groups[part] = 0

    def _fd(self, part: int) -> int:
        fd = self._fds[part]
        if fd is None:
            fd = self._fds[part] = os.open(self.files[part], os.O_RDONLY)
        return fd

    def _follow(self, part: int) -> int:
        """Hash the bytes the encoder appended since the last call (from the page cache); returns
        the file's size. Runs on the part's own thread after every row group, so closing only has
        the footer left to hash. (An fdatasync per row group as well measured no faster.)"""
        fd = self._fd(part)
        size = os.fstat(fd).st_size
        h = self._hashes[part]
        while self._hashed[part] < size:
            chunk = os.pread(fd, min(_HASH_CHUNK, size - self._hashed[part]), self._hashed[part])
            if not chunk:
                raise OSError(errno.EIO, "the file shrank while it was being written", str(self.files[part]))
            h.update(chunk)
            self._hashed[part] += len(chunk)
        return size

    def _seal(self, part: int) -> WrittenPart:
        self._writer(part).close()  # durable at publish: the snapshot's one fsync plan (fsync_tree)
        size = self._follow(part)
        return WrittenPart(self.files[part].name, self._part_rows[part], size, self._hashes[part].hexdigest())

    def close(self) -> WrittenFile:
        try:
            # Leaving the block waits for every part to seal (in parallel), or stops them all on the first error.
            with self.encoders:
                if self._pending:
                    self._submit()
                for stage in self.stages:
                    stage.put(_SEAL)
        finally:
            self._close_fds()
        parts = tuple(sorted([*self._earlier, *(p for p in self._sealed if p is not None)], key=lambda p: p.name))
        if not self._folder:
            return WrittenFile(self.path, parts[0].bytes, parts[0].sha256, rows=self.rows)
        return WrittenFile(self.path, sum(p.bytes for p in parts), parts_digest(parts), parts, rows=self.rows)

    def abort(self) -> None:
        self.encoders.join()  # a row group being encoded is finished, the ones waiting are dropped
        self._close_fds()
        for w in self._writers:
            if w is not None:
                _discard(w)

    def _close_fds(self) -> None:
        for i, fd in enumerate(self._fds):
            if fd is not None:
                os.close(fd)
                self._fds[i] = None


def _discard(w: pq.ParquetWriter) -> None:
    """Close a writer whose output is being thrown away, whatever fails. A ``close()`` that raises
    leaves pyarrow's writer open, and its ``__del__`` would close (and raise) again at some later
    garbage collection, in whatever code runs then."""
    with contextlib.suppress(Exception):
        w.close()
    if getattr(w, "is_open", False):
        with contextlib.suppress(Exception):
            if w.file_handle is not None:
                w.file_handle.close()
        w.is_open = False


def parquet_options(schema: pa.Schema, sample: pa.RecordBatch | None, ratio: float) -> dict[str, Any]:
    """Encodings every common reader decodes exactly (pyarrow, polars, DuckDB, fastparquet): PLAIN,
    and a dictionary (RLE_DICTIONARY) for the columns whose first batch has few distinct values and
    for Arrow dictionary columns (DuckDB ENUMs). No DELTA_BINARY_PACKED: fastparquet decodes
    pyarrow's delta pages wrongly (wrong integers, crashes on full-range int64 and far dates).
    Decimals of up to 18 digits are stored as INT32/INT64, as Parquet recommends."""
    dictionary = [] if sample is None else dictionary_columns(sample, ratio)
    return {
        "use_dictionary": dictionary or False,
        "store_decimal_as_integer": True,
        "write_statistics": True,
        "store_schema": True,
    }


def dictionary_columns(sample: pa.RecordBatch, ratio: float) -> list[str]:
    """Columns of ``sample`` worth a Parquet dictionary: Arrow dictionary columns (written as their
    dictionary, no decoding) and flat columns with few distinct values."""
    import pyarrow.compute as pc

    out = []
    n = max(sample.num_rows, 1)
    for field, arr in zip(sample.schema, sample.columns, strict=True):
        t = field.type
        if pa.types.is_dictionary(t):
            out.append(field.name)
        elif pa.types.is_boolean(t) or pa.types.is_nested(t):
            continue
        elif len(pc.unique(arr)) / n < ratio:  # = count_distinct(mode="all"), 2-6x less CPU on a small batch
            out.append(field.name)
    return out


def parquet_type(t: pa.DataType) -> pa.DataType:
    """The Arrow type a Parquet file stores for ``t`` and gives back: Parquet has no seconds unit
    (timestamp[s] and time32[s] are stored in milliseconds) and no 64-bit date (date64 is stored as
    date32). The values are the same; ``read_table`` casts back to the exported type in the manifest."""
    if pa.types.is_timestamp(t) and t.unit == "s":
        return pa.timestamp("ms", t.tz)
    if pa.types.is_time32(t) and t.unit == "s":
        return pa.time32("ms")
    if pa.types.is_date64(t):
        return pa.date32()
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(parquet_type(f.type)) for f in t])
    if pa.types.is_map(t):
        return pa.map_(t.key_field.with_type(parquet_type(t.key_type)), t.item_field.with_type(parquet_type(t.item_type)))
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        item = parquet_type(t.value_type)
        if item == t.value_type:
            return t
        field = t.value_field.with_type(item)
        if pa.types.is_fixed_size_list(t):
            return pa.list_(field, t.list_size)
        return pa.large_list(field) if pa.types.is_large_list(t) else pa.list_(field)
    return t


class ParquetFormat(Format):
    name = "parquet"

    def open_writer(
        self, path: Path, schema: pa.Schema, *, compression: str, row_group_rows: int, parts: int, segmented: bool = False
    ) -> TableWriter:
        return ParquetTableWriter(
            path, schema, compression=compression, row_group_rows=row_group_rows, parts=parts, segmented=segmented
        )

    def iter_batches(self, path: Path, schema: pa.Schema, columns: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
        target = selected(schema, columns)
        rows = read_rows(target)
        files = parquet_files(path)
        opened = {f: pq.ParquetFile(f, metadata=parquet_footer(f)) for f in files}
        for f, j in source_order(files):
            for b in opened[f].iter_batches(batch_size=rows, row_groups=[j], columns=list(target.names)):
                yield conform(b, target)

    def read_table(self, path: Path, schema: pa.Schema, columns: Sequence[str] | None) -> pa.Table:
        cols = list(columns) if columns else None
        table = _read_row_groups(parquet_files(path), cols)
        target = selected(schema, columns)
        return table if table.schema.equals(target) else table.cast(target)

    def count_rows(self, path: Path, schema: pa.Schema) -> int:
        return sum(parquet_footer(f).num_rows for f in parquet_files(path))

    def stored_schema(self, schema: pa.Schema) -> pa.Schema:
        return pa.schema([f.with_type(parquet_type(f.type)) for f in schema], metadata=schema.metadata)

    def unsupported_columns(self, schema: pa.Schema) -> list[pa.Field]:
        """Interval columns (also inside a LIST or STRUCT): Parquet's INTERVAL is months, days and
        milliseconds, which cannot hold nanoseconds, and pyarrow writes none."""
        return [f for f in schema if _holds(f.type, lambda t: t == pa.month_day_nano_interval())]

    def file_schema(self, path: Path) -> pa.Schema | None:
        """Of parts: the first schema that differs from the first part's, so a comparison sees any difference."""
        schemas = [parquet_footer(f).schema.to_arrow_schema() for f in parquet_files(path)]
        return next((s for s in schemas[1:] if not s.equals(schemas[0])), schemas[0])


def _holds(t: pa.DataType, test: Any) -> bool:
    """``t`` or a type nested in it passes ``test``."""
    if test(t):
        return True
    if pa.types.is_map(t):
        return _holds(t.key_type, test) or _holds(t.item_type, test)
    if pa.types.is_nested(t):
        return any(_holds(t.field(i).type, test) for i in range(t.num_fields))
    return False


#: a task of the read's pool: a run of one file's row groups of at least READ_TASK_ROWS rows and
#: at most READ_TASK_BYTES uncompressed (a row group alone past either)
READ_TASK_ROWS = 65_536
READ_TASK_BYTES = 64 * 2**20
READ_THREADS = 8


def _read_row_groups(files: list[Path], cols: list[str] | None) -> pa.Table:
    """A table's files read on one pool of Arrow's CPU count, each task decoded on its thread by a
    reader of its own, as pyarrow's dataset schedules its fragments; then the row groups taken in
    source order (``source_order``).

    A task is a row group, or a run of small ones (READ_TASK_ROWS): measured on the matrix's tables,
    whole processes, the system allocator, against pyarrow's read of the same folder — 20M rows of
    9 columns in 123k-row groups: a task a row group 0.92x (one ``read_row_groups`` of several copies
    them into one array a column: 1.03x; each part's whole ``read`` side by side, as before: 1.40x);
    1M rows of 300 columns in 3,400-row groups: a task a row group 1.00x (a call's cost a column
    chunk), runs of them 0.73x. One task: one read on Arrow's threads."""
    footers = {f: parquet_footer(f) for f in files}
    tasks: list[tuple[Path, list[int]]] = []
    for f, md in footers.items():
        rows = size = 0
        for g in range(md.num_row_groups):
            group = md.row_group(g)
            if g == 0 or rows >= READ_TASK_ROWS or size + group.total_byte_size > READ_TASK_BYTES:
                tasks.append((f, []))
                rows = size = 0
            tasks[-1][1].append(g)
            rows += group.num_rows
            size += group.total_byte_size
    if len(tasks) <= 1:  # one task, or no rows at all: one read on Arrow's threads
        first = tasks[0][0] if tasks else files[0]
        with pq.ParquetFile(first, metadata=footers[first]) as pf:
            return pf.read(columns=cols)

    def one(task: tuple[Path, list[int]]) -> list[tuple[tuple[Path, int], pa.Table]]:
        f, groups = task
        with pq.ParquetFile(f, metadata=footers[f]) as pf:
            table = pf.read_row_groups(groups, columns=cols, use_threads=False)
        out, start = [], 0
        for g in groups:  # zero-copy slices, sized by the same footer
            n = footers[f].row_group(g).num_rows
            out.append(((f, g), table.slice(start, n)))
            start += n
        return out

    from concurrent.futures import ThreadPoolExecutor

    # at most READ_THREADS: a container's CPU quota is often far below the host's count Arrow sees
    with ThreadPoolExecutor(min(len(tasks), max(pa.cpu_count(), 1), READ_THREADS), thread_name_prefix="syncer-read") as pool:
        read = dict(piece for pieces in pool.map(one, tasks) for piece in pieces)
    return pa.concat_tables([read[piece] for piece in source_order(files)])


def source_order(files: list[Path]) -> Iterator[tuple[Path, int]]:
    """A table's row groups as (file, index) in source order: segment by segment, row group j of
    every part, then j + 1 ... (the writer dealt them round-robin to the parts)."""
    for segment in _segments(files):
        groups = [parquet_footer(f).num_row_groups for f in segment]
        for j in range(max(groups)):
            yield from ((f, j) for f, n in zip(segment, groups, strict=True) if j < n)


def parquet_segments(path: Path) -> list[list[Path]]:
    """The files of a table by segment, in order (one segment unless it was written segmented)."""
    return _segments(parquet_files(path))


def _segments(files: list[Path]) -> list[list[Path]]:
    out: dict[str, list[Path]] = {}
    for f in files:
        m = _SEGMENT_FILE.fullmatch(f.name)
        out.setdefault(m.group(1) if m else "", []).append(f)
    return [out[k] for k in sorted(out)]


def parquet_layout(path: Path) -> tuple[int, bool]:
    """How a written table is laid out: its parts (encoders), and whether it is segmented."""
    segments = parquet_segments(path)
    return len(segments[0]), any(_SEGMENT_FILE.fullmatch(f.name) for f in segments[0])


def parquet_files(path: Path) -> list[Path]:
    """The Parquet files of a table: the file itself, or the parts in a table's folder in order."""
    if not path.is_dir():
        return [path]
    files = sorted(path.glob("part-*.parquet"))
    if not files:
        raise FileNotFoundError(errno.ENOENT, "no part-*.parquet files in the table's folder", str(path))
    return files
