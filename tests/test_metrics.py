"""``/metrics``: a real running app server scraped over HTTP and parsed with prometheus_client's own
parser; the values match the volume and the run history; nothing leaks into the global registry;
a broken history or config is a ``syncer_scrape_error`` of 1, never a failed scrape."""

from __future__ import annotations

import datetime as dt
import sqlite3
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

import syncer
from syncer import _clock
from syncer.admin.metrics import CONTENT_TYPE, config_loader, render, serve_metrics_port
from syncer.volume.layout import Volume
from tests._net import AppServer, app_server, free_port, get
from tests.conftest import write_config

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """(family name -> type, (sample name, sorted labels) -> value), by prometheus_client's parser."""
    types: dict[str, str] = {}
    samples: Samples = {}
    for fam in text_string_to_metric_families(text):
        types[fam.name] = fam.type
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return types, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, demo_db: Path) -> Iterator[AppServer]:
    folder = tmp_path_factory.mktemp("metrics")
    config = write_config(folder, demo_db)
    with app_server(folder, config) as srv:
        yield srv


def scrape(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        return resp.headers["Content-Type"], resp.read().decode()


def test_metrics_of_a_running_app_server_parse_and_match_the_volume(server: AppServer) -> None:
    ready = server.ready()
    content_type, text = scrape(server.url)
    assert content_type == CONTENT_TYPE
    types, samples = parse(text)
    # the text format (0.0.4) has no stateset or info type: both are gauges of 1/0 with their labels
    assert types["syncer_table_age_seconds"] == types["syncer_table_status"] == types["syncer_snapshot_info"] == "gauge"
    assert types["syncer_runs"] == "summary"
    assert value(samples, "syncer_snapshot_info", id=ready["snapshot"], created_at=ready["created_at"], fallback="false") == 1
    for name, table in ready["tables"].items():
        assert value(samples, "syncer_table_rows", table=name) == table["rows"]
        assert value(samples, "syncer_table_stale", table=name) == 0
        assert 0 <= value(samples, "syncer_table_age_seconds", table=name) < 3600
        assert value(samples, "syncer_table_status", table=name, syncer_table_status="fresh") == 1
        assert value(samples, "syncer_table_status", table=name, syncer_table_status="missing") == 0
        assert value(samples, "syncer_table_bytes", table=name) > 0
        assert value(samples, "syncer_table_quarantined_rows", table=name) == 0
        assert value(samples, "syncer_table_last_export_duration_seconds", table=name) > 0
    assert value(samples, "syncer_runs_count", status="ok") == 1  # the startup sync
    assert value(samples, "syncer_runs_sum", status="ok") > 0
    assert value(samples, "syncer_last_run_status", syncer_last_run_status="ok") == 1
    assert value(samples, "syncer_startup_phase", syncer_startup_phase="done") == 1
    assert value(samples, "syncer_scrape_error") == 0
    assert value(samples, "syncer_sla_seconds") == 24 * 3600


def test_metrics_pass_the_startup_gate(server: AppServer) -> None:
    status, body = get(f"{server.url}/metrics")
    assert status == 200 and "syncer_startup_phase" in body


# --- in process: the collector reads the state at scrape time ------------------------------------


def test_stale_missing_and_quarantined_tables(tmp_path: Path, warehouse: Path) -> None:
    import duckdb

    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE TABLE raw_codes AS SELECT i AS id, (i * 3)::VARCHAR AS code FROM range(50) r(i)")
        con.execute("UPDATE raw_codes SET code = 'x' WHERE id IN (3, 4)")
    tables = (
        '[[tables]]\nname = "codes"\nquery = "select id, cast(code as integer) as code from raw_codes"\n'
        'primary_key = ["id"]\nmax_bad_rows = 5\n'
        '[[tables]]\nname = "courses"\nprimary_key = ["course_id"]\n'
    )
    cfg = syncer.load_config(write_config(tmp_path / "cfg", warehouse, tables=tables))
    with _clock.frozen(dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)) as clock:
        assert syncer.sync(cfg).status == "ok"
        clock.advance(hours=30)
        _, samples = parse(render(lambda: cfg).decode())
    assert value(samples, "syncer_table_status", table="codes", syncer_table_status="quarantined") == 1
    assert value(samples, "syncer_table_quarantined_rows", table="codes") == 2
    assert value(samples, "syncer_table_rows", table="codes") == 48
    assert value(samples, "syncer_table_stale", table="courses") == 1
    assert value(samples, "syncer_table_age_seconds", table="courses") == pytest.approx(30 * 3600, abs=60)
    more = syncer.load_config(
        write_config(
            tmp_path / "cfg", warehouse, tables=tables + '[[tables]]\nname = "participants"\nprimary_key = ["participant_id"]\n'
        )
    )
    _, samples = parse(render(lambda: more).decode())
    assert value(samples, "syncer_table_status", table="participants", syncer_table_status="missing") == 1
    assert value(samples, "syncer_table_stale", table="participants") == 1


def test_each_scrape_has_its_own_registry(tmp_path: Path, demo_db: Path) -> None:
    a = syncer.load_config(write_config(tmp_path / "a", demo_db))
    b = syncer.load_config(
        write_config(tmp_path / "b", demo_db, tables='[[tables]]\nname = "courses"\nprimary_key = ["course_id"]\n')
    )
    syncer.sync(a)
    _, sa = parse(render(lambda: a).decode())
    _, sb = parse(render(lambda: b).decode())
    assert ("syncer_table_rows", (("table", "participants"),)) in sa
    assert not any(name.startswith("syncer_table_rows") for name, _ in sb)  # nothing of a's volume in b's scrape
    assert value(sb, "syncer_table_status", table="courses", syncer_table_status="missing") == 1
    assert not any(n.startswith("syncer_") for n in REGISTRY._names_to_collectors)  # the global registry stays clean


def test_a_broken_history_is_a_scrape_error_not_a_failed_scrape(config: syncer.Config) -> None:
    syncer.sync(config)
    db = Volume(config.root).db_path
    with sqlite3.connect(db) as con:
        con.execute("DROP TABLE table_results")
    _, samples = parse(render(lambda: config).decode())
    assert value(samples, "syncer_scrape_error") == 1
    assert value(samples, "syncer_table_rows", table="courses") == 20  # what the volume says is still there


def test_a_broken_config_is_a_scrape_error(tmp_path: Path) -> None:
    path = tmp_path / "sync.toml"
    path.write_text("[source]\nkind = 'nope'\n", encoding="utf-8")
    _, samples = parse(render(config_loader(path)).decode())
    assert samples == {("syncer_scrape_error", ()): 1}


def test_metrics_on_a_port_of_their_own(config_path: Path) -> None:
    syncer.sync(syncer.load_config(config_path))
    port = free_port()
    srv = serve_metrics_port(config_path, lambda: "done", port=str(port))
    assert srv is not None
    try:
        _, text = scrape(f"http://127.0.0.1:{port}")
    finally:
        srv.shutdown()
        srv.server_close()
    _, samples = parse(text)
    assert value(samples, "syncer_table_rows", table="courses") == 20
    assert value(samples, "syncer_startup_phase", syncer_startup_phase="done") == 1


@pytest.mark.parametrize("port", ["", "http", "70000"])
def test_no_or_a_bad_metrics_port_serves_nothing(config_path: Path, port: str) -> None:
    assert serve_metrics_port(config_path, port=port) is None
