"""Per-column profiles: what the source says vs what was written.

A profile is ``{"rows": n, "columns": {name: {"nulls", "min", "max", "sum", "nans"}}}`` with values in a
canonical JSON-able form (see :func:`canonical`). Which statistics a column gets depends only on its
Arrow type (:func:`plan_for`), so the source side (SQL aggregates) and the written side (Arrow compute
on the batches handed to the writer) compute the same things. Comparison is exact except float sums,
whose summation order differs between engines.

Both sides go through :func:`build_profile`, which puts each value in the form of the column's Arrow
type: an integer min of a ``decimal128(38, 0)`` column (DuckDB's HUGEINT) is a decimal like the
written side's; nanosecond timestamps and times arrive as integer nanoseconds (a Python datetime
holds only microseconds) and are spelled with nine digits; text bounds longer than
:data:`TEXT_BOUND` characters are cut the way Parquet statistics cut them (a prefix for min, a prefix
with its last character incremented for max, ``"truncated": true``), so one long value does not
make the manifest long.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "CONVERTED",
    "JSON_META",
    "TEXT_BOUND",
    "ColumnPlan",
    "ProfileAccumulator",
    "canonical",
    "compare_profiles",
    "plan_for",
    "profile_differences",
    "range_from_footer",
    "utc_datetime",
]

#: Field metadata key/value that marks a string column holding JSON text.
JSON_META = {b"syncer.logical_type": b"json"}

#: Field metadata key whose value says how a source type was converted on its way to Arrow
#: (``"UUID -> string"``); the manifest's schema records it per column as ``converted``.
CONVERTED = b"syncer.converted"

# Decimal arithmetic rounds to its context precision (28 digits by default), but decimal128(38, s)
# values and their sums carry up to 38 digits: under this context normalize() and + never round.
_EXACT = decimal.Context(prec=1000)

#: Characters of a text min/max kept in a profile (Parquet's column indexes keep 64 bytes).
TEXT_BOUND = 64

_EPOCH = dt.datetime(1970, 1, 1)

#: the written side's profile makes one pass per this many rows, the batches before it gathered
#: (zero-copy, a Table of them): a pass costs ~40 us of compute calls per column whatever its
#: length, so a 300-column table in batches of ~700 rows spent most of its profile on the calls
GATHER_ROWS = 16_384
#: ... or once the gathered batches hold this many bytes: what the profile holds beyond the batches
#: in flight (a wide table's batches are ~4 MiB, see syncer._memory.table_batch_bytes)
GATHER_BYTES = 8 * 2**20


@dataclass(frozen=True)
class ColumnPlan:
    name: str
    minmax: bool  # min/max are meaningful and comparable across engines
    total: bool  # sum is computed
    floating: bool  # NaN counted separately and excluded from min/max/sum
    integer: bool  # exact integer sum (guard against int64 overflow)
    #: how min/max/sum are put in canonical form: "" as they come, "decimal" (integers become
    #: decimals), "text" (bounds cut to TEXT_BOUND), "ns_time" / "ns_ts" / "ns_tstz" (min/max as
    #: integer nanoseconds since midnight / the epoch)
    form: str = ""

    @property
    def nanos(self) -> bool:
        return self.form.startswith("ns_")


def is_json(field: pa.Field) -> bool:
    return bool(field.metadata) and field.metadata.get(b"syncer.logical_type") == b"json"


def plan_for(field: pa.Field) -> ColumnPlan:
    t = field.type
    floating = pa.types.is_floating(t)
    integer = pa.types.is_integer(t)
    numeric = integer or floating or pa.types.is_decimal(t)
    orderable = (
        numeric
        or pa.types.is_boolean(t)
        or pa.types.is_date(t)
        or pa.types.is_timestamp(t)
        or pa.types.is_time(t)
        or ((pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)) and not is_json(field))
    )
    return ColumnPlan(field.name, minmax=orderable, total=numeric, floating=floating, integer=integer, form=_form(field))


def _form(field: pa.Field) -> str:
    t = field.type
    if pa.types.is_decimal(t):
        return "decimal"
    if (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)) and not is_json(field):
        return "text"
    if pa.types.is_time64(t) and t.unit == "ns":
        return "ns_time"
    if pa.types.is_timestamp(t) and t.unit == "ns":
        return "ns_tstz" if t.tz else "ns_ts"
    return ""


def _nanos_iso(ns: int, form: str) -> str:
    """Integer nanoseconds as ISO text with nine fractional digits (exact, unlike a Python datetime)."""
    seconds, frac = divmod(ns, 10**9)
    if form == "ns_time":
        text = (dt.datetime.min + dt.timedelta(seconds=seconds)).time().isoformat()
    else:
        text = (_EPOCH + dt.timedelta(seconds=seconds)).isoformat()
    return f"{text}.{frac:09d}" + ("Z" if form == "ns_tstz" else "")


def _text_upper(prefix: str) -> str | None:
    """The shortest string above every string that starts with ``prefix`` (None if none exists):
    the last character that can be incremented, incremented (code point order is UTF-8 byte order,
    the order DuckDB, Snowflake and Arrow compare text in)."""
    for j in range(len(prefix) - 1, -1, -1):
        c = ord(prefix[j])
        if c < 0x10FFFF:
            nxt = 0xE000 if 0xD800 <= c + 1 <= 0xDFFF else c + 1  # surrogates are not characters
            return prefix[:j] + chr(nxt)
    return None


def _bound(value: Any, plan: ColumnPlan, stat: str, cut: list[bool]) -> Any:
    """One min/max/sum in its canonical form for ``plan`` (``cut`` is set when text was truncated)."""
    if value is None:
        return None
    if plan.form == "decimal" and isinstance(value, int) and not isinstance(value, bool):
        value = decimal.Decimal(value)  # DuckDB gives HUGEINT (decimal128(38, 0) in Arrow) as int
    elif plan.nanos and isinstance(value, int) and stat in ("min", "max"):
        return _nanos_iso(value, plan.form)
    elif plan.form == "text" and isinstance(value, str) and len(value) > TEXT_BOUND:
        upper = _text_upper(value[:TEXT_BOUND]) if stat == "max" else value[:TEXT_BOUND]
        if upper is not None:
            cut.append(True)
            return upper
    return canonical(value)


def canonical(value: Any) -> Any:
    """One JSON-able form per value, identical whichever engine produced it."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, decimal.Decimal):
        if value == 0:
            return "0"
        return format(value.normalize(_EXACT), "f")
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
            return value.replace(tzinfo=None).isoformat() + "Z"
        return value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def range_from_footer(field: pa.Field) -> bool:
    """Whether min/max of this column can be taken from Parquet footer statistics: types whose
    statistics pyarrow gives back as the same Python values as Arrow does (and whose min/max cost
    the most to compute again: strings, decimals, floats, timestamps)."""
    t = field.type
    if is_json(field) or pa.types.is_dictionary(t):
        return False
    return (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_string_view(t)
        or pa.types.is_decimal(t)
        or t in (pa.float32(), pa.float64(), pa.date32())
        or (pa.types.is_timestamp(t) and t.unit != "ns")
    )


