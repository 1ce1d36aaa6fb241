"""export_table on its own, with the real DuckDB source: the outcome it returns (a manifest entry that
matches the staged file, every check, timings, attempts), and a failed table that stages nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncer import load_config
from syncer.export.table import export_table
from syncer.formats import sha256_file
from syncer.sources import open_source
from tests.conftest import write_config

CHECKS = ["row_count", "schema", "primary_key_not_null", "primary_key_unique", "non_empty", "profile", "sha256", "reopen"]


def _cfg(tmp_path: Path, demo_db: Path, table: str):
    return load_config(write_config(tmp_path / "cfg", demo_db, tables=table))


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl", "arrow"])
def test_the_outcome_describes_the_staged_file(tmp_path: Path, demo_db: Path, fmt: str) -> None:
    cfg = _cfg(tmp_path, demo_db, f'[[tables]]\nname = "courses"\nprimary_key = ["course_id"]\nformat = "{fmt}"\n')
    staging = tmp_path / "staging" / "20261201T030000Z-abcd"
    staging.mkdir(parents=True)
    events: list[dict] = []
    with open_source(cfg.source) as src:
        out = export_table(src, cfg.table("courses"), cfg, staging, None, progress=events.append)

    assert out.ok and out.error is None and out.entry is not None
    entry = out.entry
    staged = staging / entry.file
    assert staged.is_file() and entry.file == f"courses.{fmt}"
    assert sha256_file(staged) == entry.sha256 and staged.stat().st_size == entry.bytes == out.bytes
    assert entry.rows == entry.source_rows == out.rows > 0
    assert entry.exported_in == staging.name and entry.status == "fresh" and entry.format == fmt
    assert [c.name for c in entry.checks] == CHECKS and all(c.ok for c in entry.checks)
    assert {"export_s", "validate_s", "total_s", "source_profile_s"} <= set(out.timings)
    assert out.attempts == [{"attempt": 1, "ok": True, "error": None}]
    assert events[0]["event"] == "table_start" and events[-1]["event"] == "table_done"


def test_a_table_that_fails_a_check_stages_nothing_and_says_why(tmp_path: Path, demo_db: Path) -> None:
    # not_null on a column with nulls, and no max_bad_rows: the table fails, nothing of it stays.
    cfg = _cfg(
        tmp_path,
        demo_db,
        '[[tables]]\nname = "enrollments"\nprimary_key = ["enrollment_id"]\nnot_null = ["completed_at"]\n',
    )
    staging = tmp_path / "staging" / "20261201T030000Z-beef"
    staging.mkdir(parents=True)
    with open_source(cfg.source) as src:
        out = export_table(src, cfg.table("enrollments"), cfg, staging, None, quarantine_dir=tmp_path / "quarantine")

    assert not out.ok
    assert "completed_at" in (out.error or "") and "max_bad_rows" in (out.error or "")
    assert [p.name for p in staging.iterdir()] == []
    assert [c.name for c in out.checks if c.failed] == ["not_null", "bad_rows"]  # the export itself ran
