"""End to end in a real browser behind a real proxy: `streamlit run streamlit_app.py` on a free port,
Debian's nginx in front of it doing what the SPCS ingress does (it adds ``Sf-Context-Current-User``
to every request, the WebSocket upgrade included), Debian's Chromium driven by Playwright talking
only to the proxy, a temporary config and volume on the demo warehouse.

What a newcomer does: wait for the app to be ready, see every table fresh, re-sync and watch it
finish with a new snapshot, roll back to the old one, find both in the audit trail under their own
name. A signed-in visitor who is not an operator sees no actions; a request whose identity header
came twice is refused; a visit that bypasses the proxy is nobody in particular. The Freshness page
is saved as ``docs/freshness.png`` when SYNCER_UPDATE_SCREENSHOT=1.

Needs ``/usr/bin/chromium`` and nginx (``.ci/run`` installs both). Playwright's own browser
download is not used.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests._ingress import Ingress, ingress
from tests._net import AppServer, app_server, get
from tests.conftest import DEFAULT_TABLES

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # a real server and browser per module: tens of seconds

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TABLES = ("participants", "courses", "enrollments", "daily_metrics")
# One-row batches make a sync of the 5,000-row demo take a couple of seconds instead of 0.1 s,
# long enough to watch the progress bar move (the engine reports progress once per batch).
CONFIG = """
[source]
kind = "duckdb"
path = "{db}"

[volume]
root = "data"
retain = 5

[freshness]
sla_hours = 24
skip_startup_if_younger_than_hours = 20

[export]
batch_rows = 1

[admin]
operators = ["alice"]
allow_local_operator = false
"""


IDENTITIES = {
    "operator": ["alice"],  # listed in [admin] operators
    "viewer": ["mallory"],  # signed in, not an operator
    "repeated": ["alice", "alice"],  # the header sent twice: did not come from the ingress
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, demo_db: Path) -> Iterator[AppServer]:
    folder = tmp_path_factory.mktemp("e2e")
    config = folder / "sync.toml"
    config.write_text(CONFIG.format(db=demo_db) + DEFAULT_TABLES, encoding="utf-8")
    with app_server(folder, config) as srv:
        yield srv


@pytest.fixture(scope="module")
def proxy(server: AppServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingress]:
    """nginx in front of the app, one port per identity: the browser talks only to it (as in SPCS)."""
    with ingress(tmp_path_factory.mktemp("ingress"), server.port, IDENTITIES) as ing:
        yield ing


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "Debian's Chromium is needed: apt-get update && apt-get install -y chromium"
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def grid_cells(page: Page, index: int = 0) -> list[str]:
    """The text of a dataframe's cells (Streamlit draws the grid on a canvas; this is its accessible table)."""
    grid = page.locator("[data-testid=stDataFrame]").nth(index)
    grid.locator("[role=gridcell]").first.wait_for(state="attached", timeout=20_000)
    return [c or "" for c in grid.locator("[role=gridcell]").all_text_contents()]


def open_page(page: Page, url: str, title: str) -> None:
    page.goto(url)
    expect(page.get_by_role("heading", name=title, level=1)).to_be_visible(timeout=30_000)
    expect(page.locator("[data-testid=stException]")).to_have_count(0)


def test_startup_runs_before_the_ui_and_ready_says_when(server: AppServer) -> None:
    assert server.seen_before_ready, "the startup step (a ~2 s sync) should have been observed running"
    starting = [(s, b, p) for s, b, p in server.seen_before_ready if s is not None]
    assert starting, "the server answered before startup finished"
    for i, (status, body, page_status) in enumerate(starting):
        assert status == 503 and body["ready"] is False and body["phase"] == "starting"
        # (the last poll's page request may land just after the step finished: then 200 is right)
        if i < len(starting) - 1:
            assert page_status == 503, "pages are not served before the startup step has finished"
    body = server.ready()
    assert body["startup"] == "synced" and body["stale"] is False
    assert sorted(body["tables"]) == sorted(TABLES)
    assert get(f"{server.url}/_stcore/health")[0] == 200
    log = server.log.read_text()
    assert log.count("scheduler started") == 1 and log.count("startup synced") == 1


