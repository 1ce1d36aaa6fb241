"""The serving order (served.jsonl) and time: rollback, retention and "previous" follow what was
served, not snapshot ids; data "from the future" is an error state. The clock is the engine's own
seam (``syncer._clock.frozen``), moved back and forward between real syncs -- no faketime."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import syncer
from syncer import Config, PublishError, StaleDataWarning
from syncer._clock import FrozenClock, frozen
from syncer.volume.layout import MANIFEST, Volume
from syncer.volume.served import SERVED_LOG, ServedEntry, serving_order

ROOT = Path(__file__).resolve().parents[1]
T0 = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)

COURSES = """
[[tables]]
name = "courses"
source = "courses"
primary_key = ["course_id"]
"""


@pytest.fixture
def small(make_config: Callable[..., Config]) -> Callable[[int], Config]:
    """A config with one small table keeping ``retain`` snapshots."""
    return lambda retain=5: dataclasses.replace(make_config(tables=COURSES), retain=retain)


def _sync_at(cfg: Config, clock: FrozenClock, at: dt.datetime) -> str:
    clock.set(at)
    report = syncer.sync(cfg)
    assert report["status"] == "ok", report
    return report["snapshot_id"]


def _log(cfg: Config) -> list[dict]:
    return [json.loads(line) for line in (Path(cfg.root) / SERVED_LOG).read_text(encoding="utf-8").splitlines()]


# --- the clock moved back --------------------------------------------------------------------------------


def test_after_the_clock_moved_back_rollback_goes_to_the_snapshot_served_before(small):
    cfg = small(5)
    with frozen(T0) as clock:
        a = _sync_at(cfg, clock, T0)
        b = _sync_at(cfg, clock, T0 - dt.timedelta(days=1))  # the clock jumped back a day
        assert b < a  # ids (and created_at) now sort the wrong way round
        result = syncer.rollback(cfg)
    assert (result["from"], result["to"]) == (b, a)
    assert Volume(cfg.root).current_id() == a


def test_after_the_clock_moved_back_retention_keeps_the_snapshot_served_before_current(small):
    cfg = small(1)
    with frozen(T0) as clock:
        _sync_at(cfg, clock, T0)
        b = _sync_at(cfg, clock, T0 - dt.timedelta(days=1))
        c = _sync_at(cfg, clock, T0 - dt.timedelta(days=2))
    vol = Volume(cfg.root)
    # created_at order is c < b < a; served order is a, b, c: a goes, b (served before c) stays
    assert {i.id for i in vol.list_snapshots()} == {b, c}
    assert vol.current_id() == c and vol.previous_of(c) == b
    assert syncer.rollback(cfg)["to"] == b


def test_clock_back_and_forward_across_several_syncs_keeps_the_served_order(small):
    cfg = small(10)
    jumps = [T0, T0 - dt.timedelta(days=3), T0 + dt.timedelta(days=30), T0 - dt.timedelta(hours=5), T0 + dt.timedelta(days=1)]
    with frozen(T0) as clock:
        served = [_sync_at(cfg, clock, at) for at in jumps]
        vol = Volume(cfg.root)
        assert [i.id for i in vol.list_snapshots()] != served  # creation order is not serving order
        assert list(vol.serving_order().chain) == served
        # rollback walks back in the order served, one step at a time
        walked = [syncer.rollback(cfg)["to"] for _ in range(len(served) - 1)]
        assert walked == served[-2::-1]
        with pytest.raises(syncer.NoSnapshotError, match="no earlier snapshot"):
            syncer.rollback(cfg)
        # serving the last one again (by id) and rolling back returns to the one it followed
        syncer.rollback(cfg, served[-1])
        assert syncer.rollback(cfg)["to"] == served[0]
    assert [e["id"] for e in _log(cfg)][: len(served)] == served


# --- a failed swap is not "served" --------------------------------------------------------------------------


def test_a_snapshot_whose_current_swap_failed_is_never_previous(small, monkeypatch):
    cfg = small(1)
    a = syncer.sync(cfg)["snapshot_id"]
    real_symlink = os.symlink

    def no_symlink(src, dst, *args, **kwargs):  # the temporary link of the swap cannot be made
        if ".current.tmp-" in str(dst):
            raise OSError(5, "Input/output error", str(dst))
        return real_symlink(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "symlink", no_symlink)
    with pytest.raises(PublishError, match="could not point current"):
        syncer.sync(cfg, force=True)
    monkeypatch.setattr(os, "symlink", real_symlink)
    vol = Volume(cfg.root)
    never = _log(cfg)[-1]["id"]  # the log announced it before the swap failed
    assert never != a and vol.current_id() == a
    # the failed run removed the snapshot it renamed into snapshots/ but never made current
    assert never not in {i.id for i in vol.list_snapshots()}

    c = syncer.sync(cfg, force=True)["snapshot_id"]
    assert vol.previous_of(c) == a
    assert never not in {i.id for i in vol.list_snapshots()}  # retention: never served, not kept
    assert syncer.rollback(cfg)["to"] == a


def test_the_recovery_rule_when_log_and_current_disagree():
    e = ServedEntry
    log = [e("a", "t"), e("b", "t", "a"), e("x", "t", "b"), e("c", "t", "b"), e("d", "t", "q")]
    order = serving_order(log, "d")
    # x: announced, but the next swap still started from b -> never served; q: moved outside the log
    assert order.sequence == ("a", "b", "c", "q", "d")
    assert serving_order(log[:3], "b").sequence == ("a", "b")  # the last swap failed: current says so
    assert serving_order(log[:3], "x").sequence == ("a", "b", "x")
    assert serving_order([*log[:2], e("a", "t", "b"), e("b", "t", "a")], "b").chain == ("a", "b")
    assert serving_order(None, "b", ["a", "b", "c"]).chain == ("a", "b")  # no log: the first release's rule


def test_a_torn_last_line_is_ignored_and_the_next_entry_starts_on_its_own_line(small):
    cfg = small(5)
    a = syncer.sync(cfg)["snapshot_id"]
    with open(Path(cfg.root) / SERVED_LOG, "a", encoding="utf-8") as fh:
        fh.write('{"id": "20991231T000000Z-dead", "at"')  # a crash in the middle of an append
    b = syncer.sync(cfg)["snapshot_id"]
    vol = Volume(cfg.root)
    assert vol.serving_order().chain == (a, b)
    assert syncer.rollback(cfg)["to"] == a


def test_the_log_is_fsynced_before_current_is_swapped(small, tmp_path):
    cfg = small(5)
    syncer.sync(cfg)
    trace = tmp_path / "trace"
    script = f"import syncer; syncer.sync(syncer.load_config({str(cfg.path)!r}))"
    env = {**os.environ, "SYNCER_LOG_FORMAT": "text"}
    proc = subprocess.run(
        ["strace", "-f", "-qq", "-o", str(trace), "-e", "trace=openat,fsync,rename,renameat,renameat2,symlink,symlinkat",
         sys.executable, "-c", script],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = trace.read_text().splitlines()
    opened = next(i for i, line in enumerate(lines) if SERVED_LOG in line and "O_APPEND" in line)
    fd = lines[opened].rsplit("=", 1)[1].strip()
    synced = next(i for i, line in enumerate(lines[opened:], opened) if f"fsync({fd})" in line)
    swapped = next(i for i, line in enumerate(lines) if "rename" in line and '/current"' in line)
    assert opened < synced < swapped


# --- a volume of the first release (no log) ---------------------------------------------------------------


def test_a_volume_without_a_log_falls_back_to_creation_order_then_starts_the_log(small):
    cfg = small(10)
    s1, s2, s3 = (syncer.sync(cfg)["snapshot_id"] for _ in range(3))
    vol = Volume(cfg.root)
    # as the first release leaves it: no served.jsonl, current rolled back to s2 by hand
    vol.served_log.path.unlink()
    os.unlink(vol.current)
    os.symlink(f"snapshots/{s2}", vol.current)
    assert vol.previous_of(s2) == s1  # today's rule

    assert syncer.rollback(cfg)["to"] == s1
    log = _log(cfg)
    assert [(e["id"], e["why"]) for e in log] == [(s1, "seed"), (s2, "seed"), (s1, "rollback")]
    assert vol.serving_order().chain == (s1,)
    s4 = syncer.sync(cfg)["snapshot_id"]
    assert vol.previous_of(s4) == s1
    assert {s3, s2} <= {i.id for i in vol.list_snapshots()}  # retention of 10 keeps everything


def test_an_old_reader_still_reads_a_volume_with_a_log(small):
    """served.jsonl is an addition: `current`, snapshots/ and the manifests are as before."""
    cfg = small(5)
    sid = syncer.sync(cfg)["snapshot_id"]
    root = Path(cfg.root)
    assert os.readlink(root / "current") == f"snapshots/{sid}"
    assert json.loads((root / "snapshots" / sid / MANIFEST).read_text(encoding="utf-8"))["id"] == sid
    assert (root / SERVED_LOG).stat().st_mode & 0o777 == 0o644  # apps may read it, only the writer writes


# --- data from the future -----------------------------------------------------------------------------------


def test_a_sync_with_the_clock_30_days_ahead_is_future_never_fresh(small):
    cfg = small(5)
    with frozen(T0 + dt.timedelta(days=30)):
        syncer.sync(cfg)
    with frozen(T0):
        st = syncer.status(cfg)
        (t,) = st["tables"]
        assert t["status"] == "future" and t["stale"] is True and t["age_seconds"] == -30 * 86400
        assert st["stale"] is True
        assert any(
            "exported_at is 2592000 s in the future: the clock moved or the manifest was edited" in w for w in st["warnings"]
        )
        with pytest.warns(StaleDataWarning, match="2592000 s in the future"):
            syncer.read_table("courses", root=cfg.root)
        # startup does not skip a sync because the data looks "young"
        assert syncer.startup(cfg)["action"] == "synced"
        assert syncer.status(cfg)["tables"][0]["status"] == "fresh"


def test_an_exported_at_edited_into_the_future_shows_in_syncer_status(make_config, tmp_path):
    cfg = make_config(tables=COURSES)
    sid = syncer.sync(cfg)["snapshot_id"]
    path = Path(cfg.root) / "snapshots" / sid / MANIFEST
    data = json.loads(path.read_text(encoding="utf-8"))
    data["tables"]["courses"]["exported_at"] = "2099-01-01T00:00:00.000000Z"
    os.chmod(path.parent, 0o755)
    os.chmod(path, 0o644)
    path.write_text(json.dumps(data), encoding="utf-8")
    env = {**os.environ, "SYNCER_LOG_FORMAT": "text"}
    res = subprocess.run(
        [sys.executable, "-m", "syncer", "--config", str(cfg.path), "status"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    row = next(line for line in res.stdout.splitlines() if line.startswith("courses"))
    assert "future" in row and "stale" in row and "fresh" not in row.replace("fresh?", "")
    assert "s in the future: the clock moved or the manifest was edited" in res.stdout


def test_each_line_says_who_served_what_and_why(small):
    cfg = small(5)
    a = syncer.sync(cfg, trigger="manual", user="alice")["snapshot_id"]
    b = syncer.sync(cfg, trigger="schedule")["snapshot_id"]
    syncer.rollback(cfg, user="bob")
    rows = [(e["id"], e["previous"], e["why"], e["user"], e["trigger"]) for e in _log(cfg)]
    assert rows == [
        (a, None, "sync", "alice", "manual"),
        (b, a, "sync", None, "schedule"),
        (a, b, "rollback", "bob", "rollback"),
    ]
    assert all(e["at"].endswith("Z") for e in _log(cfg))


# --- ids made within one second ------------------------------------------------------------------------


def test_two_runs_in_the_same_second_with_the_same_suffix_get_different_ids(small, monkeypatch):
    """A snapshot id is the second plus 16 random bits: two runs in one second (or a clock moved back
    onto a second already used) may draw the same id. The second run then renamed its staging folder
    onto the first snapshot and failed, and its crash record took the first's snapshot for its own. An
    id already on the volume (a snapshot, a staging folder, a run in the history) is never reused."""
    import syncer.volume.layout as layout

    cfg = small(5)
    monkeypatch.setattr(layout.secrets, "token_hex", lambda n: "abcd")  # every draw the same
    with frozen(T0):
        a = syncer.sync(cfg)
        b = syncer.sync(cfg, force=True)
    assert a["status"] == "ok" and b["status"] == "ok", (a, b)
    assert a["snapshot_id"] != b["snapshot_id"]
    assert a["snapshot_id"][:17] == b["snapshot_id"][:17] == T0.strftime("%Y%m%dT%H%M%SZ-")
    vol = Volume(cfg.root)
    assert vol.current_id() == b["snapshot_id"] and vol.previous_of(b["snapshot_id"]) == a["snapshot_id"]
    assert {i.id for i in vol.list_snapshots() if i.ok} == {a["snapshot_id"], b["snapshot_id"]}
    assert syncer.verify(cfg)["ok"]


def test_a_run_in_the_same_second_as_the_last_serves_the_tables_it_reports(make_config, monkeypatch):
    """The reader matrix's flake (`KeyError: 'tinyint__csv'`): one sync per format within a second; one
    drew the id of the sync before it, its folder could not be renamed onto that snapshot ("Directory
    not empty"), and since `current` named "its" id it was reported ok, its tables fresh, while
    `current` served the earlier snapshot without them."""
    import warnings

    import syncer.volume.layout as layout

    cfg = make_config()
    monkeypatch.setattr(layout.secrets, "token_hex", lambda n: "abcd")
    with frozen(T0):
        first = syncer.sync(cfg, ["courses"])
        second = syncer.sync(cfg, ["participants"])
    assert first["status"] == "ok" and second["status"] == "ok" and not second["warnings"], second
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        served = syncer.current_snapshot(config=cfg)
    assert served.id == second["snapshot_id"] and {"courses", "participants"} <= set(served.tables), sorted(served.tables)
