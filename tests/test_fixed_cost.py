"""A table's fixed cost (issue 14): what a sync does per table and what it does once per run.

Real ``syncer sync`` processes under strace (``-y``: every fd with its path): each published file
is fsynced exactly once, before the snapshot is renamed into place; the run history is opened the
same number of times for 2 tables as for 8; the DuckDB source answers one profile query per table.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

import syncer
from syncer.config import TableConfig

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")


def _warehouse(folder: Path, tables: int, fmt: str = "parquet") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "w.duckdb"
    con = duckdb.connect(str(db))
    for t in range(tables):
        con.execute(
            f"CREATE TABLE t{t} AS SELECT i AS id, ((i * 7) % 100 / 4)::DECIMAL(8, 2) AS amount, 'n' || i AS note "
            "FROM range(50) r(i)"
        )
    con.close()
    body = "".join(
        f'\n[[tables]]\nname = "t{t}"\nsource = "t{t}"\nformat = "{fmt}"\nprimary_key = ["id"]\n' for t in range(tables)
    )
    cfg = folder / "sync.toml"
    cfg.write_text(f'[source]\nkind = "duckdb"\npath = "{db}"\n\n[volume]\nroot = "{folder / "vol"}"\n' + body)
    return cfg


def _traced_sync(cfg: Path, trace: Path) -> list[str]:
    env = {**os.environ, "SYNCER_LOG_FORMAT": "text"}
    proc = subprocess.run(
        ["strace", "-f", "-qq", "-y", "-o", str(trace), "-e", "trace=openat,fsync,rename,renameat,renameat2",
         sys.executable, "-m", "syncer", "--config", str(cfg), "sync"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return trace.read_text().splitlines()


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_every_published_file_is_fsynced_once_before_the_snapshot_moves(tmp_path: Path, fmt: str) -> None:
    cfg = _warehouse(tmp_path / "w", 4, fmt)
    lines = _traced_sync(cfg, tmp_path / "trace")
    staging = str(tmp_path / "w" / "vol" / "staging")
    fsyncs = collections.Counter(
        m.group(1) for line in lines if (m := re.search(r"fsync\(\d+<([^>]+)>", line)) and m.group(1).startswith(staging)
    )
    moved = next(i for i, line in enumerate(lines) if "rename" in line and f'"{staging}/' in line and "/snapshots/" in line)
    table_files = {p: n for p, n in fsyncs.items() if re.search(r"/t\d\.(parquet|csv)$", p)}
    assert len(table_files) == 4 and set(table_files.values()) == {1}, fsyncs  # once each, not at close and again
    last_file_sync = max(i for i, line in enumerate(lines) if re.search(rf"fsync\(\d+<{re.escape(staging)}/[^>]+/t\d\.", line))
    assert last_file_sync < moved  # durable before anything can point at them
    assert all(n == 1 for n in fsyncs.values()), fsyncs  # the manifest and each folder once too


def test_the_history_is_opened_as_often_for_eight_tables_as_for_two(tmp_path: Path) -> None:
    def history_opens(tables: int) -> int:
        cfg = _warehouse(tmp_path / f"w{tables}", tables)
        db = str(tmp_path / f"w{tables}" / "vol" / "syncer.db")
        lines = _traced_sync(cfg, tmp_path / f"trace{tables}")
        return sum(1 for line in lines if "openat(" in line and f'"{db}"' in line and "O_RDWR" in line)

    two, eight = history_opens(2), history_opens(8)
    assert 1 <= two == eight <= 3, (two, eight)  # the start's and the outcome's connections, none per table


def test_the_duckdb_source_profiles_a_table_in_narrow_queries_one_after_another(tmp_path: Path) -> None:
    cfg = syncer.load_config(_warehouse(tmp_path / "w", 1))
    from syncer.sources import open_source

    source = open_source(cfg.source)
    table = TableConfig(name="t0", source="t0", primary_key=("id",))
    queries: list[str] = []
    real = source._run

    def counted(sql: str, *args: object, **kw: object) -> object:
        queries.append(sql)
        return real(sql, *args, **kw)  # type: ignore[arg-type]

    source._run = counted  # type: ignore[method-assign]
    try:
        prof = source.profile(table, source.schema(table))
    finally:
        source.close()
    # counts, min/max of numbers and dates, min/max of text and booleans, sums (floats apart when
    # there are any): each a plain scan DuckDB answers from segment statistics where it can answer
    # the whole query so, run one at a time so their memory is never needed together
    assert len(queries) == 4, queries
    texts = next(q for q in queries if '"note"' in q and "min(" in q)
    assert '"id"' not in texts and '"amount"' not in texts, texts  # no number scanned with the text
    assert all(q.startswith("SELECT ") and q.count("SELECT") == 1 for q in queries), queries
    assert prof["rows"] == 50 and prof["columns"]["amount"]["max"] == "24.5" and prof["columns"]["note"]["nulls"] == 0


def test_the_change_markers_of_every_table_cost_two_queries_per_run(tmp_path: Path) -> None:
    cfg = syncer.load_config(_warehouse(tmp_path / "w", 3))
    con = duckdb.connect(str(cfg.source.path))
    con.execute("CREATE SCHEMA other")
    con.execute("CREATE TABLE other.t0 AS SELECT 1 AS id")
    con.execute("CREATE VIEW v0 AS SELECT * FROM t0")
    con.close()
    from syncer.sources import open_source

    source = open_source(cfg.source)
    queries: list[str] = []
    real = source._run

    def counted(sql: str, *args: object, **kw: object) -> object:
        queries.append(sql)
        return real(sql, *args, **kw)  # type: ignore[arg-type]

    source._run = counted  # type: ignore[method-assign]
    try:
        names = ["t0", "T1", "main.t2", "w.main.t0", "other.t0", "v0", "nope", "other.t1", "x.main.t0"]
        markers = {n: source.change_marker(TableConfig(name="x", source=n)) for n in names}
    finally:
        source.close()
    assert len(queries) == 2, queries
    tables = {n for n, m in markers.items() if m is not None}
    assert tables == {"t0", "T1", "main.t2", "w.main.t0", "other.t0"}, markers  # not a view, not a missing table


def _spy(monkeypatch: pytest.MonkeyPatch, name: str) -> list[Any]:
    """Calls of the real DuckDB source's method ``name`` (each passes through to it)."""
    from syncer.sources.duckdb import DuckDBSource

    calls: list[Any] = []
    real = getattr(DuckDBSource, name)

    def spy(self: Any, *args: Any, **kw: Any) -> Any:
        calls.append(args[0] if args else None)
        return real(self, *args, **kw)

    monkeypatch.setattr(DuckDBSource, name, spy)
    return calls


