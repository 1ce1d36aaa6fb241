"""The reader API: the published data as pandas/Arrow, staleness warnings, fallback when ``current`` breaks."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

import syncer
from syncer import (
    NoSnapshotError,
    PublishError,
    SnapshotFallbackWarning,
    StaleDataWarning,
    current_snapshot,
    load_config,
    read_table,
)
from syncer._clock import frozen
from syncer.formats import schema_from_b64
from syncer.volume.layout import MANIFEST, Volume

DEAD = "20000101T000000Z-dead"


def _source(db: Path, sql: str) -> pd.DataFrame:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.sql(sql).to_arrow_table().to_pandas()  # via Arrow: decimals stay Decimal, as published
    finally:
        con.close()


def _sorted(df: pd.DataFrame, key: str) -> pd.DataFrame:
    return df.sort_values(key).reset_index(drop=True)


def _config_with(config_path: Path, **values: object) -> syncer.Config:
    text = config_path.read_text(encoding="utf-8")
    for key, value in values.items():
        text, n = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, flags=re.M)
        assert n == 1, key
    config_path.write_text(text, encoding="utf-8")
    return load_config(config_path)


@pytest.fixture
def synced(config: syncer.Config) -> syncer.Config:
    assert syncer.sync(config)["status"] == "ok"
    return config


# --- reading ---------------------------------------------------------------------------------------------


def test_read_table_returns_the_source_without_excluded_columns(synced, demo_db):
    df = read_table("participants", root=synced.root)
    expected = _source(demo_db, "SELECT * EXCLUDE (password_hash) FROM participants ORDER BY participant_id")
    assert isinstance(df, pd.DataFrame)
    assert "password_hash" not in df.columns
    assert len(df) == len(expected) > 0
    pd.testing.assert_frame_equal(_sorted(df, "participant_id"), expected)


def test_read_table_as_arrow_has_the_manifest_schema(synced):
    manifest = Volume(synced.root).current_manifest()
    for name, entry in manifest["tables"].items():
        tbl = read_table(name, as_arrow=True, root=synced.root)
        assert isinstance(tbl, pa.Table)
        assert tbl.schema.equals(schema_from_b64(entry["arrow_schema"]), check_metadata=True), name
        assert tbl.schema.names == [c["name"] for c in entry["schema"]]
        assert tbl.num_rows == entry["rows"]


def test_read_table_reads_only_the_requested_columns(synced, demo_db):
    df = read_table("participants", columns=["participant_id", "email"], root=synced.root)
    assert list(df.columns) == ["participant_id", "email"]
    expected = _source(demo_db, "SELECT participant_id, email FROM participants ORDER BY participant_id")
    pd.testing.assert_frame_equal(_sorted(df, "participant_id"), expected)
    tbl = read_table("courses", as_arrow=True, columns=["title"], root=synced.root)
    assert tbl.schema.names == ["title"]


def test_an_unknown_table_names_the_published_tables(synced):
    with pytest.raises(NoSnapshotError, match="published tables: courses, daily_metrics, enrollments, participants") as e:
        read_table("participant", root=synced.root)
    assert "'participant'" in str(e.value)


@pytest.mark.parametrize("column", [pytest.param("no_such_column", id="unknown"), pytest.param("password_hash", id="excluded")])
def test_an_unknown_column_is_a_publish_error(synced, column):
    with pytest.raises(PublishError, match=rf"no column\(s\) \['{column}'\]; columns: participant_id, email"):
        read_table("participants", columns=["email", column], root=synced.root)


def test_the_root_comes_from_config_or_syncer_root(synced, monkeypatch, tmp_path):
    by_root = read_table("courses", root=synced.root)
    pd.testing.assert_frame_equal(read_table("courses", config=synced), by_root)
    monkeypatch.chdir(tmp_path)  # no sync.toml here: only the variable can tell
    monkeypatch.delenv("SYNCER_CONFIG", raising=False)
    monkeypatch.setenv("SYNCER_ROOT", str(synced.root))
    pd.testing.assert_frame_equal(read_table("courses"), by_root)
    assert current_snapshot()["id"] == Volume(synced.root).current_id()


def test_without_any_root_the_error_says_how_to_name_one(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SYNCER_ROOT", raising=False)
    monkeypatch.delenv("SYNCER_CONFIG", raising=False)
    with pytest.raises(NoSnapshotError, match="set SYNCER_ROOT"):
        read_table("courses")


def test_current_snapshot_is_the_current_manifest(synced):
    snap = current_snapshot(synced.root)
    assert snap["id"] == Volume(synced.root).current_id()
    assert snap["fallback"] is False
    assert set(snap["tables"]) == {t.name for t in synced.tables}


# --- freshness ------------------------------------------------------------------------------------------


def test_fresh_data_reads_without_a_warning(synced):
    # filterwarnings = error: any warning here fails the test.
    read_table("courses", root=synced.root)
    read_table("courses", root=synced.root, as_arrow=True)


def test_data_older_than_the_sla_warns_stale(config_path):
    cfg = _config_with(config_path, sla_hours=24)
    with frozen() as clock:
        assert syncer.sync(cfg)["status"] == "ok"
        clock.advance(hours=25)
        stale = r"table 'courses' is stale: exported 25\.0 h ago, the freshness SLA is 24(\.0)? h"
        with pytest.warns(StaleDataWarning, match=stale) as rec:
            df = read_table("courses", config=cfg)
    assert [type(w.message) for w in rec] == [StaleDataWarning]
    assert rec[0].filename == __file__  # points at the caller of read_table
    assert len(df) > 0


def test_a_table_kept_after_a_failed_export_warns_stale(make_config, warehouse):
    cfg = make_config(db=warehouse)
    assert syncer.sync(cfg)["status"] == "ok"
    expected = read_table("courses", config=cfg)
    con = duckdb.connect(str(warehouse))
    con.execute("DROP TABLE courses")
    con.close()
    assert syncer.sync(cfg)["status"] == "partial"
    with pytest.warns(StaleDataWarning, match="the last export failed") as rec:
        df = read_table("courses", config=cfg)
    assert [type(w.message) for w in rec] == [StaleDataWarning]
    pd.testing.assert_frame_equal(df, expected)
    read_table("participants", config=cfg)  # re-exported: fresh, no warning


# --- fallback when current is broken -------------------------------------------------------------------


@pytest.fixture
def two_versions(make_config, warehouse):
    """Two snapshots of different data: (config, old id, new id, old courses, new courses)."""
    cfg = make_config(db=warehouse)
    q = "SELECT * FROM courses ORDER BY course_id"
    v1 = _source(warehouse, q)
    old = syncer.sync(cfg)["snapshot_id"]
    con = duckdb.connect(str(warehouse))
    con.execute("UPDATE courses SET title = title || ' (v2)'")
    con.close()
    v2 = _source(warehouse, q)
    new = syncer.sync(cfg)["snapshot_id"]
    assert old and new and not v1.equals(v2)
    return cfg, old, new, v1, v2


def _writable(path: Path) -> None:
    os.chmod(path.parent, 0o755)
    os.chmod(path, 0o644)


def _delete_link(vol: Volume, new: str) -> None:
    vol.current.unlink()


def _dangle(vol: Volume, new: str) -> None:
    vol.current.unlink()
    os.symlink(f"snapshots/{DEAD}", vol.current)


def _delete_current_snapshot(vol: Volume, new: str) -> None:
    vol.remove_snapshot(new)  # current still names it


def _corrupt_manifest(vol: Volume, new: str) -> None:
    path = vol.snapshot_dir(new) / MANIFEST
    _writable(path)
    path.write_text("][ garbage", encoding="utf-8")


def _truncate_table(vol: Volume, new: str) -> None:
    path = vol.snapshot_dir(new) / "courses.parquet"
    _writable(path)
    with open(path, "r+b") as fh:
        fh.truncate(100)


@pytest.mark.parametrize(
    ("breakage", "reads", "reason"),
    [
        # With only the link gone, the newest intact snapshot is still the latest one.
        pytest.param(_delete_link, "new", "is missing", id="link-deleted"),
        pytest.param(_dangle, "new", f"points at {DEAD}, which does not exist", id="link-dangles"),
        pytest.param(_delete_current_snapshot, "old", "which does not exist", id="snapshot-deleted"),
        pytest.param(_corrupt_manifest, "old", "is corrupt", id="manifest-corrupt"),
        pytest.param(_truncate_table, "old", "truncated or replaced", id="table-truncated"),
    ],
)
def test_a_broken_current_falls_back_to_the_newest_intact_snapshot(two_versions, breakage, reads, reason):
    cfg, old, new, v1, v2 = two_versions
    vol = Volume(cfg.root)
    breakage(vol, new)
    expected_id, expected = (old, v1) if reads == "old" else (new, v2)

    with pytest.warns(SnapshotFallbackWarning, match=re.escape(reason)) as rec:
        df = read_table("courses", root=cfg.root)
    assert [type(w.message) for w in rec] == [SnapshotFallbackWarning]
    msg = str(rec[0].message)
    assert f"reading the newest intact snapshot {expected_id} instead" in msg and "syncer repair" in msg
    assert rec[0].filename == __file__
    pd.testing.assert_frame_equal(_sorted(df, "course_id"), expected)

    with pytest.warns(SnapshotFallbackWarning):
        snap = current_snapshot(cfg.root)
    assert (snap["id"], snap["fallback"]) == (expected_id, True)


def test_a_fallback_snapshot_can_still_be_stale(two_versions):
    cfg, old, new, v1, _ = two_versions
    vol = Volume(cfg.root)
    _corrupt_manifest(vol, new)
    mpath = vol.snapshot_dir(old) / MANIFEST
    _writable(mpath)
    mpath.write_text(mpath.read_text(encoding="utf-8").replace('"sla_hours": 24.0', '"sla_hours": 1e-09'), encoding="utf-8")
    with pytest.warns(StaleDataWarning) as rec:
        df = read_table("courses", root=cfg.root)
    assert [type(w.message) for w in rec] == [SnapshotFallbackWarning, StaleDataWarning]
    pd.testing.assert_frame_equal(_sorted(df, "course_id"), v1)


def _never_synced(cfg: syncer.Config) -> None:
    pass


def _only_snapshot_corrupt(cfg: syncer.Config) -> None:
    sid = syncer.sync(cfg)["snapshot_id"]
    _corrupt_manifest(Volume(cfg.root), sid)


def _only_snapshot_truncated(cfg: syncer.Config) -> None:
    sid = syncer.sync(cfg)["snapshot_id"]
    _truncate_table(Volume(cfg.root), sid)


def _current_link_to_nowhere(cfg: syncer.Config) -> None:
    vol = Volume(cfg.root)
    vol.ensure()
    os.symlink(f"snapshots/{DEAD}", vol.current)


@pytest.mark.parametrize(
    "setup",
    [
        pytest.param(_never_synced, id="never-synced"),
        pytest.param(_only_snapshot_corrupt, id="only-snapshot-corrupt"),
        pytest.param(_only_snapshot_truncated, id="only-snapshot-truncated"),
        pytest.param(_current_link_to_nowhere, id="link-to-nowhere"),
    ],
)
def test_no_intact_snapshot_tells_to_run_sync(config, setup):
    setup(config)
    with pytest.raises(NoSnapshotError, match=r"no intact snapshot under .*; run `syncer sync`"):
        read_table("courses", config=config)
    with pytest.raises(NoSnapshotError, match="run `syncer sync`"):
        current_snapshot(config=config)


# --- a snapshot removed while it is being read ------------------------------------------------------------

SLOW_READER = """
import json, sys, time, warnings
from pathlib import Path
from typing import Any
import syncer
import syncer.reader as reader
from syncer.volume.layout import Volume

