"""A snapshot is one consistent cut (syncer/sources/*.py run moment, syncer/volume/consistency.py):
one moment per run, a real writer process changing the DuckDB source during syncs, the manifest's
record of one cut or mixed, and where it is shown (status, /ready, the Freshness page)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import syncer
from syncer import Config, Manifest, cut_summary, load_config
from syncer._clock import parse_iso
from syncer.admin import cut_rows, server
from syncer.cli import main
from syncer.volume.consistency import offset_text, snapshot_cut
from syncer.volume.manifest import ManifestEntry
from tests.conftest import write_config

RELATED = """
[[tables]]
name = "parents"
primary_key = ["id"]

[[tables]]
name = "children"
primary_key = ["id"]
references = { parent_id = "parents.id" }
references_severity = "warn"
"""

# A writer process: each transaction inserts a parent and its child (ids k), then closes the file so
# the next open -- the writer's or a sync's -- may get it. It records what it committed and when.
WRITER = textwrap.dedent(
    """
    import duckdb, json, sys, time
    path, log, stop_file = sys.argv[1], sys.argv[2], sys.argv[3]
    import pathlib
    k, commits, blocked = int(sys.argv[4]), [], 0
    while not pathlib.Path(stop_file).exists():
        try:
            con = duckdb.connect(path)
        except duckdb.IOException:
            blocked += 1  # a sync holds the file (DuckDB's lock): wait for it
            time.sleep(0.002)
            continue
        try:
            k += 1
            con.execute("BEGIN")
            con.execute("INSERT INTO parents VALUES (?, ?)", [k, "p%d" % k])
            con.execute("INSERT INTO children VALUES (?, ?)", [k, k])
            con.execute("COMMIT")
        finally:
            con.close()
        commits.append([k, time.time()])
        pathlib.Path(log + ".first").touch()  # the test starts syncing once one commit is in
        time.sleep(0.003)
    pathlib.Path(log).write_text(json.dumps({"commits": commits, "blocked": blocked}))
    """
)


def related_db(path: Path, n: int) -> Path:
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE parents (id BIGINT, name VARCHAR)")
        con.execute("CREATE TABLE children (id BIGINT, parent_id BIGINT)")
        con.execute(f"INSERT INTO parents SELECT i, 'p' || i FROM range(1, {n + 1}) t(i)")
        con.execute(f"INSERT INTO children SELECT i, i FROM range(1, {n + 1}) t(i)")
    return path


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[Callable[[Path, int], dict[str, Any]]]:
    """Start a writer process on a warehouse; calling the returned stop() ends it and gives its log."""
    procs: list[subprocess.Popen[bytes]] = []
    stop_file, log = tmp_path / "stop", tmp_path / "writer.json"

    def start(db: Path, first: int) -> Callable[[], dict[str, Any]]:
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(log), str(stop_file), str(first)])
        procs.append(proc)

        def stop() -> dict[str, Any]:
            stop_file.touch()
            assert proc.wait(30) == 0
            return json.loads(log.read_text())

        return stop

    yield start  # type: ignore[misc]
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def ids(path: Path, column: str = "id") -> list[int]:
    return sorted(pq.read_table(path, columns=[column]).column(column).to_pylist())


def test_a_writer_changing_the_source_during_syncs_never_splits_a_snapshot(tmp_path: Path, writer: Any) -> None:
    n = 20_000
    db = related_db(tmp_path / "w.duckdb", n)
    cfg = load_config(write_config(tmp_path / "cfg", db, tables=RELATED))
    stop = writer(db, n)
    first = tmp_path / "writer.json.first"
    deadline = time.monotonic() + 60
    while not first.exists():  # the writer is committing before the first sync starts
        assert time.monotonic() < deadline, "the writer process never committed"
        time.sleep(0.01)
    held = []  # (snapshot id, parents, children, parent_refs, manifest), read before retention removes it
    for _ in range(4):
        r = syncer.sync(cfg)
        assert r.snapshot_id, r.error
        folder = Path(cfg.root) / "snapshots" / r.snapshot_id
        man = Manifest.from_json(json.loads((folder / "manifest.json").read_text()))
        files = [ids(folder / "parents.parquet"), ids(folder / "children.parquet"), ids(folder / "children.parquet", "parent_id")]
        held.append((r.snapshot_id, *files, man))
        time.sleep(0.05)  # the writer commits between syncs too
    log = stop()
    commits = {k: t for k, t in log["commits"]}
    holdings = []
    for sid, parents, children, parent_refs, man in held:
        # one moment: both tables hold exactly the rows committed before it -- a prefix 1..K, no orphans
        k = len(parents)
        assert parents == children == parent_refs == list(range(1, k + 1)), sid
        check = next(c for c in man.tables["children"].checks if c.name == "references:parent_id")
        assert check.ok and check.extra["orphans"] == 0
        assert man.consistency is not None and man.consistency.cut == "consistent", man.consistency
        assert set(man.consistency.tables.values()) == {man.consistency.as_of}
        moment = parse_iso(man.consistency.as_of).timestamp()
        if k + 1 in commits:  # the next transaction committed only after the run had read everything
            assert commits[k + 1] > moment
        holdings.append(k)
    # the writer really ran during the syncs: it committed between them and was locked out by them
    assert holdings == sorted(holdings) and len(set(holdings)) == len(holdings), holdings
    assert holdings[0] > n and max(commits) > holdings[-1]
    assert log["blocked"] > 0


def test_a_per_table_connection_would_have_split_it(tmp_path: Path) -> None:
    """What the test above guards against: the same writer between two reads of separate
    connections makes an orphan. (Why one connection for the whole run is the guarantee.)"""
    db = related_db(tmp_path / "w.duckdb", 3)
    with duckdb.connect(str(db), read_only=True) as con:
        parents = con.execute("SELECT count(*) FROM parents").fetchall()[0][0]
    with duckdb.connect(str(db)) as con:  # a writer gets in between the two tables
        con.execute("BEGIN; INSERT INTO parents VALUES (4, 'p4'); INSERT INTO children VALUES (4, 4); COMMIT")
    with duckdb.connect(str(db), read_only=True) as con:
        children = con.execute("SELECT count(*) FROM children").fetchall()[0][0]
    assert (parents, children) == (3, 4)


def test_every_table_of_a_duckdb_run_records_the_one_moment(config: Config) -> None:
    report = syncer.sync(config)
    man = syncer.current_snapshot(config=config)
    moments = {e.consistency["as_of"] for e in man.tables.values()}
    assert len(moments) == 1 and moments == {man.consistency.as_of}
    assert all(e.consistency["pinned"] is True for e in man.tables.values())
    assert man.consistency.cut == "consistent" and man.consistency.differ == ()
    assert report.snapshot_id == man.id


# --- mixed snapshots --------------------------------------------------------------------------------------


def test_a_per_table_resync_is_mixed_naming_the_tables_and_how_far_apart(config: Config) -> None:
    first = syncer.sync(config).snapshot_id
    time.sleep(0.05)
    syncer.sync(config, ["courses"])
    man = syncer.current_snapshot(config=config)
    c = man.consistency
    assert c.cut == "mixed"
    assert {d.table: d.reason for d in c.differ} == {
        "participants": "earlier_run",
        "enrollments": "earlier_run",
        "daily_metrics": "earlier_run",
    }
    for d in c.differ:
        assert d.offset_seconds is not None and d.offset_seconds < -0.04
        assert first in d.detail
    assert c.tables["courses"] == c.as_of
    assert cut_summary(c).startswith("mixed: 3 table(s) not at ") and "participants from an earlier run (" in cut_summary(c)
    rows = {r.table: r for r in cut_rows(c)}
    assert rows["courses"].differs == "-" and rows["enrollments"].differs == "from an earlier run"


def test_a_carried_over_table_makes_the_snapshot_mixed(make_config: Callable[..., Config], warehouse: Path) -> None:
    cfg = make_config(db=warehouse)
    syncer.sync(cfg)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("ALTER TABLE courses ALTER COLUMN title DROP NOT NULL")
        con.execute("UPDATE courses SET title = NULL WHERE course_id = 1")  # fails not_null = ["title"]
    syncer.sync(cfg)
    c = syncer.current_snapshot(config=cfg).consistency
    assert [(d.table, d.reason) for d in c.differ] == [("courses", "carried_over")]
    assert "not_null" in c.differ[0].detail


def entry(run: str, **consistency: Any) -> ManifestEntry:
    return ManifestEntry(
        file="t.parquet", format="parquet", rows=1, bytes=1, sha256="0" * 64, exported_at="2026-01-01T00:00:00Z",
        exported_in=run, consistency=consistency or None,
    )  # fmt: skip


def test_an_unpinned_table_or_an_unrecorded_moment_is_mixed_and_older_manifests_still_read() -> None:
    import datetime as dt

    moment = dt.datetime(2026, 1, 1, 3, 0, tzinfo=dt.UTC)
    run = "20260101T030000Z-aaaa"
    at = "2026-01-01T03:00:00.000000Z"
    cut = snapshot_cut(
        {
            "a": entry(run, as_of=at, pinned=True),
            "q": entry(run, as_of=at, pinned=False, isolation="none", reason="a query"),
            "old": entry(run, as_of="2026-01-01T02:59:58Z", isolation="time_travel"),  # before "pinned" was written
            "none": entry(run),
        },
        moment,
        run,
    )
    assert {d.table: (d.reason, d.offset_seconds) for d in cut.differ} == {
        "q": ("unpinned", 0.0),
        "old": ("other_moment", -2.0),
        "none": ("not_recorded", None),
    }
    assert Manifest.from_json(json.loads(json.dumps({"id": run, "created_at": at, "tables": {}}))).consistency is None
    assert cut_summary(None).startswith("not recorded")
    assert [offset_text(s) for s in (None, 0, -1.5, 7200 * 2, -300)] == [
        "",
        "same moment",
        "1.5 s older",
        "4.0 h newer",
        "5.0 min older",
    ]


# --- where it is shown ------------------------------------------------------------------------------------


def test_status_the_cli_and_ready_show_the_cut(config: Config, config_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    syncer.sync(config)
    st = syncer.status(config)
    assert st.consistency is not None and st.consistency.cut == "consistent"
    assert st.to_json()["consistency"]["cut"] == "consistent"
    cfg = load_config(config_path)
    syncer.sync(cfg)
    syncer.sync(cfg, ["courses"])
    runner = CliRunner()
    out = runner.invoke(main, ["--config", str(config_path), "status"])
    assert out.exit_code == 0, out.output
    assert "cut       mixed: 3 table(s) not at " in out.output
    as_json = json.loads(runner.invoke(main, ["--config", str(config_path), "status", "--json"]).output)
    assert as_json["consistency"]["cut"] == "mixed" and len(as_json["consistency"]["differ"]) == 3

    monkeypatch.setattr(server, "STEP", server.StartupStep())
    server.STEP.update(phase="done")
    code, body = server.readiness(cfg)
    assert code == 200 and body["consistency"]["cut"] == "mixed"
    assert {d["table"] for d in body["consistency"]["differ"]} == {"participants", "enrollments", "daily_metrics"}


def test_the_freshness_page_shows_one_cut_or_mixed(config: Config, config_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setattr(server, "STEP", server.StartupStep())
    monkeypatch.setenv("SYNCER_CONFIG", str(config_path))
    cfg = load_config(config_path)
    syncer.sync(cfg)
    root = Path(__file__).resolve().parents[1]
    at = AppTest.from_file(str(root / "streamlit_app.py"), default_timeout=30).run()
    assert not at.exception, at.exception
    assert any("one consistent cut: every table as of" in s.value for s in at.success)
    syncer.sync(cfg, ["courses"])
    at.run()
    assert any("mixed: 3 table(s) not at" in i.value for i in at.info)
    table = next(d.value for d in at.dataframe if "differs" in d.value.columns)
    assert dict(zip(table["table"], table["differs"], strict=True))["courses"] == "-"
