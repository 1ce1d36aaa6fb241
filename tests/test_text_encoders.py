"""CSV and JSONL batches spelled on two encoder threads and written in order (syncer.formats.text_encoders)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from syncer.formats.csv import CsvTableWriter
from syncer.formats.jsonl import JsonlTableWriter
from syncer.formats.text_encoders import ParallelTextWriter

SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("at", pa.timestamp("us", tz="UTC")),
        ("amount", pa.decimal128(12, 2)),
        ("score", pa.float64()),
        ("note", pa.string()),
        ("ok", pa.bool_()),
    ]
)


def _batches(count: int = 9, rows: int = 700) -> list[pa.RecordBatch]:
    import decimal

    out = []
    for k in range(count):
        ids = list(range(k * rows, (k + 1) * rows))
        out.append(
            pa.record_batch(
                [
                    pa.array(ids, pa.int64()),
                    pa.array([i * 1_000_003 for i in ids], pa.timestamp("us", tz="UTC")),
                    pa.array([None if i % 7 == 0 else decimal.Decimal(i).scaleb(-2) for i in ids], pa.decimal128(12, 2)),
                    pa.array([i / 3 if i % 5 else float("nan") for i in ids], pa.float64()),
                    pa.array([f'note "{i}"\n,' if i % 3 else None for i in ids], pa.string()),
                    pa.array([i % 2 == 0 for i in ids], pa.bool_()),
                ],
                schema=SCHEMA,
            )
        )
    return out


@pytest.mark.parametrize(
    ("writer", "ext"),
    [pytest.param(CsvTableWriter, "csv", id="csv"), pytest.param(JsonlTableWriter, "jsonl", id="jsonl")],
)
def test_two_encoders_write_the_bytes_one_encoder_writes(tmp_path: Path, writer: type, ext: str) -> None:
    one = writer(tmp_path / f"one.{ext}", SCHEMA, encoders=1)
    two = writer(tmp_path / f"two.{ext}", SCHEMA, encoders=2)
    assert (one.encoders, two.encoders) == (1, 2)
    for b in _batches():
        one.write(b)
        two.write(b)
    a, b = one.close(), two.close()
    assert (tmp_path / f"one.{ext}").read_bytes() == (tmp_path / f"two.{ext}").read_bytes()
    assert (
        (a.sha256, a.bytes, a.rows) == (b.sha256, b.bytes, b.rows) == (a.sha256, (tmp_path / f"two.{ext}").stat().st_size, 6300)
    )


class _Spy(ParallelTextWriter):
    """Spells each batch's ids as lines; the first encoder is slow, ``fail_at`` raises."""

    def __init__(self, path: Path, *, fail_at: int = -1) -> None:
        super().__init__(path, pa.schema([("id", pa.int64())]), encoders=2)
        self.threads: set[str] = set()
        self.fail_at = fail_at

    def encode(self, encoder: int, batch: pa.RecordBatch) -> list[bytes]:
        self.threads.add(threading.current_thread().name)
        first = batch.column(0)[0].as_py()
        if first == self.fail_at:
            raise ValueError(f"cannot spell batch {first}")
        if encoder == 0:
            time.sleep(0.01)  # the other encoder runs ahead: the writer still keeps the order
        return [b"".join(f"{v}\n".encode() for v in batch.column(0).to_pylist())]


def _ids(k: int) -> pa.RecordBatch:
    return pa.record_batch([pa.array(range(k * 10, k * 10 + 10), pa.int64())], names=["id"])


def test_batches_are_spelled_on_both_encoders_and_written_in_order(tmp_path: Path) -> None:
    w = _Spy(tmp_path / "t.txt")
    for k in range(20):
        w.write(_ids(k))
    done = w.close()
    assert w.threads == {"syncer-encode-0", "syncer-encode-1"}
    assert (tmp_path / "t.txt").read_text() == "".join(f"{i}\n" for i in range(200))
    assert done.rows == 200


def test_an_encoder_error_is_raised_and_every_thread_stops(tmp_path: Path) -> None:
    before = {t.name for t in threading.enumerate()}
    w = _Spy(tmp_path / "t.txt", fail_at=50)
    with pytest.raises(ValueError, match="cannot spell batch 50"):
        for k in range(20):
            w.write(_ids(k))
        w.close()
    w.abort()
    left = {t.name for t in threading.enumerate()} - before
    assert not {n for n in left if n.startswith("syncer-")}, left
    # what was written is a prefix of the batches before the one that failed, in order
    text = (tmp_path / "t.txt").read_text()
    assert "".join(f"{i}\n" for i in range(50)).startswith(text)


