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

__all__ = ["preload"]

#: what every sync imports on its way (formats, validation, the DuckDB scans of keys and references,
#: pandas through pyarrow's schema metadata and DuckDB's type checks)
_COMMON = (
    "pyarrow",
    "pyarrow.compute",
    "pyarrow.csv",
    "pyarrow.json",
    "pyarrow.parquet",
    "pyarrow.ipc",
    "pyarrow.pandas_compat",
    "pyarrow.vendored.version",
    "pandas",
    "duckdb",
    "syncer.formats",
    "syncer.formats.jsonl_sql",
    "syncer.validate.keys",
    "syncer.validate.references",
    "syncer.export.table",
    "_strptime",
    "subprocess",
)
_SOURCE = {
    "duckdb": ("syncer.sources.duckdb",),
    "snowflake": ("syncer.sources.snowflake", "syncer.sources.snowflake_unload", "snowflake.snowpark"),
}


def preload(cfg: Config) -> tuple[str, ...]:
    """Import what a sync of ``cfg`` will need; returns what could not be imported (the run reports it)."""
    missing = []
    for name in (*_COMMON, *_SOURCE.get(cfg.source.kind, ())):
        try:
            importlib.import_module(name)
        except ImportError:  # an extra that is not installed: the step that needs it says so
            missing.append(name)
    return tuple(missing)
