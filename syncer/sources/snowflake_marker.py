"""The Snowflake change marker: one metadata call per table, no scan.

``SYSTEM$LAST_CHANGE_COMMIT_TIME('<table>')`` returns a token that increases with every DML commit on
the table (Snowflake documents it as exact for DML: "for each DML operation performed on the table,
the returned value increases"). ``INFORMATION_SCHEMA.TABLES.LAST_ALTERED`` is not used: it also moves
for background maintenance (reclustering, metadata operations), so it would re-export tables that did
not change, and its documentation does not promise it moves for every DML. DDL (a column added) is
caught by comparing the Arrow schema as well (:mod:`syncer.export.unchanged`).

A view is never confirmed: the same query returns the object's ``TABLE_TYPE`` and only a
``BASE TABLE`` yields a marker (a view's token follows the tables it reads, not its text or its
non-deterministic functions).
"""

from __future__ import annotations

from typing import Any

from syncer.sources.base import quote_ident
from syncer.sources.snowflake_types import sf_table_name

__all__ = ["marker_sql", "marker_token"]


def marker_sql(source: str) -> tuple[str, list[str | None]]:
    """The SQL (with ``?`` binds) giving the table's change token and its type, for ``db.schema.table``."""
    parts = [p.upper() for p in source.split(".")]
    info = f"{quote_ident(parts[0])}.INFORMATION_SCHEMA.TABLES" if len(parts) == 3 else "INFORMATION_SCHEMA.TABLES"
    sql = (
        "SELECT SYSTEM$LAST_CHANGE_COMMIT_TIME(?) AS TOKEN, "
        f"(SELECT MAX(TABLE_TYPE) FROM {info} WHERE TABLE_NAME = ? AND TABLE_SCHEMA = COALESCE(?, CURRENT_SCHEMA())) AS KIND"
    )
    return sql, [sf_table_name(source), parts[-1], parts[-2] if len(parts) > 1 else None]


def marker_token(row: Any) -> str | None:
    """``sf:<token>`` for a base table's row of :func:`marker_sql`, None for anything else."""
    token, kind = row[0], row[1]
    if token is None or kind != "BASE TABLE":
        return None
    return f"sf:{int(token)}"
