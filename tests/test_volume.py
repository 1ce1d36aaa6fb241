"""The volume: snapshot layout, read-only sealing, the atomic ``current`` link, sweep, retention, inspection."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import stat
import threading
from pathlib import Path

import pytest

import syncer
from syncer import NoSnapshotError, load_config
from syncer.volume.layout import DIR_MODE, FILE_MODE, MANIFEST, Volume, check_files, permission_problems, remove_tree, seal
from tests.conftest import write_config

SNAPSHOT_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{4}$")


def _config_with(config_path: Path, **values: object) -> syncer.Config:
    """Rewrite ``key = value`` lines of the fixture's sync.toml and load it (a real TOML round trip)."""
    text = config_path.read_text(encoding="utf-8")
    for key, value in values.items():
        text, n = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, flags=re.M)
        assert n == 1, key
    config_path.write_text(text, encoding="utf-8")
    return load_config(config_path)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _make_writable(path: Path) -> None:
    """Give back the write bits of a published file and its folder (as a careless operator would)."""
    os.chmod(path.parent, 0o755)
    if path.exists():
        os.chmod(path, 0o644)


def _first_table_file(vol: Volume, snapshot_id: str) -> Path:
    manifest = Volume.read_manifest(vol.snapshot_dir(snapshot_id))
    entry = manifest["tables"]["participants"]
    return vol.snapshot_dir(snapshot_id) / entry["file"]


