"""The exception tree and the DuckDB classification table, with real DuckDB errors from real queries."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

import syncer
from syncer import _exceptions
from syncer._exceptions import (
    BadRowsError,
    SourceError,
    SourceNotFoundError,
    SourceOutOfMemoryError,
    SourceUnavailableError,
    SyncError,
    TransientSourceError,
    ValidationError,
    WriteError,
)
from syncer.sources.errors import DUCKDB_ERRORS, DuckDBContext, Stage, map_duckdb_error
from syncer.volume.layout import Volume

READ = DuckDBContext(Stage.READ, "t", Path("w.duckdb"), "source table 't'", "2MB")

# --- the tree -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", _exceptions.__all__)
def test_every_class_is_a_sync_error_drawn_in_the_tree_and_public(name: str) -> None:
    cls = getattr(_exceptions, name)
    assert issubclass(cls, SyncError)
    assert f" {name} " in _exceptions.__doc__
    assert getattr(syncer, name) is cls


def test_the_tree_has_no_flags_left() -> None:
    err = TransientSourceError("x")
    assert not hasattr(err, "transient") and not hasattr(err, "row_level") and not hasattr(err, "out_of_memory")


def test_every_class_the_duckdb_table_names_is_in_the_tree() -> None:
    for row in DUCKDB_ERRORS:
        assert issubclass(row.read, SourceError) and issubclass(row.check, SyncError)
        assert row.read.__name__ in _exceptions.__all__ and row.check.__name__ in _exceptions.__all__


# --- the DuckDB table, on real errors -------------------------------------------------------------------


def _raised(fn) -> BaseException:
    try:
        fn()
    except (duckdb.Error, OSError) as exc:
        return exc
    raise AssertionError("DuckDB raised nothing")


def _out_of_memory() -> BaseException:
    con = duckdb.connect(config={"memory_limit": "2MB", "threads": 1})
    return _raised(lambda: con.execute("SELECT string_agg(md5(i::VARCHAR), ',') FROM range(3000000) t(i)").fetchall())


def _in_arrow_stream(sql: str) -> BaseException:
    reader = duckdb.connect().sql(sql).to_arrow_reader(1000)

    def drain() -> None:
        while True:
            reader.read_next_batch()

    return _raised(drain)


@pytest.mark.parametrize(
    ("make", "expected", "words"),
    [
        pytest.param(_out_of_memory, SourceOutOfMemoryError, "raise [source] memory_limit", id="out-of-memory"),
        pytest.param(
            lambda: _raised(lambda: duckdb.connect().execute("SELECT 'abc'::INTEGER").fetchall()),
            BadRowsError,
            "a value could not be read: Conversion Error",
            id="conversion",
        ),
        pytest.param(
            lambda: _raised(lambda: duckdb.connect().execute("SELECT 300::TINYINT").fetchall()),
            BadRowsError,
            "a value could not be read",
            id="out-of-range-cast",
        ),
        pytest.param(
            lambda: _in_arrow_stream("SELECT (CASE WHEN i = 5000 THEN 'x' ELSE i::VARCHAR END)::INTEGER FROM range(10000) t(i)"),
            BadRowsError,
            "a value could not be read: Conversion Error",
            id="conversion-inside-an-arrow-stream",
        ),
        pytest.param(
            lambda: _raised(lambda: duckdb.connect().execute("SELECT * FROM no_such_table").fetchall()),
            SourceNotFoundError,
            "check [[tables]] 't' in the config",
            id="missing-table",
        ),
        pytest.param(
            lambda: _raised(lambda: duckdb.connect().execute("SELECT * FROM read_csv('/nonexistent/x.csv')").fetchall()),
            TransientSourceError,
            "DuckDB I/O failed",
            id="io-error",
        ),
        pytest.param(
            lambda: _raised(lambda: duckdb.connect().execute("SELEC 1").fetchall()),
            SourceError,
            "DuckDB query failed",
            id="anything-else",
        ),
    ],
)
def test_a_real_duckdb_error_maps_to_its_class(make, expected: type[SyncError], words: str) -> None:
    err = map_duckdb_error(make(), READ)
    assert type(err) is expected
    assert words in str(err) and "'t'" in str(err)


def test_in_the_duplicate_key_check_an_io_error_is_a_write_error_and_the_rest_a_failed_check() -> None:
    ctx = DuckDBContext(Stage.CHECK, "t", what="the duplicate-key scan of t.parquet")
    io = _raised(lambda: duckdb.connect().execute("SELECT * FROM read_parquet('/nonexistent/t.parquet')").fetchall())
    assert type(map_duckdb_error(io, ctx)) is WriteError
    assert type(map_duckdb_error(_out_of_memory(), ctx)) is ValidationError


def test_a_corrupt_warehouse_file_is_unavailable_naming_it_and_the_way_out(make_config, tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.duckdb"
    bad.write_bytes(os.urandom(20_000))
    cfg = make_config(db=bad)
    from syncer.sources.duckdb import DuckDBSource

    with pytest.raises(SourceUnavailableError, match=r"cannot open DuckDB warehouse .*corrupt\.duckdb.*syncer demo"):
        DuckDBSource(cfg.source)


def test_a_warehouse_locked_by_a_writer_is_unavailable_naming_the_way_out(make_config, warehouse: Path) -> None:
    cfg = make_config(db=warehouse)
    from syncer.sources.duckdb import DuckDBSource

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(warehouse)!r}); print('open', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(SourceUnavailableError, match=r"another process has it open for writing; stop it"):
            DuckDBSource(cfg.source)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


def test_the_source_raises_the_mapped_class(make_config, demo_db: Path) -> None:
    from syncer.sources.duckdb import DuckDBSource

    cfg = make_config(tables='[[tables]]\nname = "ghost"\nprimary_key = ["id"]\n')
    src = DuckDBSource(cfg.source)
    try:
        with pytest.raises(SourceNotFoundError, match=r"source table 'ghost' not found in the DuckDB warehouse"):
            src.count(cfg.table("ghost"))
    finally:
        src.close()


# --- a writer that fails, then fails again while aborting ----------------------------------------------


def test_a_writer_whose_abort_fails_too_fails_only_its_table(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # The Parquet writer's own read-only descriptor (it hashes what it wrote) is closed under it while
    # it writes: the next row group fails with EBADF, and so does abort() when it closes that
    # descriptor. The second failure must neither replace the first nor escape the table.
    db = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE big AS SELECT i AS id, md5(i::VARCHAR) AS s FROM range(200000) t(i)")
    con.execute("CREATE TABLE other AS SELECT i AS id FROM range(50) t(i)")
    con.close()
    cfg_path = tmp_path / "sync.toml"
    cfg_path.write_text(
        textwrap.dedent(
            f"""
            [source]
            kind = "duckdb"
            path = "{db}"

            [volume]
            root = "{tmp_path / "vol"}"

            [export]
            batch_rows = 10000
            row_group_rows = 20000

            [[tables]]
            name = "big"
            primary_key = ["id"]

            [[tables]]
            name = "other"
            primary_key = ["id"]
            """
        ),
        encoding="utf-8",
    )
    cfg = syncer.load_config(cfg_path)
    first = syncer.sync(cfg)
    assert first["status"] == "ok", first.get("error")
    closed: list[str] = []

    def close_the_hashing_descriptor(event: dict) -> None:
        if closed or event["table"] != "big" or event["event"] != "rows":
            return
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
                flags = int(Path(f"/proc/self/fdinfo/{fd}").read_text().split()[3], 8)
            except OSError:
                continue
            if "/staging/" in target and target.endswith(".parquet") and flags & 3 == os.O_RDONLY:
                os.close(int(fd))
                closed.append(target)
                return

    report = syncer.sync(cfg, progress=close_the_hashing_descriptor, force=True)  # force: export the unchanged tables

    assert closed, "the writer never opened its hashing descriptor"
    assert report["status"] == "partial", report.get("error")
    big = next(t for t in report["tables"] if t["table"] == "big")
    assert big["status"] == "carried_over"
    assert "writing big failed: Bad file descriptor; the previous data is kept" in big["error"], big["error"]
    # Whether abort() meets the closed descriptor too depends on where the encoder threads were when
    # it was closed; when it does, it is logged and noted, never raised (the deterministic case is
    # test_a_clean_up_that_fails_is_noted_on_the_first_error_never_raised_instead below).
    if "aborting the writer" in caplog.text:
        assert "aborting the writer of big after the failure also failed: Bad file descriptor" in caplog.text
    assert next(t for t in report["tables"] if t["table"] == "other")["ok"] is True
    vol = Volume(cfg.root)
    old = vol.inspect(first["snapshot_id"]).manifest["tables"]["big"]
    assert vol.current_manifest()["tables"]["big"]["sha256"] == old["sha256"]
    assert syncer.verify(cfg)["ok"]
    assert sorted(p.name for p in vol.staging.iterdir()) == []


def test_ctrl_c_during_a_duckdb_query_is_an_interrupt_not_a_failed_table(make_config) -> None:
    import signal
    import threading

    from syncer.sources.duckdb import DuckDBSource

    slow = '[[tables]]\nname = "slow"\nprimary_key = ["i"]\nquery = "select i from range(100000000000) t(i) where md5(i::varchar) = \'x\'"\n'
    cfg = make_config(tables=slow)
    src = DuckDBSource(cfg.source)
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            src.count(cfg.table("slow"))
    finally:
        timer.cancel()
        src.close()


def test_a_clean_up_that_fails_is_noted_on_the_first_error_never_raised_instead(tmp_path: Path) -> None:
    from syncer.config import TableConfig
    from syncer.export.failures import abandon

    class WriterWithAClosedDescriptor:
        """A writer whose abort closes a descriptor that is already gone: a real EBADF from the OS."""

        def __init__(self) -> None:
            self.fd = os.open(tmp_path / "part.parquet", os.O_CREAT | os.O_WRONLY)
            os.close(self.fd)

        def abort(self) -> None:
            os.close(self.fd)

    table = TableConfig(name="big", primary_key=("id",))
    first = OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(syncer.WriteError, match=r"writing part\.parquet failed: No space left on device") as err:
        abandon(WriterWithAClosedDescriptor(), tmp_path / "part.parquet", table, first)
    assert err.value.__cause__ is first
    assert any("aborting the writer of part.parquet also failed: Bad file descriptor" in n for n in err.value.__notes__)
    assert not (tmp_path / "part.parquet").exists(), "the output is removed all the same"
