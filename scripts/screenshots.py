"""Refresh the README's screenshots of every admin page: ``make screenshots`` (or this script).

It does what the browser test does, on a throw-away demo: builds a demo warehouse, starts the admin
app with ``streamlit run`` behind the same nginx proxy the browser test uses (as operator "alice"),
makes a little history (the startup sync, a one-table sync, a rollback), then opens each page in
Debian's Chromium (``/usr/bin/chromium``, driven by Playwright) and saves ``docs/<page>.png``.

    python scripts/screenshots.py [--out docs] [--rows 20000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests._ingress import ingress  # noqa: E402 - after the path is set
from tests._net import app_server  # noqa: E402
from tests.conftest import DEFAULT_TABLES  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
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

[admin]
operators = ["alice"]
allow_local_operator = false
"""
#: (file name, path under the app, the page's heading)
PAGES = [
    ("freshness", "", "Freshness"),
    ("validation", "validation", "Validation"),
    ("history", "history", "History"),
    ("controls", "controls", "Controls"),
    ("data_preview", "data_preview", "Data preview"),
    ("run", "run?id={run}", "Run"),
    ("table", "table?name=enrollments", "Table"),
]


def cli(config: Path, *args: str) -> str:
    res = subprocess.run([sys.executable, "-m", "syncer", "--config", str(config), *args], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"syncer {' '.join(args)} failed: {res.stderr.strip()}")
    return res.stdout


def shoot(base: str, run_id: str, out: Path) -> list[Path]:
    from playwright.sync_api import expect, sync_playwright

    saved = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 2000}, timezone_id="Europe/Berlin")
            page = context.new_page()
            page.set_default_timeout(30_000)
            for name, path, title in PAGES:
                page.goto(f"{base}/{path.format(run=run_id)}")
                expect(page.get_by_role("heading", name=title, level=1)).to_be_visible()
                expect(page.locator("[data-testid=stException]")).to_have_count(0)
                page.wait_for_timeout(1500)  # let the charts finish drawing
                target = out / f"{name}.png"
                # Streamlit scrolls inside its own container: a tall viewport shows the whole page.
                page.screenshot(path=str(target), full_page=True)
                saved.append(target)
        finally:
            browser.close()
    return saved


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs", help="folder for the PNGs (default: docs/)")
    ap.add_argument("--rows", type=int, default=20_000, help="enrollments in the demo warehouse")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    import syncer

    with tempfile.TemporaryDirectory(prefix="syncer-shots-") as tmp:
        folder = Path(tmp)
        db = folder / "warehouse.duckdb"
        syncer.build_demo(db, args.rows)
        config = folder / "sync.toml"
        config.write_text(CONFIG.format(db=db) + DEFAULT_TABLES, encoding="utf-8")
        with app_server(folder, config) as srv, ingress(folder / "ingress", srv.port, {"alice": ["alice"]}) as proxy:
            cli(config, "sync", "courses")
            cli(config, "sync")
            cli(config, "rollback")
            run_id = syncer.History(folder / "data" / "syncer.db").runs(limit=1)[0]["id"]
            for path in shoot(proxy.urls["alice"], run_id, args.out):
                print(f"saved {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
