"""The Snowflake engine path: ``COPY INTO`` an internal stage, ``GET`` into staging, ``REMOVE``.

The warehouse unloads the table, pinned at the run's moment, in parallel into a per-run prefix of
the internal stage ``SYNC_DB.SYNC.SYNCER_UNLOAD`` (``spcs/setup.sql`` creates it and grants the
service role READ and WRITE on it)::

    COPY INTO @SYNCER_UNLOAD/syncer/<run id>/<table>/
      FROM (SELECT <columns, cast where COPY cannot unload them> FROM <table> AT (TIMESTAMP => <moment>))
      FILE_FORMAT = (TYPE = PARQUET COMPRESSION = SNAPPY) HEADER = TRUE DETAILED_OUTPUT = TRUE
      MAX_FILE_SIZE = 268435456

``DETAILED_OUTPUT`` returns one row per file (name, size, rows): their rows must add up to the
count taken at the same moment, and every file GET downloads must have the size COPY reported.
``GET`` downloads the prefix with ``PARALLEL = 8`` (a stage volume mount was not chosen: it would
add a second volume to spec.yaml whose contents nothing validates before the files are read, and
GET's size check is needed anyway). The prefix is removed right after the download and after any
failure (``REMOVE``), and prefixes of other runs — left by a process that was killed — are swept
at the first unload of a run, like ``staging/``.

``MAX_FILE_SIZE`` 256 MiB: Snowflake's default of 16 MB makes a 500M-row table thousands of files
(a GET round trip and a part each); a few hundred MB per file keeps the count in the tens to low
hundreds, downloads in parallel, and the re-read holds one row group, not one file, in memory.

Casts (COPY cannot unload these to Parquet as the stream path reads them): TIMESTAMP_TZ and
TIMESTAMP_LTZ become UTC TIMESTAMP_NTZ; VARIANT, OBJECT and ARRAY become their JSON text (as the
stream path). A file whose Arrow schema still differs from the stream path's is not published:
the table goes through the stream path (:mod:`syncer.export.engine`).

Snowpark local testing runs no SQL text, so there the SQL is checked as text and this module's
download/check/remove logic runs against :class:`FolderStage`, a local folder standing in for the
stage (tests/test_engine_export.py).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from syncer._exceptions import SourceError, ValidationError
from syncer.sources.base import quote_ident
from syncer.sources.snowflake_marker import marker_sql, marker_token

__all__ = [
    "MAX_FILE_SIZE",
    "STAGE",
    "FolderStage",
    "SnowparkStage",
    "UnloadedFile",
    "copy_into_sql",
    "download",
    "select_list",
    "sweep",
]

log = logging.getLogger("syncer")

#: the internal stage setup.sql creates
STAGE = "SYNC_DB.SYNC.SYNCER_UNLOAD"
#: every prefix the sync writes lies under this one (so a sweep never touches anything else)
ROOT = "syncer"
MAX_FILE_SIZE = 256 * 1024 * 1024
GET_PARALLEL = 8


@dataclass(frozen=True)
class UnloadedFile:
    """One row of COPY's DETAILED_OUTPUT."""

    name: str
    size: int
    rows: int


def prefix(run_id: str, table: str) -> str:
    return f"{ROOT}/{run_id}/{table}/"


def select_list(columns: list[tuple[str, str]]) -> str:
    """The SELECT list of ``(name, Snowflake type)`` with the casts COPY needs."""
    items = []
    for name, type_ in columns:
        c, t = quote_ident(name), type_.upper()
        if t.startswith(("TIMESTAMP_TZ", "TIMESTAMP_LTZ")):
            items.append(f"CONVERT_TIMEZONE('UTC', {c})::TIMESTAMP_NTZ AS {c}")
        elif t.startswith(("VARIANT", "OBJECT", "ARRAY")):
            items.append(f"TO_JSON({c}::VARIANT) AS {c}")
        else:
            items.append(c)
    return ", ".join(items)


def copy_into_sql(stage: str, pfx: str, select_sql: str, max_file_size: int = MAX_FILE_SIZE) -> str:
    return (
        f"COPY INTO @{stage}/{pfx} FROM ({select_sql}) "
        "FILE_FORMAT = (TYPE = PARQUET COMPRESSION = SNAPPY) HEADER = TRUE DETAILED_OUTPUT = TRUE "
        f"MAX_FILE_SIZE = {int(max_file_size)}"
    )


class StageClient(Protocol):
    def copy(self, sql: str) -> list[UnloadedFile]: ...
    def get(self, pfx: str, dest: Path) -> list[Path]: ...
    def remove(self, pfx: str) -> None: ...
    def prefixes(self) -> list[str]: ...


class SnowparkStage:
    """The internal stage through a Snowpark session (a real account)."""

    def __init__(self, session: Any, stage: str = STAGE) -> None:
        self.session, self.stage = session, stage

    def copy(self, sql: str) -> list[UnloadedFile]:
        rows = self.session.sql(sql).collect()
        return [UnloadedFile(str(r["FILE_NAME"]), int(r["FILE_SIZE"]), int(r["ROW_COUNT"])) for r in rows]

    def get(self, pfx: str, dest: Path) -> list[Path]:
        got = self.session.file.get(f"@{self.stage}/{pfx}", str(dest), parallel=GET_PARALLEL)
        return [dest / Path(str(r.file)).name for r in got]

    def remove(self, pfx: str) -> None:
        self.session.sql(f"REMOVE @{self.stage}/{pfx}").collect()

    def prefixes(self) -> list[str]:
        names = [str(r["name"]) for r in self.session.sql(f"LIST @{self.stage}/{ROOT}/").collect()]
        # LIST names carry the stage's own folder first: keep "syncer/<run id>/"
        runs = {n.split(f"{ROOT}/", 1)[1].split("/", 1)[0] for n in names if f"{ROOT}/" in n}
        return [f"{ROOT}/{r}/" for r in sorted(runs)]


