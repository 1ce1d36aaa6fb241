"""File helpers every format shares: the hashing sink (bytes hashed on their way to disk), the
stream writer built on it, sha256 of a file and of a table's parts, sizes and removal."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa

from syncer._digest import parts_digest, sha256_file  # (their home: status and verify load no pyarrow for them)
from syncer.formats.base import TableWriter, WrittenFile

__all__ = ["HashingFile", "StreamTableWriter", "fsync", "output_size", "parts_digest", "remove_output", "sha256_file"]

_WRITE_BUFFER = 8 << 20


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
