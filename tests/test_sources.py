"""The source interface on the real DuckDB source: schema, count, profile and stream describe the same
pinned data; excluded columns are never read; key ranges split and cover the table; open_source picks
the kind; identifiers are always quoted."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from syncer import load_config
from syncer.sources import open_source
from syncer.sources.base import Exclusion, KeyRange, quote_ident, relation_sql, select_sql
from syncer.sources.duckdb import DuckDBSource
from tests.conftest import write_config

TABLES = """
[[tables]]
name = "participants"
primary_key = ["participant_id"]
exclude_columns = ["password_hash"]

[[tables]]
name = "recent"
query = "select enrollment_id, score from enrollments where enrollment_id <= 100"
primary_key = ["enrollment_id"]
"""


@pytest.fixture
def cfg(tmp_path: Path, demo_db: Path):
    return load_config(write_config(tmp_path / "cfg", demo_db, tables=TABLES))


def test_open_source_picks_duckdb_and_describes_it_without_secrets(cfg) -> None:
    with open_source(cfg.source) as src:
        assert isinstance(src, DuckDBSource)
        d = src.describe()
        assert d["kind"] == "duckdb" and d["path"] == str(cfg.source.path)


def test_schema_count_profile_and_stream_agree_on_one_pinned_table(cfg, demo_db: Path) -> None:
    table = cfg.table("participants")
    with open_source(cfg.source) as src, src.pinned(table) as pin:
        full = src.schema(table)
        assert "password_hash" in full.names  # the full relation; the export projects it away
        schema = pa.schema([f for f in full if f.name not in table.exclude_columns])
        count = src.count(table)
        profile = src.profile(table, schema)
        batches = list(src.stream(table, schema, 1000))
    assert pin["isolation"] == "read-only database file" and pin["as_of"]
    with duckdb.connect(str(demo_db), read_only=True) as con:
        expected = con.execute("select count(*), min(participant_id), max(participant_id) from participants").fetchone()
    assert count == expected[0] == sum(b.num_rows for b in batches)
    assert all(b.num_rows <= 1000 for b in batches)
    assert all("password_hash" not in b.schema.names for b in batches), "an excluded column is never read"
    col = profile["columns"]["participant_id"]
    assert (col["nulls"], col["min"], col["max"]) == (0, expected[1], expected[2])


def test_a_query_table_streams_what_the_query_selects(cfg) -> None:
    table = cfg.table("recent")
    with open_source(cfg.source) as src:
        schema = src.schema(table)
        assert schema.names == ["enrollment_id", "score"]
        rows = pa.Table.from_batches(list(src.stream(table, schema, 7)), schema)
    assert rows.num_rows == 100 and rows.column("enrollment_id").to_pylist() == list(range(1, 101))


def test_key_ranges_split_and_cover_the_table_and_an_exclusion_leaves_rows_out(cfg) -> None:
    table = cfg.table("recent")
    with open_source(cfg.source) as src:
        schema = src.schema(table)
        lo, hi = src.key_bounds(table, "enrollment_id")
        assert (lo, hi) == (1, 100)
        whole = KeyRange("enrollment_id", lo, hi)
        mid = src.split_key(table, whole)
        assert lo <= mid <= hi
        halves = [KeyRange("enrollment_id", lo, mid, open_hi=True), KeyRange("enrollment_id", mid, hi)]
        seen = [v for r in halves for b in src.stream_range(table, schema, 10, r) for v in b.column(0).to_pylist()]
        assert sorted(seen) == list(range(1, 101)) and len(seen) == 100
        without = Exclusion(("enrollment_id",), ((1,), (2,), (3,)))
        assert src.count(table, where=without) == 97


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        pytest.param("plain", '"plain"', id="plain"),
        pytest.param('we"ird', '"we""ird"', id="quote-doubled"),
        pytest.param("drop table x; --", '"drop table x; --"', id="statement-stays-a-name"),
    ],
)
def test_identifiers_are_always_quoted(name: str, quoted: str) -> None:
    assert quote_ident(name) == quoted


def test_relation_and_select_sql_quote_every_part(cfg) -> None:
    table = cfg.table("participants")
    assert relation_sql(table) == '"participants"'
    schema = pa.schema([("participant_id", pa.int64()), ("e mail", pa.string())])
    assert select_sql(table, schema) == 'SELECT "participant_id", "e mail" FROM "participants"'


def test_opening_waits_for_a_writer_that_releases_the_file_then_reads_one_moment(cfg, tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    from syncer.config import SourceConfig
    from syncer.sources.duckdb import DuckDBSource

    db = tmp_path / "w.duckdb"
    shutil.copy(cfg.source.path, db)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(db)!r}); print('open', flush=True); time.sleep(0.5); c.close()",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with DuckDBSource(SourceConfig(kind="duckdb", path=db)) as src:  # waits out the writer's lock
            a, b = cfg.tables[0], cfg.tables[1]
            with src.pinned(a) as pa_, src.pinned(b) as pb:
                assert pa_["as_of"] == pb["as_of"] and pa_["pinned"] is True
    finally:
        holder.wait(10)
        holder.stdout.close()  # type: ignore[union-attr]