class FolderStage:
    """A local folder standing in for the stage: ``unload`` writes the files COPY would write."""

    def __init__(self, root: Path, unload: Callable[[str, Path], list[UnloadedFile]]) -> None:
        self.root, self._unload = root, unload

    def copy(self, sql: str) -> list[UnloadedFile]:
        pfx = sql.split("@", 1)[1].split(" ", 1)[0].split("/", 1)[1]
        (self.root / pfx).mkdir(parents=True, exist_ok=True)
        return self._unload(sql, self.root / pfx)

    def get(self, pfx: str, dest: Path) -> list[Path]:
        out = []
        for f in sorted((self.root / pfx).iterdir()):
            shutil.copyfile(f, dest / f.name)
            out.append(dest / f.name)
        return out

    def remove(self, pfx: str) -> None:
        shutil.rmtree(self.root / pfx, ignore_errors=True)

    def prefixes(self) -> list[str]:
        base = self.root / ROOT
        return [f"{ROOT}/{p.name}/" for p in sorted(base.iterdir())] if base.is_dir() else []


def download(stage: StageClient, sql: str, pfx: str, dest: Path, table: str, expected_rows: int) -> list[Path]:
    """COPY, check DETAILED_OUTPUT against the count, GET into ``dest`` and check every size; the
    prefix is REMOVEd afterwards, whatever happened."""
    try:
        files = stage.copy(sql)
        rows = sum(f.rows for f in files)
        if rows != expected_rows:
            raise ValidationError(
                f"table {table!r}: the unload wrote {rows:,} rows, count(*) at the same moment says {expected_rows:,}; "
                "nothing was published"
            )
        dest.mkdir(parents=True, exist_ok=True)
        got = stage.get(pfx, dest)
        sizes = {p.name: p.stat().st_size for p in got}
        want = {Path(f.name).name: f.size for f in files}
        if sizes != want:
            raise SourceError(
                f"table {table!r}: the files downloaded from the stage ({len(sizes)}) are not the files COPY "
                f"wrote ({len(want)}), or their sizes differ; nothing was published, the next run unloads again"
            )
        return got
    finally:
        with contextlib.suppress(Exception):
            stage.remove(pfx)


def sweep(stage: StageClient, run_id: str) -> list[str]:
    """REMOVE the prefixes of other runs (a killed run leaves its unload behind)."""
    gone: list[str] = []
    try:
        found = stage.prefixes()
    except Exception as exc:  # the stage is missing or not readable: the COPY says so, wrapped
        log.warning("cannot list the unload stage to sweep it: %s", exc)
        return gone
    for p in found:
        if p != f"{ROOT}/{run_id}/":
            with contextlib.suppress(Exception):
                stage.remove(p)
                gone.append(p)
    if gone:
        log.info("removed stage prefixes left by interrupted runs: %s", ", ".join(gone))
    return gone


def unload_sql(table: Any, schema: Any, as_of: Any, run_id: str, stage: str = STAGE) -> tuple[str, str]:
    """(prefix, COPY INTO statement) of one table of run ``run_id``, pinned at ``as_of``."""
    import pyarrow as pa

    from syncer.sources.snowflake_types import relation_sql
    from syncer.validate.profile import is_json

    cols = []
    for f in schema:
        kind = "TIMESTAMP_TZ" if pa.types.is_timestamp(f.type) and f.type.tz else ("VARIANT" if is_json(f) else "")
        cols.append((f.name, kind))
    pfx = prefix(run_id, table.name)
    return pfx, copy_into_sql(stage, pfx, f"SELECT {select_list(cols)} FROM {relation_sql(table, as_of)}")


class SnowflakeEngine:
    """What :class:`~syncer.sources.snowflake.SnowflakeSource` adds for the unchanged check and the
    engine path (kept here so the source module stays readable): the change marker and ``unload``."""

    def change_marker(self: Any, table: Any) -> str | None:
        # Snowpark local testing runs no SQL text: nothing is confirmed there (every table exports).
        if table.query is not None or table.source is None or self.local_testing:
            return None
        sql, params = marker_sql(table.source)
        return marker_token(self._run(table, "change marker", lambda s: s.sql(sql, params=params).collect())[0])

    @property
    def supports_unload(self: Any) -> bool:
        return not self.local_testing  # COPY INTO runs on a real account only

    def unload(self: Any, table: Any, schema: Any, folder: Path, *, compression: str, row_group_rows: int) -> None:
        """COPY INTO this run's stage prefix, GET into ``folder``, REMOVE (see the module docstring).
        Snowflake picks the Parquet codec and row groups; ``compression``/``row_group_rows`` are DuckDB's."""
        run_id = folder.parent.name  # staging/<run id>/.engine-<table>
        pfx, sql = unload_sql(table, schema, self._as_of, run_id)
        rows = self.count(table)

        def unload(session: Any) -> list[Path]:
            stage = SnowparkStage(session)
            if getattr(self, "_swept", None) != run_id:
                sweep(stage, run_id)
                self._swept = run_id
            return download(stage, sql, pfx, folder, table.name, rows)

        # Snowflake's errors are wrapped once, by the source (a missing stage: "run setup.sql")
        self._run(table, "unload (is the stage SYNC_DB.SYNC.SYNCER_UNLOAD created? see spcs/setup.sql)", unload)
