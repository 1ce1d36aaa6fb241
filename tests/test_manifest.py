"""The manifest contract (syncer/volume/manifest.py, docs/manifest.schema.json).

Real syncs on the demo warehouse write manifests of every shape the engine knows; each one, as the file
on disk, matches the JSON Schema and survives ``Manifest.from_json(d).to_json()`` unchanged. A format-1
manifest (the first release's, without ``format_version``) still reads everywhere, keys a newer writer
adds are kept and ignored, and a broken manifest is a PublishError naming the snapshot.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import syncer
from syncer import Config, PublishError
from syncer.volume.files import DIR_MODE, FILE_MODE
from syncer.volume.layout import Volume
from syncer.volume.manifest import FORMAT_VERSION, Check, Column, Manifest, ManifestEntry, Part
from tests.conftest import DEFAULT_TABLES
from tests.test_engine import unconstrain
from tests.test_parts import PARTED
from tests.test_quarantine import with_max_bad_rows

ROOT = Path(__file__).resolve().parents[1]

#: the keys the first release (format 1) wrote: manifest, table entry (from its syncer/_engine.py, _export.py)
FIRST_RELEASE_KEYS = {"id", "created_at", "previous", "run", "source", "sla_hours", "tables", "run_checks"}
FIRST_RELEASE_ENTRY_KEYS = {
    "file",
    "format",
    "rows",
    "bytes",
    "sha256",
    "schema",
    "arrow_schema",
    "primary_key",
    "exported_at",
    "status",
    "source_rows",
    "source",
    "consistency",
    "checks",
    "profile",
}


def manifests_on_disk(cfg: Config) -> dict[str, dict[str, Any]]:
    """Every retained snapshot's manifest.json as written (the file, not the record), by snapshot id."""
    snaps = Volume(cfg.root).snapshots
    return {p.parent.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(snaps.glob("*/manifest.json"))}


def current_json(cfg: Config) -> dict[str, Any]:
    vol = Volume(cfg.root)
    cid = vol.current_id()
    assert cid is not None
    return json.loads((vol.snapshot_dir(cid) / "manifest.json").read_text(encoding="utf-8"))


def schema_errors(validator: jsonschema.Draft202012Validator, data: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)]


def copy_volume(cfg: Config, make_config: Callable[..., Config], folder: Path, **kwargs: Any) -> Config:
    """A second config whose volume is a copy of ``cfg``'s (symlinks kept, modes kept)."""
    other = make_config(folder=folder, **kwargs)
    shutil.copytree(cfg.root, other.root, symlinks=True)
    return other


def rewrite_manifest(cfg: Config, snapshot_id: str, data: Any) -> None:
    """Replace a published snapshot's manifest.json (read-only on disk) and seal it again."""
    folder = Volume(cfg.root).snapshot_dir(snapshot_id)
    path = folder / "manifest.json"
    os.chmod(folder, 0o755)
    os.chmod(path, 0o644)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.chmod(path, FILE_MODE)
    os.chmod(folder, DIR_MODE)


# --- manifests of every shape ---------------------------------------------------------------------------


def _formats(make_config: Callable[..., Config], warehouse: Path) -> Config:
    tables = "".join(
        f'\n[[tables]]\nname = "courses_{fmt}"\nsource = "courses"\nprimary_key = ["course_id"]\nformat = "{fmt}"\n'
        for fmt in ("parquet", "csv", "jsonl", "arrow")
    )
    cfg = make_config(db=warehouse, tables=tables)
    assert syncer.sync(cfg)["status"] == "ok"
    assert {t["format"] for t in current_json(cfg)["tables"].values()} == {"parquet", "csv", "jsonl", "arrow"}
    return cfg


def _parted(make_config: Callable[..., Config], warehouse: Path) -> Config:
    cfg = make_config(db=warehouse, extra=PARTED)
    assert syncer.sync(cfg)["status"] == "ok"
    syncer.sync(cfg, ["courses"])  # the parts are hard-linked into the next snapshot with their entry
    assert len(current_json(cfg)["tables"]["enrollments"]["parts"]) == 2
    return cfg


def _quarantined(make_config: Callable[..., Config], warehouse: Path) -> Config:
    cfg = make_config(db=warehouse, tables=with_max_bad_rows(DEFAULT_TABLES, "participants", 10))
    unconstrain(warehouse, "participants", "UPDATE participants SET email = NULL WHERE participant_id IN (3, 7, 11)")
    assert syncer.sync(cfg)["status"] == "ok"
    entry = current_json(cfg)["tables"]["participants"]
    assert entry["status"] == "quarantined" and entry["quarantine"]["rows"] == 3
    return cfg


