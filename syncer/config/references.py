"""``[[tables]] references``: declared relationships between configured tables, validated at load.

The form (one table's foreign keys, one entry per relationship)::

    references = { participant_id = "participants.participant_id" }
    references = { "course_id,term" = "offerings.course_id,term" }   # composite: comma-separated, in order
    references_severity = "warn"                                      # default "error"

A reference is refused at load, with one line naming it and the fix, when it names an unknown
table, an excluded column (on either side), a column twice, or a different number of columns on
the two sides. Whether a column exists in the source is only known once the table is read: a
reference to a column the written file does not have fails the check (see
:mod:`syncer.validate.references`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from syncer._exceptions import ConfigError
from syncer.config.model import Reference, TableConfig, suggest

__all__ = ["SEVERITIES", "check_references", "parse_references"]

SEVERITIES = ("error", "warn")


def parse_references(raw: dict[str, Any], name: str, where: str) -> tuple[Reference, ...]:
    """The ``references`` of one ``[[tables]]`` entry (targets are checked by :func:`check_references`)."""
    spec = raw.get("references", {})
    severity = raw.get("references_severity", "error")
    if severity not in SEVERITIES:
        raise ConfigError(
            f'{where}: table {name!r}: references_severity = {severity!r} is not one of "error", "warn" '
            '("error" fails the table and keeps its old data, "warn" publishes and records)'
        )
    if not isinstance(spec, dict):
        raise ConfigError(
            f'{where}: table {name!r}: references must be an inline table, e.g. references = {{ participant_id = "participants.participant_id" }}'
        )
    out = []
    for cols, target in spec.items():
        if not isinstance(target, str) or "." not in target:
            raise ConfigError(
                f'{where}: table {name!r}: references {cols!r} = {target!r} must name the target as "table.column" '
                f'(composite: "table.col1,col2"), e.g. {cols} = "participants.participant_id"'
            )
        tname, _, tcols = target.partition(".")
        columns, target_columns = _columns(cols), _columns(tcols)
        label = f"table {name!r}: references {cols!r} = {target!r}"
        if not all(columns) or not all(target_columns) or not tname:
            raise ConfigError(f'{where}: {label} has an empty column or table name; write it as "table.col1,col2"')
        if len(columns) != len(target_columns):
            raise ConfigError(
                f"{where}: {label} pairs {len(columns)} column(s) with {len(target_columns)}; list as many on each side, in order"
            )
        if len(set(columns)) != len(columns) or len(set(target_columns)) != len(target_columns):
            raise ConfigError(f"{where}: {label} lists a column twice")
        out.append(Reference(columns, tname, target_columns, severity))
    return tuple(out)


def _columns(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(","))


def check_references(tables: Sequence[TableConfig], where: str) -> None:
    """Every reference names a configured table, and no excluded column on either side."""
    by_name = {t.name: t for t in tables}
    for t in tables:
        for ref in t.references:
            label = f"table {t.name!r}: references {ref.label!r}"
            target = by_name.get(ref.target)
            if target is None:
                raise ConfigError(
                    f"{where}: {label} names unknown table {ref.target!r}{suggest(ref.target, list(by_name))}; "
                    f"configured: {', '.join(by_name)}"
                )
            for side, cols in ((t, ref.columns), (target, ref.target_columns)):
                for col in cols:
                    if col in side.exclude_columns:
                        raise ConfigError(
                            f"{where}: {label}: column {col!r} is in table {side.name!r}'s exclude_columns, so its "
                            "files never hold it; remove it from exclude_columns or drop the reference"
                        )