def test_a_first_visit_straight_to_a_page_by_a_non_operator_shows_it_without_actions(proxy: Ingress, browser: Browser) -> None:
    # The first browser session of this server (tests run in file order): a bookmark to /controls
    # must go through the router (st.navigation), not run pages/controls.py on its own.
    page = browser.new_page()
    try:
        open_page(page, f"{proxy.urls['viewer']}/controls", "Controls")
        nav = page.locator("[data-testid=stSidebarNav]")
        for title in ("Freshness", "Validation", "History", "Controls", "Data preview"):
            expect(nav.get_by_text(title, exact=True)).to_be_visible()
        expect(
            page.get_by_text("Only operators can re-sync, roll back or repair: mallory is not listed in [admin] operators.")
        ).to_be_visible()
        expect(page.get_by_role("button", name="Re-sync now")).to_have_count(0)
        expect(page.get_by_role("button", name="Review rollback…")).to_have_count(0)
        expect(page.get_by_text("mallory · viewer")).to_be_visible()
    finally:
        page.close()
    # The identity came with the WebSocket upgrade: the proxy forwarded it (101 Switching Protocols;
    # nginx logs a WebSocket when it closes, a moment after the page).
    deadline = time.monotonic() + 15
    while not re.search(r'"GET /_stcore/stream HTTP/1\.1" 101 ', proxy.access_log()):
        assert time.monotonic() < deadline, f"no WebSocket went through the proxy:\n{proxy.access_log()}"
        time.sleep(0.1)


def test_a_client_cannot_claim_another_user_through_the_proxy(proxy: Ingress, browser: Browser) -> None:
    # The ingress replaces whatever the client sent under the identity header; so does the proxy.
    context = browser.new_context(extra_http_headers={"Sf-Context-Current-User": "alice"})
    try:
        page = context.new_page()
        open_page(page, f"{proxy.urls['viewer']}/controls", "Controls")
        expect(page.get_by_text("mallory · viewer")).to_be_visible()
        expect(page.get_by_role("button", name="Re-sync now")).to_have_count(0)
    finally:
        context.close()
    status, body = get(f"{proxy.urls['viewer']}/ready", headers={"Sf-Context-Current-User": "alice"})
    assert status == 200 and body["ready"] is True, "readiness answers through the proxy too"


def test_an_identity_header_sent_twice_is_refused_in_the_browser(proxy: Ingress, browser: Browser) -> None:
    page = browser.new_page()
    try:
        open_page(page, f"{proxy.urls['repeated']}/controls", "Controls")
        expect(page.get_by_text("unknown user · viewer")).to_be_visible()
        expect(
            page.get_by_text("the Sf-Context-Current-User header was sent 2 times; the request is refused").first
        ).to_be_visible()
        expect(page.get_by_role("button", name="Re-sync now")).to_have_count(0)
    finally:
        page.close()


def test_a_visit_that_bypasses_the_proxy_is_a_local_user_without_actions(server: AppServer, browser: Browser) -> None:
    # What README "Deploy to SPCS" warns about: whoever reaches the port without the ingress chooses
    # their identity. With allow_local_operator = false (the production setting) a visit without
    # any header is no operator.
    page = browser.new_page()
    try:
        open_page(page, f"{server.url}/controls", "Controls")
        expect(page.get_by_text(re.compile(r"^local(:\S+)? · viewer$"))).to_be_visible()
        expect(page.get_by_role("button", name="Re-sync now")).to_have_count(0)
    finally:
        page.close()