def _carried_over(make_config: Callable[..., Config], warehouse: Path) -> Config:
    cfg = make_config(db=warehouse)
    assert syncer.sync(cfg)["status"] == "ok"
    unconstrain(warehouse, "courses", "ALTER TABLE courses ADD COLUMN discount DOUBLE")
    assert syncer.sync(cfg)["status"] == "partial"
    entry = current_json(cfg)["tables"]["courses"]
    assert entry["status"] == "carried_over" and entry["failed_checks"] and entry["error"] and entry["failed_at"]
    return cfg


def _carried_over_bad_rows(make_config: Callable[..., Config], warehouse: Path) -> Config:
    cfg = make_config(db=warehouse, tables=with_max_bad_rows(DEFAULT_TABLES, "participants", 2))
    assert syncer.sync(cfg)["status"] == "ok"
    unconstrain(warehouse, "participants", "UPDATE participants SET email = NULL WHERE participant_id <= 5")
    assert syncer.sync(cfg)["status"] == "partial"
    entry = current_json(cfg)["tables"]["participants"]
    assert entry["status"] == "carried_over" and entry["failed_quarantine"]["rows"] == 5
    return cfg


def _query(make_config: Callable[..., Config], warehouse: Path) -> Config:
    tables = textwrap.dedent("""
        [[tables]]
        name = "completed-by-course"
        query = "select course_id, count(*) as completions from enrollments where status = 'completed' group by course_id"
        primary_key = ["course_id"]
        format = "jsonl"
    """)
    cfg = make_config(db=warehouse, tables=tables)
    assert syncer.sync(cfg)["status"] == "ok"
    assert "query" in current_json(cfg)["tables"]["completed-by-course"]["source"]
    return cfg


def _empty(make_config: Callable[..., Config], warehouse: Path) -> Config:
    tables = DEFAULT_TABLES.replace('primary_key = ["metric_date"]', 'primary_key = ["metric_date"]\nallow_empty = true')
    cfg = make_config(db=warehouse, tables=tables)
    unconstrain(warehouse, "daily_metrics", "DELETE FROM daily_metrics")
    assert syncer.sync(cfg)["status"] == "ok"
    assert current_json(cfg)["tables"]["daily_metrics"]["rows"] == 0
    return cfg


SHAPES = [
    pytest.param(_formats, id="every-format"),
    pytest.param(_parted, id="parted-parquet"),
    pytest.param(_quarantined, id="quarantined"),
    pytest.param(_carried_over, id="carried-over-failed-check"),
    pytest.param(_carried_over_bad_rows, id="carried-over-bad-rows"),
    pytest.param(_query, id="query-table"),
    pytest.param(_empty, id="empty-table"),
]


@pytest.mark.parametrize("build", SHAPES)
def test_every_manifest_on_disk_matches_the_schema_and_round_trips(
    build: Callable[..., Config], make_config, warehouse: Path, manifest_validator
) -> None:
    cfg = build(make_config, warehouse)
    written = manifests_on_disk(cfg)
    assert written
    for sid, data in written.items():
        assert schema_errors(manifest_validator, data) == [], sid
        assert data["format_version"] == FORMAT_VERSION
        record = Manifest.from_json(data)
        assert record.to_json() == data, sid
        assert json.dumps(record.to_json()) == json.dumps(data), f"{sid}: key order changed"
        assert record == Volume(cfg.root).read_manifest(Volume(cfg.root).snapshot_dir(sid))
    assert syncer.verify(cfg)["ok"]


def test_manifests_written_by_the_cli_match_the_schema(config_path: Path, manifest_validator) -> None:
    # A subprocess is out of reach of the in-process check in conftest.py: read what it wrote.
    for args in (["sync"], ["sync", "courses"]):
        proc = subprocess.run(
            [sys.executable, "-m", "syncer", "--config", str(config_path), *args],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=ROOT,
        )
        assert proc.returncode == 0, proc.stderr
    cfg = syncer.load_config(config_path)
    written = manifests_on_disk(cfg)
    assert len(written) == 2
    for sid, data in written.items():
        assert schema_errors(manifest_validator, data) == [], sid
        assert Manifest.from_json(data).to_json() == data
    assert {d["run"]["trigger"] for d in written.values()} == {"cli"}


# --- format 1 ---------------------------------------------------------------------------------------------


