"""The stage helper (syncer._stage): bounded queues, cancellation, the first error wins, and
every thread is joined before anything goes on, in the helper itself and in a real export (DuckDB
source, real files) whose reader, profiler or encoder fails."""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from syncer import _stage as pipeline
from syncer import load_config
from syncer._exceptions import SourceError
from syncer._stage import Cancelled, Pipeline
from syncer.config import Config, SourceConfig, TableConfig
from syncer.export.table import export_table
from syncer.formats import open_writer, read_file
from syncer.formats.csv import CsvTableWriter
from syncer.formats.parquet import ParquetTableWriter
from syncer.sources.duckdb import DuckDBSource
from syncer.validate.profile import ProfileAccumulator
from tests.conftest import write_config


@pytest.fixture
def no_leftover_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    left = [t.name for t in set(threading.enumerate()) - before]
    assert not left, f"threads still alive: {left}"


def numbers(n: int, fail_at: int | None = None) -> Iterator[int]:
    for i in range(n):
        if i == fail_at:
            raise ValueError(f"item {i} cannot be read")
        yield i


# --- the helper on its own --------------------------------------------------------------------------


def test_a_reader_gives_every_item_in_order(no_leftover_threads: None) -> None:
    with Pipeline() as stages:
        ahead = stages.reader(numbers(500), bound=2)
        assert list(ahead) == list(range(500))
    assert ahead.peak <= 2


def test_a_reader_error_reaches_the_consumer_after_the_items_before_it(no_leftover_threads: None) -> None:
    got = []
    with pytest.raises(ValueError, match=r"^item 3 cannot be read$"), Pipeline() as stages:
        got.extend(stages.reader(numbers(10, fail_at=3)))
    assert got == [0, 1, 2]


def test_a_worker_error_stops_the_reader_and_the_consumer(no_leftover_threads: None) -> None:
    def profile(i: int) -> None:
        if i == 5:
            raise ArithmeticError("cannot profile item 5")

    with pytest.raises(ArithmeticError, match=r"^cannot profile item 5$"), Pipeline() as stages:
        work = stages.worker(profile)
        for item in stages.reader(numbers(10_000)):
            work.put(item)
    assert stages.error is not None and str(stages.error) == "cannot profile item 5"


def test_the_first_error_wins_and_later_ones_are_attached(no_leftover_threads: None) -> None:
    first_raised = threading.Event()
    inside = threading.Event()

    def fails_first(_: int) -> None:
        raise LookupError("the first failure")

    def fails_later(_: int) -> None:
        inside.set()
        first_raised.wait()
        raise OSError("a later failure while cancelling")

    with pytest.raises(LookupError) as info, Pipeline() as stages:
        later = stages.worker(fails_later)
        later.put(0)
        # inside fails_later before anything fails (else, under load, the cancel can come before
        # its thread took item 0: it then stops without calling it, and there is no later error)
        assert inside.wait(10)
        first = stages.worker(fails_first)
        first.put(0)
        # Once the stage has failed, put raises its error instead of taking more (or waiting). Under
        # load the worker may not have reached item 0 yet: keep offering, for at most 10 s.
        deadline = time.monotonic() + 10
        with pytest.raises(LookupError):
            while time.monotonic() < deadline:
                first.put(1)
                time.sleep(0.005)
        first_raised.set()
        raise RuntimeError("and the block's own error, last")
    assert str(info.value) == "the first failure"
    # the later two in whichever order they came
    assert sorted(info.value.__notes__) == [
        "then, in another stage: OSError: a later failure while cancelling",
        "then, in another stage: RuntimeError: and the block's own error, last",
    ]


def test_the_blocks_own_error_wins_when_it_comes_first(no_leftover_threads: None) -> None:
    with pytest.raises(KeyError, match="mine"), Pipeline() as stages:
        work = stages.worker(lambda _: None)
        work.put(1)
        raise KeyError("mine")
    with pytest.raises(KeyError, match="mine"):
        work.put(2)  # a cancelled stage takes nothing more