root, signals, pause_at = sys.argv[1], Path(sys.argv[2]), sys.argv[3]

def pausing(real):
    calls = []
    def slow(*args, **kwargs):
        if not calls:  # the first call only: the reader has resolved `current`, then stalls
            calls.append(1)
            (signals / "resolved").touch()
            while not (signals / "go").exists():
                time.sleep(0.01)
        return real(*args, **kwargs)
    return slow

if pause_at == "read":
    reader.read_file = pausing(reader.read_file)
else:  # the check of the snapshot `current` names, before it is found intact
    reader._intact = pausing(reader._intact)
with warnings.catch_warnings(record=True) as rec:
    warnings.simplefilter("always")
    try:
        table = syncer.read_table("courses", root=root, as_arrow=True)
        out = {"rows": table.num_rows, "title": table.column("title")[0].as_py()}
    except Exception as exc:
        out = {"error": f"{type(exc).__name__}: {exc}"}
out["warnings"] = [f"{type(w.message).__name__}: {w.message}" for w in rec]
print(json.dumps(out))
"""

COURSES_ONLY = '[[tables]]\nname = "courses"\nsource = "courses"\nprimary_key = ["course_id"]\n'


def _sync_tagged(cfg: syncer.Config, db: Path, tag: str) -> str:
    con = duckdb.connect(str(db))
    con.execute("UPDATE courses SET title = ? WHERE course_id = (SELECT min(course_id) FROM courses)", [tag])
    con.close()
    report = syncer.sync(cfg)
    assert report["status"] == "ok", report
    return report["snapshot_id"]


@pytest.mark.parametrize("pause_at", ["resolve", "read"])
def test_a_reader_whose_snapshot_retention_removes_mid_read_reads_the_new_current(make_config, warehouse, tmp_path, pause_at):
    import dataclasses
    import json
    import subprocess
    import sys
    import time

    cfg = dataclasses.replace(make_config(db=warehouse, tables=COURSES_ONLY), retain=1)
    first = _sync_tagged(cfg, warehouse, "v0")
    signals = tmp_path / "signals"
    signals.mkdir()
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_READER, str(cfg.root), str(signals), pause_at],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (signals / "resolved").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.01)
        # two syncs while the reader stalls: retention (retain 1, current and the one before) removes `first`
        _sync_tagged(cfg, warehouse, "v1")
        last = _sync_tagged(cfg, warehouse, "v2")
        assert not Volume(cfg.root).snapshot_dir(first).exists()
        (signals / "go").touch()
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    out = json.loads(stdout)
    assert "error" not in out, out
    assert out["title"] == "v2", out  # the new current's data (rows in key order: the tagged one first)
    assert not [w for w in out["warnings"] if "repair" in w or "broken" in w], out["warnings"]  # nothing is broken
    if pause_at == "read":
        (w,) = out["warnings"]
        assert w.startswith("SnapshotFallbackWarning: ") and f"snapshot {first} was removed" in w and last in w


READ_LOOP = """
import json, sys, time, warnings
import syncer
root, seconds = sys.argv[1], float(sys.argv[2])
reads, errors, removed = 0, [], 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        try:
            syncer.read_table("enrollments", root=root, as_arrow=True)
            reads += 1
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    removed += sum("was removed" in str(w.message) for w in rec)
print(json.dumps({"reads": reads, "errors": errors, "removed": removed}))
"""


@pytest.mark.slow
def test_readers_in_other_processes_never_fail_while_syncs_and_retention_run(make_config, tmp_path):
    """No hooks: two reader processes read a parted table in a loop while syncs (retain 1) replace it."""
    import dataclasses
    import json
    import subprocess
    import sys

    tables = '[[tables]]\nname = "enrollments"\nsource = "enrollments"\nprimary_key = ["enrollment_id"]\n'
    cfg = dataclasses.replace(make_config(tables=tables, extra="row_group_rows = 400\nwriters = 2\n"), retain=1)
    assert syncer.sync(cfg)["status"] == "ok"
    root = Path(__file__).resolve().parents[1]
    readers = [
        subprocess.Popen([sys.executable, "-c", READ_LOOP, str(cfg.root), "8"], stdout=subprocess.PIPE, text=True, cwd=root)
        for _ in range(2)
    ]
    syncs = 0
    while any(p.poll() is None for p in readers):
        assert syncer.sync(cfg)["status"] == "ok"
        syncs += 1
    results = [json.loads(p.communicate()[0]) for p in readers]
    assert syncs >= 3 and all(r["reads"] > 0 for r in results), (syncs, results)
    assert [e for r in results for e in r["errors"]] == []


# --- the cost of a call: the manifest parsed once per snapshot, the files checked on every call ------------


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Manifests count as settled at once (in use, they are after 2 s), so the identity cache answers."""
    from syncer.volume import manifest_cache

    manifest_cache.clear()
    monkeypatch.setattr(manifest_cache, "SETTLE_NS", -(10**18))


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How often the reader parses a manifest, converts it to records and runs the full file check."""
    import syncer.reader as reader

    calls = {"parse": 0, "records": 0, "inspect": 0}

    def count(name: str, real: Any) -> Any:
        def counting(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return real(*args, **kwargs)

        return counting

    monkeypatch.setattr(Volume, "read_manifest_json", staticmethod(count("parse", Volume.read_manifest_json)))
    monkeypatch.setattr(reader, "manifest_record", count("records", reader.manifest_record))
    monkeypatch.setattr(Volume, "inspect", count("inspect", Volume.inspect))
    return calls


def test_a_manifest_is_parsed_once_per_snapshot_not_per_call(synced, settled, counted):
    for _ in range(5):
        for name in ("courses", "participants", "enrollments"):
            assert read_table(name, config=synced, as_arrow=True).num_rows > 0
    assert counted == {"parse": 1, "records": 1, "inspect": 0}


def test_a_reader_sees_the_next_snapshot_of_the_same_process_at_once(make_config, warehouse, settled, counted):
    cfg = make_config(db=warehouse)
    q = "SELECT * FROM courses ORDER BY course_id"
    first = syncer.sync(cfg)["snapshot_id"]
    pd.testing.assert_frame_equal(_sorted(read_table("courses", config=cfg), "course_id"), _source(warehouse, q))
    con = duckdb.connect(str(warehouse))
    con.execute("UPDATE courses SET title = title || ' (v2)'")
    con.close()
    second = syncer.sync(cfg)["snapshot_id"]
    assert second != first
    df = read_table("courses", config=cfg)  # the cache holds the first snapshot's manifest: not answered from it
    pd.testing.assert_frame_equal(_sorted(df, "course_id"), _source(warehouse, q))
    assert df["title"].str.endswith(" (v2)").all()
    assert current_snapshot(config=cfg)["id"] == second


def test_a_manifest_rewritten_in_place_with_its_size_and_mtime_is_parsed_again(tmp_path, settled):
    import json
    import time

    from syncer.volume import manifest_cache
    from syncer.volume.layout import _manifest_record

    d = tmp_path / "20260101T000000Z-abcd"
    d.mkdir()
    body = {"id": d.name, "created_at": "2026-01-01T00:00:00Z", "tables": {}}
    path = d / MANIFEST
    path.write_text(json.dumps(body), encoding="utf-8")
    first = manifest_cache.load_entry(d, Volume.read_manifest_json, _manifest_record)
    assert manifest_cache.load_entry(d, Volume.read_manifest_json, _manifest_record) is first
    st = path.stat()
    time.sleep(0.02)  # past the file system clock's tick: the rewrite's change time differs
    path.write_text(json.dumps({**body, "created_at": "2026-01-02T00:00:00Z"}), encoding="utf-8")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # the same size and mtime: only the change time differs
    again = manifest_cache.load_entry(d, Volume.read_manifest_json, _manifest_record)
    assert again is not first and again.manifest.created_at == "2026-01-02T00:00:00Z"


def _other_truncated(vol: Volume, new: str) -> None:
    _truncate(vol.snapshot_dir(new) / "participants.parquet")


def _truncate(path: Path) -> None:
    _writable(path)
    with open(path, "r+b") as fh:
        fh.truncate(100)


def _other_replaced_by_a_link(vol: Volume, new: str, old: str) -> None:
    path = vol.snapshot_dir(new) / "participants.parquet"
    _writable(path)
    path.unlink()
    path.symlink_to(vol.snapshot_dir(old) / "participants.parquet")


def _other_removed(vol: Volume, new: str) -> None:
    path = vol.snapshot_dir(new) / "participants.parquet"
    _writable(path)
    path.unlink()


def _other_unreadable(vol: Volume, new: str) -> None:
    os.chmod(vol.snapshot_dir(new) / "participants.parquet", 0)


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        pytest.param(_other_truncated, "truncated or replaced", id="truncated"),
        pytest.param(_other_removed, "is missing", id="removed"),
        pytest.param(_other_replaced_by_a_link, "symbolic link", id="link"),
        pytest.param(_other_unreadable, "not readable", id="unreadable"),
        pytest.param(_truncate_table, "truncated or replaced", id="read-table-truncated"),
    ],
)
def test_a_file_broken_after_a_cached_read_is_caught_on_the_next_call(two_versions, settled, breakage, reason):
    """The cache keeps the manifest, never the verdict on the files: every call checks every file."""
    import inspect
    import warnings

    cfg, old, new, v1, _ = two_versions
    if breakage is _other_unreadable and os.geteuid() == 0:
        pytest.skip("root reads a file of mode 000: an unprivileged reader's case")
    vol = Volume(cfg.root)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_table("courses", root=cfg.root)  # the manifest and its list of files cached, every file fine
    breakage(*(vol, new, old)[: len(inspect.signature(breakage).parameters)])
    with pytest.warns(SnapshotFallbackWarning, match=re.escape(reason)):
        df = read_table("courses", root=cfg.root)
    pd.testing.assert_frame_equal(_sorted(df, "course_id"), v1)  # the whole older snapshot, not a mix


@pytest.mark.parametrize("broken", ["part-truncated", "part-removed", "folder-replaced"])
def test_a_broken_part_of_a_parted_table_is_caught_after_a_cached_read(make_config, warehouse, settled, counted, broken):
    import shutil

    cfg = make_config(db=warehouse, extra="row_group_rows = 400\nwriters = 2\n")  # enrollments in two part files
    old = syncer.sync(cfg)["snapshot_id"]
    con = duckdb.connect(str(warehouse))
    con.execute("UPDATE enrollments SET enrollment_id = enrollment_id")  # exported again: new files, no hard links
    con.close()
    new = syncer.sync(cfg)["snapshot_id"]
    vol = Volume(cfg.root)
    assert vol.current_id() == new and vol.current_manifest().tables["enrollments"].parts
    counted["inspect"] = 0  # the syncs' own
    expected = read_table("enrollments", config=cfg, as_arrow=True)
    read_table("courses", config=cfg, as_arrow=True)
    assert counted["inspect"] == 0  # both read by the cheap check
    folder = vol.snapshot_dir(new) / "enrollments"
    os.chmod(folder, 0o755)
    if broken == "part-truncated":
        _truncate(folder / "part-00001.parquet")
    elif broken == "part-removed":
        (folder / "part-00000.parquet").unlink()
    else:
        shutil.rmtree(folder)
        (folder.parent / "enrollments").write_bytes(b"not a folder")
    with pytest.warns(SnapshotFallbackWarning, match=f"reading the newest intact snapshot {old}"):
        got = read_table("courses", config=cfg, as_arrow=True)  # another table: the whole snapshot is broken
    assert got.num_rows > 0 and counted["inspect"] >= 1
    with pytest.warns(SnapshotFallbackWarning):
        assert read_table("enrollments", config=cfg, as_arrow=True).equals(expected)


@pytest.mark.parametrize("table", ["courses", "enrollments"])
def test_an_app_reading_arrow_loads_neither_pandas_nor_the_dataset_layer(make_config, table):
    import json
    import subprocess
    import sys

    synced = make_config(extra="row_group_rows = 400\nwriters = 2\n")  # enrollments in two part files
    assert syncer.sync(synced)["status"] == "ok"
    assert bool(Volume(synced.root).current_manifest().tables[table].parts) == (table == "enrollments")
    code = (
        "import json, sys, syncer\n"
        f"t = syncer.read_table({table!r}, root=sys.argv[1], as_arrow=True)\n"
        "print(json.dumps([t.num_rows, sorted(m for m in ('pandas', 'pyarrow.dataset') if m in sys.modules)]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(synced.root)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows, loaded = json.loads(proc.stdout)
    assert rows > 0 and loaded == []  # ~0.5 s of imports a process, and pq.read_table's dataset layer per call


def test_a_copy_of_a_volume_is_checked_by_its_own_files_though_its_manifests_read_the_same(two_versions, tmp_path):
    import shutil
    import warnings

    cfg, old, new, v1, _ = two_versions
    copy = tmp_path / "copy"
    shutil.copytree(cfg.root, copy, symlinks=True)  # byte-identical manifests, other files
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_table("courses", root=cfg.root)  # the original's manifest cached, with its list of files
    _truncate(copy / "snapshots" / new / "courses.parquet")
    with pytest.warns(SnapshotFallbackWarning, match=r"truncated or replaced.*reading the newest intact snapshot " + old):
        df = read_table("courses", root=copy)
    pd.testing.assert_frame_equal(_sorted(df, "course_id"), v1)
