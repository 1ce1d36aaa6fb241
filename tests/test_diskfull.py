"""Disk full (issue 5, item 7), for real: the volume root is a 3 MiB tmpfs mounted for each test.

Nothing is injected: the table files, the manifest and the run history hit a genuinely full
filesystem (ENOSPC). Mounting needs root and a sandbox that allows ``mount -t tmpfs``; where it does
not, these tests are skipped with the reason (they never fall back to a simulated error).

What must hold: a table that does not fit fails cleanly (its staging files are freed, the message
says there is no space), the previous data stays published and verifies, and nothing is lost.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

import syncer
from syncer import PublishError, StaleDataWarning, load_config, read_table
from syncer.volume.layout import Volume, remove_tree
from syncer.volume.manifest import Manifest

SMALL_ROWS = 100
BIG_ROWS = 150_000  # ~ 5 MiB of Parquet: random hex does not compress


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs mounted at tmp_path/vol, unmounted afterwards."""
    mnt = tmp_path / "vol"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root; ENOSPC is tested only on a real full filesystem")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0755", "tmpfs", str(mnt)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"this sandbox does not allow mounting a tmpfs ({proc.stderr.strip()}); ENOSPC is tested only for real")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _make_big(db: Path, rows: int) -> None:
    con = duckdb.connect(str(db))
    con.execute(
        "CREATE OR REPLACE TABLE big AS SELECT i AS id, md5(i::VARCHAR) || md5((i * 7919)::VARCHAR) AS payload "
        f"FROM range({rows}) t(i)"
    )
    con.close()


@pytest.fixture
def full_disk_setup(tmp_path: Path, small_volume: Path) -> tuple[syncer.Config, Path, str]:
    """A published snapshot of `small` and a small `big` on the tmpfs; then `big` grows past the free space."""
    db = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(db))
    con.execute(f"CREATE TABLE small AS SELECT i AS id, 'row ' || i AS label FROM range({SMALL_ROWS}) t(i)")
    con.close()
    _make_big(db, SMALL_ROWS)
    cfg_path = tmp_path / "sync.toml"
    cfg_path.write_text(
        textwrap.dedent(
            f"""
            [source]
            kind = "duckdb"
            path = "{db}"

            [volume]
            root = "{small_volume}"
            retain = 2

            [export]
            batch_rows = 8192

            [[tables]]
            name = "small"
            primary_key = ["id"]

            [[tables]]
            name = "big"
            primary_key = ["id"]
            """
        ),
        encoding="utf-8",
    )
    cfg = load_config(cfg_path)
    first = syncer.sync(cfg)
    assert first["status"] == "ok", first.get("error")
    _make_big(db, BIG_ROWS)
    return cfg, db, first["snapshot_id"]


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def test_disk_full_keeps_the_previous_snapshot_and_frees_the_staging_files(full_disk_setup):
    cfg, _, first = full_disk_setup
    vol = Volume(cfg.root)
    free_before = _free(vol.root)
    expected_big = read_table("big", config=cfg, as_arrow=True)
    assert expected_big.num_rows == SMALL_ROWS

    report = syncer.sync(cfg)

    # The volume really was full ...
    assert "no space left on device" in report["error"].lower(), report["error"]
    # ... and what was published is still there, complete (big carried over into the new snapshot):
    assert vol.current_id() == report["snapshot_id"]
    assert vol.inspect(first, deep=True).ok
    assert syncer.verify(cfg)["ok"], syncer.verify(cfg)["problems"]
    with pytest.warns(StaleDataWarning, match="the last export failed"):
        assert read_table("big", config=cfg, as_arrow=True).equals(expected_big)
    assert read_table("small", config=cfg, as_arrow=True).num_rows == SMALL_ROWS
    # ... and the half-written table was freed: staging is empty and the space is back.
    assert sorted(p.name for p in vol.staging.iterdir()) == []
    assert _free(vol.root) >= free_before - 256 * 1024
    # Once space is back (a smaller table), the next sync publishes normally.
    _make_big(Path(cfg.source.path), SMALL_ROWS * 2)
    again = syncer.sync(cfg)
    assert again["status"] == "ok" and read_table("big", config=cfg, as_arrow=True).num_rows == SMALL_ROWS * 2


def test_disk_full_fails_only_that_table_with_a_clear_message(full_disk_setup):
    cfg, _, first = full_disk_setup

    report = syncer.sync(cfg)

    assert report["status"] == "partial"
    big = next(t for t in report["tables"] if t["table"] == "big")
    small = next(t for t in report["tables"] if t["table"] == "small")
    assert small["ok"] is True
    assert big["ok"] is False and big["status"] == "carried_over"
    assert "big" in big["error"] and "no space left on device" in big["error"].lower()
    manifest = Volume(cfg.root).current_manifest()
    assert manifest["id"] == report["snapshot_id"] != first
    assert manifest["tables"]["big"]["status"] == "carried_over"
    assert sorted(p.name for p in Volume(cfg.root).staging.iterdir()) == []


