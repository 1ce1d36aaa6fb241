"""Repair, "remount with permission reset" (issue 5, item 5), and startup with the source down (item 6).

A broken ``current`` (missing, dangling, a corrupt manifest, a truncated file, not a link at all) or
files/folders whose permissions make them unreadable: ``read_table`` falls back to the newest intact
snapshot with a warning; ``repair`` and ``startup`` re-point ``current``, restore the read-only modes
and record a ``repair`` event; ``verify`` finds a file whose bytes changed at the same size.

The suite runs as root, for whom ``chmod 000`` hides nothing: those tests assert on the mode bits and
on what repair restores. What an unprivileged reader sees is tested by running the reader as
``nobody`` (``setpriv``, from its own readable copy of the code: tests/_asuser.py), skipped with the
reason where that is impossible. tests/test_production_user.py runs this whole module again as uid 10001.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pytest

import syncer
from syncer import History, SnapshotFallbackWarning, load_config, read_table
from syncer.volume.layout import MANIFEST, Volume, remove_tree
from tests._asuser import NOBODY_UID, Runtime
from tests.conftest import write_config

DEAD = "20000101T000000Z-dead"


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _writable(path: Path) -> None:
    os.chmod(path.parent, 0o755)
    os.chmod(path, 0o644)


def _courses(db: Path) -> pd.DataFrame:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.sql("SELECT * FROM courses ORDER BY course_id").to_arrow_table().to_pandas()
    finally:
        con.close()


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values("course_id").reset_index(drop=True)


@dataclasses.dataclass
class Versions:
    cfg: syncer.Config
    old: str
    new: str
    v1: pd.DataFrame  # courses as published in `old`
    v2: pd.DataFrame  # courses as published in `new`

    @property
    def vol(self) -> Volume:
        return Volume(self.cfg.root)

    def file(self, sid: str, table: str = "courses") -> Path:
        man = Volume.read_manifest(self.vol.snapshot_dir(sid))
        return self.vol.snapshot_dir(sid) / man["tables"][table]["file"]


@pytest.fixture(scope="module")
def _template(tmp_path_factory: pytest.TempPathFactory, demo_db: Path) -> tuple[Path, Path, str, str, pd.DataFrame, pd.DataFrame]:
    """Two fully exported snapshots with different courses titles, built once; tests copy the volume."""
    folder = tmp_path_factory.mktemp("repair-template")
    db = folder / "warehouse.duckdb"
    shutil.copy(demo_db, db)
    cfg = load_config(write_config(folder / "cfg", db))
    v1 = _courses(db)
    old = syncer.sync(cfg)["snapshot_id"]
    con = duckdb.connect(str(db))
    con.execute("UPDATE courses SET title = title || ' (v2)'")
    con.close()
    v2 = _courses(db)
    new = syncer.sync(cfg)["snapshot_id"]
    assert old and new and not v1.equals(v2)
    return folder / "cfg" / "data", db, old, new, v1, v2


def _copy(template, folder: Path) -> Versions:
    data, db, old, new, v1, v2 = template
    cfg = load_config(write_config(folder / "cfg", db))
    shutil.copytree(data, cfg.root, symlinks=True)  # keeps the relative `current` link and the modes
    return Versions(cfg, old, new, v1, v2)


@pytest.fixture
def versions(_template, tmp_path: Path) -> Versions:
    return _copy(_template, tmp_path)


# --- breakages of `current` ----------------------------------------------------------------------------


def _delete_link(v: Versions) -> None:
    v.vol.current.unlink()


def _dangle(v: Versions) -> None:
    v.vol.current.unlink()
    os.symlink(f"snapshots/{DEAD}", v.vol.current)


def _delete_snapshot_under_current(v: Versions) -> None:
    remove_tree(v.vol.snapshot_dir(v.new))


def _corrupt_manifest(v: Versions) -> None:
    path = v.vol.snapshot_dir(v.new) / MANIFEST
    _writable(path)
    path.write_text('{"id": "half a manif', encoding="utf-8")


def _truncate_file(v: Versions) -> None:
    path = v.file(v.new)
    _writable(path)
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)


def _folder_instead_of_link(v: Versions) -> None:
    v.vol.current.unlink()
    v.vol.current.mkdir()
    (v.vol.current / "notes.txt").write_text("someone's folder", encoding="utf-8")


BREAKAGES = [
    # (breakage, the snapshot repair must choose, words of the repair action)
    pytest.param(_delete_link, "new", "current was missing", id="link-missing"),
    pytest.param(_dangle, "new", f"pointing at {DEAD}, which does not exist", id="link-dangling"),
    pytest.param(_delete_snapshot_under_current, "old", "which does not exist", id="snapshot-deleted-under-current"),
    pytest.param(_corrupt_manifest, "old", "is corrupt", id="manifest-corrupt"),
    pytest.param(_truncate_file, "old", "truncated or replaced", id="file-truncated"),
    pytest.param(_folder_instead_of_link, "new", "current was not a symbolic link", id="folder-instead-of-link"),
]


@pytest.mark.parametrize(("breakage", "expected", "words"), BREAKAGES)
def test_repair_repoints_a_broken_current_at_the_newest_intact_snapshot_and_records_it(
    versions: Versions, breakage, expected, words
):
    v = versions
    breakage(v)
    want = v.old if expected == "old" else v.new
    assert not syncer.verify(v.cfg)["ok"]

    res = syncer.repair(v.cfg, user="ops")

    assert res["current"] == want == v.vol.current_id()
    assert any(words in a for a in res["actions"]), res["actions"]
    assert syncer.verify(v.cfg)["ok"], syncer.verify(v.cfg)["problems"]
    event = History(v.vol.db_path).events()[0]
    assert event["kind"] == "repair" and event["user"] == "ops"
    assert event["detail"] == {"reason": "manual", "actions": res["actions"]}
    df = read_table("courses", config=v.cfg)  # no warning (filterwarnings = error): current is whole again
    pd.testing.assert_frame_equal(_sorted(df), v.v1 if expected == "old" else v.v2)
    assert syncer.repair(v.cfg)["actions"] == []  # idempotent: nothing left to do


@pytest.mark.parametrize(("breakage", "expected", "words"), BREAKAGES)
def test_startup_repairs_a_broken_current_and_serves_without_a_sync(versions: Versions, breakage, expected, words):
    v = versions
    breakage(v)

    res = syncer.startup(v.cfg)

    want = v.old if expected == "old" else v.new
    assert res["servable"] and res["snapshot_id"] == want and res["fallback"] is False
    assert res["action"] == "skipped"  # the data is younger than the skip window
    assert any(words in a for a in res["repair"]["actions"])
    assert f"serving snapshot {want}" in res["reason"]
    assert History(v.vol.db_path).events()[0]["detail"]["reason"] == "startup"
    assert syncer.verify(v.cfg)["ok"]


@pytest.mark.parametrize(("breakage", "expected", "words"), BREAKAGES)
def test_read_table_falls_back_before_any_repair(versions: Versions, breakage, expected, words):
    v = versions
    breakage(v)
    with pytest.warns(SnapshotFallbackWarning, match="run `syncer repair`"):
        df = read_table("courses", config=v.cfg)
    pd.testing.assert_frame_equal(_sorted(df), v.v1 if expected == "old" else v.v2)


def test_with_no_intact_snapshot_left_repair_says_a_sync_is_needed_and_startup_syncs(versions: Versions):
    v = versions
    for sid in (v.old, v.new):
        path = v.vol.snapshot_dir(sid) / MANIFEST
        _writable(path)
        path.write_text("not json", encoding="utf-8")

    res = syncer.repair(v.cfg)
    assert any("no intact snapshot is left; a sync is needed" in a for a in res["actions"]), res["actions"]
    with pytest.raises(syncer.NoSnapshotError, match="run `syncer sync`"):
        read_table("courses", config=v.cfg)

    up = syncer.startup(v.cfg)
    assert up["action"] == "synced" and up["servable"] and up["snapshot_id"] not in (v.old, v.new)
    assert "the startup sync published snapshot" in up["reason"]
    pd.testing.assert_frame_equal(_sorted(read_table("courses", config=v.cfg)), v.v2)


# --- permissions -----------------------------------------------------------------------------------------


def _file_000(v: Versions) -> list[Path]:
    p = v.file(v.new)
    os.chmod(p, 0o000)
    return [p]


def _manifest_000(v: Versions) -> list[Path]:
    p = v.vol.snapshot_dir(v.new) / MANIFEST
    os.chmod(p, 0o000)
    return [p]


def _folder_000(v: Versions) -> list[Path]:
    p = v.vol.snapshot_dir(v.new)
    os.chmod(p, 0o000)
    return [p]


def _everything_writable(v: Versions) -> list[Path]:
    folder = v.vol.snapshot_dir(v.new)
    paths = [folder, *folder.iterdir()]
    for p in paths[1:]:
        os.chmod(p, 0o666)
    os.chmod(folder, 0o777)
    return paths


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(_file_000, id="table-file-000"),
        pytest.param(_manifest_000, id="manifest-000"),
        pytest.param(_folder_000, id="snapshot-folder-000"),
        pytest.param(_everything_writable, id="everything-world-writable"),
    ],
)
def test_repair_restores_read_only_modes_and_records_it(versions: Versions, damage):
    v = versions
    damaged = damage(v)
    assert all(_mode(p) not in (0o444, 0o555) for p in damaged)
    problems = syncer.verify(v.cfg)["problems"]
    if os.geteuid() == 0:
        assert any("has mode" in p for p in problems), problems  # root reads it anyway; the mode is still wrong
    else:  # the owner cannot read a 000 manifest or list a 000 folder either: verify says so, and what to run
        assert any("has mode" in p or "run `syncer repair`" in p for p in problems), problems

    res = syncer.repair(v.cfg)

    assert res["actions"] == [f"reset permissions of snapshot {v.new} ({len(damaged)} entries)"]
    assert res["current"] == v.new
    for p in damaged:
        assert _mode(p) == (0o555 if p.is_dir() else 0o444), p
    assert syncer.verify(v.cfg)["ok"]
    assert History(v.vol.db_path).events()[0]["detail"]["actions"] == res["actions"]


def test_repair_gives_back_access_to_the_snapshots_folder(versions: Versions):
    v = versions
    os.chmod(v.vol.snapshots, 0o000)
    try:
        res = syncer.repair(v.cfg)
    finally:
        mode = _mode(v.vol.snapshots)
        os.chmod(v.vol.snapshots, 0o755)
    assert mode == 0o755
    assert res["actions"] == ["restored access to snapshots/ (mode 0 -> 755)"]
    assert syncer.verify(v.cfg)["ok"]


# --- as an unprivileged reader ----------------------------------------------------------------------------

NOBODY_READ = """
import json, sys, warnings
import syncer
with warnings.catch_warnings(record=True) as rec:
    warnings.simplefilter("always")
    try:
        table = syncer.read_table("courses", root=sys.argv[1], as_arrow=True)
        out = {"rows": table.num_rows, "v2": table.column("title")[0].as_py().endswith(" (v2)")}
    except Exception as exc:
        out = {"error": f"{type(exc).__name__}: {exc}"}
