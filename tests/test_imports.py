"""What a command imports (issue 14, fixed cost): real ``syncer`` processes, what they had loaded when they exited.

A sync never imports pandas (~0.2 s of every process, most of an unchanged sync's cost): not through
pyarrow's conversions of zoned or nanosecond timestamps to Python, not through the preload before
the volume lock -- for every format, a full sync and an unchanged one -- and what it does import is
all loaded before it takes the lock (strace). ``status`` and ``verify`` import neither DuckDB nor pyarrow.compute when the
volume has no DuckDB-only work for them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[1]

#: the column types of a real table, each with its own spelling in every format
_TYPES = """
    SELECT i AS id,
           TIMESTAMPTZ '2024-01-01 00:00:00+00' + i * INTERVAL 1 hour AS placed_at,
           TIMESTAMP '2024-01-01' + i * INTERVAL 1 minute AS updated,
           ('2024-01-01'::TIMESTAMP_NS + i * INTERVAL 1 second) AS updated_ns,
           DATE '2024-01-01' + i::INTEGER AS day,
           CASE WHEN i % 5 = 0 THEN NULL ELSE (i / 3)::DECIMAL(12, 2) END AS amount,
           i * 1.5 AS score,
           'note ' || i AS note,
           i % 2 = 0 AS gift,
           md5(i::VARCHAR)::UUID AS token
    FROM range(300) r(i)
"""
_NESTED = ", [i, i + 1] AS pair, {'k': i, 'at': TIMESTAMPTZ '2024-01-01 00:00:00+00' + i * INTERVAL 1 day} AS info"
FORMATS = ("parquet", "csv", "jsonl", "arrow")


def _volume(folder: Path) -> Path:
    """A warehouse of every common type, a table per format (nested columns where the format holds
    them), one keyed by a time-zone timestamp and one query table; its config."""
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "w.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute(f"CREATE TABLE flat AS {_TYPES}")
        con.execute(f"CREATE TABLE nested AS {_TYPES.replace(' AS token', ' AS token' + _NESTED)}")
        con.execute("CREATE TABLE unloadable AS SELECT * EXCLUDE (updated_ns) FROM flat")  # types the engine writes
    tables = []
    for fmt in FORMATS:
        src = "flat" if fmt == "csv" else "nested"
        tables.append(f'name = "{fmt}_t"\nsource = "{src}"\nformat = "{fmt}"\nprimary_key = ["id"]\nnot_null = ["note"]')
        tables.append(f'name = "{fmt}_by_time"\nsource = "flat"\nformat = "{fmt}"\nprimary_key = ["placed_at"]')
    # the engine path (its footer statistics of the zoned timestamp, its checks of the files)
    tables.append('name = "engine_t"\nsource = "unloadable"\nprimary_key = ["id"]\nexport = "engine"')
    tables.append('name = "q"\nquery = "SELECT id, placed_at FROM flat WHERE id < 50"\nprimary_key = ["id"]')
    cfg = folder / "sync.toml"
    body = "".join(f"\n[[tables]]\n{t}\n" for t in tables)
    cfg.write_text(f'[source]\nkind = "duckdb"\npath = "{db}"\n\n[volume]\nroot = "{folder / "vol"}"\n{body}', encoding="utf-8")
    return cfg


#: runs the real CLI (``python -m syncer``) and writes every module it loaded when it exits. Not
#: ``-X importtime``: it does not see modules loaded through ``importlib.import_module`` (the public
#: face's lazy names, the preload), only what they import in turn.
_RUN = """
import atexit, runpy, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w", encoding="utf-8").write("\\n".join(sorted(sys.modules))))
sys.argv[0] = "syncer"
runpy.run_module("syncer", run_name="__main__", alter_sys=True)
"""


def imported(*argv: str, tmp: Path | None = None) -> set[str]:
    """The modules a real ``python -m syncer ARGV`` process had loaded when it exited (it must succeed)."""
    out = (tmp or Path(os.environ.get("TMPDIR", "/tmp"))) / f"modules-{os.getpid()}-{argv[-1]}.txt"
    env = {**os.environ, "SYNCER_LOG_FORMAT": "text"}
    proc = subprocess.run(
        [sys.executable, "-c", _RUN, str(out), *argv], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    try:
        return set(out.read_text(encoding="utf-8").split("\n"))
    finally:
        out.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def volume(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _volume(tmp_path_factory.mktemp("imports"))


def test_a_full_sync_of_every_format_never_imports_pandas(volume: Path) -> None:
    mods = imported("--config", str(volume), "sync", "--force")
    assert "duckdb" in mods and "pyarrow.parquet" in mods  # control: the run did import what it uses
    assert "syncer.validate.files_profile" in mods  # control: a table went through the engine's checks
    assert not {m for m in mods if m.split(".")[0] in ("pandas", "dateutil")}, "pandas imported"


def test_an_unchanged_sync_never_imports_pandas(volume: Path) -> None:
    imported("--config", str(volume), "sync")
    mods = imported("--config", str(volume), "sync")
    assert not {m for m in mods if m.split(".")[0] in ("pandas", "dateutil")}, "pandas imported"
    assert "urllib.request" not in mods  # the webhook channel's HTTP client: only with webhooks


def test_the_preload_is_what_this_config_needs() -> None:
    import dataclasses

    import syncer
    from syncer.config.model import WebhookConfig
    from syncer.engine.preload import modules_for

    cfg = syncer.load_config(ROOT / "sync.toml")
    assert "pandas" not in modules_for(cfg) and "syncer.sources.duckdb" in modules_for(cfg)
    assert "urllib.request" not in modules_for(cfg)
    hook = WebhookConfig(name="ops", url="https://example.invalid/hook")
    with_hook = dataclasses.replace(cfg, alerts=dataclasses.replace(cfg.alerts, webhooks=(hook,)))
    assert "urllib.request" in modules_for(with_hook)  # delivered after the run, under the lock
    snow = dataclasses.replace(cfg, source=dataclasses.replace(cfg.source, kind="snowflake"))
    assert {"snowflake.snowpark", "pandas"} <= set(modules_for(snow)) and "syncer.sources.duckdb" not in modules_for(snow)


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")
def test_what_a_sync_of_every_format_imports_is_loaded_before_the_volume_lock(volume: Path, tmp_path: Path) -> None:
    # the preload loads only this config's formats and source (issue 13's guarantee kept, cheaper):
    # a zoned-timestamp key, nested values, every format -- no .py/.so opened once the lock is held
    trace = tmp_path / "trace"
    proc = subprocess.run(
        ["strace", "-f", "-qq", "-o", str(trace), "-e", "trace=openat,flock,execve",
         sys.executable, "-m", "syncer", "--config", str(volume), "sync", "--force"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = trace.read_text(encoding="utf-8").splitlines()
    locked = next(i for i, x in enumerate(lines) if "flock(" in x and "LOCK_EX" in x)
    assert any(re.search(r'\.(py|pyc|so)[."]', x) for x in lines[:locked])  # control: imports are seen
    # the engine's unload runs in a program of its own (syncer.sources.duckdb_unload, a new
    # interpreter): its start-up imports are its own, and a hang there is its stall watchdog's
    spawned = {x.split()[0] for x in lines[locked:] if "execve(" in x}
    assert spawned, "control: the engine table's unload child was seen starting"
    late = [x for x in lines[locked:] if "openat(" in x and re.search(r'\.(py|pyc|so)[."]', x) and x.split()[0] not in spawned]
    assert not late, "imported after the volume lock:\n" + "\n".join(late[:5])


def test_the_import_check_sees_pandas_when_it_is_imported(volume: Path) -> None:
    # control for the tests above: a command that loads pandas (the reader's DataFrame) is seen doing it
    imported("--config", str(volume), "sync")
    code = f"import syncer; syncer.read_table('csv_t', config=syncer.load_config({str(volume)!r}))"
    assert "pandas" in _modules_of(code)


def _modules_of(code: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys; print('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(proc.stdout.split())


_ROW_WISE = r"""
import sys
from array import array
import pyarrow as pa
from syncer.formats.jsonl import encode_rows