def test_an_operator_resyncs_and_rolls_back_in_the_browser(
    server: AppServer, proxy: Ingress, browser: Browser, tmp_path: Path
) -> None:
    old = server.ready()["snapshot"]
    app = proxy.urls["operator"]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30_000)

    # Freshness: every table, fresh, from the startup snapshot.
    open_page(page, app, "Freshness")
    expect(page.get_by_text("alice · operator")).to_be_visible()
    cells = grid_cells(page)
    for table in TABLES:
        assert table in cells
    assert cells.count("fresh") == len(TABLES)
    assert old in cells
    expect(page.get_by_text("4 of 4")).to_be_visible()

    # Controls: re-sync everything, watch the progress bar, then the new snapshot.
    open_page(page, f"{app}/controls", "Controls")
    page.get_by_role("button", name="Re-sync now").click()
    expect(page.locator("[data-testid=stProgress]")).to_be_visible(timeout=15_000)
    expect(page.get_by_text(re.compile(r"re-sync of all tables: table \w+ \(\d of 4\)"))).to_be_visible()
    done = page.get_by_text(re.compile(r"Re-sync of all tables: published snapshot \S+"))
    expect(done).to_be_visible(timeout=60_000)
    new = re.search(r"published snapshot (\S+)", done.inner_text()).group(1)
    assert new != old
    assert server.ready()["snapshot"] == new

    # Roll back to the startup snapshot: review what changes, then confirm.
    expect(page.get_by_text(f"Current snapshot: {new}")).to_be_visible()
    page.get_by_role("button", name="Review rollback…").click()
    confirm = page.get_by_role("button", name=f"Confirm rollback to {old}")
    expect(confirm).to_be_visible()
    assert server.ready()["snapshot"] == new, "nothing changes before the confirmation"
    confirm.click()
    expect(page.get_by_text(f"Rolled back: current {new} → {old}.")).to_be_visible()
    assert server.ready()["snapshot"] == old

    # History: the startup and manual runs, and the audit trail with who did what.
    open_page(page, f"{app}/history", "History")
    runs = grid_cells(page, 0)
    assert "startup" in runs and "manual" in runs and new in runs
    audit = grid_cells(page, 2)  # 0: runs, 1: the runs x tables grid
    assert "rollback" in audit and "manual_sync" in audit
    assert "alice" in audit, "the audit trail names the user the proxy passed on"

    # The README's screenshot: the Freshness page after the round trip.
    open_page(page, app, "Freshness")
    assert old in grid_cells(page)
    page.wait_for_timeout(1000)  # let the charts finish drawing
    # Every run takes the screenshot (so a broken page shows up here); the README's copy in docs/
    # is only replaced on request, so `make test` leaves the work tree clean.
    shot = ROOT / "docs" / "freshness.png" if os.environ.get("SYNCER_UPDATE_SCREENSHOT") else tmp_path / "freshness.png"
    shot.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    page.close()


# --- every page, as operator and as viewer; links; auto-refresh; the viewer's timezone (issue 15) ---

#: (path under the app, its heading); the run page is added with a real run id
PAGES = [
    ("", "Freshness"),
    ("validation", "Validation"),
    ("history", "History"),
    ("controls", "Controls"),
    ("data_preview", "Data preview"),
    ("table?name=courses", "Table"),
]


@pytest.mark.parametrize("identity", ["operator", "viewer"])
def test_every_page_opens_through_the_proxy_as_operator_and_as_viewer(
    server: AppServer, proxy: Ingress, browser: Browser, identity: str
) -> None:
    app = proxy.urls[identity]
    run_id = server.ready()["snapshot"]  # a run's id is its snapshot's id
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30_000)
    try:
        for path, title in [*PAGES, (f"run?id={run_id}", "Run")]:
            open_page(page, f"{app}/{path}", title)
            expect(page.get_by_text("alice · operator" if identity == "operator" else "mallory · viewer")).to_be_visible()
        open_page(page, f"{app}/controls", "Controls")
        repair = page.get_by_role("button", name="Repair the volume")
        expect(repair).to_have_count(1 if identity == "operator" else 0)
        # Links: Freshness -> the last run's page; Data preview -> the table's page.
        open_page(page, app, "Freshness")
        page.get_by_role("link", name=re.compile(r"^Last run: ")).click()
        expect(page.get_by_role("heading", name="Run", level=1)).to_be_visible()
        expect(page.get_by_role("heading", name=re.compile(r"^\d{8}T\d{6}Z-\w+$"))).to_be_visible()
        open_page(page, f"{app}/data_preview", "Data preview")
        page.get_by_role("link", name=re.compile(r"snapshots, runs and checks over time")).click()
        expect(page.get_by_role("heading", name="Table", level=1)).to_be_visible()
        expect(page.get_by_role("heading", name="participants")).to_be_visible()
    finally:
        page.close()