out["warnings"] = [f"{type(w.message).__name__}: {w.message}" for w in rec]
print(json.dumps(out))
"""


def read_as_nobody(runtime: Runtime, root: Path) -> dict:
    proc = runtime.run(NOBODY_UID, NOBODY_UID, [runtime.python, "-c", NOBODY_READ, str(root)], timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def public_versions(_template, public_runtime: Runtime) -> Iterator[Versions]:
    """Like ``versions``, in a folder 'nobody' can traverse (pytest's own tmp root is 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="vds-repair-"))
    os.chmod(folder, 0o755)
    try:
        yield _copy(_template, folder)
    finally:
        remove_tree(folder)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(_file_000, id="table-file-000"),
        pytest.param(_manifest_000, id="manifest-000"),
        pytest.param(_folder_000, id="snapshot-folder-000"),
    ],
)
def test_an_unprivileged_reader_falls_back_until_repair_restores_the_modes(
    public_versions: Versions, public_runtime: Runtime, damage
):
    v = public_versions
    assert read_as_nobody(public_runtime, v.cfg.root) == {"rows": len(v.v2), "v2": True, "warnings": []}
    damage(v)

    before = read_as_nobody(public_runtime, v.cfg.root)

    assert "rows" in before, before
    assert before["rows"] == len(v.v1) and before["v2"] is False  # the older snapshot's data
    assert len(before["warnings"]) == 1 and before["warnings"][0].startswith("SnapshotFallbackWarning: ")
    assert f"reading the newest intact snapshot {v.old} instead" in before["warnings"][0]

    syncer.repair(v.cfg)

    assert read_as_nobody(public_runtime, v.cfg.root) == {"rows": len(v.v2), "v2": True, "warnings": []}