def test_disk_full_cli_prints_one_clear_line_and_no_traceback(full_disk_setup):
    cfg, _, _ = full_disk_setup
    env = {k: v for k, v in os.environ.items() if k != "SYNCER_CONFIG"}
    proc = subprocess.run(
        [sys.executable, "-m", "syncer", "--config", str(cfg.path), "sync"], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "big" in proc.stderr + proc.stdout and "no space left on device" in (proc.stderr + proc.stdout).lower()


def test_startup_on_a_full_volume_still_serves_the_previous_snapshot_and_says_why(full_disk_setup):
    cfg, _, first = full_disk_setup
    cfg = dataclasses.replace(cfg, skip_startup_if_younger_than_hours=0.0)

    res = syncer.startup(cfg)

    assert res["servable"] is True
    assert res["action"] == "synced" and res["run"]["status"] == "partial"
    assert res["snapshot_id"] == res["run"]["snapshot_id"] != first
    assert "no space left on device" in res["reason"].lower() and "stale: big" in res["reason"]
    assert syncer.verify(cfg)["ok"]
    assert sorted(p.name for p in Volume(cfg.root).staging.iterdir()) == []


def test_a_manifest_that_does_not_fit_is_a_publish_error_and_leaves_no_partial_file(small_volume: Path):
    vol = Volume(small_volume)
    vol.ensure()
    folder = vol.staging / "20260101T000000Z-f011"
    folder.mkdir()
    filler = vol.root / "filler"
    with open(filler, "wb", buffering=0) as fh:  # fill the filesystem to the last byte
        try:
            while True:
                fh.write(os.urandom(64 * 1024))
        except OSError as exc:
            assert exc.errno == 28
    notes = {f"note{i}": uuid.uuid4().hex * 64 for i in range(64)}  # ~128 KiB: more than the disk has left
    manifest = Manifest(folder.name, "2026-01-01T00:00:00.000000Z", tables={}, source={"kind": "duckdb"}, extra=notes)

    with pytest.raises(PublishError, match="no space left on device") as err:
        vol.write_manifest(folder, manifest)

    assert folder.name in str(err.value) and "current snapshot is unchanged" in str(err.value)
    assert sorted(p.name for p in folder.iterdir()) == []  # neither manifest.json nor its .tmp
    filler.unlink()
    vol.write_manifest(folder, manifest)  # with space back, it is written whole
    assert Volume.read_manifest(folder) == manifest


# --- every OS error on the sync path is one line (issue 13, items 6 and 14) ---------------------------------------


def _one_clean_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout and 'File "' not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


@pytest.fixture
def inode_starved(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs with plenty of bytes but almost no inodes: file creation fails with ENOSPC."""
    mnt = tmp_path / "vol"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m,nr_inodes=24,mode=0755", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"this sandbox does not allow mounting a tmpfs ({proc.stderr.strip()})")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_volume_out_of_inodes_is_one_line_and_the_served_data_stays(tmp_path: Path, inode_starved: Path, demo_db) -> None:
    from tests.conftest import write_config

    path = write_config(tmp_path / "cfg", demo_db)
    path.write_text(path.read_text().replace('root = "data"', f'root = "{inode_starved}"'))
    cfg = load_config(path)
    first = syncer.sync(cfg)
    served = Volume(cfg.root).current_id()
    # use up what is left: the next sync cannot create its files (ENOSPC with free bytes)
    n = 0
    while True:
        try:
            (inode_starved / f"filler-{n}").touch()
        except OSError:
            break
        n += 1
    proc = subprocess.run([sys.executable, "-m", "syncer", "--config", str(path), "sync"], capture_output=True, text=True)
    line = _one_clean_line(proc) if proc.returncode != 0 and "error: " in proc.stderr else proc.stderr
    assert "no space left on device" in line.lower() or "No space left" in line, proc.stderr
    assert Volume(cfg.root).current_id() == (served or first["snapshot_id"])
    assert syncer.verify(cfg)["ok"]
    for f in inode_starved.glob("filler-*"):
        f.unlink()
    assert syncer.sync(cfg)["status"] == "ok"
    assert not any((inode_starved / "staging").iterdir())


def test_a_volume_root_made_read_only_is_one_line_for_sync_status_and_repair(public_runtime, production_user, demo_db):
    """As the production user (root ignores the mode): the root 0555, so `.lock.json.tmp` and the rest fail."""
    import shutil
    import tempfile

    from tests.conftest import write_config

    uid, gid = production_user
    base = Path(tempfile.mkdtemp(prefix="vds-ro-root-"))
    try:
        os.chmod(base, 0o755)
        db = base / "warehouse.duckdb"
        shutil.copy(demo_db, db)
        path = write_config(base / "cfg", db)
        for p in (base, db, base / "cfg", path):
            os.chown(p, uid, gid)

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            argv = [public_runtime.python, "-m", "syncer", "--config", str(path), *args]
            return public_runtime.run(uid, gid, argv, cwd=base, timeout=300)

        assert cli("sync").returncode == 0
        root = base / "cfg" / "data"
        os.chmod(root, 0o555)
        line = _one_clean_line(cli("sync"))
        assert str(root) in line and ("permission denied" in line.lower() or "read-only" in line), line
        status = cli("status")
        assert status.returncode == 0 and "Traceback" not in status.stderr + status.stdout
        repair = cli("repair")
        assert "Traceback" not in repair.stderr + repair.stdout
        os.chmod(root, 0o755)
        assert cli("verify").returncode == 0
        assert cli("sync").returncode == 0
    finally:
        for dirpath, _dirs, _files in os.walk(base):
            os.chmod(dirpath, 0o755)
        shutil.rmtree(base, ignore_errors=True)


def test_read_table_under_io_faults_raises_the_library_s_errors(tmp_path: Path, demo_db) -> None:
    import shutil as _shutil

    from tests.conftest import write_config

    if _shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    cfg = load_config(write_config(tmp_path / "cfg", demo_db))
    syncer.sync(cfg)
    target = Volume(cfg.root).current / cfg.tables[0].file_name
    code = (
        "import sys, syncer\n"
        "try:\n"
        "    syncer.read_table(sys.argv[2], config=syncer.load_config(sys.argv[1]))\n"
        "    print('read')\n"
        "except syncer.SyncError as exc:\n"
        "    print('ours', type(exc).__name__)\n"
    )
    for inject in ("openat:error=EIO", "read:error=EIO", "fstat:error=EIO", "newfstatat:error=EIO"):
        argv = ["strace", "-f", "-qq", "-o", "/dev/null", "-P", str(target.resolve()), "-e", f"inject={inject}"]
        proc = subprocess.run(
            [*argv, sys.executable, "-c", code, str(cfg.path), cfg.tables[0].name], capture_output=True, text=True
        )
        assert "Traceback" not in proc.stderr, (inject, proc.stderr)
        assert proc.stdout.split()[0] in ("ours", "read"), (inject, proc.stdout, proc.stderr)
    # a snapshots folder replaced by a file, current gone: NotADirectoryError inside, ours outside
    vol = Volume(cfg.root)
    vol.current.unlink()
    remove_tree(vol.snapshots)
    vol.snapshots.write_text("not a folder")
    with pytest.raises(syncer.SyncError):
        read_table(cfg.tables[0].name, config=cfg)


def test_emfile_while_sweeping_the_volume_is_one_line_naming_it(tmp_path: Path, demo_db) -> None:
    import shutil as _shutil

    from tests.conftest import write_config

    if _shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    path = write_config(tmp_path / "cfg", demo_db)
    cfg = load_config(path)
    syncer.sync(cfg)
    served = Volume(cfg.root).current_id()
    (Volume(cfg.root).staging / "leftover").mkdir()
    # every open of the staging folder fails with EMFILE (too many open files): the sweep cannot list it
    staging = str(Volume(cfg.root).root.resolve())
    argv = ["strace", "-f", "-qq", "-o", "/dev/null", "-P", staging, "-e", "inject=openat:error=EMFILE"]
    proc = subprocess.run([*argv, sys.executable, "-m", "syncer", "--config", str(path), "sync"], capture_output=True, text=True)
    line = _one_clean_line(proc)
    assert "Too many open files" in line and staging in line and "unexpected" not in line, line
    assert Volume(cfg.root).current_id() == served and syncer.verify(cfg)["ok"]
    assert syncer.sync(cfg)["status"] == "ok"


def test_disk_full_while_writing_arrow_ipc_is_one_line_and_keeps_the_snapshot(full_disk_setup, tmp_path: Path):
    """The Arrow IPC writer writes natively (no Python sink): ENOSPC is still one line naming the
    device, the published snapshot is untouched and the half-written file is freed."""
    _, _, first = full_disk_setup
    cfg_path = tmp_path / "sync.toml"  # the fixture's config: `big` becomes an Arrow IPC table
    cfg_path.write_text(cfg_path.read_text(encoding="utf-8").replace('name = "big"\n', 'name = "big"\nformat = "arrow"\n'))
    cfg = load_config(cfg_path)
    assert cfg.table("big").format == "arrow"
    vol = Volume(cfg.root)
    report = syncer.sync(cfg)
    big = next(t for t in report["tables"] if t["table"] == "big")
    assert "no space left on device" in big["error"].lower() and "arrow" in big["error"], big["error"]
    assert "Traceback" not in big["error"] and "\n" not in big["error"]
    assert vol.inspect(first, deep=True).ok
    assert syncer.verify(cfg)["ok"], syncer.verify(cfg)["problems"]
    assert sorted(p.name for p in vol.staging.iterdir()) == []