def _sync_n(cfg: syncer.Config, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        report = syncer.sync(cfg, force=True)  # every sync a real export (an unchanged source would be linked)
        assert report["status"] == "ok", report
        ids.append(report["snapshot_id"])
    return ids


@pytest.fixture(scope="module")
def _two_synced(tmp_path_factory: pytest.TempPathFactory, demo_db: Path) -> tuple[Path, str, str]:
    """Two real syncs, done once per module; tests get a private copy of the volume."""
    cfg = load_config(write_config(tmp_path_factory.mktemp("two-snapshots"), demo_db))
    old, new = _sync_n(cfg, 2)
    return cfg.root, old, new


@pytest.fixture
def two_snapshots(_two_synced: tuple[Path, str, str], tmp_path: Path) -> tuple[Volume, str, str]:
    template, old, new = _two_synced
    root = tmp_path / "data"
    shutil.copytree(template, root, symlinks=True)  # keeps the relative `current` link and the modes
    return Volume(root), old, new


# --- layout -------------------------------------------------------------------------------------------


def test_current_is_a_relative_link_to_the_newest_snapshot(two_snapshots):
    vol, _, new = two_snapshots
    target = os.readlink(vol.current)
    assert target == f"snapshots/{new}"
    assert not os.path.isabs(target)
    assert vol.current_id() == new
    assert vol.current.resolve() == vol.snapshot_dir(new).resolve()


def test_snapshot_ids_are_utc_timestamps_with_a_short_suffix(two_snapshots):
    vol, old, new = two_snapshots
    assert SNAPSHOT_ID.match(old)
    assert SNAPSHOT_ID.match(new)
    assert old != new
    made = Volume.new_snapshot_id(dt.datetime(2026, 11, 25, 3, 15, 0, tzinfo=dt.UTC))
    assert SNAPSHOT_ID.match(made)
    assert made.startswith("20261125T031500Z-")
    assert {p.name for p in vol.snapshots.iterdir()} == {old, new}


def test_published_files_are_0444_and_folders_0555(two_snapshots):
    vol, old, new = two_snapshots
    for sid in (old, new):
        folder = vol.snapshot_dir(sid)
        assert _mode(folder) == DIR_MODE == 0o555
        entries = 0
        for dirpath, dirnames, filenames in os.walk(folder):
            for d in dirnames:
                assert _mode(Path(dirpath, d)) == 0o555, d
            for f in filenames:
                assert _mode(Path(dirpath, f)) == FILE_MODE == 0o444, f
                entries += 1
        assert entries >= 5  # four tables + manifest
        assert permission_problems(folder) == []


def test_permission_problems_names_a_writable_file_and_seal_fixes_it(two_snapshots):
    vol, _, new = two_snapshots
    folder = vol.snapshot_dir(new)
    table_file = _first_table_file(vol, new)
    os.chmod(table_file, 0o644)
    os.chmod(folder, 0o755)
    problems = permission_problems(folder)
    assert len(problems) == 2
    assert any(table_file.name in p and "644" in p for p in problems)
    assert any(p.startswith(f"{new}/ has mode 755") for p in problems)
    seal(folder)
    assert permission_problems(folder) == []
    assert _mode(table_file) == 0o444
    assert _mode(folder) == 0o555


def test_manifest_exists_and_lists_every_table(two_snapshots, config):
    vol, _, new = two_snapshots
    folder = vol.snapshot_dir(new)
    assert (folder / MANIFEST).is_file()
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["id"] == new
    assert set(manifest["tables"]) == {t.name for t in config.tables}
    for name, entry in manifest["tables"].items():
        f = folder / entry["file"]
        assert f.is_file(), name
        assert f.stat().st_size == entry["bytes"]
        assert entry["status"] == "fresh"
    assert sorted(p.name for p in folder.iterdir()) == sorted([MANIFEST, *(e["file"] for e in manifest["tables"].values())])


def test_a_full_sync_leaves_no_staging_or_temporary_links(two_snapshots):
    vol, _, _ = two_snapshots
    assert list(vol.staging.iterdir()) == []
    assert list(vol.root.glob(".current.tmp-*")) == []


# --- the atomic current link --------------------------------------------------------------------------


def test_point_current_never_leaves_the_link_absent(two_snapshots):
    vol, old, new = two_snapshots
    expected = {f"snapshots/{old}", f"snapshots/{new}"}
    seen: set[str] = set()
    errors: list[BaseException] = []
    reads = 0
    done = threading.Event()

    def reader() -> None:
        nonlocal reads
        try:
            while reads < 2000 or not done.is_set():
                seen.add(os.readlink(vol.current))
                reads += 1
        except BaseException as exc:  # FileNotFoundError would mean a moment without `current`
            errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(200):
            vol.point_current(old if i % 2 == 0 else new)
    finally:
        done.set()
        t.join(timeout=30)
    assert not t.is_alive()
    assert errors == []
    assert reads >= 2000
    assert seen == expected  # the reader really ran during the swaps and saw both targets
    assert os.readlink(vol.current) == f"snapshots/{new}"
    assert list(vol.root.glob(".current.tmp-*")) == []


def test_point_current_refuses_an_unknown_snapshot(two_snapshots):
    vol, _, new = two_snapshots
    with pytest.raises(NoSnapshotError, match="20000101T000000Z-dead does not exist"):
        vol.point_current("20000101T000000Z-dead")
    assert vol.current_id() == new
    assert list(vol.root.glob(".current.tmp-*")) == []


# --- sweep, remove, retention ---------------------------------------------------------------------------


def test_sweep_removes_staging_leftovers_including_read_only_ones(two_snapshots):
    vol, _, new = two_snapshots
    sealed = vol.staging / "20260101T000000Z-0001"
    (sealed / "nested").mkdir(parents=True)
    (sealed / "participants.parquet").write_bytes(b"half written")
    (sealed / "nested" / "part-0.parquet").write_bytes(b"x")
    seal(sealed)
    plain = vol.staging / "20260101T000000Z-0002"
    plain.mkdir()
    (plain / "courses.csv").write_text("a,b\n")
    spill = vol.staging / ".spill-20260101T000000Z-0003"
    spill.mkdir()
    os.symlink("snapshots/20000101T000000Z-dead", vol.root / ".current.tmp-1-abcdef")  # dangling
    os.symlink(f"snapshots/{new}", vol.root / ".current.tmp-2-123456")

    removed = vol.sweep()

    assert sorted(removed) == sorted(
        [
            "staging/20260101T000000Z-0001",
            "staging/20260101T000000Z-0002",
            "staging/.spill-20260101T000000Z-0003",
            ".current.tmp-1-abcdef",
            ".current.tmp-2-123456",
        ]
    )
    assert list(vol.staging.iterdir()) == []
    assert [p.name for p in vol.root.iterdir() if p.name.startswith(".current")] == []
    assert vol.current_id() == new
    assert vol.inspect(new).ok
    assert vol.sweep() == []


def test_remove_snapshot_deletes_a_sealed_snapshot_and_its_quarantine(two_snapshots):
    vol, old, new = two_snapshots
    q = vol.quarantine / old
    q.mkdir(parents=True)
    (q / "participants.parquet").write_bytes(b"bad rows")
    seal(q)
    assert _mode(vol.snapshot_dir(old)) == 0o555

    vol.remove_snapshot(old)

    assert not vol.snapshot_dir(old).exists()
    assert not q.exists()
    assert list(vol.staging.iterdir()) == []  # the .trash-* folder is gone too
    assert [i.id for i in vol.list_snapshots()] == [new]
    assert vol.inspect(new).ok


def test_retention_keeps_the_newest_n(config_path):
    cfg = _config_with(config_path, retain=10)
    ids = _sync_n(cfg, 4)
    vol = Volume(cfg.root)
    assert vol.retention(2) == ids[:2]
    assert [i.id for i in vol.list_snapshots()] == ids[2:]
    assert vol.current_id() == ids[3]


def test_retention_keeps_the_last_served_and_never_current_nor_the_snapshot_served_before_it(config_path):
    cfg = _config_with(config_path, retain=10)
    s1, s2, s3, s4, s5 = _sync_n(cfg, 5)
    syncer.rollback(cfg, to=s2)  # served: s1 s2 s3 s4 s5 s2 -- rollback from here goes to s1
    vol = Volume(cfg.root)
    assert vol.current_id() == s2

    # the two served last are s2 and s5; s1 is where rollback goes
    assert vol.retention(2) == [s3, s4]
    assert {i.id for i in vol.list_snapshots()} == {s1, s2, s5}

    # s5 was served just before current, s1 is rollback's target: nothing goes
    assert vol.retention(1) == []
    assert vol.current_id() == s2

    syncer.rollback(cfg, to=s1)  # served just before current: s2; s5 is now only history
    assert vol.retention(1) == [s5]
    assert {i.id for i in vol.list_snapshots()} == {s1, s2}
    assert all(i.ok for i in vol.list_snapshots())


def test_sync_applies_the_configured_retention(config):
    ids = _sync_n(config, 3)
    report = syncer.sync(config)
    assert config.retain == 3
    assert report["retention_removed"] == ids[:1]
    assert [i.id for i in Volume(config.root).list_snapshots()] == [*ids[1:], report["snapshot_id"]]


# --- inspection -------------------------------------------------------------------------------------------


def _corrupt_manifest(vol: Volume, sid: str) -> None:
    path = vol.snapshot_dir(sid) / MANIFEST
    _make_writable(path)
    path.write_text("{not json", encoding="utf-8")


def _delete_table_file(vol: Volume, sid: str) -> None:
    path = _first_table_file(vol, sid)
    _make_writable(path)
    path.unlink()


def _truncate_table_file(vol: Volume, sid: str) -> None:
    path = _first_table_file(vol, sid)
    _make_writable(path)
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)