def test_published_files_cannot_be_written_by_an_unprivileged_user(public_versions: Versions, public_runtime: Runtime):
    v = public_versions
    target = v.file(v.new)
    script = textwrap.dedent(
        """
        import sys
        for path, mode in ((sys.argv[1], "r+b"), (sys.argv[2] + "/added.parquet", "xb")):
            try:
                open(path, mode).close()
                print("WROTE", path)
            except PermissionError:
                print("refused")
        """
    )
    proc = public_runtime.run(
        NOBODY_UID, NOBODY_UID, [public_runtime.python, "-c", script, str(target), str(target.parent)], timeout=60
    )
    assert proc.stdout.split() == ["refused", "refused"], proc.stdout + proc.stderr
    assert syncer.verify(v.cfg)["ok"]


# --- verify: same-size modification ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl", "arrow"])
def test_verify_detects_a_same_size_modification_in_every_format(make_config, fmt):
    tables = f'[[tables]]\nname = "courses"\nprimary_key = ["course_id"]\nformat = "{fmt}"\n'
    cfg = make_config(tables=tables)
    assert syncer.sync(cfg)["status"] == "ok"
    vol = Volume(cfg.root)
    path = vol.snapshot_dir(vol.current_id()) / f"courses.{fmt}"
    size = path.stat().st_size
    _writable(path)
    with open(path, "r+b") as fh:
        fh.seek(size // 2)
        byte = fh.read(1)
        fh.seek(size // 2)
        fh.write(bytes([byte[0] ^ 0x01]))
    os.chmod(path, 0o444)
    os.chmod(path.parent, 0o555)
    assert path.stat().st_size == size

    res = syncer.verify(cfg)

    assert res["ok"] is False
    assert res["tables"]["courses"]["ok"] is False
    assert len(res["problems"]) == 1
    assert f"sha256 of courses.{fmt}" in res["problems"][0] and "(modified)" in res["problems"][0]


# --- a damaged file that still has the right size -----------------------------------------------------


def _break_footer(path: Path) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.seek(size - 4)
        fh.write(b"XXXX")  # Parquet's and Arrow's trailing magic bytes


def _break_json(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[0:1] = b"#"  # the first line's opening brace
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("fmt", "damage"),
    [
        pytest.param("parquet", _break_footer, id="parquet-footer"),
        pytest.param("arrow", _break_footer, id="arrow-footer"),
        pytest.param("jsonl", _break_json, id="jsonl-line"),
    ],
)
def test_a_same_size_damaged_file_is_read_from_the_older_snapshot_with_a_warning(make_config, warehouse, fmt, damage):
    tables = f'[[tables]]\nname = "courses"\nprimary_key = ["course_id"]\nformat = "{fmt}"\n'
    cfg = make_config(db=warehouse, tables=tables)
    v1 = _courses(warehouse)
    old = syncer.sync(cfg)["snapshot_id"]
    con = duckdb.connect(str(warehouse))
    con.execute("UPDATE courses SET title = title || ' (v2)'")
    con.close()
    new = syncer.sync(cfg)["snapshot_id"]
    vol = Volume(cfg.root)
    path = vol.snapshot_dir(new) / f"courses.{fmt}"
    size = path.stat().st_size
    _writable(path)
    damage(path)
    assert path.stat().st_size == size and vol.inspect(new).ok  # sizes agree: only the bytes are wrong

    with pytest.warns(
        SnapshotFallbackWarning, match=rf"table 'courses' in snapshot {new} cannot be read .*older intact snapshot {old}"
    ):
        df = read_table("courses", config=cfg)

    pd.testing.assert_frame_equal(_sorted(df), v1)
    assert "(modified)" in syncer.verify(cfg)["problems"][0]


def test_a_damaged_file_with_no_older_copy_is_a_clear_error(make_config):
    cfg = make_config(tables='[[tables]]\nname = "courses"\nprimary_key = ["course_id"]\n')
    sid = syncer.sync(cfg)["snapshot_id"]
    path = Volume(cfg.root).snapshot_dir(sid) / "courses.parquet"
    _writable(path)
    _break_footer(path)
    with pytest.raises(syncer.PublishError, match=r"cannot read table 'courses' .*no older snapshot holds a readable copy"):
        read_table("courses", config=cfg)


# --- source down at startup (item 6) -----------------------------------------------------------------


def _missing(db: Path) -> None:
    db.unlink()


def _garbage(db: Path) -> None:
    db.write_bytes(b"this is not a duckdb database" * 100)


def _a_folder(db: Path) -> None:
    db.unlink()
    db.mkdir()


@pytest.mark.parametrize(
    ("break_source", "words"),
    [
        pytest.param(_missing, "DuckDB warehouse not found", id="warehouse-missing"),
        pytest.param(_garbage, "cannot open DuckDB warehouse", id="warehouse-corrupt"),
        pytest.param(_a_folder, "cannot open DuckDB warehouse", id="warehouse-is-a-folder"),
    ],
)
def test_startup_with_the_source_down_serves_the_previous_snapshot_and_says_why(make_config, warehouse, break_source, words):
    cfg = dataclasses.replace(make_config(db=warehouse), skip_startup_if_younger_than_hours=0.0)
    first = syncer.sync(cfg)["snapshot_id"]
    expected = read_table("courses", config=cfg)
    break_source(warehouse)

    res = syncer.startup(cfg)

    assert res["servable"] is True and res["snapshot_id"] == first and res["fallback"] is False
    assert res["action"] == "failed" and res["run"]["status"] == "failed"
    assert res["reason"].startswith("the startup sync did not publish (")
    assert words in res["reason"] and str(warehouse) in res["reason"]
    assert f"serving snapshot {first} from 0.0 h ago" in res["reason"]
    assert res["stale"] is False  # fresh enough: the banner says why, /ready need not say stale
    pd.testing.assert_frame_equal(read_table("courses", config=cfg), expected)


def test_startup_with_the_source_down_and_old_data_says_stale(make_config, warehouse):
    cfg = dataclasses.replace(make_config(db=warehouse), skip_startup_if_younger_than_hours=0.0, sla_hours=1e-6)
    first = syncer.sync(cfg)["snapshot_id"]
    warehouse.unlink()
    res = syncer.startup(cfg)
    assert res["servable"] and res["snapshot_id"] == first
    assert res["stale"] is True and res["stale_tables"] == [t.name for t in cfg.tables]
    assert "stale: participants, courses, enrollments, daily_metrics" in res["reason"]


def test_startup_with_the_source_down_and_no_data_is_not_servable_and_says_why(make_config, tmp_path):
    cfg = make_config(db=tmp_path / "nowhere.duckdb")
    res = syncer.startup(cfg)
    assert res["servable"] is False and res["snapshot_id"] is None
    assert res["reason"].startswith(f"no data can be served: no intact snapshot under {cfg.root}; ")
    assert "DuckDB warehouse not found" in res["reason"] and "nowhere.duckdb" in res["reason"]


def test_startup_cli_with_the_source_down_exits_0_and_prints_the_reason(make_config, warehouse):
    cfg = make_config(db=warehouse)
    syncer.sync(cfg)
    warehouse.unlink()
    text = cfg.path.read_text(encoding="utf-8").replace(
        "skip_startup_if_younger_than_hours = 20", "skip_startup_if_younger_than_hours = 0"
    )
    cfg.path.write_text(text, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "SYNCER_CONFIG"}
    proc = subprocess.run(
        [sys.executable, "-m", "syncer", "--config", str(cfg.path), "startup"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "startup: failed (the startup sync did not publish (" in proc.stdout
    assert "DuckDB warehouse not found" in proc.stdout
    assert "serving snapshot" in proc.stdout


# --- nothing outside the volume is trusted -----------------------------------------------------------------


def _foreign_copy(v: Versions, sid: str) -> Path:
    """A copy of snapshot ``sid`` outside the volume, its courses titles changed (someone else's data)."""
    dst = Path(v.cfg.root).parent.parent / "foreign" / "snapshots" / sid
    shutil.copytree(v.vol.snapshot_dir(sid), dst, symlinks=True)
    os.chmod(dst, 0o755)
    man = dst / MANIFEST
    os.chmod(man, 0o644)
    data = json.loads(man.read_text(encoding="utf-8"))
    data["source"] = {"kind": "foreign"}
    man.write_text(json.dumps(data), encoding="utf-8")
    return dst


def _relink(v: Versions, target: str) -> None:
    v.vol.current.unlink()
    os.symlink(target, v.vol.current)


def _current_relative_outside(v: Versions) -> None:
    _foreign_copy(v, v.new)
    _relink(v, f"../../foreign/snapshots/{v.new}")


def _current_absolute(v: Versions) -> None:
    _relink(v, str(_foreign_copy(v, v.new)))


def _current_through_a_planted_link(v: Versions) -> None:
    folder = os.path.join(str(v.vol.snapshots), DEAD)
    os.chmod(v.vol.snapshots, 0o755)
    os.symlink(_foreign_copy(v, v.new), folder)
    _relink(v, f"snapshots/{DEAD}")


OUTSIDE = [
    pytest.param(_current_relative_outside, "outside the volume", id="relative-path-out-of-the-volume"),
    pytest.param(_current_absolute, "outside the volume", id="absolute-path"),
    pytest.param(_current_through_a_planted_link, "a symbolic link", id="link-inside-snapshots"),
]


@pytest.mark.parametrize(("breakage", "words"), OUTSIDE)
def test_current_pointing_outside_the_volume_fails_verify_is_not_read_and_repair_fixes_it(versions: Versions, breakage, words):
    v = versions
    breakage(v)

    report = syncer.verify(v.cfg)
    assert report["ok"] is False and len(report["problems"]) == 1
    assert words in report["problems"][0] and "syncer repair" in report["problems"][0]

    with pytest.warns(SnapshotFallbackWarning, match=words):
        snap = syncer.current_snapshot(v.cfg.root)
    assert snap["id"] == v.new and snap["source"]["kind"] != "foreign"  # the volume's own copy, not the foreign one
    with pytest.warns(SnapshotFallbackWarning):
        pd.testing.assert_frame_equal(_sorted(read_table("courses", root=v.cfg.root)), v.v2)

    fixed = syncer.repair(v.cfg)
    assert any(words in a and f"now points at {v.new}" in a for a in fixed["actions"]), fixed["actions"]
    assert os.readlink(v.vol.current) == f"snapshots/{v.new}"
    assert syncer.verify(v.cfg)["ok"]


@pytest.mark.parametrize("folder", ["snapshots", "staging"])
def test_a_layout_folder_linked_out_of_the_volume_is_never_written_through_and_repair_moves_it_aside(versions: Versions, folder):
    v = versions
    inside = Path(v.cfg.root) / folder
    foreign = Path(v.cfg.root).parent.parent / f"foreign-{folder}"
    shutil.move(inside, foreign)  # the volume's own folder now lives outside, and a link leads there
    os.symlink(foreign, inside)
    before = sorted(p.name for p in foreign.iterdir())

    with pytest.raises(syncer.SyncError, match=rf"{folder} is a symbolic link to .*outside the volume.*syncer repair"):
        syncer.sync(v.cfg)
    assert sorted(p.name for p in foreign.iterdir()) == before  # nothing written through the link
    if folder == "snapshots":
        assert not syncer.verify(v.cfg)["ok"]
        with pytest.raises(syncer.NoSnapshotError):
            read_table("courses", root=v.cfg.root)

    fixed = syncer.repair(v.cfg)
    assert any(f"moved it to {folder}.moved-aside-" in a for a in fixed["actions"]), fixed["actions"]
    assert inside.is_dir() and not inside.is_symlink()
    report = syncer.sync(v.cfg)
    assert report["status"] == "ok", report
    assert syncer.verify(v.cfg)["ok"]
    assert sorted(p.name for p in foreign.iterdir()) == before


def _staging_file(v: Versions) -> None:
    v.vol.staging.rmdir()
    v.vol.staging.write_text("not a folder", encoding="utf-8")


def _staging_dangling_link(v: Versions) -> None:
    v.vol.staging.rmdir()
    os.symlink("/nonexistent/staging", v.vol.staging)


def _staging_000(v: Versions) -> None:
    os.chmod(v.vol.staging, 0o000)


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param(_staging_file, id="a-file"),
        pytest.param(_staging_dangling_link, id="a-dangling-link"),
        pytest.param(_staging_000, id="a-folder-without-permissions"),
    ],
)
def test_repair_recovers_a_broken_staging_and_the_next_sync_succeeds(versions: Versions, breakage):
    v = versions
    breakage(v)
    if breakage is not _staging_000:  # root (this suite) may write a 000 folder anyway
        with pytest.raises(syncer.SyncError, match=r"staging.*syncer repair"):
            syncer.sync(v.cfg)
        assert v.vol.current_id() == v.new  # nothing published is lost or changed

    fixed = syncer.repair(v.cfg)
    assert fixed["actions"], "repair found nothing to do"
    assert v.vol.staging.is_dir() and not v.vol.staging.is_symlink() and os.access(v.vol.staging, os.W_OK)
    report = syncer.sync(v.cfg)
    assert report["status"] == "ok", report
    assert syncer.verify(v.cfg)["ok"]


# --- the served log replaced -----------------------------------------------------------------------------


def _log_a_folder(v: Versions, foreign: Path) -> None:
    v.vol.served_log.path.unlink()
    v.vol.served_log.path.mkdir()


def _log_a_link_out(v: Versions, foreign: Path) -> None:
    foreign.write_text(v.vol.served_log.path.read_text(encoding="utf-8"), encoding="utf-8")
    v.vol.served_log.path.unlink()
    os.symlink(foreign, v.vol.served_log.path)


@pytest.mark.parametrize("breakage", [pytest.param(_log_a_folder, id="a-folder"), pytest.param(_log_a_link_out, id="a-link-out")])
def test_a_served_log_replaced_is_never_written_through_and_repair_moves_it_aside(versions: Versions, tmp_path: Path, breakage):
    """`served.jsonl` replaced by a folder failed every sync and rollback, and `repair` said "nothing to
    repair"; a link out of the volume was appended to (a file outside the volume written)."""
    v = versions
    foreign = tmp_path / "foreign-served.jsonl"
    breakage(v, foreign)
    outside = foreign.read_bytes() if foreign.exists() else None
    with pytest.raises(syncer.SyncError, match=r"served\.jsonl.*syncer repair"):
        syncer.sync(v.cfg, force=True)
    assert v.vol.current_id() == v.new and syncer.verify(v.cfg)["ok"]  # nothing published is lost or changed
    assert (foreign.read_bytes() if foreign.exists() else None) == outside, "written through the link"

    fixed = syncer.repair(v.cfg)
    assert any("served.jsonl" in a and "moved it to served.jsonl.broken-" in a for a in fixed["actions"]), fixed["actions"]
    assert not os.path.lexists(v.vol.served_log.path)
    report = syncer.sync(v.cfg, force=True)
    assert report["status"] == "ok", report
    assert v.vol.served_log.path.is_file() and not v.vol.served_log.path.is_symlink()
    assert v.vol.previous_of(report["snapshot_id"]) == v.new  # the new log starts from what was served
    assert syncer.rollback(v.cfg)["to"] == v.new
    assert (foreign.read_bytes() if foreign.exists() else None) == outside


def test_a_run_history_linked_out_of_the_volume_is_never_written_through_and_repair_moves_it_aside(
    versions: Versions, tmp_path: Path
):
    """`syncer.db` replaced by a link to a database outside the volume: every sync wrote its runs there,
    and `repair` said "nothing to repair". The history is a record, not a gate: the sync goes on with
    one warning, writes nothing outside, and repair moves the link aside."""
    v = versions
    db = v.vol.db_path
    foreign = tmp_path / "foreign.db"
    shutil.copy(db, foreign)
    db.unlink()
    os.symlink(foreign, db)
    before = foreign.read_bytes()
    report = syncer.sync(v.cfg, force=True)
    assert report["status"] == "ok", report
    assert any("symbolic link" in w and "syncer repair" in w for w in report["warnings"]), report["warnings"]
    assert foreign.read_bytes() == before, "the run history was written outside the volume"
    assert not any(p.name.startswith("foreign.db-") for p in tmp_path.iterdir())  # no -wal/-shm made there
    fixed = syncer.repair(v.cfg)
    assert any("symbolic link" in a and "syncer.db.broken-" in a for a in fixed["actions"]), fixed["actions"]
    assert not db.is_symlink()
    again = syncer.sync(v.cfg, force=True)
    assert again["status"] == "ok" and not again["warnings"], again
    assert db.is_file() and not db.is_symlink() and History(db).last_run()["id"] == again["run_id"]
    assert foreign.read_bytes() == before


@pytest.mark.parametrize("kind", ["file", "link"])
def test_a_lock_folder_replaced_is_moved_aside_by_repair(versions: Versions, tmp_path: Path, kind: str):
    """`.writer` (the writers' lock folder) replaced by a file or a link: every sync stopped with "run
    `syncer repair`", and repair stopped on the same lock."""
    v = versions
    folder = Path(v.cfg.root) / ".writer"
    shutil.rmtree(folder)
    if kind == "file":
        folder.write_text("x", encoding="utf-8")
    else:
        (tmp_path / "elsewhere").mkdir()
        os.symlink(tmp_path / "elsewhere", folder)
    with pytest.raises(syncer.SyncError, match=r"cannot take the volume lock.*syncer repair"):
        syncer.sync(v.cfg)
    assert list((tmp_path / "elsewhere").iterdir()) == [] if kind == "link" else True
    fixed = syncer.repair(v.cfg)
    assert any("moved it to .writer.moved-aside-" in a for a in fixed["actions"]), fixed["actions"]
    assert folder.is_dir() and not folder.is_symlink()
    assert syncer.sync(v.cfg, force=True)["status"] == "ok"
    assert syncer.verify(v.cfg)["ok"]


# --- verify holds the manifest against the files -----------------------------------------------------------


def _edit_manifest(vol: Volume, edit) -> None:
    path = vol.snapshot_dir(vol.current_id()) / MANIFEST
    os.chmod(path.parent, 0o755)
    os.chmod(path, 0o644)
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data["tables"]["courses"])
    path.write_text(json.dumps(data), encoding="utf-8")
    os.chmod(path, 0o444)
    os.chmod(path.parent, 0o555)


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl", "arrow"])
def test_a_hand_edited_row_count_fails_verify_and_status_does_not_call_it_healthy(make_config, fmt):
    tables = f'[[tables]]\nname = "courses"\nprimary_key = ["course_id"]\nformat = "{fmt}"\n'
    cfg = make_config(tables=tables)
    assert syncer.sync(cfg)["status"] == "ok"
    assert syncer.verify(cfg)["ok"]
    vol = Volume(cfg.root)
    rows = Volume.read_manifest(vol.snapshot_dir(vol.current_id())).tables["courses"].rows
    _edit_manifest(vol, lambda t: t.update(rows=99_999))

    res = syncer.verify(cfg)
    assert res["ok"] is False and res["tables"]["courses"]["ok"] is False
    assert res["problems"] == [f"table 'courses': the manifest says 99,999 rows, courses.{fmt} holds {rows:,} (edited?)"]

    (t,) = syncer.status(cfg)["tables"]
    assert t["status"] == "mismatch" and t["stale"] is True and t["rows"] == rows
    assert any("99,999" in w and "syncer verify" in w for w in syncer.status(cfg)["warnings"])


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        pytest.param(lambda t: t["schema"][1].update(type="int64"), "the manifest's schema", id="schema-type"),
        pytest.param(lambda t: t["schema"].reverse(), "the manifest's schema", id="schema-order"),
    ],
)
def test_a_hand_edited_schema_fails_verify_naming_the_table(make_config, edit, words):
    cfg = make_config(tables='[[tables]]\nname = "courses"\nprimary_key = ["course_id"]\n')
    assert syncer.sync(cfg)["status"] == "ok"
    _edit_manifest(Volume(cfg.root), edit)
    res = syncer.verify(cfg)
    assert res["ok"] is False and len(res["problems"]) == 1
    assert res["problems"][0].startswith("table 'courses': ") and words in res["problems"][0]