class ProfileAccumulator:
    """Builds a profile incrementally from RecordBatches (never holds the table).

    With ``footer_ranges``, min/max of the columns :func:`range_from_footer` accepts are not computed
    here: the Parquet writer computes them for its statistics anyway, and :meth:`merge_range` adds
    them from the written file's footer (see ``syncer.formats.stats.parquet_ranges``).
    """

    def __init__(self, schema: pa.Schema, *, footer_ranges: bool = False) -> None:
        self.schema = schema
        self.plans = [plan_for(f) for f in schema]
        self.rows = 0
        self._gathered: list[pa.RecordBatch] = []  # batches gathered for one pass (GATHER_ROWS)
        self._gathered_rows = 0
        self._gathered_bytes = 0
        self._cols: list[dict[str, Any]] = [{"nulls": 0, "min": None, "max": None, "sum": None, "nans": 0} for _ in self.plans]
        self.deferred: set[int] = (
            {i for i, (f, p) in enumerate(zip(schema, self.plans, strict=True)) if p.minmax and range_from_footer(f)}
            if footer_ranges
            else set()
        )

    def column_range(self, i: int) -> tuple[Any, Any]:
        self._flush()
        return self._cols[i]["min"], self._cols[i]["max"]

    def column_stats(self, i: int) -> dict[str, Any]:
        """Column ``i``'s raw statistics so far (nulls, min, max, sum, nans), a copy."""
        self._flush()
        return dict(self._cols[i])

    def merge_range(self, i: int, lo: Any, hi: Any) -> None:
        """Fold a min/max observed elsewhere (a footer, a re-read) into column ``i``."""
        if lo is None:
            return
        if isinstance(lo, float) and lo == 0:
            lo = 0.0  # Parquet statistics write a zero minimum as -0.0
        if isinstance(hi, float) and hi == 0:
            hi = 0.0
        self._flush()
        st = self._cols[i]
        st["min"] = lo if st["min"] is None or lo < st["min"] else st["min"]
        st["max"] = hi if st["max"] is None or hi > st["max"] else st["max"]

    def update(self, batch: pa.RecordBatch) -> None:
        """Add ``batch``. Small batches are gathered and profiled together (:data:`GATHER_ROWS`,
        :data:`GATHER_BYTES`): every column costs a few compute calls per pass whatever its length,
        and a wide table's batches are small (300 columns: ~700 rows), so its profile cost per row
        was that of the calls, not of the values."""
        self.rows += batch.num_rows
        self._gathered.append(batch)  # a batch big enough on its own is profiled at once, alone
        self._gathered_rows += batch.num_rows
        self._gathered_bytes += batch.nbytes
        if self._gathered_rows >= GATHER_ROWS or self._gathered_bytes >= GATHER_BYTES:
            self._flush()

    def _flush(self) -> None:
        if not self._gathered:
            return
        held, self._gathered, self._gathered_rows, self._gathered_bytes = self._gathered, [], 0, 0
        try:
            together: pa.RecordBatch | pa.Table = held[0] if len(held) == 1 else pa.Table.from_batches(held)
        except pa.ArrowInvalid:  # batches of differing schemas (field metadata): one pass each
            for batch in held:
                self._observe(batch)
            return
        self._observe(together)

    def _observe(self, batch: pa.RecordBatch | pa.Table) -> None:
        """One pass over ``batch`` (a Table's columns are chunked: one compute call covers every chunk)."""
        for i, plan in enumerate(self.plans):
            arr = batch.column(i)
            st = self._cols[i]
            st["nulls"] += arr.null_count
            if not plan.minmax or arr.null_count == len(arr):
                continue
            if plan.floating:
                nan_mask = pc.is_nan(arr)
                nans = pc.sum(nan_mask).as_py() or 0
                if nans:
                    st["nans"] += nans
                    arr = arr.filter(pc.invert(nan_mask))
                    if len(arr) == arr.null_count:
                        continue
            if i in self.deferred:
                if plan.total:
                    self._add_sum(st, plan, arr, None, None)
                continue
            lo, hi = _min_max(arr, plan)
            if lo is None:
                continue
            st["min"] = lo if st["min"] is None or lo < st["min"] else st["min"]
            st["max"] = hi if st["max"] is None or hi > st["max"] else st["max"]
            if plan.total:
                self._add_sum(st, plan, arr, lo, hi)

    @staticmethod
    def _add_sum(st: dict[str, Any], plan: ColumnPlan, arr: pa.Array, lo: Any, hi: Any) -> None:
        if plan.integer and max(abs(lo), abs(hi)) * len(arr) >= 2**63:
            # pc.sum on int64 wraps silently; exact decimal arithmetic for this batch.
            s = pc.sum(arr.cast(pa.decimal128(38, 0))).as_py()
            s = int(s) if s is not None else None
        elif pa.types.is_decimal128(arr.type) and arr.type.precision + len(str(len(arr))) > 38:
            # a decimal128 sum (decimal128(38, s)) wraps silently past 38 digits; decimal256 holds any
            # batch's sum. n values of p digits sum to at most p + len(str(n)) digits: below 38 the
            # cast (15x the sum's time, a third of a 300-column table's profile) is not needed.
            s = pc.sum(arr.cast(pa.decimal256(76, arr.type.scale))).as_py()
        else:
            s = pc.sum(arr).as_py()
        if s is not None:
            if st["sum"] is None:
                st["sum"] = s
            elif isinstance(s, decimal.Decimal):
                st["sum"] = _EXACT.add(st["sum"], s)
            else:
                st["sum"] += s

    def result(self) -> dict[str, Any]:
        self._flush()
        return build_profile(self.rows, self.plans, self._cols)


