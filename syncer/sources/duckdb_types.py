"""Which DuckDB column types the export carries exactly, converts (recorded per column), or refuses
with the config that fixes it -- read from DuckDB's own type tree, nested types included."""

from __future__ import annotations

import json
from typing import Any

from syncer._exceptions import ValidationError
from syncer.config import TableConfig
from syncer.sources.base import quote_ident

__all__ = ["CONVERTED_TYPES", "INEXACT", "refuse_inexact", "type_ids"]


#: DuckDB types (by type id) its Arrow export cannot hand over exactly, and what goes wrong; found
#: anywhere in a column's type (so UHUGEINT[] and STRUCT(t TIMETZ) are caught too).
INEXACT = {
    "uhugeint": "DuckDB's Arrow export turns UHUGEINT into decimal128(38, 0), wrapping values above 2^127",
    "time with time zone": "DuckDB's Arrow export drops the UTC offset of TIMETZ",
    "bit": "DuckDB's Arrow export hands BIT over as its internal bytes (a padding byte, then the bits)",
    "bignum": "DuckDB's Arrow export hands BIGNUM (VARINT) over as its internal bytes",
    "union": "DuckDB's Arrow export of a UNION has no NULL of its own, and Parquet, CSV and JSONL hold no union",
}

#: DuckDB types its Arrow export hands over as another type holding the same values: each such
#: column's manifest entry says so (``"converted": "UUID -> string"``).
CONVERTED_TYPES = frozenset({"hugeint", "uuid"})


def type_ids(t: Any) -> set[str]:
    """The ids of a DuckDB type and of every type nested in it (field names are not types: a STRUCT
    field called "bit" is no BIT)."""
    ids = {t.id}
    if t.id in ("struct", "union", "map", "list", "array"):
        for _, child in t.children:
            if hasattr(child, "id"):
                ids |= type_ids(child)
    return ids


def refuse_inexact(table: TableConfig, types: dict[str, Any]) -> None:
    """A column the export cannot write exactly is refused up front, with the config that fixes it."""
    for name, t in types.items():
        if name in table.exclude_columns:
            continue
        for word in sorted(type_ids(t) & set(INEXACT)):
            col = quote_ident(name)
            raise ValidationError(
                f"table {table.name!r}: column {name!r} is {t}, which cannot be exported exactly ({INEXACT[word]}); "
                f"exclude it (exclude_columns = [{json.dumps(name)}]) or convert it in a query "
                f"(e.g. SELECT ..., CAST({col} AS VARCHAR) AS {col})"
            )