class _LosingFile:
    """A file that keeps only its first ``keep`` bytes and says it wrote every one (a volume that
    loses writes without an error)."""

    def __init__(self, f: Any, keep: int) -> None:
        self.f, self.keep, self.seen = f, keep, 0

    def write(self, b: Any) -> int:
        mv = memoryview(b)
        kept = max(0, min(len(mv), self.keep - self.seen))
        self.seen += len(mv)
        if kept:
            self.f.write(mv[:kept])
        return len(mv)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.f, name)


def _checks_of(fmt: str, path: Path, written: Any, acc: Any) -> dict[str, Any]:
    from syncer.config import TableConfig
    from syncer.export.quarantine import Quarantine
    from syncer.validate.checks import Evidence, validate_table
    from syncer.validate.keys import DupResult

    table = TableConfig("t", source="t", primary_key=("id",), format=fmt)
    q = Quarantine(path.parent / "q", table)
    ev = Evidence(table, SCHEMA, acc.rows, acc.result(), acc, DupResult(), q, written, None, False)
    return {c.name: c for c in validate_table(ev)}


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize("when", ["while-written", "after-close"])
def test_a_file_written_on_two_encoders_that_loses_its_last_line_fails_its_checks(tmp_path: Path, fmt: str, when: str) -> None:
    """The checks still see every byte. A file that loses bytes while it is written (the volume
    says they were written) fails sha256 (its size) and reopen (CSV reads its ranges back from the
    file as it writes them: the file ends early; JSONL re-reads the closed file: rows missing); one
    that loses its last line after it was closed fails sha256, and JSONL's reopen too."""
    from syncer.formats import open_writer
    from syncer.validate.profile import ProfileAccumulator

    path = tmp_path / f"t.{fmt}"
    writer = open_writer(fmt, path, SCHEMA)
    assert writer.threaded and getattr(writer, "encoders", 0) == 2
    assert getattr(writer, "reads_back", None) is (fmt == "csv")
    if when == "while-written":
        writer.sink._f = _LosingFile(writer.sink._f, keep=3_000)  # type: ignore[attr-defined]
    acc = ProfileAccumulator(SCHEMA)
    for b in _batches(count=4, rows=50):
        writer.write(b)
        acc.update(b)
    written = writer.close()
    if when == "after-close":
        data = path.read_bytes()
        path.write_bytes(data[: data.rstrip(b"\n").rfind(b"\n") + 1])  # the last row gone
    checks = _checks_of(fmt, path, written, acc)
    assert not checks["sha256"].ok, checks["sha256"].detail
    detail = checks["reopen"].detail  # the cut falls inside a row's quoted "\n" (CSV) or after it
    if when == "while-written" or fmt == "jsonl":
        assert not checks["reopen"].ok and ("were written" in detail or "cannot re-open" in detail), detail
    if when == "while-written" and fmt == "csv":
        assert "the file ends at byte 3,000" in detail, detail


def test_csv_read_back_parses_every_range_from_the_file_and_checks_its_header(tmp_path: Path) -> None:
    """The read-back's rows and profile are the batches' (every range parsed once, the header
    not taken for a row); a header that changed on disk before the close fails the check."""
    from syncer.validate.profile import ProfileAccumulator, profile_differences

    for damaged in (False, True):
        path = tmp_path / f"t{int(damaged)}.csv"
        writer = CsvTableWriter(path, SCHEMA)
        if damaged:  # the header's first byte changed on disk (before any batch: no thread writes yet)
            writer.stream.flush()
            writer.sink.flush()
            with open(path, "r+b") as f:
                f.write(b"X")
        acc = ProfileAccumulator(SCHEMA)
        for b in _batches(count=7, rows=300):
            writer.write(b)
            acc.update(b)
        written = writer.close()
        rb = written.read_back
        assert rb is not None and rb.rows == 2_100
        assert not profile_differences(acc.result(), rb.acc.result(), SCHEMA)
        checks = _checks_of("csv", path, written, acc)
        if damaged:
            assert not checks["reopen"].ok and "its first line reads back as b'Xid" in checks["reopen"].detail, checks[
                "reopen"
            ].detail
        else:
            assert rb.error is None and checks["reopen"].ok and checks["sha256"].ok, checks
