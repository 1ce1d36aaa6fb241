"""The end-user example app (examples/dashboard/app.py): it imports nothing of ours but the reader;
AppTest renders it fresh, stale and with nothing published; a real ``streamlit run`` of it is driven
by Debian's Chromium (fresh and stale volumes), and it never writes to the volume it reads."""

from __future__ import annotations

import ast
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import syncer
from syncer import _clock
from tests._net import free_port, get
from tests.conftest import write_config

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "examples" / "dashboard" / "app.py"
#: what an end-user app may take from us: the reader and the exceptions it raises
READER_NAMES = {
    "read_table",
    "current_snapshot",
    "StaleDataWarning",
    "SnapshotFallbackWarning",
    "QuarantinedRowsWarning",
    "NoSnapshotError",
    "PublishError",
    "SyncError",
}


def published(folder: Path, db: Path, *, hours_ago: float = 0) -> Path:
    """A volume holding one published snapshot, exported ``hours_ago``; returns its root."""
    cfg = syncer.load_config(write_config(folder, db))
    at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours_ago)
    with _clock.frozen(at):
        assert syncer.sync(cfg).status == "ok"
    return cfg.root


# --- the app takes only the reader -------------------------------------------------------------------


def test_the_example_imports_only_the_reader() -> None:
    tree = ast.parse(APP.read_text(encoding="utf-8"))
    ours: set[str] = set()
    others: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                (ours if alias.name.split(".")[0] == "syncer" else others).add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            assert node.module is not None and node.level == 0
            if node.module.split(".")[0] == "syncer":
                assert node.module == "syncer", f"imports {node.module}: only the public face `syncer` is allowed"
                ours |= {a.name for a in node.names}
            else:
                others.add(node.module)
    assert ours and ours <= READER_NAMES, f"takes {sorted(ours - READER_NAMES)} from syncer"
    assert others <= {"__future__", "warnings", "pandas", "streamlit"}, others


def test_running_the_example_loads_none_of_the_engine(tmp_path: Path, demo_db: Path) -> None:
    root = published(tmp_path / "v", demo_db)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCER_")} | {"SYNCER_ROOT": str(root)}
    # Bare mode: without a server Streamlit's calls do nothing and the script runs top to bottom;
    # then every module the process holds is listed.
    code = f"import json, runpy, sys; runpy.run_path({str(APP)!r}, run_name='__main__'); print(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    modules = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert {"syncer.reader", "pandas", "streamlit"} <= modules
    engine = ("syncer.engine", "syncer.admin", "syncer.sources", "syncer.export", "syncer.alerts", "syncer.config")
    assert not sorted(m for m in modules if m.startswith(engine))
    # (Streamlit itself imports the empty `snowflake` namespace package; the driver is another matter)
    assert not sorted(m for m in modules if m.startswith(("duckdb", "apscheduler", "snowflake.snowpark", "snowflake.connector")))


# --- AppTest: fresh, stale, nothing published ----------------------------------------------------------


def run_app(monkeypatch: pytest.MonkeyPatch, root: Path):  # type: ignore[no-untyped-def]
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SYNCER_ROOT", str(root))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def test_fresh_data_shows_the_join_and_no_warning(tmp_path: Path, demo_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = run_app(monkeypatch, published(tmp_path / "v", demo_db))
    assert not at.warning
    metrics = {m.label: m.value for m in at.metric}
    enrollments = syncer.read_table("enrollments", root=tmp_path / "v" / "data")
    assert metrics["Enrollments"] == f"{len(enrollments):,}"
    assert metrics["Participants"] == f"{enrollments['participant_id'].nunique():,}"
    (top,) = at.dataframe
    assert len(top.value) == 10 and top.value["title"].notna().all()  # every enrollment found its course
    assert [s.value for s in at.subheader] == ["Enrollments by course category", "Most taken courses"]


def test_stale_data_warns_the_apps_users(tmp_path: Path, demo_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = run_app(monkeypatch, published(tmp_path / "v", demo_db, hours_ago=30))
    texts = [w.value for w in at.warning]
    assert len(texts) == 3, texts  # one per table read
    assert all(t.startswith("This data may be out of date: table ") and "the freshness SLA is 24 h" in t for t in texts)
    assert at.metric  # the data is still shown


def test_nothing_published_is_a_clear_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty").mkdir()
    at = run_app(monkeypatch, tmp_path / "empty")
    (info,) = at.info
    assert info.value.startswith("No data has been published yet")
    assert not at.metric and not at.error


# --- the real thing: `streamlit run` and Chromium -------------------------------------------------------


@pytest.fixture(scope="module")
def volumes(tmp_path_factory: pytest.TempPathFactory, demo_db: Path) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("example")
    return {"fresh": published(base / "fresh", demo_db), "stale": published(base / "stale", demo_db, hours_ago=30)}


def snapshot_of(root: Path) -> dict[str, tuple[int, float]]:
    """Every path under the volume with its size and modification time."""
    return {str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime) for p in sorted(root.rglob("*"))}


def dashboard(root: Path, folder: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "SYNCER_ROOT": str(root), "SYNCER_CONFIG": str(folder / "absent.toml")}
    argv = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port), "--server.headless", "true"]
    log = folder / "dashboard.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while get(f"{url}/_stcore/health")[0] != 200:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("kind", ["fresh", "stale"])
def test_the_dashboard_in_a_real_browser(kind: str, volumes: dict[str, Path], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.test_e2e_browser import CHROMIUM, CHROMIUM_ARGS

    root = volumes[kind]
    before = snapshot_of(root)
    server = dashboard(root, tmp_path)
    url = next(server)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(url)
                expect(page.get_by_role("heading", name="Course dashboard", level=1)).to_be_visible(timeout=30_000)
                expect(page.get_by_text("Enrollments by course category")).to_be_visible(timeout=30_000)
                expect(page.locator("[data-testid=stMetric]")).to_have_count(3)
                expect(page.locator("[data-testid=stVegaLiteChart], [data-testid=stArrowVegaLiteChart]").first).to_be_visible()
                expect(page.locator("[data-testid=stException]")).to_have_count(0)
                stale = page.get_by_text("This data may be out of date")
                if kind == "stale":
                    expect(stale.first).to_be_visible()
                    expect(stale).to_have_count(3)
                else:
                    expect(stale).to_have_count(0)
            finally:
                browser.close()
    finally:
        server.close()
    assert snapshot_of(root) == before, "the example app changed the volume it reads"