def test_freshness_controls_and_the_run_page_refresh_themselves_while_a_cli_sync_runs(
    server: AppServer, proxy: Ingress, browser: Browser, tmp_path: Path
) -> None:
    import subprocess
    import sys

    import syncer

    cfg = syncer.load_config(Path(server.log).parent / "sync.toml")
    # The CLI syncs a bigger warehouse into the app's volume, one row per batch (seconds); it is
    # paused (SIGSTOP) while the three pages are opened, so a slow machine cannot let it finish first.
    db = tmp_path / "bigger.duckdb"
    syncer.build_demo(db, 25_000)
    config = tmp_path / "cli.toml"
    config.write_text(CONFIG.format(db=db).replace('root = "data"', f'root = "{cfg.root}"') + DEFAULT_TABLES, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "SYNCER_CONFIG"}
    cli = subprocess.Popen(
        [sys.executable, "-m", "syncer", "--config", str(config), "sync"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    page = browser.new_page()
    controls = browser.new_page()
    run_page = browser.new_page()
    engine = None
    try:
        deadline = time.monotonic() + 30
        while syncer.status(cfg).running is None:  # the CLI holds the volume now
            assert cli.poll() is None and time.monotonic() < deadline, "the CLI sync did not start"
            time.sleep(0.05)
        last = syncer.status(cfg).last_run
        assert last is not None and last["status"] == "running"
        # the process that holds the volume: `syncer sync` runs the engine in a child (syncer/supervise.py)
        engine = int(syncer.status(cfg).running["pid"])
        os.kill(engine, signal.SIGSTOP)
        open_page(run_page, f"{proxy.urls['operator']}/run?id={last['id']}", "Run")
        expect(run_page.get_by_text("running…")).to_be_visible()
        open_page(page, proxy.urls["viewer"], "Freshness")
        expect(page.get_by_text(re.compile("A sync is running now: trigger cli"))).to_be_visible()
        open_page(controls, f"{proxy.urls['operator']}/controls", "Controls")
        expect(controls.get_by_text(re.compile("A sync is running outside this page: trigger cli"))).to_be_visible()
        # No reload from here on: each page must notice by itself that the sync ended.
        os.kill(engine, signal.SIGCONT)
        expect(page.get_by_text(re.compile("A sync is running now"))).to_have_count(0, timeout=60_000)
        assert cli.wait(30) == 0
        new = syncer.status(cfg).snapshot
        assert new is not None
        expect(page.get_by_text(re.compile(f"Serving snapshot {new.id}"))).to_be_visible(timeout=15_000)
        expect(controls.get_by_text(re.compile("A sync is running outside this page"))).to_have_count(0, timeout=15_000)
        expect(controls.get_by_text(f"Current snapshot: {new.id}")).to_be_visible(timeout=15_000)
        expect(run_page.get_by_text("running…")).to_have_count(0, timeout=15_000)
        expect(run_page.get_by_text(f"Published snapshot {new.id}", exact=False)).to_be_visible(timeout=15_000)
    finally:
        if cli.poll() is None and engine is not None:
            os.kill(engine, signal.SIGCONT)  # never leave it stopped
        for p in (page, controls, run_page):
            p.close()
        if cli.poll() is None:
            cli.wait(60)


def test_times_are_shown_in_the_viewers_timezone(proxy: Ingress, browser: Browser) -> None:
    context = browser.new_context(timezone_id="Asia/Tokyo")
    try:
        page = context.new_page()
        open_page(page, proxy.urls["viewer"], "Freshness")
        expect(page.get_by_text(re.compile(r"created \d{4}-\d\d-\d\d \d\d:\d\d:\d\d JST \("))).to_be_visible()
        expect(page.get_by_text("Times in Asia/Tokyo.")).to_be_visible()
    finally:
        context.close()
