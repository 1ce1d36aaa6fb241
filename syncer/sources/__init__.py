"""Sources: where the rows come from. ``base`` is the interface the export needs; ``duckdb`` (the
embedded demo warehouse and any DuckDB file) and ``snowflake`` (Snowpark) implement it; ``demo``
builds the demo warehouse. :func:`open_source` picks one by ``[source] kind`` and imports only that
one (Snowpark is never loaded for a DuckDB run).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from syncer.config import SourceConfig
    from syncer.sources.base import Source


def open_source(cfg: SourceConfig) -> Source:
    """The source named by ``[source] kind``."""
    if cfg.kind == "duckdb":
        from syncer.sources.duckdb import DuckDBSource

        return DuckDBSource(cfg)
    if cfg.kind == "snowflake":
        from syncer.sources.snowflake import SnowflakeSource

        return SnowflakeSource(cfg)
    raise AssertionError(f"config validation let through source kind {cfg.kind!r}")