def as_first_release(data: dict[str, Any]) -> dict[str, Any]:
    """A manifest with only the keys the first release wrote (no format_version, no exported_in, ...)."""
    old = {k: copy.deepcopy(v) for k, v in data.items() if k in FIRST_RELEASE_KEYS}
    old["source"] = {k: v for k, v in old["source"].items() if k in ("kind", "path")}
    old["tables"] = {n: {k: v for k, v in t.items() if k in FIRST_RELEASE_ENTRY_KEYS} for n, t in old["tables"].items()}
    return old


def test_a_format_1_manifest_still_reads_everywhere(config: Config, make_config, tmp_path: Path, manifest_validator) -> None:
    report = syncer.sync(config)
    sid = report["snapshot_id"]
    old = as_first_release(current_json(config))
    assert "format_version" not in old and "exported_in" not in old["tables"]["courses"]
    assert schema_errors(manifest_validator, old) == []

    record = Manifest.from_json(old)
    assert record.format_version == 1
    assert record.to_json() == {"format_version": 1, **old}
    assert record.tables["courses"].rows == old["tables"]["courses"]["rows"]

    legacy = copy_volume(config, make_config, tmp_path / "legacy")
    rewrite_manifest(legacy, sid, old)
    vol = Volume(legacy.root)
    assert vol.read_manifest(vol.snapshot_dir(sid)) == record
    assert vol.inspect(sid, deep=True).ok
    for t in legacy.tables:
        assert syncer.read_table(t.name, config=legacy).equals(syncer.read_table(t.name, config=config))
    verdict = syncer.verify(legacy)
    assert verdict["ok"], verdict["problems"]
    assert set(verdict["tables"]) == {t.name for t in legacy.tables}
    # the next sync on top of it writes format 2 again, carrying the old entries forward
    assert syncer.sync(legacy, ["courses"])["status"] == "ok"
    newest = current_json(legacy)
    assert newest["format_version"] == FORMAT_VERSION and newest["previous"] == sid
    assert schema_errors(manifest_validator, newest) == []


# --- keys a newer writer adds ---------------------------------------------------------------------------


def with_newer_keys(data: dict[str, Any]) -> dict[str, Any]:
    d = copy.deepcopy(data)
    d["lineage"] = {"pipeline": "nightly", "tags": ["a", "b"]}
    entry = d["tables"]["courses"]
    entry["owner"] = "data-team"
    entry["checks"][0]["hint"] = "see the runbook"
    entry["schema"][0]["comment"] = "the key"
    d["run_checks"][0]["threshold_s"] = 600
    return d


def test_keys_a_newer_writer_adds_survive_a_round_trip_and_are_ignored_by_readers(
    config: Config, make_config, tmp_path: Path, manifest_validator
) -> None:
    sid = syncer.sync(config)["snapshot_id"]
    newer = with_newer_keys(current_json(config))
    assert schema_errors(manifest_validator, newer) == []  # the schema allows what it does not list

    record = Manifest.from_json(newer)
    assert record.to_json() == newer
    assert record.extra == {"lineage": newer["lineage"]}
    entry = record.tables["courses"]
    assert entry.extra == {"owner": "data-team"} and entry["owner"] == "data-team"
    assert entry.checks[0].extra == {"hint": "see the runbook"}
    assert entry.schema[0].extra == {"comment": "the key"}
    assert record.run_checks[0].to_json()["threshold_s"] == 600

    other = copy_volume(config, make_config, tmp_path / "newer")
    rewrite_manifest(other, sid, newer)
    assert syncer.read_table("courses", config=other).equals(syncer.read_table("courses", config=config))
    assert syncer.verify(other)["ok"]
    assert {t["name"]: t["status"] for t in syncer.status(other)["tables"]}["courses"] == "fresh"
    # carried into the next snapshot with the entry it came from
    assert syncer.sync(other, ["participants"])["status"] == "ok"
    carried = current_json(other)["tables"]["courses"]
    assert carried["owner"] == "data-team" and carried["checks"][0]["hint"] == "see the runbook"


def test_part_records_keep_unknown_keys() -> None:
    part = {"name": "part-00000.parquet", "rows": 3, "bytes": 10, "sha256": "0" * 64, "codec": "zstd"}
    assert Part.from_json(part).to_json() == part
    column = {"name": "id", "type": "int64", "nullable": False, "comment": "key"}
    assert Column.from_json(column).to_json() == column
    named_extra = {"name": "n", "ok": False, "severity": "warning", "detail": "d", "extra": {"a": 1}}
    assert Check.from_json(named_extra).to_json() == named_extra
    # equality is about what this version knows; extras never make two checks differ
    assert Check.from_json({"name": "n", "ok": True, "detail": "d", "x": 1}) == Check("n", True, "d")


# --- broken manifests -------------------------------------------------------------------------------------


