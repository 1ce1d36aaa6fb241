"""The checks of one exported table, against the source and the previous snapshot.

Everything a check needs was measured on the way through by the export (the written profile, the
key order, the quarantine, the written file's size and sha256) or is re-read here from the closed
file (row count, stored schema); the verdicts are :class:`~syncer.volume.manifest.Check` records,
kept in the manifest and the run history. README "Validation" lists them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from syncer.config import TableConfig
from syncer.export.quarantine import Quarantine
from syncer.formats import WrittenFile, count_rows, file_schema, output_size, reread_batches, stored_schema
from syncer.sources.base import quote_ident
from syncer.validate.keys import DupResult
from syncer.validate.profile import CONVERTED, ProfileAccumulator, profile_differences
from syncer.volume.manifest import Check, Column, ManifestEntry

__all__ = ["Evidence", "check", "schema_contract", "schema_drift", "validate_table"]


def check(name: str, ok: bool, detail: str, severity: str = "error") -> Check:
    return Check(name, bool(ok), detail, severity)


def schema_contract(schema: pa.Schema) -> tuple[Column, ...]:
    """The manifest's columns; a column the source converted on the way says how (``converted``)."""
    return tuple(Column(f.name, _type_name(f), f.nullable, extra=_converted(f)) for f in schema)


def _converted(f: pa.Field) -> dict[str, Any]:
    note = (f.metadata or {}).get(CONVERTED)
    return {"converted": note.decode()} if note else {}


def _type_name(f: pa.Field) -> str:
    t = str(f.type)
    if f.metadata and f.metadata.get(b"syncer.logical_type") == b"json":
        return "json"
    return t


def schema_drift(old: Sequence[Column], new: Sequence[Column]) -> list[str]:
    """Readable differences between two schema contracts (nullability is not part of the contract)."""
    o = {c.name: c.type for c in old}
    n = {c.name: c.type for c in new}
    out = [f"added {k} ({n[k]})" for k in n if k not in o]
    out += [f"removed {k} ({o[k]})" for k in o if k not in n]
    out += [f"retyped {k}: {o[k]} -> {n[k]}" for k in n if k in o and o[k] != n[k]]
    return out


@dataclass(frozen=True)
class Evidence:
    """What the export measured of one table, and what it is held against."""

    table: TableConfig
    schema: pa.Schema
    source_rows: int
    source_profile: dict[str, Any]
    written_profile: ProfileAccumulator
    duplicates: DupResult
    quarantine: Quarantine
    written: WrittenFile
    previous: ManifestEntry | None
    accept_schema_change: bool


def validate_table(ev: Evidence) -> list[Check]:
    """Every check of the table, in the order the manifest lists them."""
    table, q = ev.table, ev.quarantine
    within = not q.over_budget  # quarantined rows are fine while within max_bad_rows
    cols = ev.written_profile.result()["columns"]
    checks = [_row_count(ev), _schema(ev)]
    checks.append(_null_check("primary_key_not_null", table.primary_key, "null primary key values", q, cols, within))
    checks.append(_dup_check(table, ev.duplicates))
    if table.not_null:
        checks.append(_null_check("not_null", table.not_null, "nulls in not_null columns", q, cols, within))
    if q.count:
        where = f"; rows in {q.path.name} under quarantine/{q.folder.name}/" if q.path.exists() else ""
        checks.append(check("bad_rows", within, f"{q.describe()}; max_bad_rows = {table.max_bad_rows}{where}"))
    checks += [_non_empty(ev), _profile(ev), _sha256(ev.written), _reopen(ev)]
    return checks


def _row_count(ev: Evidence) -> Check:
    rows, q = ev.written_profile.rows, ev.quarantine
    if q.count:
        ok = rows + q.count == ev.source_rows
        detail = f"source {ev.source_rows:,} rows = written {rows:,} + quarantined {q.count:,}"
        return check("row_count", ok, detail if ok else detail.replace(" = ", " != "))
    return check("row_count", rows == ev.source_rows, f"source {ev.source_rows:,} rows, written {rows:,}")


def _schema(ev: Evidence) -> Check:
    contract = schema_contract(ev.schema)
    if ev.previous is None or not ev.previous.schema:
        return check("schema", True, f"first export sets the contract ({len(contract)} columns)")
    drift = schema_drift(ev.previous.schema, contract)
    if not drift:
        return check("schema", True, f"matches the previous snapshot's contract ({len(contract)} columns)")
    if ev.accept_schema_change:
        return check("schema", True, "change accepted by the operator: " + "; ".join(drift))
    return check(
        "schema",
        False,
        "schema drift from the previous snapshot: "
        + "; ".join(drift)
        + f". If intended, re-run with `syncer sync --accept-schema-change {ev.table.name}`",
    )


def _non_empty(ev: Evidence) -> Check:
    rows = ev.written_profile.rows
    if ev.table.allow_empty:
        return check("non_empty", True, f"{rows:,} rows (empty allowed)")
    why = f"{rows:,} rows" if rows else "the table is empty; set allow_empty = true for this table if that is expected"
    return check("non_empty", rows > 0, why)