def test_a_hand_edited_part_row_count_fails_verify(make_config):
    # as tests/test_parts.py: 5,000 enrollments in row groups of 400, dealt to 2 parts
    parted = "row_group_rows = 400\nwriters = 2\n"
    cfg = make_config(tables='[[tables]]\nname = "enrollments"\nprimary_key = ["enrollment_id"]\n', extra=parted)
    assert syncer.sync(cfg)["status"] == "ok"
    vol = Volume(cfg.root)
    path = vol.snapshot_dir(vol.current_id()) / MANIFEST
    entry = json.loads(path.read_text(encoding="utf-8"))["tables"]["enrollments"]
    assert len(entry["parts"]) == 2 and syncer.verify(cfg)["ok"]
    os.chmod(path.parent, 0o755)
    os.chmod(path, 0o644)
    data = json.loads(path.read_text(encoding="utf-8"))
    parts = data["tables"]["enrollments"]["parts"]
    parts[0]["rows"], parts[1]["rows"] = parts[0]["rows"] + 1, parts[1]["rows"] - 1  # same total
    path.write_text(json.dumps(data), encoding="utf-8")
    res = syncer.verify(cfg)
    assert res["ok"] is False
    assert [p for p in res["problems"] if "part part-" in p and "holds" in p], res["problems"]


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl", "arrow"])
def test_a_manifest_whose_arrow_schema_names_other_columns_fails_verify(make_config, fmt):
    import pyarrow as pa

    from syncer.formats import schema_from_b64, schema_to_b64

    cfg = make_config(tables=f'[[tables]]\nname = "courses"\nprimary_key = ["course_id"]\nformat = "{fmt}"\n')
    assert syncer.sync(cfg)["status"] == "ok"

    def rename_first_column(t: dict) -> None:
        schema = schema_from_b64(t["arrow_schema"])
        renamed = pa.schema([schema.field(0).with_name("renamed"), *list(schema)[1:]], metadata=schema.metadata)
        t["arrow_schema"] = schema_to_b64(renamed)
        t["schema"][0]["name"] = "renamed"  # edited consistently: only the file can tell

    _edit_manifest(Volume(cfg.root), rename_first_column)
    res = syncer.verify(cfg)
    assert res["ok"] is False and len(res["problems"]) == 1, res["problems"]
    assert res["problems"][0].startswith(f"table 'courses': courses.{fmt} ") and "renamed" in res["problems"][0]