def test_a_stage_that_drives_another_pipeline_reports_that_pipelines_error(no_leftover_threads: None) -> None:
    """As a writer thread drives the Parquet writer's encoder stages."""

    def breaks(i: int) -> None:
        if i == 2:
            raise ValueError("the inner stage failed at item 2")

    inner = Pipeline()
    encode = inner.worker(breaks)
    with pytest.raises(ValueError, match=r"^the inner stage failed at item 2$"), Pipeline() as outer:
        relay = outer.worker(encode.put)
        for i in range(1_000):
            relay.put(i)
    inner.join()


def test_put_after_a_clean_cancel_raises_cancelled(no_leftover_threads: None) -> None:
    stages = Pipeline()
    work = stages.worker(lambda _: None)
    stages.close()
    with pytest.raises(Cancelled):
        work.put(1)


def test_a_worker_never_holds_more_than_its_bound(no_leftover_threads: None) -> None:
    release = threading.Event()
    done: list[int] = []

    def slow(i: int) -> None:
        release.wait()
        done.append(i)

    with Pipeline() as stages:
        work = stages.worker(slow, bound=3)
        for i in range(3):
            work.put(i)  # room for three: none of these waits
        assert work.held == 3
        release.set()
        for i in range(3, 200):
            work.put(i)
            assert work.held <= 3
    assert done == list(range(200))
    assert work.peak == 3 and work.held == 0


def test_a_reader_never_runs_more_than_its_bound_ahead(no_leftover_threads: None) -> None:
    produced = []

    def counted() -> Iterator[int]:
        for i in range(300):
            produced.append(i)
            yield i

    with Pipeline() as stages:
        ahead = stages.reader(counted(), bound=2)
        for consumed, item in enumerate(ahead, start=1):
            # queued (at most the bound) + the one the reader holds waiting for room
            assert len(produced) - consumed <= 2 + 1
            assert item == consumed - 1
    assert 1 <= ahead.peak <= 2


def test_leaving_early_closes_the_source_iterator_on_its_thread(no_leftover_threads: None) -> None:
    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    with Pipeline() as stages:
        for item in stages.reader(endless()):
            if item == 10:
                break
    assert closed.is_set()


