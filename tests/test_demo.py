"""The embedded demo warehouse: shape, realism invariants, determinism and the atomic rebuild."""

from __future__ import annotations

import os

import duckdb
import pytest

from syncer._exceptions import ConfigError, SourceError
from syncer.sources.demo import DEFAULT_ROWS, DEMO_TABLES, build_demo

ROWS = 5000
PRIMARY_KEYS = {
    "participants": "participant_id",
    "courses": "course_id",
    "enrollments": "enrollment_id",
    "daily_metrics": "metric_date",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One small demo warehouse shared by the read-only tests: (path, counts)."""
    path = tmp_path_factory.mktemp("demo") / "warehouse.duckdb"
    counts = build_demo(path, ROWS)
    return path, counts


@pytest.fixture
def con(demo):
    connection = duckdb.connect(str(demo[0]), read_only=True)
    yield connection
    connection.close()


def _scalar(con, sql):
    return con.execute(sql).fetchall()[0][0]


def _tables(path):
    connection = duckdb.connect(str(path), read_only=True)
    try:
        return {
            table: connection.sql(f"SELECT * FROM {table} ORDER BY {PRIMARY_KEYS[table]}").to_arrow_table()
            for table in DEMO_TABLES
        }
    finally:
        connection.close()


def test_public_constants():
    assert DEFAULT_ROWS == 200_000
    assert DEMO_TABLES == ("participants", "courses", "enrollments", "daily_metrics")


def test_row_counts_follow_rows(demo, con):
    _, counts = demo
    expected = {"participants": 500, "courses": 20, "enrollments": ROWS, "daily_metrics": 30}
    assert counts == expected
    for table, n in expected.items():
        assert _scalar(con, f"SELECT count(*) FROM {table}") == n


def test_minimum_sizes_for_tiny_rows(tmp_path):
    counts = build_demo(tmp_path / "tiny.duckdb", 1)
    assert counts == {"participants": 100, "courses": 20, "enrollments": 1, "daily_metrics": 30}


def test_primary_keys_are_dense_and_unique(con):
    for table in ("participants", "courses", "enrollments"):
        pk = PRIMARY_KEYS[table]
        n, distinct, lo, hi = con.execute(f"SELECT count(*), count(DISTINCT {pk}), min({pk}), max({pk}) FROM {table}").fetchall()[
            0
        ]
        assert (distinct, lo, hi) == (n, 1, n), table
    days = con.execute(
        "SELECT count(DISTINCT metric_date), min(metric_date)::VARCHAR, max(metric_date) - min(metric_date) FROM daily_metrics"
    ).fetchall()[0]
    assert days == (30, "2024-01-01", 29)


def test_two_builds_with_same_seed_are_identical(tmp_path):
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    assert build_demo(a, 3000, seed=7) == build_demo(b, 3000, seed=7)
    tables_a, tables_b = _tables(a), _tables(b)
    for table in DEMO_TABLES:
        assert tables_a[table].equals(tables_b[table]), table


def test_different_seed_gives_different_data(tmp_path):
    build_demo(tmp_path / "a.duckdb", 2000, seed=1)
    build_demo(tmp_path / "b.duckdb", 2000, seed=2)
    a, b = _tables(tmp_path / "a.duckdb"), _tables(tmp_path / "b.duckdb")
    assert a["enrollments"].num_rows == b["enrollments"].num_rows
    assert not a["enrollments"].equals(b["enrollments"])
    assert not a["participants"].equals(b["participants"])


def test_enrollments_have_no_orphan_foreign_keys(con):
    orphans = _scalar(
        con,
        """SELECT count(*) FROM enrollments e
           LEFT JOIN participants p USING (participant_id)
           LEFT JOIN courses c USING (course_id)
           WHERE p.participant_id IS NULL OR c.course_id IS NULL""",
    )
    assert orphans == 0
    assert _scalar(con, "SELECT count(*) FROM enrollments WHERE participant_id IS NULL OR course_id IS NULL") == 0


def test_enrollments_have_exactly_the_documented_columns(con):
    columns = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'enrollments' ORDER BY ordinal_position"
    ).fetchall()
    assert columns == [
        ("enrollment_id", "BIGINT"),
        ("participant_id", "BIGINT"),
        ("course_id", "INTEGER"),
        ("enrolled_at", "TIMESTAMP"),
        ("completed_at", "TIMESTAMP"),
        ("status", "VARCHAR"),
        ("score", "DECIMAL(5,2)"),
        ("progress", "DOUBLE"),
    ]


def test_every_supported_type_is_present(con):
    types = {
        row[0]
        for row in con.execute(
            f"SELECT DISTINCT data_type FROM information_schema.columns WHERE table_name IN {tuple(DEMO_TABLES)}"
        ).fetchall()
    }
    for required in ("BIGINT", "INTEGER", "DOUBLE", "BOOLEAN", "VARCHAR", "DATE", "TIMESTAMP", "JSON"):
        assert required in types, required
    assert any(t.startswith("DECIMAL(") for t in types)


def test_score_is_null_for_about_thirty_percent(con):
    total, with_score, lo, hi = con.execute("SELECT count(*), count(score), min(score), max(score) FROM enrollments").fetchall()[
        0
    ]
    assert 0 < with_score < total
    assert 0.25 < (total - with_score) / total < 0.35
    assert 0 <= lo <= hi <= 100


def test_completed_at_is_set_exactly_for_completed_enrollments(con):
    assert _scalar(con, "SELECT count(*) FROM enrollments WHERE (completed_at IS NULL) <> (status <> 'completed')") == 0
    assert _scalar(con, "SELECT count(*) FROM enrollments WHERE completed_at <= enrolled_at") == 0
    statuses = {r[0] for r in con.execute("SELECT DISTINCT status FROM enrollments").fetchall()}
    assert statuses == {"enrolled", "in_progress", "completed", "dropped"}
    assert _scalar(con, "SELECT count(*) FROM enrollments WHERE progress < 0 OR progress > 1") == 0
    assert _scalar(con, "SELECT count(*) FROM enrollments WHERE status = 'completed' AND progress <> 1") == 0


def test_enrollments_happen_after_signup(con):
    early = _scalar(
        con,
        "SELECT count(*) FROM enrollments e JOIN participants p USING (participant_id) WHERE e.enrolled_at < p.created_at",
    )
    assert early == 0


def test_participants_look_like_a_user_registry(con):
    n, emails, bad_email, bad_updated, countries, actives, hashes = con.execute(
        r"""SELECT count(*), count(DISTINCT email),
                  count(*) FILTER (WHERE NOT regexp_full_match(email, '[a-z]+\.[a-z]+[0-9]+@[a-z.]+'))
                  , count(*) FILTER (WHERE updated_at < created_at)
                  , count(DISTINCT country), count(*) FILTER (WHERE is_active)
                  , count(*) FILTER (WHERE password_hash LIKE 'pbkdf2_sha256$%$%$%')
           FROM participants"""
    ).fetchall()[0]
    assert emails == n  # unique
    assert bad_email == 0
    assert bad_updated == 0
    assert 15 <= countries <= 25
    assert 0 < actives < n
    assert hashes == n
    assert _scalar(con, "SELECT count(*) FROM participants WHERE length(country) <> 2") == 0


def test_course_metadata_is_a_json_object(con):
    rows = con.execute(
        "SELECT json_type(metadata), json_type(metadata -> 'tags'), metadata ->> 'language', "
        "json_type(metadata -> 'version') FROM courses"
    ).fetchall()
    assert rows and all(r[0] == "OBJECT" and r[1] == "ARRAY" and r[2] for r in rows)
    assert all(r[3] in ("BIGINT", "UBIGINT", "INTEGER") for r in rows)
    assert _scalar(con, "SELECT count(*) FROM courses WHERE level NOT IN ('beginner', 'intermediate', 'advanced')") == 0


def test_daily_metrics_agree_with_enrollments(con):
    mismatched = _scalar(
        con,
        """SELECT count(*) FROM daily_metrics m
           LEFT JOIN (SELECT enrolled_at::DATE AS d, count(*) AS n FROM enrollments GROUP BY 1) e
             ON e.d = m.metric_date
           WHERE m.new_enrollments <> coalesce(e.n, 0)""",
    )
    assert mismatched == 0
    assert _scalar(con, "SELECT count(*) FROM daily_metrics WHERE revenue < 0 OR p95_latency_ms <= 0") == 0


def test_rebuild_replaces_the_file_whole_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "nested" / "dir" / "demo.duckdb"  # parents are created
    assert build_demo(path, 3000)["enrollments"] == 3000
    assert build_demo(path, 1200)["enrollments"] == 1200
    connection = duckdb.connect(str(path), read_only=True)
    try:
        assert _scalar(connection, "SELECT count(*) FROM enrollments") == 1200
        assert _scalar(connection, "SELECT count(*) FROM participants") == 120
    finally:
        connection.close()
    assert os.listdir(path.parent) == ["demo.duckdb"]  # no .tmp-*, no .wal


@pytest.mark.parametrize("rows", [0, -5])
def test_non_positive_rows_is_a_config_error(tmp_path, rows):
    with pytest.raises(ConfigError, match=rf"--rows must be a positive integer, got {rows}"):
        build_demo(tmp_path / "demo.duckdb", rows)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("rows", ["100", 2.5, True, None])
def test_non_integer_rows_is_a_config_error(tmp_path, rows):
    with pytest.raises(ConfigError, match="--rows must be a positive integer"):
        build_demo(tmp_path / "demo.duckdb", rows)


def test_failure_is_a_source_error_and_cleans_up(tmp_path):
    target = tmp_path / "occupied"
    (target / "child").mkdir(parents=True)  # a non-empty directory cannot be replaced by a file
    with pytest.raises(SourceError, match="could not build the demo warehouse at"):
        build_demo(target, 100)
    assert sorted(os.listdir(tmp_path)) == ["occupied"]
