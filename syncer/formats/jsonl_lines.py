"""JSON Lines built with Arrow compute, for flat tables of the common types: the values the SQL
spelling (:mod:`syncer.formats.jsonl_sql`) and the row-wise one give, at a fraction of DuckDB's cost.

Each column is spelled as JSON text column by column, then the columns and their keys are joined
element-wise (the joined array's data buffer is the lines), as :mod:`syncer.formats.csv_lines`
does for CSV. DuckDB's ``to_json(struct_pack(...))`` spent ~1 s per million rows of the 9-column
orders table and ~45 ms per thousand rows of 300 columns, and held ~70 MiB of JSON text outside its
buffer manager for a wide batch; these joins hold only the batch's text.

The spellings, each giving the value the row-wise encoder writes (``tests/test_jsonl_lines.py``
holds them to it on the type catalogue and on generated batches):

* integers, booleans: Arrow's cast (``12``, ``true``); null: ``null``;
* float64: Arrow's shortest round-trip text, ``.0`` appended when it reads as an integer (``-0.0``
  keeps its sign), NaN and infinities as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``;
* strings: quoted, ``\\`` and ``"`` escaped (a batch with a control character goes to the SQL path);
* decimals of scale 0-6: Arrow's plain digits, quoted; dates ``"YYYY-MM-DD"``; timestamps in
  microseconds ``"YYYY-MM-DDTHH:MM:SS[.ffffff]"`` (the fraction only when not zero), ``Z`` for UTC
  (a batch with a date outside years 1-9999 goes to the SQL path, which names what it cannot spell).
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc

from syncer.formats.csv_lines import _concat, _literal, buffer_of

__all__ = ["encode", "supported"]

#: days from the epoch to 0001-01-01 and to 9999-12-31: the years ISO-8601 spells in four digits
_FIRST_DAY, _LAST_DAY = -719_162, 2_932_896
_US_PER_DAY = 86_400_000_000


def _flat(t: pa.DataType) -> bool:
    return (
        pa.types.is_integer(t)
        or pa.types.is_boolean(t)
        or pa.types.is_float64(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or (pa.types.is_decimal(t) and 0 <= t.scale <= 6)
        or pa.types.is_date32(t)
        or (pa.types.is_timestamp(t) and t.unit == "us" and t.tz in (None, "UTC"))
    )


def supported(schema: pa.Schema) -> bool:
    """Whether every column is one of the types spelled here (and every name is text)."""
    return len(schema) > 0 and all(f.name and _flat(f.type) for f in schema)


def _in_years(values: pa.Array, per_day: int) -> bool:
    """Whether every value (days, or microseconds: ``per_day``) falls in years 1-9999."""
    mm = pc.min_max(values)
    lo, hi = mm["min"].as_py(), mm["max"].as_py()
    return lo is None or (_FIRST_DAY * per_day <= lo and hi < (_LAST_DAY + 1) * per_day)


def _bytes(arr: pa.Array) -> pa.Array | None:
    """The character data of a string array as bytes (all of its buffer: a byte outside the
    array's slice can only send a batch to the SQL path), or None when it has none."""
    data = arr.buffers()[2]
    return None if data is None or not data.size else pa.Array.from_buffers(pa.uint8(), data.size, [None, data])


def _quoted(text: pa.Array) -> pa.Array:
    return _concat(pa.string(), '"', text, '"')


def _float(arr: pa.Array) -> pa.Array:
    text = pc.cast(arr, pa.string())
    # Arrow spells a whole number below 1e15 as bare digits ("5", "-0"), which JSON readers take
    # for an integer (and -0 for 0); past it, or with a fraction, there is an "e" or a "."
    whole = pc.invert(pc.match_substring_regex(text, "[.en]"))
    text = pc.if_else(whole, _concat(pa.string(), text, ".0"), text)
    if pc.any(pc.is_nan(arr)).as_py() or pc.any(pc.is_inf(arr)).as_py():
        text = pc.if_else(pc.is_nan(arr), _literal('"NaN"', pa.string()), text)
        # the sign without a Python scalar (pyarrow's first conversion of one imports pandas)
        inf, negative = pc.is_inf(arr), pc.less(arr, pc.negate(arr))
        text = pc.if_else(pc.and_(inf, pc.invert(negative)), _literal('"Infinity"', pa.string()), text)
        text = pc.if_else(pc.and_(inf, negative), _literal('"-Infinity"', pa.string()), text)
    return text


def _value(arr: pa.Array) -> pa.Array | None:
    """The column's JSON text (nulls still null), or None: this batch needs the SQL path."""
    t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        data = _bytes(arr)
        if data is not None and pc.min(data).as_py() < 0x20:
            return None  # a control character: JSON escapes it, DuckDB spells it
        text = pc.replace_substring(pc.replace_substring(arr, "\\", "\\\\"), '"', '\\"')
        return _quoted(text.cast(pa.string()))
    if pa.types.is_float64(t):
        return _float(arr)
    if pa.types.is_decimal(t):
        return _quoted(pc.cast(arr, pa.string()))
    if pa.types.is_date32(t):
        return _quoted(pc.cast(arr, pa.string())) if _in_years(arr.cast(pa.int32()), 1) else None
    if pa.types.is_timestamp(t):
        if not _in_years(arr.cast(pa.int64()), _US_PER_DAY):
            return None
        text = pc.utf8_replace_slice(pc.cast(arr.cast(pa.timestamp("us")), pa.string()), 10, 11, "T")
        text = pc.if_else(pc.ends_with(text, ".000000"), pc.utf8_slice_codeunits(text, 0, 19), text)
        return _concat(pa.string(), '"', text, 'Z"' if t.tz else '"')
    return pc.cast(arr, pa.string())  # integers, booleans


def encode(batch: pa.RecordBatch) -> pa.Buffer | None:
    """The batch's rows as JSON Lines (each ending in ``\\n``), one buffer; None: a value here has
    no spelling of this module's (a control character, a year past four digits)."""
    if not batch.num_rows:
        return pa.py_buffer(b"")
    parts: list[pa.Array | str] = []
    for i, (field, arr) in enumerate(zip(batch.schema, batch.columns, strict=True)):
        text = _value(arr)
        if text is None:
            return None
        if text.null_count:
            text = pc.fill_null(text, _literal("null", pa.string()))
        key = json.dumps(field.name, ensure_ascii=False)
        parts += [("{" if i == 0 else ",") + key + ":", text]
    parts.append("}\n")
    return buffer_of(_concat(pa.string(), *parts))