def _flip_a_byte(vol: Volume, sid: str) -> None:
    path = _first_table_file(vol, sid)
    _make_writable(path)
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.seek(size // 2)
        b = fh.read(1)
        fh.seek(size // 2)
        fh.write(bytes([b[0] ^ 0xFF]))
    assert path.stat().st_size == size


def test_inspect_an_intact_snapshot(two_snapshots):
    vol, _, new = two_snapshots
    info = vol.inspect(new, deep=True)
    assert info.ok
    assert info.error is None and info.problems == []
    assert info.manifest is not None and info.manifest["id"] == new
    assert info.created_at == info.manifest["created_at"]


def test_inspect_reports_a_corrupt_manifest(two_snapshots):
    vol, _, new = two_snapshots
    _corrupt_manifest(vol, new)
    info = vol.inspect(new)
    assert not info.ok
    assert info.manifest is None
    assert new in info.error and "corrupt" in info.error and "syncer repair" in info.error


def test_inspect_reports_a_missing_manifest(two_snapshots):
    vol, _, new = two_snapshots
    path = vol.snapshot_dir(new) / MANIFEST
    _make_writable(path)
    path.unlink()
    info = vol.inspect(new)
    assert not info.ok
    assert "has no manifest" in info.error


def test_inspect_reports_a_missing_file(two_snapshots):
    vol, _, new = two_snapshots
    _delete_table_file(vol, new)
    info = vol.inspect(new)
    assert not info.ok
    assert info.problems == ["table 'participants': file participants.parquet is missing"]


def test_inspect_reports_a_truncated_file(two_snapshots):
    vol, _, new = two_snapshots
    _truncate_table_file(vol, new)
    info = vol.inspect(new)
    assert not info.ok
    assert len(info.problems) == 1
    assert "participants.parquet" in info.problems[0] and "truncated or replaced" in info.problems[0]


def test_inspect_deep_reports_a_same_size_modified_file(two_snapshots):
    vol, _, new = two_snapshots
    _flip_a_byte(vol, new)
    assert vol.inspect(new).ok  # size only: cannot see it
    info = vol.inspect(new, deep=True)
    assert not info.ok
    assert len(info.problems) == 1
    assert "sha256 of participants.parquet" in info.problems[0] and "(modified)" in info.problems[0]


def test_check_files_lists_every_problem_of_a_manifest(tmp_path):
    (tmp_path / "a.csv").write_text("x\n1\n")
    manifest = {
        "tables": {
            "a": {"file": "a.csv", "bytes": 4, "sha256": "0" * 64},
            "b": {"file": "b.csv", "bytes": 1, "sha256": "0" * 64},
        }
    }
    assert check_files(tmp_path, manifest) == ["table 'b': file b.csv is missing"]
    deep = check_files(tmp_path, manifest, deep=True)
    assert len(deep) == 2 and "sha256 of a.csv" in deep[0]


def test_newest_intact_skips_broken_snapshots(config):
    s1, s2, s3 = _sync_n(config, 3)
    vol = Volume(config.root)
    assert vol.newest_intact().id == s3
    _corrupt_manifest(vol, s3)
    assert vol.newest_intact().id == s2
    _truncate_table_file(vol, s2)
    assert vol.newest_intact().id == s1
    assert vol.newest_intact(exclude={s1}) is None


def test_list_snapshots_orders_by_created_at_not_by_id(two_snapshots):
    vol, old, new = two_snapshots
    # Give the older snapshot a created_at after the newer one's: the order must follow created_at.
    path = vol.snapshot_dir(old) / MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8"))
    newer = Volume.read_manifest(vol.snapshot_dir(new))["created_at"]
    manifest["created_at"] = newer.replace(newer[:4], str(int(newer[:4]) + 1), 1)
    _make_writable(path)
    path.write_text(json.dumps(manifest), encoding="utf-8")

    assert [i.id for i in vol.list_snapshots()] == [new, old]
    # "previous" follows the order they were served in, not created_at ...
    assert vol.previous_of(new) == old and vol.previous_of(old) is None
    # ... except on a volume of the first release (no served log): there created_at decides
    vol.served_log.path.unlink()
    assert vol.previous_of(old) == new


def test_list_snapshots_on_an_empty_volume(tmp_path):
    vol = Volume(tmp_path / "nothing")
    assert vol.list_snapshots() == []
    assert vol.newest_intact() is None
    assert vol.current_id() is None
    assert vol.current_manifest() is None


# --- remove_tree -------------------------------------------------------------------------------------------


def test_remove_tree_removes_a_sealed_tree(tmp_path):
    root = tmp_path / "tree"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f.parquet").write_bytes(b"1")
    (root / "g.csv").write_bytes(b"2")
    seal(root)
    assert permission_problems(root) == []
    remove_tree(root)
    assert not root.exists()
    remove_tree(root)  # already gone: no error


def test_remove_tree_on_a_link_removes_only_the_link(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep.txt").write_text("keep")
    link = tmp_path / "link"
    os.symlink(target, link)
    remove_tree(link)
    assert not link.is_symlink()
    assert (target / "keep.txt").read_text() == "keep"


def test_retention_that_cannot_remove_a_snapshot_is_a_volume_error_naming_it(config_path):
    cfg = _config_with(config_path, retain=10)
    old, _, new = _sync_n(cfg, 3)
    vol = Volume(cfg.root)
    shutil.rmtree(vol.staging)
    vol.staging.write_text("a file where the staging folder belongs")  # the trash cannot be made

    with pytest.raises(syncer.VolumeError, match=rf"retention could not remove snapshot {old} .*next sync retries") as err:
        vol.retention(1)

    assert isinstance(err.value.__cause__, OSError)
    assert vol.current_id() == new and vol.inspect(new).ok
    assert vol.inspect(old).ok  # kept whole


def test_sweep_and_retention_never_delete_through_a_staging_link_out_of_the_volume(two_snapshots, tmp_path):
    vol, old, new = two_snapshots
    foreign = tmp_path / "someone-elses"
    (foreign / "20990101T000000Z-beef").mkdir(parents=True)
    (foreign / "keep.txt").write_text("not ours", encoding="utf-8")
    vol.staging.rmdir()
    os.symlink(foreign, vol.staging)

    with pytest.raises(syncer.SyncError, match=r"staging is a symbolic link to .*outside the volume.*syncer repair"):
        vol.sweep()
    with pytest.raises(syncer.SyncError, match="retention removes nothing"):
        vol.retention(1)
    assert sorted(p.name for p in foreign.iterdir()) == ["20990101T000000Z-beef", "keep.txt"]
    assert {i.id for i in vol.list_snapshots()} == {old, new}


def test_a_manifest_that_is_a_link_is_not_trusted(two_snapshots, tmp_path):
    vol, old, new = two_snapshots
    foreign = tmp_path / "foreign-manifest.json"
    foreign.write_text((vol.snapshot_dir(new) / MANIFEST).read_text(encoding="utf-8"), encoding="utf-8")
    os.chmod(vol.snapshot_dir(new), 0o755)
    (vol.snapshot_dir(new) / MANIFEST).unlink()
    os.symlink(foreign, vol.snapshot_dir(new) / MANIFEST)
    info = vol.inspect(new)
    assert not info.ok and "is a symbolic link, not the published file" in (info.error or "")
    assert vol.newest_intact().id == old


@pytest.mark.parametrize("target", ["../../foreign/snapshots/x", "/etc", ".."])
def test_rollback_to_a_path_is_refused_without_reading_it(config, target):
    syncer.sync(config)
    before = Volume(config.root).current_id()
    with pytest.raises(syncer.SyncError, match=r"not a snapshot id|does not exist"):
        syncer.rollback(config, target)
    assert Volume(config.root).current_id() == before
    assert not Volume(config.root).inspect(target).ok