def _min_max(arr: pa.Array, plan: ColumnPlan) -> tuple[Any, Any]:
    if plan.nanos:  # nanosecond values as integers: a Python datetime/time would drop the last three digits
        mm = pc.min_max(arr.cast(pa.int64()))
        return mm["min"].as_py(), mm["max"].as_py()
    t = arr.type
    if pa.types.is_timestamp(t) and t.tz:
        mm = pc.min_max(arr.cast(pa.int64()))
        return utc_datetime(mm["min"].as_py(), t.unit), utc_datetime(mm["max"].as_py(), t.unit)
    mm = pc.min_max(arr)
    return mm["min"].as_py(), mm["max"].as_py()


_UTC_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_UNIT = {"s": "seconds", "ms": "milliseconds", "us": "microseconds"}


def utc_datetime(value: int | None, unit: str) -> dt.datetime | None:
    """A time-zone timestamp's integer (``unit`` since the epoch, UTC) as an aware datetime: the
    instant pyarrow's ``as_py()`` gives, without it (its first time-zone conversion imports pandas,
    0.5-2 s of every sync with such a column)."""
    if value is None:
        return None
    return _UTC_EPOCH + dt.timedelta(**{_UNIT[unit]: value})


def build_profile(rows: int, plans: list[ColumnPlan], raw: list[dict[str, Any]]) -> dict[str, Any]:
    """Canonical profile from raw per-column values (shared by every engine)."""
    cols: dict[str, Any] = {}
    for plan, st in zip(plans, raw, strict=True):
        c: dict[str, Any] = {"nulls": int(st.get("nulls") or 0)}
        cut: list[bool] = []
        if plan.minmax:
            c["min"] = _bound(st.get("min"), plan, "min", cut)
            c["max"] = _bound(st.get("max"), plan, "max", cut)
            if cut:
                c["truncated"] = True  # text bounds cut to TEXT_BOUND characters (module docstring)
        if plan.total:
            c["sum"] = _bound(st.get("sum"), plan, "sum", cut)
        if plan.floating:
            c["nans"] = int(st.get("nans") or 0)
        cols[plan.name] = c
    return {"rows": int(rows), "columns": cols}