def test_a_small_table_s_profile_is_one_query_after_its_count(tmp_path: Path) -> None:
    # as an export asks: the count first (a table of one DuckDB row group), then the profile
    cfg = syncer.load_config(_warehouse(tmp_path / "w", 1))
    from syncer.sources import open_source

    source = open_source(cfg.source)
    table = TableConfig(name="t0", source="t0", primary_key=("id",))
    queries: list[str] = []
    real = source._run

    def counted(sql: str, *args: object, **kw: object) -> object:
        queries.append(sql)
        return real(sql, *args, **kw)  # type: ignore[arg-type]

    source._run = counted  # type: ignore[method-assign]
    try:
        assert source.count(table) == 50
        queries.clear()
        prof = source.profile(table, source.schema(table))
    finally:
        source.close()
    assert len(queries) == 1 and queries[0].startswith("SELECT count(*), "), queries
    assert prof["rows"] == 50 and prof["columns"]["amount"]["max"] == "24.5" and prof["columns"]["note"]["nulls"] == 0


def test_memory_limit_is_set_once_for_tables_of_one_shape_not_per_query(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sets = _spy(monkeypatch, "_set_limit")
    cfg = syncer.load_config(_warehouse(tmp_path / "w", 6))
    report = syncer.sync(cfg)
    assert report.status == "ok", report.error
    # the first table raises it for its profile and for its stream; the five after it need the same
    assert 1 <= len(sets) <= 2, sets


def test_an_unchanged_duckdb_table_is_confirmed_without_a_query(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = syncer.load_config(_warehouse(tmp_path / "w", 3))
    assert syncer.sync(cfg).status == "ok"
    schemas = _spy(monkeypatch, "schema")
    again = syncer.sync(cfg)
    assert {t.status for t in again.tables} == {"unchanged"} and schemas == []
    # the marker covers what shapes the Arrow schema: the file, DuckDB's and pyarrow's versions
    marker = syncer.current_snapshot(config=cfg).tables["t0"].change_marker
    assert marker is not None and f"duckdb-{duckdb.__version__}" in marker["source"] and "pyarrow-" in marker["source"]
    con = duckdb.connect(str(cfg.source.path))
    con.execute("ALTER TABLE t1 ADD COLUMN extra INTEGER")  # a DDL change writes the file: every table re-exported
    con.close()
    third = syncer.sync(cfg)
    assert {t.table: t.status for t in third.tables} == {"t0": "fresh", "t1": "carried_over", "t2": "fresh"}
    assert "added extra" in (third.error or "")  # exported, so the drift is seen (not confirmed unchanged)


def test_the_manifest_is_strict_json_with_a_line_per_table(tmp_path: Path) -> None:
    # written by the C encoder a line at a time (json's indent= runs the Python one: 60 ms of 200 tables)
    import json

    from syncer.volume.manifest import manifest_text

    cfg = syncer.load_config(_warehouse(tmp_path / "w", 3))
    assert syncer.sync(cfg).status == "ok"
    text = (Path(cfg.root) / "current" / "manifest.json").read_text(encoding="utf-8")
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the manifest"))
    lines = text.splitlines()
    assert [ln.split(":")[0].strip() for ln in lines if ln.startswith("    ")] == ['"t0"', '"t1"', '"t2"']
    assert len(lines) == 2 + len(data) + 1 + len(data["tables"])  # braces, a line per key, the tables: a line each and "}"
    odd = {"a": float("nan"), "tables": {"x": {"v": [float("inf"), 1.5]}}, "n": None}
    assert json.loads(manifest_text(odd)) == {"a": None, "tables": {"x": {"v": [None, 1.5]}}, "n": None}
    assert json.loads(manifest_text({})) == {} and json.loads(manifest_text({"tables": {}})) == {"tables": {}}


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(list(range(100)), id="all-distinct"),
        pytest.param([i % 3 for i in range(100)], id="few"),
        pytest.param([None if i % 2 else i % 3 for i in range(100)], id="few-with-nulls"),
        pytest.param(pa.array([None] * 100, pa.int64()), id="all-null"),
        pytest.param([f"s{i % 41}" for i in range(100)], id="text-at-the-ratio"),
        pytest.param([f"s{i % 39}" if i % 7 else None for i in range(100)], id="text-below-with-nulls"),
    ],
)
def test_the_parquet_dictionary_choice_is_count_distinct_s(values: Any) -> None:
    # len(unique) in place of count_distinct(mode="all"): the same count (a null is one value), less CPU
    import pyarrow.compute as pc

    from syncer.formats.parquet import ParquetTableWriter, dictionary_columns

    batch = pa.record_batch({"c": pa.array(values), "b": pa.array([True] * len(values))})
    ratio = ParquetTableWriter.DICTIONARY_RATIO
    expected = ["c"] if pc.count_distinct(batch.column("c"), mode="all").as_py() / len(values) < ratio else []
    assert dictionary_columns(batch, ratio) == expected