def test_csv_values_with_line_breaks_are_counted_as_rows_not_lines(make_config):
    tables = (
        '[[tables]]\nname = "notes"\nformat = "csv"\nprimary_key = ["id"]\n'
        "query = \"select i as id, 'line one' || chr(10) || 'line two' as note from range(5) t(i)\"\n"
    )
    cfg = make_config(tables=tables)
    assert syncer.sync(cfg)["status"] == "ok"
    vol = Volume(cfg.root)
    path = vol.snapshot_dir(vol.current_id()) / "notes.csv"
    assert path.read_bytes().count(b"\n") > 6  # more lines than rows + header
    assert syncer.verify(cfg)["ok"], syncer.verify(cfg)["problems"]
    (t,) = syncer.status(cfg)["tables"]
    assert (t["status"], t["rows"]) == ("fresh", 5)
    for edited in (6, 10):  # 10: as many as the file has lines after the header
        _edit_manifest_of(vol, "notes", rows=edited)
        problems = syncer.verify(cfg)["problems"]
        assert problems == [f"table 'notes': the manifest says {edited} rows, notes.csv holds 5 (edited?)"]


def _edit_manifest_of(vol: Volume, table: str, **values: object) -> None:
    path = vol.snapshot_dir(vol.current_id()) / MANIFEST
    os.chmod(path.parent, 0o755)
    os.chmod(path, 0o644)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["tables"][table].update(values)
    path.write_text(json.dumps(data), encoding="utf-8")
    os.chmod(path, 0o444)
    os.chmod(path.parent, 0o555)