def compare_profiles(source: dict[str, Any], written: dict[str, Any], schema: pa.Schema) -> list[str]:
    """Differences as readable lines; empty when the profiles agree."""
    return [line for _, line in profile_differences(source, written, schema)]


def profile_differences(source: dict[str, Any], written: dict[str, Any], schema: pa.Schema) -> list[tuple[str | None, str]]:
    """Differences as (column, readable line) pairs, column None for the row count."""
    diffs: list[tuple[str | None, str]] = []
    # Columns whose sum the source could only give approximately (a decimal sum past 38 digits).
    approx = set(source.get("approx_sum", ()))
    if source["rows"] != written["rows"]:
        diffs.append((None, f"rows: source {source['rows']} vs written {written['rows']}"))
    for field in schema:
        s = source["columns"].get(field.name)
        w = written["columns"].get(field.name)
        if s is None or w is None:
            diffs.append((field.name, f"{field.name}: missing from the {'source' if s is None else 'written'} profile"))
            continue
        for stat in sorted(set(s) | set(w)):
            a, b = s.get(stat), w.get(stat)
            if stat == "sum" and field.name in approx:
                if a is not None and b is not None and _floats_close(float(a), float(b), written["rows"]):
                    continue
            elif stat == "sum" and pa.types.is_floating(field.type):
                if _floats_close(a, b, written["rows"]):
                    continue
            elif a == b:
                continue
            diffs.append((field.name, f"{field.name}.{stat}: source {a!r} vs written {b!r}"))
    return diffs


def _floats_close(a: Any, b: Any, rows: int) -> bool:
    if a == b:
        return True
    if not isinstance(a, float) or not isinstance(b, float):
        return False
    # Summation order differs between engines; the error bound grows with the row count.
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12 * max(rows, 1) * max(abs(a), abs(b), 1.0))
