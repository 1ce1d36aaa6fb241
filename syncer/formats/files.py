"""File helpers every format shares: the hashing sink (bytes hashed on their way to disk), the
stream writer built on it, sha256 of a file and of a table's parts, sizes and removal."""

from __future__ import annotations

import collections
import contextlib
import hashlib
import io
import os
import shutil
import threading
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa

from syncer._digest import parts_digest, sha256_file  # (their home: status and verify load no pyarrow for them)
from syncer.formats.base import TableWriter, WrittenFile

__all__ = [
    "HashingFile",
    "StreamTableWriter",
    "fsync",
    "output_size",
    "parquet_footer",
    "parts_digest",
    "remove_output",
    "sha256_file",
]

_WRITE_BUFFER = 8 << 20


#: Parquet footers parsed, by the file's identity (see :func:`parquet_footer`)
_footers: collections.OrderedDict[tuple[Any, ...], Any] = collections.OrderedDict()
_footers_lock = threading.Lock()
_FOOTERS = 16


def parquet_footer(path: Path) -> Any:
    """The ``pyarrow.parquet.FileMetaData`` of the closed file at ``path``, read from disk once per
    version of the file: the checks after a Parquet file is written (the profile's footer statistics,
    the re-open's row count and stored schema) each read its footer, four opens and parses of the same
    bytes for each small table. Keyed by device, inode, size and modification and change times (from
    one ``stat`` per call): a file replaced, truncated or rewritten is read again."""
    import pyarrow.parquet as pq

    st = os.stat(path)
    key = (os.fspath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    with _footers_lock:
        hit = _footers.get(key)
        if hit is not None:
            _footers.move_to_end(key)
            return hit
    meta = pq.read_metadata(path)
    with _footers_lock:
        _footers[key] = meta
        while len(_footers) > _FOOTERS:
            _footers.popitem(last=False)
    return meta


def fsync(fd: int) -> None:
    """Data and size on disk before anything points at the file."""
    os.fsync(fd)


class HashingFile(io.RawIOBase):
    """A write-only file that hashes every byte on its way to disk (no second read of the file)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._f: BinaryIO = open(path, "xb")  # noqa: SIM115 - closed in close()
        self._hash = hashlib.sha256()
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        mv = memoryview(b)
        self._hash.update(mv)
        n = self._f.write(mv)
        self._pos += n
        return n

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        if not self._f.closed:
            self._f.flush()

    def sync(self) -> None:
        self._f.flush()
        fsync(self._f.fileno())

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()
        super().close()

    @property
    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class StreamTableWriter(TableWriter):
    """A writer whose format library writes to a stream: hashed on its way to disk."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        super().__init__(path, schema)
        self.sink = HashingFile(path)
        # Arrow's writers call back into Python for every small write (and need the GIL each time,
        # which the other pipeline threads hold often); buffer natively and hand over large chunks.
        self.stream = pa.BufferedOutputStream(pa.PythonFile(self.sink, mode="w"), _WRITE_BUFFER)

    def close(self) -> WrittenFile:
        self._finish()
        self.stream.flush()
        self.sink.flush()  # durable at publish: the snapshot's one fsync plan (syncer.volume.files.fsync_tree)
        self.stream.close()  # closes the sink too
        return WrittenFile(self.path, self.sink.tell(), self.sink.hexdigest, rows=self.rows)

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # the file is being thrown away
            self._finish()
        with contextlib.suppress(Exception):
            self.stream.close()
        self.sink.close()

    def _finish(self) -> None:
        """Write what the format keeps for the end (footer, buffered row group)."""


def output_size(path: Path) -> int:
    """Bytes of a written file, or of every file in a table's folder."""
    if path.is_dir() and not path.is_symlink():
        return sum(f.stat().st_size for f in path.iterdir())
    return path.stat().st_size


def remove_output(path: Path) -> None:
    """Remove a staged table file or folder (missing is fine)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
