"""The engine as the production user: the SPCS image runs as uid 10001, not root.

Root skips permission checks that bite everybody else (moving a read-only folder to another parent,
writing into a sealed snapshot, reading a 000 file), so a suite run as root alone proves nothing about
production. Here, from a root test run, the user is created if missing and given its own readable
copy of the virtualenv and the project (tests/_asuser.py), then:

* the end-to-end suites — sync/publish, retention, rollback, repair, verify, the crash tests with
  real SIGKILLs, the lock, the CLI, parted tables, quarantine — run again, whole, as uid 10001;
* ``make run``'s path runs as uid 10001 on a volume that user owns: the demo warehouse, then
  ``streamlit run`` until ``/ready`` answers 200 with a published, sealed snapshot, then more syncs
  through retention, a rollback and a repair from the CLI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
from pathlib import Path

import pytest

from tests._asuser import PRODUCTION_UID, Runtime
from tests._net import app_server
from tests.conftest import write_config

pytestmark = pytest.mark.slow

#: the suites that write the volume end to end (each runs whole, as uid 10001): the volume's files,
#: modes, lock, repair, history and quarantine as that user. The crash loops and the CLI's behaviour
#: do not depend on the uid and run once, as the test runner's user (test_crash.py, test_cli.py).
SUITES = (
    "tests/test_engine.py",
    "tests/test_volume.py",
    "tests/test_repair.py",
    "tests/test_lock.py",
    "tests/test_parts.py",
    "tests/test_quarantine.py",
    "tests/test_history.py",
    "tests/test_diskfull.py",
)


def owned_folder(base: Path, uid: int, gid: int) -> Path:
    """A folder under ``base`` that uid owns, on a path every user can traverse."""
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o755)
    os.chown(base, uid, gid)
    return base


def test_the_end_to_end_suites_pass_as_the_production_user(public_runtime: Runtime, production_user: tuple[int, int]) -> None:
    uid, gid = production_user
    work = owned_folder(public_runtime.folder / "pytest-as-10001", uid, gid)
    proc = public_runtime.run(
        uid,
        gid,
        [
            public_runtime.python,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--basetemp={work / 'tmp'}",
            "-o",
            "addopts=--strict-markers",
            *SUITES,
        ],
        cwd=public_runtime.project,
        env={"HOME": str(work), "TMPDIR": str(work)},
        timeout=900,
    )
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, f"as uid {uid}:\n{tail}"
    summary = proc.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary) and "failed" not in summary and "error" not in summary, tail


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_make_run_serves_and_syncs_as_the_production_user(
    public_runtime: Runtime, production_user: tuple[int, int], tmp_path_factory: pytest.TempPathFactory
) -> None:
    uid, gid = production_user
    work = owned_folder(public_runtime.folder / "make-run-as-10001", uid, gid)
    config = work / "sync.toml"
    # The repo's own config (as `make run` uses it), with the volume and warehouse in uid's folder.
    text = (public_runtime.project / "sync.toml").read_text(encoding="utf-8")
    text = text.replace('path = "var/warehouse.duckdb"', 'path = "warehouse.duckdb"').replace(
        'root = "var/data"', 'root = "data"'
    )
    text = re.sub(r"(?m)^retain = \d+", "retain = 2", text)
    assert 'root = "data"' in text and "retain = 2" in text, "sync.toml's keys moved: update this test"
    config.write_text(text, encoding="utf-8")
    os.chown(config, uid, gid)

    def syncer(*args: str) -> tuple[int, str]:
        proc = public_runtime.run(uid, gid, [public_runtime.python, "-m", "syncer", "--config", str(config), *args], cwd=work)
        return proc.returncode, proc.stdout + proc.stderr

    rc, out = syncer("demo", "--rows", "20000")
    assert rc == 0, out
    with app_server(
        work,
        config,
        prefix=public_runtime.prefix(uid, gid),
        python=public_runtime.python,
        app=public_runtime.project / "streamlit_app.py",
        env={**public_runtime.env, "HOME": str(work)},
    ) as srv:
        body = srv.ready()
        assert body["startup"] == "synced" and body["stale"] is False, body
        first = body["snapshot"]
    root = work / "data"
    snap = root / "snapshots" / first
    assert (root / "current").resolve() == snap
    assert snap.stat().st_uid == PRODUCTION_UID
    assert _mode(snap) == 0o555 and all(_mode(f) == 0o444 for f in snap.iterdir())
    assert list((root / "staging").iterdir()) == []

    # More syncs: retention (retain = 2) removes sealed snapshots as this user too.
    ids = [first]
    for _ in range(3):
        rc, out = syncer("sync", "--json")
        assert rc == 0, out
        ids.append(json.loads(out[out.index("{") :])["snapshot_id"])
    left = sorted(p.name for p in (root / "snapshots").iterdir())
    assert left == sorted(ids[-2:]), (left, ids)

    rc, out = syncer("rollback")
    assert rc == 0, out
    assert (root / "current").resolve().name == ids[-2]

    os.chmod(root / "snapshots" / ids[-2] / "manifest.json", 0o000)  # damage a reader would trip on
    rc, out = syncer("repair")
    assert rc == 0 and "reset permissions" in out, out
    rc, out = syncer("verify")
    assert rc == 0, out


def test_retention_that_cannot_remove_a_snapshot_leaves_the_new_one_published_with_a_warning(
    public_runtime: Runtime, production_user: tuple[int, int], demo_db: Path
) -> None:
    # A real permission fault only a non-root writer meets: an old snapshot folder owned by root
    # (restored from a backup, say) cannot be unsealed by uid 10001, so retention cannot move it.
    uid, gid = production_user
    work = owned_folder(public_runtime.folder / "retention-as-10001", uid, gid)
    db = work / "warehouse.duckdb"
    shutil.copy(demo_db, db)
    os.chown(db, uid, gid)
    config = write_config(work, db, extra="")
    config.write_text(config.read_text().replace("retain = 3", "retain = 2"), encoding="utf-8")
    os.chown(config, uid, gid)

    def sync_json() -> tuple[int, dict, str]:
        argv = [public_runtime.python, "-m", "syncer", "--config", str(config), "sync", "--json"]
        proc = public_runtime.run(uid, gid, argv, cwd=work)
        out = proc.stdout
        return proc.returncode, (json.loads(out[out.index("{") :]) if "{" in out else {}), proc.stdout + proc.stderr

    ids = []
    for _ in range(2):
        rc, report, out = sync_json()
        assert rc == 0, out
        ids.append(report["snapshot_id"])
    oldest = work / "data" / "snapshots" / ids[0]
    os.chown(oldest, 0, 0)

    rc, report, out = sync_json()

    assert rc == 0, out
    assert report["status"] == "ok" and report["snapshot_id"] not in ids
    assert (work / "data" / "current").resolve().name == report["snapshot_id"]
    assert len(report["warnings"]) == 1 and "retention did not finish" in report["warnings"][0]
    assert ids[0] in report["warnings"][0]
    assert oldest.is_dir() and _mode(oldest) == 0o555  # kept whole, still sealed