def test_rollback_with_an_out_of_date_expectation_changes_nothing(config: syncer.Config) -> None:
    """The check is made under the volume lock: whatever published between a preview and its
    confirm, the swap does not happen (the admin app's confirm passes what its preview showed)."""
    first = syncer.sync(config).snapshot_id
    second = syncer.sync(config).snapshot_id
    with pytest.raises(syncer.CurrentMovedError, match=f"current moved from {first} to {second} since the preview"):
        syncer.rollback(config, first, expect_current=first)
    assert Volume(config.root).current_id() == second
    assert syncer.rollback(config, first, expect_current=second).to == first
    assert Volume(config.root).current_id() == first


def test_rollback_refuses_a_snapshot_whose_file_changed_at_the_same_size(versions: Versions):
    """Rollback checked sizes only: a flipped byte in the older snapshot (which `verify` calls modified)
    was served again. The target's files are held to their sha256 first."""
    v = versions
    f = v.file(v.old)
    os.chmod(f.parent, 0o755)
    os.chmod(f, 0o644)
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    os.chmod(f, 0o444)
    os.chmod(f.parent, 0o555)
    with pytest.raises(syncer.PublishError, match=r"not intact.*sha256.*modified.*choose another"):
        syncer.rollback(v.cfg, v.old)
    assert v.vol.current_id() == v.new and syncer.verify(v.cfg)["ok"]