def test_close_waits_for_a_thread_stuck_in_a_call_and_says_so(
    no_leftover_threads: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A reader inside a call that ignores cancellation: close() does not return before the call
    does. The call here returns only once close() has logged that it is waiting for it."""
    monkeypatch.setattr(pipeline, "JOIN_WARN_S", 0.01)
    release = threading.Event()
    returned = threading.Event()

    class ReleaseOnWarning(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "still waiting for thread syncer-read" in record.getMessage():
                release.set()

    def stuck() -> Iterator[int]:
        yield 1
        release.wait()  # a query that does not look at the cancellation
        returned.set()
        yield 2

    handler = ReleaseOnWarning()
    logging.getLogger("syncer").addHandler(handler)
    try:
        with caplog.at_level(logging.WARNING, "syncer"), pytest.raises(RuntimeError, match="stop"), Pipeline() as stages:
            for _ in stages.reader(stuck()):
                raise RuntimeError("stop")
    finally:
        logging.getLogger("syncer").removeHandler(handler)
    assert returned.is_set()
    assert "nothing reuses what it holds (a source connection, a file) before it does" in caplog.text


def test_a_bound_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="bound must be at least 1"):
        Pipeline().worker(lambda _: None, bound=0)


# --- the Parquet part encoders ----------------------------------------------------------------------


def test_each_part_encoder_holds_at_most_one_row_group(tmp_path: Path, no_leftover_threads: None) -> None:
    table = pa.table({"id": pa.array(range(20_000), pa.int64())})
    writer = open_writer("parquet", tmp_path / "t", table.schema, row_group_rows=500, parts=3)
    assert isinstance(writer, ParquetTableWriter)
    for batch in table.to_batches(max_chunksize=333):
        writer.write(batch)
    writer.close()
    assert [s.bound for s in writer.stages] == [ParquetTableWriter.QUEUE + 1] * 3
    assert [s.peak for s in writer.stages] == [1, 1, 1]
    assert read_file("parquet", tmp_path / "t", table.schema).equals(table)


def test_an_encoder_error_stops_every_part_and_abort_joins_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_leftover_threads: None
) -> None:
    encode = ParquetTableWriter._encode

    def fails_on_part_1(self: ParquetTableWriter, part: int, batches: list[pa.RecordBatch]) -> None:
        if part == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        encode(self, part, batches)

    monkeypatch.setattr(ParquetTableWriter, "_encode", fails_on_part_1)
    table = pa.table({"id": pa.array(range(5_000), pa.int64())})
    writer = open_writer("parquet", tmp_path / "t", table.schema, row_group_rows=100, parts=2)
    with pytest.raises(OSError, match="No space left on device"):
        for batch in table.to_batches(max_chunksize=100):
            writer.write(batch)
        writer.close()
    writer.abort()


# --- inline stages: the same rules on the calling thread (a table of one batch) --------------------


@pytest.fixture
def no_thread_started(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    started: list[str] = []
    real = threading.Thread.start

    def start(self: threading.Thread) -> None:
        started.append(self.name)
        real(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    yield started
    assert not started, f"threads started: {started}"


def test_inline_stages_run_on_the_calling_thread_in_order(no_thread_started: list[str]) -> None:
    seen: list[tuple[int, int]] = []
    with pipeline.inline(), Pipeline() as stages:
        work = stages.worker(lambda i: seen.append((i, threading.get_ident())), bound=3)
        for item in stages.reader(numbers(100), bound=2):
            work.put(item)
    assert [i for i, _ in seen] == list(range(100))
    assert {t for _, t in seen} == {threading.get_ident()}


def test_inline_errors_follow_the_same_rules(no_thread_started: list[str]) -> None:
    got: list[int] = []
    with pytest.raises(ValueError, match=r"^item 3 cannot be read$"), pipeline.inline(), Pipeline() as stages:
        got.extend(stages.reader(numbers(10, fail_at=3)))
    assert got == [0, 1, 2]

    def profile(i: int) -> None:
        if i == 5:
            raise ArithmeticError("cannot profile item 5")

    with pytest.raises(ArithmeticError, match=r"^cannot profile item 5$"), pipeline.inline(), Pipeline() as stages:
        work = stages.worker(profile)
        for item in stages.reader(numbers(10_000)):
            work.put(item)
    assert stages.error is not None and str(stages.error) == "cannot profile item 5"


def test_inline_leaving_early_closes_the_source_iterator(no_thread_started: list[str]) -> None:
    closed = []

    def items() -> Iterator[int]:
        try:
            yield from range(1000)
        finally:
            closed.append(True)

    with pytest.raises(KeyError), pipeline.inline(), Pipeline() as stages:
        for item in stages.reader(items()):
            if item == 7:
                raise KeyError("stop")
    assert closed == [True]


def test_inline_is_scoped_to_its_block_and_thread() -> None:
    with pipeline.inline():
        assert Pipeline().inline
        other: list[bool] = []
        t = threading.Thread(target=lambda: other.append(Pipeline().inline))
        t.start()
        t.join()
        assert other == [False]
        with pipeline.inline(False):
            assert not Pipeline().inline
        assert Pipeline().inline
    assert not Pipeline().inline


# --- a real export whose reader, profiler or encoder fails ------------------------------------------

TABLES = """
[[tables]]
name = "enrollments"
source = "enrollments"
primary_key = ["enrollment_id"]

[[tables]]
name = "enrollments_csv"
source = "enrollments"
primary_key = ["enrollment_id"]
format = "csv"
"""


class BreaksAtBatch(DuckDBSource):
    """The real DuckDB source, whose stream fails at batch ``fail_at`` (a dropped connection)."""

    def __init__(self, cfg: SourceConfig) -> None:
        super().__init__(cfg)
        self.fail_at: int | None = None
        # before batch ``hold_at`` the stream waits for ``release`` (a query that takes its time)
        self.hold_at: int | None = None
        self.release = threading.Event()
        self.returned = threading.Event()

    def stream(self, table: TableConfig, schema: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]:
        for i, batch in enumerate(super().stream(table, schema, batch_rows)):
            if i == self.fail_at:
                raise SourceError(f"table {table.name!r}: the connection dropped at batch {i}")
            if i == self.hold_at:
                self.release.wait()
                self.returned.set()
            yield batch


@pytest.fixture
def cfg(tmp_path: Path, demo_db: Path) -> Config:
    # row groups of 400 rows, two encoder threads: the Parquet table is written as two parts
    return load_config(write_config(tmp_path, demo_db, tables=TABLES, extra="row_group_rows = 400\nwriters = 2\n"))


@pytest.fixture
def source(cfg: Config) -> Iterator[BreaksAtBatch]:
    src = BreaksAtBatch(cfg.source)
    yield src
    src.close()


def export(source: BreaksAtBatch, cfg: Config, name: str, staging: Path) -> tuple[bool, str | None, int]:
    staging.mkdir(parents=True, exist_ok=True)
    out = export_table(source, cfg.table(name), cfg, staging, None)
    return out.ok, out.error, out.rows


def assert_the_source_works_again(source: BreaksAtBatch, cfg: Config, name: str, staging: Path) -> None:
    """The same source object (the same DuckDB connection) exports the table again, in full."""
    source.fail_at = source.hold_at = None
    ok, error, rows = export(source, cfg, name, staging / "again")
    assert (ok, error) == (True, None)
    assert rows == source.count(cfg.table(name))


@pytest.mark.parametrize("name", [pytest.param("enrollments", id="parquet-parts"), pytest.param("enrollments_csv", id="csv")])
def test_a_reader_error_is_the_one_reported(
    source: BreaksAtBatch, cfg: Config, tmp_path: Path, name: str, no_leftover_threads: None
) -> None:
    source.fail_at = 3
    ok, error, _ = export(source, cfg, name, tmp_path / "staging")
    assert not ok
    assert error == f"table {name!r}: the connection dropped at batch 3"
    assert not any((tmp_path / "staging").glob("enrollments*")), "the partial output is removed"
    assert_the_source_works_again(source, cfg, name, tmp_path)


def test_a_profiler_error_is_the_one_raised(
    source: BreaksAtBatch, cfg: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_leftover_threads: None
) -> None:
    update = ProfileAccumulator.update
    seen = []

    def fails_at_batch_2(self: ProfileAccumulator, batch: pa.RecordBatch) -> None:
        seen.append(batch.num_rows)
        if len(seen) == 3:
            raise ArithmeticError("the profile overflowed at batch 2")
        update(self, batch)

    monkeypatch.setattr(ProfileAccumulator, "update", fails_at_batch_2)
    with pytest.raises(ArithmeticError, match=r"^the profile overflowed at batch 2$"):
        export(source, cfg, "enrollments", tmp_path / "staging")
    monkeypatch.undo()
    assert_the_source_works_again(source, cfg, "enrollments", tmp_path)


def _fails_on_call(n: int, error: BaseException, original: object) -> object:
    calls = []

    def wrapper(self: object, *args: object) -> object:
        calls.append(1)
        if len(calls) == n:
            raise error
        return original(self, *args)  # type: ignore[operator]

    return wrapper


@pytest.mark.parametrize(
    ("name", "cls", "method", "n"),
    [
        pytest.param("enrollments", ParquetTableWriter, "_encode", 3, id="parquet-encode"),
        pytest.param("enrollments", ParquetTableWriter, "_seal", 2, id="parquet-seal-on-close"),
        pytest.param("enrollments_csv", CsvTableWriter, "_write", 3, id="csv-writer-thread"),
    ],
)
def test_an_encoder_error_is_the_one_reported(
    source: BreaksAtBatch,
    cfg: Config,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    cls: type,
    method: str,
    n: int,
    no_leftover_threads: None,
) -> None:
    full = OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(cls, method, _fails_on_call(n, full, getattr(cls, method)))
    ok, error, _ = export(source, cfg, name, tmp_path / "staging")
    assert not ok
    file = "enrollments" if name == "enrollments" else "enrollments_csv.csv"
    assert error is not None and error.startswith(f"table {name!r}: writing {file} failed: No space left on device; ")
    monkeypatch.undo()
    assert_the_source_works_again(source, cfg, name, tmp_path)


def test_an_export_does_not_return_while_the_reader_is_still_inside_the_source(
    source: BreaksAtBatch,
    cfg: Config,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    no_leftover_threads: None,
) -> None:
    """The profile fails while the reader waits inside the source's stream for its next batch: the
    error is raised only after the reader came back out (the source is then free to be used
    again). The stream comes back once the export has said it is waiting for it."""
    monkeypatch.setattr(pipeline, "JOIN_WARN_S", 0.01)
    monkeypatch.setattr(ProfileAccumulator, "update", _fails_on_call(1, ArithmeticError("profile failed"), None))
    source.hold_at = 1

    class ReleaseOnWarning(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "still waiting for thread syncer-read" in record.getMessage():
                source.release.set()

    handler = ReleaseOnWarning()
    logging.getLogger("syncer").addHandler(handler)
    try:
        with caplog.at_level(logging.WARNING, "syncer"), pytest.raises(ArithmeticError, match=r"^profile failed$"):
            export(source, cfg, "enrollments", tmp_path / "staging")
        assert source.returned.is_set()
    finally:
        logging.getLogger("syncer").removeHandler(handler)
        source.release.set()
    monkeypatch.undo()
    assert_the_source_works_again(source, cfg, "enrollments", tmp_path)


@pytest.mark.parametrize("name", ["courses", "courses_csv"])
def test_a_table_of_one_batch_is_exported_without_a_thread_and_its_errors_still_reported(
    tmp_path: Path, demo_db: Path, monkeypatch: pytest.MonkeyPatch, name: str, no_thread_started: list[str]
) -> None:
    tables = TABLES + '\n[[tables]]\nname = "courses"\nsource = "courses"\nprimary_key = ["course_id"]\n'
    tables += '\n[[tables]]\nname = "courses_csv"\nsource = "courses"\nprimary_key = ["course_id"]\nformat = "csv"\n'
    cfg = load_config(write_config(tmp_path, demo_db, tables=tables))
    src = DuckDBSource(cfg.source)
    try:
        assert src.count(cfg.table(name)) <= cfg.batch_rows
        started = no_thread_started  # the fixture also asserts it is still empty at the end
        staging = tmp_path / "staging"
        staging.mkdir()
        out = export_table(src, cfg.table(name), cfg, staging, None)
        assert (out.ok, out.error, started) == (True, None, [])
        assert out.rows == src.count(cfg.table(name))
        cls, method = (ParquetTableWriter, "_encode") if name == "courses" else (CsvTableWriter, "_write")
        monkeypatch.setattr(
            cls, method, _fails_on_call(1, OSError(errno.ENOSPC, "No space left on device"), getattr(cls, method))
        )
        (tmp_path / "staging2").mkdir()
        again = export_table(src, cfg.table(name), cfg, tmp_path / "staging2", None)
        assert not again.ok and started == []
        assert again.error is not None and "No space left on device" in again.error
        assert not any((tmp_path / "staging2").iterdir()), "the partial output is removed"
    finally:
        src.close()