def _tables_a_list(d: dict[str, Any]) -> None:
    d["tables"] = list(d["tables"].values())


def _tables_null(d: dict[str, Any]) -> None:
    d["tables"] = None


def _entry_without_file(d: dict[str, Any]) -> None:
    del d["tables"]["courses"]["file"]


def _entry_not_an_object(d: dict[str, Any]) -> None:
    d["tables"]["courses"] = "courses.parquet"


def _check_without_ok(d: dict[str, Any]) -> None:
    del d["tables"]["courses"]["checks"][0]["ok"]


def _checks_not_a_list(d: dict[str, Any]) -> None:
    d["tables"]["courses"]["checks"] = 5


def _empty_object(d: dict[str, Any]) -> None:
    d.clear()


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        pytest.param(_tables_a_list, "'tables' is list, not an object", id="tables-a-list"),
        pytest.param(_tables_null, "'tables' is NoneType, not an object", id="tables-null"),
        pytest.param(_entry_without_file, "table 'courses': missing required key(s) 'file'", id="entry-without-file"),
        pytest.param(_entry_not_an_object, "table 'courses': expected an object, found str", id="entry-not-an-object"),
        pytest.param(_check_without_ok, "table 'courses': missing required key(s) 'ok'", id="check-without-ok"),
        pytest.param(_checks_not_a_list, "table 'courses': 'int' object is not iterable", id="checks-not-a-list"),
        pytest.param(_empty_object, "without 'id'", id="empty-object"),
    ],
)
def test_a_malformed_manifest_is_a_publish_error_naming_the_snapshot(
    config: Config, make_config, tmp_path: Path, break_it: Callable[[dict[str, Any]], None], message: str
) -> None:
    sid = syncer.sync(config)["snapshot_id"]
    data = current_json(config)
    break_it(data)
    broken = copy_volume(config, make_config, tmp_path / "broken")
    rewrite_manifest(broken, sid, data)
    vol = Volume(broken.root)

    with pytest.raises(PublishError) as exc_info:
        vol.read_manifest(vol.snapshot_dir(sid))
    text = str(exc_info.value)
    assert f"snapshot {sid}" in text and message in text and "syncer repair" in text

    info = vol.inspect(sid)
    assert not info.ok and info.error == text and info.manifest is None
    assert vol.current_manifest() is None  # no exception for the callers that only ask
    report = syncer.verify(broken)
    assert not report["ok"] and any(sid in p for p in report["problems"])


def test_a_manifest_that_is_not_an_object_is_a_publish_error(config: Config, make_config, tmp_path: Path) -> None:
    sid = syncer.sync(config)["snapshot_id"]
    broken = copy_volume(config, make_config, tmp_path / "broken")
    rewrite_manifest(broken, sid, [current_json(config)])
    vol = Volume(broken.root)
    with pytest.raises(PublishError, match=rf"snapshot {sid}: .* incomplete \(not a JSON object but list\)"):
        vol.read_manifest(vol.snapshot_dir(sid))


# --- what the schema rejects ----------------------------------------------------------------------------


def _short_sha(d: dict[str, Any]) -> None:
    d["tables"]["courses"]["sha256"] = d["tables"]["courses"]["sha256"][:63]


def _upper_sha(d: dict[str, Any]) -> None:
    d["tables"]["courses"]["sha256"] = d["tables"]["courses"]["sha256"].upper()


def _unknown_status(d: dict[str, Any]) -> None:
    d["tables"]["courses"]["status"] = "stale"


def _bad_snapshot_id(d: dict[str, Any]) -> None:
    d["id"] = "2026-12-01T10:00:00Z"


def _bad_exported_in(d: dict[str, Any]) -> None:
    d["tables"]["courses"]["exported_in"] = "yesterday"


def _unknown_format_version(d: dict[str, Any]) -> None:
    d["format_version"] = 3


def _unknown_format(d: dict[str, Any]) -> None:
    d["tables"]["courses"]["format"] = "xlsx"


def _negative_rows(d: dict[str, Any]) -> None:
    d["tables"]["courses"]["rows"] = -1


def _missing_checks(d: dict[str, Any]) -> None:
    del d["tables"]["courses"]["checks"]


def _bad_table_name(d: dict[str, Any]) -> None:
    d["tables"]["../etc"] = d["tables"]["courses"]