def ints(values, t):  # built from a buffer: pa.array() of a Python list imports pandas itself
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(array("q", values))]).cast(t)

batch = pa.RecordBatch.from_arrays(
    [ints([1_700_000_000_123_456, 0], pa.timestamp("us", tz="Europe/Paris")),
     ints([1_700_000_000, 0], pa.timestamp("s", tz="UTC")),
     ints([1_700_000_000_123_456_789, 1_000], pa.timestamp("ns")),
     ints([1_700_000_000_000_000_001, 0], pa.timestamp("ns", tz="UTC")),
     ints([-3, 5], pa.duration("ns"))],
    names=["tz_us", "tz_s", "ns", "ns_tz", "dur"],
)
rows = encode_rows(batch)
print("pandas" in sys.modules)
print(rows)
"""


def test_the_jsonl_row_wise_encoder_spells_zoned_and_nanosecond_values_without_pandas() -> None:
    proc = subprocess.run([sys.executable, "-c", _ROW_WISE], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    loaded, rows = proc.stdout.splitlines()
    assert loaded == "False"
    # the spellings pyarrow's pandas Timestamps gave (UTC with Z; six digits, or nine for nanoseconds)
    assert rows == str(
        [
            {"tz_us": "2023-11-14T22:13:20.123456Z", "tz_s": "2023-11-14T22:13:20Z", "ns": "2023-11-14T22:13:20.123456789",
             "ns_tz": "2023-11-14T22:13:20.000000001Z", "dur": -3},
            {"tz_us": "1970-01-01T00:00:00Z", "tz_s": "1970-01-01T00:00:00Z", "ns": "1970-01-01T00:00:00.000001",
             "ns_tz": "1970-01-01T00:00:00Z", "dur": 5},
        ]
    )  # fmt: skip


@pytest.mark.parametrize("command", ["status", "verify", "snapshots"])
def test_reading_commands_load_no_duckdb_and_no_export(volume: Path, command: str) -> None:
    # they read the volume: manifests, row counts from footers and lines, files' sizes and sha256
    imported("--config", str(volume), "sync")
    mods = imported("--config", str(volume), command)
    assert not {"duckdb", "pandas", "syncer.engine.run", "syncer.export.table", "syncer.sources.duckdb"} & mods, sorted(mods)
    assert "syncer.engine" in mods  # control: the command ran


@pytest.mark.parametrize("command", ["status", "verify"])
def test_reading_a_parquet_volume_loads_no_pyarrow_compute(tmp_path: Path, command: str) -> None:
    # the formats load on first use: a Parquet footer's row count needs pyarrow.parquet, not the
    # CSV/JSONL writers and their pyarrow.compute
    cfg = _volume(tmp_path)
    text = cfg.read_text(encoding="utf-8")
    cfg.write_text(text[: text.index("[[tables]]")] + '[[tables]]\nname = "p"\nsource = "nested"\nprimary_key = ["id"]\n')
    imported("--config", str(cfg), "sync")
    mods = imported("--config", str(cfg), command)
    assert "pyarrow.parquet" in mods and "pyarrow.compute" not in mods and "duckdb" not in mods