def test_the_run_s_lines_convert_the_report_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # each key of a record converts the whole report to JSON: 200 tables printed that way cost ~0.2 s
    from syncer import cli
    from syncer.volume.manifest import RunReport

    cfg = syncer.load_config(_warehouse(tmp_path / "w", 4))
    report = syncer.sync(cfg)
    calls: list[int] = []
    real = RunReport.to_json

    def counted(self: RunReport) -> Any:
        calls.append(1)
        return real(self)

    monkeypatch.setattr(RunReport, "to_json", counted)
    cli._print_run(report, cfg)
    assert len(calls) == 1, calls


def test_the_manifest_is_walked_for_nan_only_when_it_holds_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from syncer.volume import manifest

    clean = {"id": "s", "tables": {f"t{i}": {"rows": i, "score": 1.5, "checks": [{"ok": True}]} for i in range(3)}}
    expected = manifest._manifest_lines(manifest.finite(clean))  # the text of the walk every manifest had
    walks: list[int] = []
    real = manifest.finite
    monkeypatch.setattr(manifest, "finite", lambda v: walks.append(1) or real(v))
    assert manifest.manifest_text(clean) == expected and walks == []
    odd = {"id": "s", "tables": {"t": {"profile": {"min": float("-inf"), "mean": float("nan")}}}}
    assert json.loads(manifest.manifest_text(odd)) == {"id": "s", "tables": {"t": {"profile": {"min": None, "mean": None}}}}
    assert walks  # walked, then written


def test_a_written_parquet_file_s_footer_is_read_once_by_its_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow.parquet as pq

    reads: collections.Counter[str] = collections.Counter()
    real = pq.read_metadata
    monkeypatch.setattr(pq, "read_metadata", lambda path, *a, **k: reads.update([Path(path).name]) or real(path, *a, **k))
    opens: collections.Counter[str] = collections.Counter()
    real_file = pq.ParquetFile.__init__

    def counting_init(self: Any, source: Any, *a: Any, **k: Any) -> None:
        opens.update([Path(source).name if isinstance(source, str | Path) else "?"])
        real_file(self, source, *a, **k)

    monkeypatch.setattr(pq.ParquetFile, "__init__", counting_init)
    cfg = syncer.load_config(_warehouse(tmp_path / "w", 3))
    report = syncer.sync(cfg)
    assert report.status == "ok" and report.tables and all(t.checks for t in report.tables)
    # the profile's footer statistics, the re-open's row count and its stored schema: one read of each footer
    assert reads == {f"t{i}.parquet": 1 for i in range(3)}, reads
    assert not [name for name in opens if name.endswith(".parquet") and name in reads and opens[name] > 1], opens


def test_a_parquet_file_changed_after_its_footer_was_read_is_read_again(tmp_path: Path) -> None:
    import time

    import pyarrow.parquet as pq

    from syncer.formats import count_rows, file_schema

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": list(range(10))}), path)
    schema = pa.schema([("id", pa.int64())])
    assert count_rows("parquet", path, schema) == 10
    time.sleep(0.02)  # past the file system clock's tick: the rewrite's change time differs
    pq.write_table(pa.table({"id": list(range(20)), "x": ["a"] * 20}), path)  # a wrong count, another schema
    assert count_rows("parquet", path, schema) == 20
    assert file_schema("parquet", path).names == ["id", "x"]
    with open(path, "r+b") as fh:  # truncated: its footer is gone
        fh.truncate(path.stat().st_size // 2)
    with pytest.raises(pa.ArrowInvalid):
        count_rows("parquet", path, schema)