def _profile(ev: Evidence) -> Check:
    found = profile_differences(ev.source_profile, ev.written_profile.result(), ev.schema)
    diffs = [line for _, line in found]
    scope = " (source without the quarantined rows)" if ev.quarantine.count else ""
    if not diffs:
        return check("profile", True, f"{len(ev.schema)} columns agree with the source{scope} (nulls, min, max, sum)")
    more = f" (+{len(diffs) - 10} more)" if len(diffs) > 10 else ""
    return check("profile", False, "written data differs from the source: " + "; ".join(diffs[:10]) + more + _way_out(ev, found))


def _way_out(ev: Evidence, found: list[tuple[str | None, str]]) -> str:
    """What to do when values changed on the way (a type the source's Arrow export cannot hand over
    exactly, such as a TIME of 24:00:00): name the columns and the config that fixes them."""
    names = list(dict.fromkeys(c for c, _ in found if c is not None))
    if not names:
        return ""
    cols = ", ".join(f"{n!r} ({ev.schema.field(n).type})" for n in names[:5])
    first = quote_ident(names[0])
    return (
        f". Column(s) {cols} of table {ev.table.name!r} may hold values this type cannot carry exactly: "
        f"exclude them (exclude_columns = {json.dumps(names[:5])}) or convert them in a query "
        f"(e.g. SELECT ..., CAST({first} AS VARCHAR) AS {first})"
    )


def _sha256(written: WrittenFile) -> Check:
    try:
        on_disk = output_size(written.path)
    except OSError as exc:
        on_disk = -1
        detail = f"cannot stat {written.path.name}: {exc.strerror}"
    else:
        detail = f"sha256 {written.sha256} of {on_disk:,} bytes"
    ok = on_disk == written.bytes
    return check("sha256", ok, detail if ok else f"{detail}; {written.bytes:,} bytes were written")


def _reopen(ev: Evidence) -> Check:
    fmt, path, rows = ev.table.format, ev.written.path, ev.written_profile.rows
    changed: list[str] = []
    try:
        if fmt in TEXT_FORMATS:
            reread, changed = _reread_text(ev)
        else:
            reread = count_rows(fmt, path, ev.schema)
        stored = file_schema(fmt, path)
    except (OSError, pa.ArrowException, ValueError, ArithmeticError) as exc:
        # ValueError: a JSONL line that does not parse (or a value that is not its column's
        # spelling: bad base64, a bad date); ArithmeticError: a decimal that is not digits
        return check("reopen", False, f"cannot re-open {path.name}: {exc}")
    problems = []
    if changed:
        problems.append("values read back differ from the values written: " + "; ".join(changed[:5]))
    if reread != rows:
        problems.append(f"re-opened file has {reread:,} rows, {rows:,} were written")
    expected = stored_schema(fmt, ev.schema)  # Parquet stores timestamp[s] in ms; read_table casts back
    if stored is not None and not stored.equals(expected, check_metadata=False):
        problems.append(f"stored schema differs: {stored} vs {expected}")
    return check("reopen", not problems, "; ".join(problems) or f"re-opened {path.name}: {reread:,} rows")


#: formats whose every value is spelled as text by our own encoders: the re-read is profiled too
TEXT_FORMATS = ("csv", "jsonl")


def _reread_text(ev: Evidence) -> tuple[int, list[str]]:
    """Parse a text file back (every value, as the reader does) and profile what comes back: a
    spelling that loses a digit (a time's nanoseconds, a float's last bit) shows as a difference
    from the profile of the batches that were written, which the profile check cannot see. A
    writer that read its bytes back from the file while it wrote them (``written.read_back``,
    :mod:`syncer.formats.text_encoders`) did this parse already; else the closed file is parsed."""
    rb = ev.written.read_back
    if rb is not None:
        if rb.error is not None:
            raise ValueError(rb.error)
        acc, rows = rb.acc, rb.rows
    else:
        acc = ProfileAccumulator(ev.schema)
        for batch in reread_batches(ev.table.format, ev.written.path, ev.schema):
            acc.update(batch)
        rows = acc.rows
    return rows, [line for _, line in profile_differences(ev.written_profile.result(), acc.result(), ev.schema)]


def _null_check(name: str, columns: tuple[str, ...], label: str, q: Quarantine, cols: dict[str, Any], within: bool) -> Check:
    """Nulls found by screening (quarantined) plus any left in the written data (none, by construction)."""
    found = {c: q.by_column[c] + cols[c]["nulls"] for c in columns if q.by_column[c] + cols[c]["nulls"]}
    if not found:
        return check(name, True, "no nulls in " + ", ".join(columns))
    ok = within and not any(cols[c]["nulls"] for c in columns)
    mark = " (quarantined)" if ok else ""
    return check(name, ok, f"{label}: " + ", ".join(f"{c} has {n:,}" for c, n in found.items()) + mark)


def _dup_check(table: TableConfig, dup: DupResult) -> Check:
    keys = ", ".join(table.primary_key)
    if dup.quarantined:
        return check("primary_key_unique", dup.rows == 0, f"{keys} unique after quarantining the rows of duplicated keys")
    if not dup.rows:
        how = " (strictly increasing in the written order)" if dup.proven_by_order else ""
        return check("primary_key_unique", True, f"{keys} unique{how}")
    examples = ", ".join(
        "(" + ", ".join(repr(v) for v in k) + f") x{c}" for k, c in list(zip(dup.keys, dup.counts, strict=True))[:5]
    )
    return check(
        "primary_key_unique",
        False,
        f"{dup.groups:,} duplicate {keys} value(s) covering {dup.rows:,} rows, e.g. {examples}",
    )
