"""Load everything a sync imports before it takes the volume lock.

An import is file I/O (``stat``, ``open``, ``read``, ``mmap``, ``dlopen``): done lazily in the middle of
a run, a failing or hanging volume or disk turns into a failing or hanging *import*, deep in the
dynamic loader where no error can be wrapped and no watchdog's Python can run. Loaded up front, a
fault there comes before the run has touched the volume, and everything after the lock is the run's
own I/O, which the run reports.
"""

from __future__ import annotations

import importlib

from syncer.config import Config

__all__ = ["modules_for", "preload"]

#: what every sync imports on its way (the export, validation, the DuckDB scans of keys and references)
_COMMON = (
    "pyarrow",
    "pyarrow.compute",
    "pyarrow.ipc",
    "duckdb",
    "syncer.formats",
    "syncer.validate.keys",
    "syncer.validate.references",
    "syncer.export.table",
    "_strptime",
    "subprocess",
)
#: what each format named in the config adds (the registry, syncer.formats, loads the rest of them)
_FORMAT = {
    "parquet": ("pyarrow.parquet",),
    "csv": ("pyarrow.csv",),
    "jsonl": ("syncer.formats.jsonl_sql",),
    "arrow": (),
}
#: pandas is not among them: nothing a DuckDB sync does needs it, and it is ~0.2 s of every process
#: (tests/test_imports.py holds a sync to never import it). pytz is what DuckDB hands TIMESTAMPTZ
#: values to Python with (a key range, a sample of keys): small, and loaded here rather than mid-run.
_SOURCE = {
    "duckdb": ("syncer.sources.duckdb", "pytz"),
    # Snowpark converts through pandas on some paths (its local testing always does)
    "snowflake": ("syncer.sources.snowflake", "syncer.sources.snowflake_unload", "snowflake.snowpark", "pandas"),
}


def modules_for(cfg: Config) -> tuple[str, ...]:
    """What a sync of ``cfg`` imports: the common part, its formats', its source kind's."""
    formats = dict.fromkeys(t.format for t in cfg.tables)
    per_format = (m for f in formats for m in _FORMAT.get(f, ()))
    return tuple(dict.fromkeys((*_COMMON, *per_format, *_SOURCE.get(cfg.source.kind, ()))))


def preload(cfg: Config) -> tuple[str, ...]:
    """Import what a sync of ``cfg`` will need; returns what could not be imported (the run reports it)."""
    missing = []
    for name in modules_for(cfg):
        try:
            importlib.import_module(name)
        except ImportError:  # an extra that is not installed: the step that needs it says so
            missing.append(name)
    return tuple(missing)
