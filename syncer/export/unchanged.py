"""Tables the source confirms unchanged since the published snapshot: not re-exported.

Before a table is exported the engine asks the source for its *change marker*
(:meth:`syncer.sources.base.Source.change_marker`): DuckDB gives the identity of the database file
(device, inode, size, mtime, ctime; any write changes it), Snowflake the table's
``SYSTEM$LAST_CHANGE_COMMIT_TIME`` (it increases with every DML commit). The marker is recorded in
the table's manifest entry with a fingerprint of the table's config (what shapes the files: the
relation, columns, format, checks). A later run that gets the same marker, the same fingerprint and
the same Arrow schema hard-links the previous snapshot's files into staging and marks the entry
``unchanged`` with the time it was confirmed: its age counts from the confirmation. DuckDB's marker
covers the schema too (the file's identity and the DuckDB and pyarrow versions: nothing else shapes
its Arrow export), so it confirms a table without a query; Snowflake's schema is read and compared.

A ``query`` table or a view has no marker (the source returns None) and is always exported; so is
every table of a ``force`` sync, a table whose previous entry is not ``fresh`` or ``unchanged``
(carried over, quarantined) or whose times are in the future (the clock moved), and any table
whose marker cannot be read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import pyarrow as pa

from syncer import _clock as clock
from syncer._clock import age_seconds, iso
from syncer._exceptions import PublishError, SyncError
from syncer.config import Config, TableConfig
from syncer.export.table import TableOutcome
from syncer.formats import schema_to_b64
from syncer.sources.base import Source
from syncer.validate.checks import check
from syncer.volume.files import carry_over, remove_tree
from syncer.volume.manifest import ManifestEntry
from syncer.volume.verify import check_files_by_table

__all__ = ["UNCHANGED", "confirm_unchanged", "marker_for", "with_marker"]

log = logging.getLogger("syncer")

#: the status of a table confirmed unchanged and hard-linked from the previous snapshot
UNCHANGED = "unchanged"
#: previous statuses whose files may be kept for an unchanged source (not carried over, not quarantined)
_KEEPABLE = ("fresh", UNCHANGED)


def config_fingerprint(table: TableConfig, cfg: Config) -> str:
    """A digest of what shapes a table's files and checks: a change to any of it re-exports."""
    shape = {
        "source": table.source,
        "query": table.query,
        "primary_key": list(table.primary_key),
        "format": table.format,
        "exclude_columns": list(table.exclude_columns),
        "not_null": list(table.not_null),
        "allow_empty": table.allow_empty,
        "max_bad_rows": table.max_bad_rows,
        # the checks on the written files: a new or changed reference is run on a fresh export
        "references": [[list(r.columns), r.target, list(r.target_columns), r.severity] for r in table.references],
        # how the files are made (engine: the warehouse's own Parquet writer, parts by thread)
        "export": table.export,
        "engine_min_rows": cfg.engine_min_rows if table.export == "auto" else None,
        "compression": cfg.compression,
        "row_group_rows": cfg.row_group_rows,
        "writers": cfg.writers,
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


def marker_for(source: Source, table: TableConfig, cfg: Config) -> dict[str, Any] | None:
    """The table's change marker and config fingerprint, or None when the source cannot confirm it
    (a query, a view, a marker it cannot read: the table is exported, which is always safe)."""
    try:
        token = source.change_marker(table)
    except SyncError as exc:
        log.warning("table %s: cannot read its change marker (%s); exporting it", table.name, exc, extra={"table": table.name})
        return None
    if token is None:
        return None
    return {"source": token, "config": config_fingerprint(table, cfg)}


def with_marker(out: TableOutcome, marker: dict[str, Any] | None) -> TableOutcome:
    """The outcome of an export with the marker read before it recorded in its entry."""
    if out.ok and out.entry is not None and marker is not None:
        out.entry = dataclasses.replace(out.entry, change_marker=marker)
    return out


def confirm_unchanged(
    source: Source,
    table: TableConfig,
    marker: dict[str, Any] | None,
    previous: ManifestEntry | None,
    prev_dir: Path | None,
    staging: Path,
) -> TableOutcome | None:
    """The outcome of keeping the previous files of a table whose source did not change (hard links
    into ``staging``), or None when it must be exported."""
    if marker is None or previous is None or prev_dir is None:
        return None
    if previous.status not in _KEEPABLE or previous.change_marker != marker:
        return None
    if age_seconds(previous.fresh_as_of) < 0:
        return None  # its times are from the future (the clock moved): a new export records true ones
    try:
        with source.pinned(table) as pin:
            # a marker that covers the schema saves a query per table (most of an unchanged table's cost)
            full = None if source.marker_covers_schema and previous.arrow_schema else source.schema(table)
    except SyncError as exc:
        log.warning("table %s: cannot read its schema (%s); exporting it", table.name, exc, extra={"table": table.name})
        return None
    if full is not None:
        schema = pa.schema([f for f in full if f.name not in table.exclude_columns])
        if previous.arrow_schema is not None and schema_to_b64(schema) != previous.arrow_schema:
            return None  # a DDL change the marker may not see: export
    if not _keep_files(table, previous, prev_dir, staging):
        return None
    confirmed = clock.utcnow()
    detail = (
        f"the source did not change since the export of run {previous.exported_in or '?'} "
        f"(change marker {marker['source']}); its files are kept, not re-exported"
    )
    entry = dataclasses.replace(previous, status=UNCHANGED, confirmed_at=iso(confirmed), consistency=pin or previous.consistency)
    log.info("table %s: unchanged, not re-exported", table.name, extra={"table": table.name, "step": "unchanged"})
    return TableOutcome(
        table.name,
        ok=True,
        checks=[check("unchanged", True, detail)],
        entry=entry,
        rows=previous.rows,
        bytes=previous.bytes,
        timings={"total_s": 0.0},
        attempts=[],
    )


def _keep_files(table: TableConfig, previous: ManifestEntry, prev_dir: Path, staging: Path) -> bool:
    """Hard-link the previous files into ``staging``; False (nothing left staged) when the link cannot
    be made (EMLINK: the file's link count at its limit; EIO) or the files are not the bytes that
    passed every check (a flipped byte at the same size): exporting the table again is always right."""
    try:
        carry_over(prev_dir / previous.file, staging / previous.file)
    except PublishError as exc:
        remove_tree(staging / previous.file)
        log.warning("table %s: %s; exporting it instead", table.name, exc, extra={"table": table.name})
        return False
    damaged = check_files_by_table(staging, {"tables": {table.name: previous.to_json()}}, deep=True).get(table.name)
    if damaged:
        remove_tree(staging / previous.file)
        log.warning(
            "table %s: the previous snapshot's file does not match its manifest (%s); exporting it",
            table.name,
            damaged[0],
            extra={"table": table.name},
        )
        return False
    return True
