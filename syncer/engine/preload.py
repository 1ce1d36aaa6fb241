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

#: what every sync imports on its way (the export, validation, the DuckDB scans of keys and
#: references). Every format's module, not only the config's: a table carried over from the previous
#: snapshot may be in a format the config no longer names (its references are read from that file).
_COMMON = (
    "pyarrow",
    "pyarrow.compute",
    "pyarrow.ipc",
    "pyarrow.parquet",
    "duckdb",
    "syncer.formats",
    "syncer.formats.parquet",
    "syncer.formats.stats",
    "syncer.formats.csv",
    "syncer.formats.jsonl",
    "syncer.formats.arrow",
    "syncer.validate.keys",
    "syncer.validate.references",
    "syncer.export.table",
    "_strptime",
    "subprocess",
)
#: what each source kind adds. pandas is not among DuckDB's: nothing a DuckDB sync does needs it,
#: and it is ~0.2 s of every process (tests/test_imports.py holds a sync to never import it). pytz
#: is what DuckDB hands TIMESTAMPTZ values to Python with (a profile's bounds, a key range): small,
#: and loaded here rather than mid-run.
_SOURCE = {
    "duckdb": ("syncer.sources.duckdb", "pytz"),
    # Snowpark converts through pandas on some paths (its local testing always does)
    "snowflake": ("syncer.sources.snowflake", "syncer.sources.snowflake_unload", "snowflake.snowpark", "pandas"),
}


def modules_for(cfg: Config) -> tuple[str, ...]:
    """What a sync of ``cfg`` imports: the common part, its source kind's, its alert channels'."""
    webhooks = ("urllib.request",) if cfg.alerts.enabled and cfg.alerts.webhooks else ()
    return (*_COMMON, *_SOURCE.get(cfg.source.kind, ()), *webhooks)


def preload(cfg: Config) -> tuple[str, ...]:
    """Import what a sync of ``cfg`` will need; returns what could not be imported (the run reports it)."""
    missing = []
    for name in modules_for(cfg):
        try:
            importlib.import_module(name)
        except ImportError:  # an extra that is not installed: the step that needs it says so
            missing.append(name)
    return tuple(missing)
