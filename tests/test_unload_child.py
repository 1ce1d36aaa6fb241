"""The engine unload's COPY runs in a child (syncer/sources/duckdb_unload.py): DuckDB 2.0.0 deadlocks
or crashes when a multi-threaded COPY fails part-way, and either must cost the child only."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import duckdb
import pytest

import syncer
from syncer.sources import duckdb_unload
from syncer.volume.layout import Volume

ROWS = 600_000


def _children_running_the_unload() -> list[int]:
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid() and b"syncer.sources.duckdb_unload" in cmd:
            out.append(int(pid))
    return out


def _signal_the_child(sig: int) -> threading.Thread:
    """Stop the child the moment it exists (it is still importing DuckDB), then send ``sig``: a stopped
    child uses no CPU, as DuckDB's deadlocked one; SIGSEGV + SIGCONT is a crash mid-COPY."""

    def run() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pids = _children_running_the_unload()
            if pids:
                for pid in pids:
                    os.kill(pid, signal.SIGSTOP)
                    if sig != signal.SIGSTOP:
                        os.kill(pid, sig)
                        os.kill(pid, signal.SIGCONT)
                return
            time.sleep(0.002)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    con.execute(f"CREATE TABLE big AS SELECT i AS id, md5(i::VARCHAR) AS s, i * 0.5 AS x FROM range({ROWS}) t(i)")
    con.close()
    return db


def _config(tmp_path: Path, db: Path) -> syncer.Config:
    text = (
        f'[source]\nkind = "duckdb"\npath = "{db}"\n\n[volume]\nroot = "{tmp_path / "vol"}"\n\n'
        '[[tables]]\nname = "big"\nprimary_key = ["id"]\nexport = "engine"\n'
    )
    (tmp_path / "sync.toml").write_text(text)
    return syncer.load_config(tmp_path / "sync.toml")


def test_the_childs_answer_carries_duckdbs_own_error(warehouse: Path, tmp_path: Path) -> None:
    sql = f"COPY (SELECT id, (s || 'x')::INTEGER AS s FROM big) TO '{tmp_path / 'x.parquet'}' (FORMAT parquet)"
    got = duckdb_unload.run_copy(str(warehouse), sql, threads=1, memory_limit="256MB")
    assert got["ok"] is False and got["kind"] == "ConversionException" and "INTEGER" in got["message"]


@pytest.mark.parametrize(
    ("sig", "said"),
    [
        pytest.param(signal.SIGSEGV, "crashed (SIGSEGV)", id="crash"),
        pytest.param(signal.SIGSTOP, "without CPU time", id="hang"),  # stopped: no CPU, as in DuckDB's deadlock
    ],
)
def test_a_child_that_crashes_or_hangs_fails_the_table_alone_and_keeps_its_data(
    warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sig: int, said: str
) -> None:
    cfg = _config(tmp_path, warehouse)
    first = syncer.sync(cfg)
    assert first.status == "ok"
    monkeypatch.setattr(duckdb_unload, "STALL_S", 1.0)
    _signal_the_child(sig)
    started = time.monotonic()
    second = syncer.sync(cfg, force=True)
    assert time.monotonic() - started < 30
    t = second.table("big")
    assert second.status == "failed" and t is not None and not t.ok
    assert said in (t.error or "") and "keeps its old data" in (t.error or "")
    assert "Traceback" not in (t.error or "")
    vol = Volume(cfg.root)
    assert vol.current_id() == first.snapshot_id and syncer.verify(cfg)["ok"]
    assert list(vol.staging.iterdir()) == []
    assert _children_running_the_unload() == []  # nothing left running


def test_a_warehouse_replaced_during_the_run_is_not_unloaded_from_the_new_file(
    warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child opens the warehouse by its path. `mv changed.duckdb w.duckdb` after the run opened its
    file would give the engine table another file than its count and profile (and than every other
    table of the run); a change inside min/max at the same length passes the profile. Refused."""
    import syncer.sources.duckdb as duck_mod

    changed = tmp_path / "changed.duckdb"
    con = duckdb.connect(str(changed))
    con.execute(f"CREATE TABLE big AS SELECT i AS id, md5(i::VARCHAR) AS s, i * 0.5 AS x FROM range({ROWS}) t(i)")
    con.execute("UPDATE big SET s = repeat('8', 32) WHERE id = 7")  # inside min/max, the same length
    con.close()
    real = duck_mod.run_copy

    def replace_then_copy(*args: object, **kwargs: object) -> dict[str, object]:
        if changed.exists():
            os.replace(changed, warehouse)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(duck_mod, "run_copy", replace_then_copy)
    cfg = _config(tmp_path, warehouse)
    report = syncer.sync(cfg)
    t = report.table("big")
    assert t is not None and not t.ok, "the engine table was unloaded from a file the run did not open"
    assert "was replaced while the run read it" in (t.error or "") and "Traceback" not in (t.error or "")
    assert list(Volume(cfg.root).staging.iterdir()) == []
    monkeypatch.setattr(duck_mod, "run_copy", real)
    again = syncer.sync(cfg)  # the next run reads the new file, every table from it
    assert again.status == "ok", again.error
    got = syncer.read_table("big", root=cfg.root)
    assert got.loc[got["id"] == 7, "s"].item() == "8" * 32