@pytest.mark.parametrize(
    ("break_it", "where"),
    [
        pytest.param(_short_sha, "tables/courses/sha256", id="sha256-63-chars"),
        pytest.param(_upper_sha, "tables/courses/sha256", id="sha256-upper-case"),
        pytest.param(_unknown_status, "tables/courses/status", id="unknown-status"),
        pytest.param(_bad_snapshot_id, "id", id="bad-snapshot-id"),
        pytest.param(_bad_exported_in, "tables/courses/exported_in", id="bad-exported-in"),
        pytest.param(_unknown_format_version, "format_version", id="format-version-3"),
        pytest.param(_unknown_format, "tables/courses/format", id="unknown-format"),
        pytest.param(_negative_rows, "tables/courses/rows", id="negative-rows"),
        pytest.param(_missing_checks, "tables/courses", id="entry-without-checks"),
        pytest.param(_bad_table_name, "tables", id="table-name-with-slash"),
    ],
)
def test_the_schema_rejects_what_it_must(
    config: Config, manifest_validator, break_it: Callable[[dict[str, Any]], None], where: str
) -> None:
    syncer.sync(config)
    data = current_json(config)
    assert schema_errors(manifest_validator, data) == []
    break_it(data)
    errors = list(manifest_validator.iter_errors(data))
    assert errors, "the schema accepted a broken manifest"
    assert where in {"/".join(map(str, e.absolute_path)) for e in errors}


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = json.loads((ROOT / "docs" / "manifest.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


# --- key access ---------------------------------------------------------------------------------------------


def test_record_key_access_matches_the_json_form(config: Config) -> None:
    syncer.sync(config)
    syncer.sync(config, ["courses"])
    data = current_json(config)
    record = Manifest.from_json(data)
    for key, value in data.items():
        assert record[key] == value and record.get(key) == value and key in record
    assert dict(record) == data
    assert data["previous"] is not None and record["previous"] == data["previous"]
    for name, raw in data["tables"].items():
        entry = record.tables[name]
        assert isinstance(entry, ManifestEntry)
        assert dict(entry) == raw
        for key, value in raw.items():
            assert entry[key] == value and entry.get(key) == value and entry.get(key, "default") == value and key in entry
        assert entry["rows"] == raw["rows"] and entry["checks"] == raw["checks"]
        assert "parts" not in entry and entry.get("parts") is None and entry.get("parts", "default") == "default"
        # an optional field the JSON form leaves out reads as None, like the attribute
        assert entry["parts"] is None and entry.parts is None
        with pytest.raises(KeyError):
            entry["no_such_key"]
        assert "no_such_key" not in entry and entry.get("no_such_key") is None
    check = record.tables["courses"].checks[0]
    assert check["name"] == data["tables"]["courses"]["checks"][0]["name"] and "severity" in check
    with pytest.raises(TypeError):
        entry["rows"] = 1  # type: ignore[index]  # read-only


def test_a_null_value_reads_like_the_json_form() -> None:
    data = {"id": "20261201T000000Z-abcd", "created_at": "2026-12-01T00:00:00Z", "tables": {}, "previous": None}
    record = Manifest.from_json(data)
    assert record.get("previous", "x") is None and data.get("previous", "x") is None
    assert record["previous"] is None and "previous" in record


def test_a_manifest_is_parsed_once_per_text_and_an_edit_is_never_answered_from_the_cache(tmp_path: Path) -> None:
    from syncer.volume import manifest_cache

    d = tmp_path / "snap"
    d.mkdir()
    body = {"id": "s1", "created_at": "2026-01-01T00:00:00Z", "tables": {}}
    (d / "manifest.json").write_text(json.dumps(body), encoding="utf-8")
    calls: list[str] = []

    def read_json(snapshot_dir: Path, text: str | None) -> dict[str, Any]:
        calls.append("read")
        return Volume.read_manifest_json(snapshot_dir, text)

    first = manifest_cache.load(d, read_json, lambda _d, raw: Manifest.from_json(raw))
    again = manifest_cache.load(d, read_json, lambda _d, raw: Manifest.from_json(raw))
    assert again[1] is first[1] and calls == ["read"]  # the same text: parsed once
    # an edit of the same length in the same clock tick (same size, maybe the same mtime): re-parsed
    (d / "manifest.json").write_text(json.dumps({**body, "id": "s2"}), encoding="utf-8")
    edited = manifest_cache.load(d, read_json, lambda _d, raw: Manifest.from_json(raw))
    assert edited[1].id == "s2" and calls == ["read", "read"]
    # a manifest that became a symbolic link is refused, not served from the cache
    (d / "manifest.json").rename(d / "real.json")
    (d / "manifest.json").symlink_to(d / "real.json")
    with pytest.raises(PublishError, match="symbolic link"):
        manifest_cache.load(d, read_json, lambda _d, raw: Manifest.from_json(raw))
