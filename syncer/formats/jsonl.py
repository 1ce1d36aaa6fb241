"""JSON Lines: one JSON object per line (RFC 8259: no NaN/Infinity tokens), one encoding per type.

| Arrow type                    | JSON value                                                        |
|-------------------------------|-------------------------------------------------------------------|
| null                          | ``null`` (a key is never left out)                                |
| bool, integers                | ``true``/``false``, numbers                                       |
| float                         | numbers (shortest round-trip form, ``-0.0`` kept); NaN, +inf, -inf as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` |
| decimal                       | a string of plain digits at the column's scale (``"0.0000000001"``, never ``1E-10``) |
| string (JSON, UUID text too)  | a string                                                          |
| binary, fixed-size binary     | a string: standard base64 with padding                            |
| date / time                   | ``"YYYY-MM-DD"`` / ``"HH:MM:SS[.ffffff]"`` (nine digits for time64[ns]) |
| timestamp                     | ISO-8601 ``"YYYY-MM-DDTHH:MM:SS[.fraction]"``; with a time zone in UTC with ``Z`` |
| duration                      | an integer count of the column's unit                             |
| interval (month_day_nano)     | ``{"months": m, "days": d, "nanoseconds": n}``                    |
| list                          | an array of its elements, each encoded by its type                |
| struct                        | an object of its fields                                           |
| map                           | an array of ``{"key": k, "value": v}`` objects, in order          |

An empty table is an empty file: its schema is the manifest's ``arrow_schema``. :data:`DIALECT` is
recorded in the manifest entry.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import datetime as dt
import decimal
import itertools
import json
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from syncer.formats import jsonl_lines
from syncer.formats.base import Format, TableWriter, decimal_array, read_rows, selected
from syncer.formats.jsonl_sql import WIDE_COLUMNS, SqlLines, plan, read_batches, read_plan
from syncer.formats.text_encoders import ENCODERS, ParallelTextWriter

__all__ = ["DIALECT", "JsonlFormat", "JsonlTableWriter", "dumps", "encode_rows", "json_default"]

#: what the manifest records about a JSONL file (``dialect``)
DIALECT: dict[str, Any] = {
    "json": "RFC 8259, UTF-8, one object per line, every column present",
    "nonfinite_floats": ["NaN", "Infinity", "-Infinity"],
    "decimal": "string, plain digits",
    "binary": "base64",
    "timestamp": "ISO-8601, UTC with Z when the column has a time zone",
    "duration": "integer count of the column's unit",
    "interval": "object: months, days, nanoseconds",
    "map": "array of {key, value} objects",
    "empty_table": "empty file; the schema is the manifest's arrow_schema",
}

log = logging.getLogger("syncer")

Encoder = Callable[[Any], Any]
_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


#: batches of fewer rows are spelled by Arrow compute where it can (see JsonlTableWriter.__init__)
ARROW_BELOW_ROWS = 32_768


class JsonlTableWriter(ParallelTextWriter):
    """Batches of flat tables of the common types spelled by Arrow compute
    (:mod:`syncer.formats.jsonl_lines`; a batch it declines, and every other table, by the next
    way), else by DuckDB's JSON functions (:mod:`syncer.formats.jsonl_sql`, native speed)
    when every column has an exact SQL spelling, else row by row in Python; a batch the SQL path
    refuses (a map with a repeated key, a value outside years 1-9999) goes row by row, which
    spells it or names the value it cannot, and so does every batch after it. Batches are spelled
    on ``encoders`` threads (each with its own DuckDB cursor) and written in order
    (:mod:`syncer.formats.text_encoders`); a table of more than ``WIDE_COLUMNS`` columns on one."""

    def __init__(
        self,
        path: Path,
        schema: pa.Schema,
        *,
        vectorised: bool = True,
        arrow: bool = True,
        arrow_always: bool = False,
        encoders: int | None = None,
    ) -> None:
        # Arrow's joins beat DuckDB's JSON functions on wide tables (300 columns: 0.85 s against
        # 1.25 s of CPU per 20k rows, none of DuckDB's ~70 MiB of JSON text) and on small batches
        # (DuckDB binds the projection for ~7 ms a call: 100 rows of the orders table 7.9 ms
        # against 1.0, 32k rows 66 against 56); on batches of 80k narrow rows DuckDB is a little
        # cheaper (1.23 s against 1.39 s per million rows)
        self._arrow = vectorised and arrow and jsonl_lines.supported(schema)
        wide = len(schema) > WIDE_COLUMNS
        self.arrow_below_rows = 1 << 62 if wide or arrow_always else ARROW_BELOW_ROWS
        if encoders is None:  # DuckDB's JSON text of a wide batch costs ~70 MiB per encoder: one then
            encoders = ENCODERS if self._arrow or not wide else 1
        super().__init__(path, schema, encoders=encoders)
        self._encoders = [(f.name, _encoder(f.type)) for f in schema]
        self._select = plan(schema) if vectorised else None
        self._sql: list[SqlLines | None] = [None] * self.encoders

    def encode(self, encoder: int, batch: pa.RecordBatch) -> list[Any]:
        if self._arrow and batch.num_rows < self.arrow_below_rows:
            try:
                buf = jsonl_lines.encode(batch)
            except pa.ArrowException as exc:  # (text past 2 GiB in one batch): DuckDB spells it
                log.debug("JSONL: Arrow's spelling refused a batch (%s)", exc)
                buf = None
            if buf is not None:
                return [buf]
        if self._select is not None:
            sql = self._sql[encoder]
            if sql is None:
                sql = self._sql[encoder] = SqlLines(self._select)
            try:
                return sql.encode_buffers(batch)
            except Exception as exc:  # any refusal: the row-wise encoder decides
                log.debug("JSONL: the SQL encoder refused a batch (%s); writing row by row", exc)
                self._select = None  # this batch and every later one, on every encoder
        lines = [json.dumps(row, ensure_ascii=False, allow_nan=False) for row in _rows(self._encoders, batch)]
        return [("\n".join(lines) + "\n").encode("utf-8")]

    def _finish(self) -> None:
        for k, sql in enumerate(self._sql):  # (abort calls it too)
            if sql is not None:
                sql.close()
                self._sql[k] = None


def _rows(encoders: list[tuple[str, Encoder]], batch: pa.RecordBatch) -> list[dict[str, Any]]:
    cols = [[enc(v) for v in _values(col)] for (_, enc), col in zip(encoders, batch.columns, strict=True)]
    names = [n for n, _ in encoders]
    return [dict(zip(names, row, strict=True)) for row in zip(*cols, strict=True)]


def _values(col: pa.Array) -> list[Any]:
    """The column as Python values; a time64[ns] as integer nanoseconds (a Python time stops at
    microseconds: its last three digits would be lost on the way). Time-zone and nanosecond
    timestamps and durations come as naive UTC datetimes and integers (:func:`_plain_type`): pyarrow's
    own conversion of those imports pandas (~0.2 s, after the sync took the volume lock)."""
    if col.type == pa.time64("ns"):
        return [None if v is None else _NanoTime(v) for v in col.cast(pa.int64()).to_pylist()]
    plain = _plain_type(col.type)
    if plain != col.type:
        with contextlib.suppress(pa.ArrowException):  # a cast Arrow lacks: its own conversion then
            return col.cast(plain).to_pylist()
    return col.to_pylist()


def _plain_type(t: pa.DataType) -> pa.DataType:
    """``t`` with each zoned timestamp naive (its UTC values), nanosecond timestamps and durations int64."""
    if (pa.types.is_timestamp(t) and t.unit == "ns") or pa.types.is_duration(t):
        return pa.int64()
    if pa.types.is_timestamp(t) and t.tz is not None:
        return pa.timestamp(t.unit)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = t.value_field.with_type(_plain_type(t.value_type))
        return pa.list_(inner) if pa.types.is_list(t) else pa.large_list(inner)
    if pa.types.is_struct(t):
        return pa.struct([t.field(i).with_type(_plain_type(t.field(i).type)) for i in range(t.num_fields)])
    return t


class _NanoTime(int):
    """Nanoseconds since midnight, spelled ``HH:MM:SS.fffffffff`` (as Arrow spells a time64[ns])."""

    def isoformat(self) -> str:
        seconds, ns = divmod(int(self), 10**9)
        return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" + (f".{ns:09d}" if ns else "")


def _nano_time(text: str) -> int:
    clock, _, frac = text.partition(".")
    h, m, sec = (int(x) for x in clock.split(":"))
    return ((h * 60 + m) * 60 + sec) * 10**9 + int((frac + "000000000")[:9])


def encode_rows(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    """The rows of ``batch`` spelled as a JSONL file spells them (one JSON-ready dict per row), for
    other JSONL files the engine writes (the quarantine)."""
    return _rows([(f.name, _encoder(f.type)) for f in batch.schema], batch)


def dumps(record: dict[str, Any]) -> str:
    """One RFC 8259 line for a record: values :func:`encode_rows` made pass through; other Python
    values get the same spellings by their kind (non-finite floats as strings, decimals plain,
    times ISO-8601, bytes base64), since no column type says more."""
    return json.dumps(_finite(record), ensure_ascii=False, allow_nan=False, default=json_default)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, pa.MonthDayNano):
        return {"months": value.months, "days": value.days, "nanoseconds": value.nanoseconds}
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def json_default(value: Any) -> Any:
    """The JSON spelling of a scalar ``json`` has none for (decimals plain, times ISO-8601, bytes base64)."""
    if isinstance(value, decimal.Decimal):
        return _plain(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        return value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _plain(value: decimal.Decimal) -> str:
    return format(value, "f")


def _float(v: float) -> Any:
    if math.isfinite(v):
        return v
    return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")


def _none_or(fn: Encoder) -> Encoder:
    return lambda v: None if v is None else fn(v)


def _timestamp(t: pa.TimestampType) -> Encoder:
    def enc(v: Any) -> str:
        if isinstance(v, int):  # integer nanoseconds (_values): spelled as a pandas Timestamp would be
            return _nanos_iso(v) + ("Z" if t.tz is not None else "")
        if t.tz is not None and v.tzinfo is None:  # the naive UTC value of a zoned column (_values)
            return v.isoformat() + "Z"
        text = v.isoformat()  # a pandas Timestamp (unit ns) keeps its nanoseconds here
        if t.tz is not None:
            text = v.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        return text

    return enc


def _encoder(t: pa.DataType) -> Encoder:
    """How a value of type ``t`` (as ``to_pylist`` gives it) is spelled in JSON."""
    if pa.types.is_floating(t):
        return _none_or(_float)
    if pa.types.is_decimal(t):
        return _none_or(_plain)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return _none_or(lambda v: base64.b64encode(v).decode("ascii"))
    if pa.types.is_timestamp(t):
        return _none_or(_timestamp(t))
    if pa.types.is_date(t) or pa.types.is_time(t):
        return _none_or(lambda v: v.isoformat())
    if pa.types.is_duration(t):
        return _none_or(lambda v: v if isinstance(v, int) else int(v.value) if hasattr(v, "value") else _units(v, t.unit))
    if t == pa.month_day_nano_interval():
        return _none_or(lambda v: {"months": v.months, "days": v.days, "nanoseconds": v.nanoseconds})
    if pa.types.is_dictionary(t):
        return _encoder(t.value_type)
    if pa.types.is_map(t):
        k, item = _encoder(t.key_type), _encoder(t.item_type)
        return _none_or(lambda v: [{"key": k(a), "value": item(b)} for a, b in v])
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        inner = _encoder(t.value_type)
        return _none_or(lambda v: [inner(x) for x in v])
    if pa.types.is_struct(t):
        fields = [(t.field(i).name, _encoder(t.field(i).type)) for i in range(t.num_fields)]
        return _none_or(lambda v: {n: e(v[n]) for n, e in fields})
    return lambda v: v


_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_EPOCH = dt.datetime(1970, 1, 1)


def _nanos_iso(ns: int) -> str:
    """Nanoseconds since the epoch as ISO-8601: six fractional digits for whole microseconds, nine
    for any nanosecond, none for whole seconds (``pandas.Timestamp.isoformat``'s rule)."""
    seconds, frac = divmod(ns, 10**9)
    text = (_EPOCH + dt.timedelta(seconds=seconds)).isoformat()
    if not frac:
        return text
    return f"{text}.{frac // 1000:06d}" if frac % 1000 == 0 else f"{text}.{frac:09d}"


def _units(v: dt.timedelta, unit: str) -> int:
    micros = (v.days * 86_400 + v.seconds) * 1_000_000 + v.microseconds
    return micros * _PER_SECOND[unit] // 1_000_000


class JsonlFormat(Format):
    name = "jsonl"
    dialect = DIALECT
    #: DuckDB's JSON functions hold each column's spelled values, the row's text and its line while a
    #: batch is encoded: ~10x the batch for 300 columns (a 5.4 MiB batch: +54 MiB); with 6 batches
    #: more counted, 300 columns get 3 MiB batches, and the sync peaks at 393-398 MiB instead of 415-422
    encoder_batches = 6

    def open_writer(
        self, path: Path, schema: pa.Schema, *, compression: str, row_group_rows: int, parts: int, segmented: bool = False
    ) -> TableWriter:
        return JsonlTableWriter(path, schema)

    def reread(self, path: Path, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        """Parsed by DuckDB and cast by Arrow when every column allows it (the engine has DuckDB;
        the reader, :meth:`iter_batches`, stays pure Python and pyarrow): the same batches."""
        select = read_plan(schema)
        if select is None:
            yield from self.iter_batches(path, schema, None)
            return
        try:
            yield from read_batches(path, schema, select, read_rows(schema))
        except (ValueError, pa.ArrowException):
            # a file that does not read back: the reader's own parse names the line and the value
            # (it raises that message; if it reads the file after all, DuckDB's error stands)
            collections.deque(self.iter_batches(path, schema, None), maxlen=0)
            raise

    def iter_batches(self, path: Path, schema: pa.Schema, columns: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
        target = selected(schema, columns)
        parsers = [_decoder(f.type) for f in target]
        per_batch = max(1, read_rows(target) // 4)  # parsed row by row: Python objects first
        with open(path, encoding="utf-8") as fh:
            numbered = enumerate(fh, 1)
            while True:
                rows = [_parse(path, n, line) for n, line in itertools.islice(numbered, per_batch) if line.strip()]
                if not rows:
                    return
                arrays = [_array([p(r.get(f.name)) for r in rows], f.type) for f, p in zip(target, parsers, strict=True)]
                yield pa.RecordBatch.from_arrays(arrays, schema=target)


def _parse(path: Path, n: int, line: str) -> dict[str, Any]:
    """One line as a JSON object; ValueError naming the file, the line and what is wrong with it."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path.name} line {n} is not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(row, dict):
        raise ValueError(f"{path.name} line {n} is not a JSON object (found {type(row).__name__})")
    return row


def _array(values: list[Any], t: pa.DataType) -> pa.Array:
    if t == pa.time64("ns"):
        return pa.array([None if v is None else _nano_time(v) for v in values], pa.int64()).cast(t)
    if pa.types.is_timestamp(t) and t.unit == "ns":
        # Python datetimes stop at microseconds: Arrow parses the ISO-8601 text itself.
        return pa.array(values, pa.string()).cast(t)
    if pa.types.is_decimal(t):
        return decimal_array(values, t)
    return pa.array(values, type=t)


def _decoder(t: pa.DataType) -> Encoder:
    """The value ``pa.array(type=t)`` takes for the JSON spelling of :func:`_encoder` (and the
    spellings of earlier versions: bare NaN tokens, intervals as [months, days, nanoseconds])."""
    if pa.types.is_floating(t):
        return _none_or(lambda v: _NONFINITE[v] if isinstance(v, str) else float(v))
    if pa.types.is_decimal(t):
        return _none_or(decimal.Decimal)
    if pa.types.is_timestamp(t):
        if t.unit == "ns":
            return lambda v: v
        return _none_or(lambda v: dt.datetime.fromisoformat(v))
    if pa.types.is_date(t):
        return _none_or(dt.date.fromisoformat)
    if t == pa.time64("ns"):
        return lambda v: v  # parsed with its nine digits in _array
    if pa.types.is_time(t):
        return _none_or(dt.time.fromisoformat)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return _none_or(base64.b64decode)
    if pa.types.is_duration(t):
        return _none_or(lambda v: v if isinstance(v, int) else dt.timedelta(seconds=v))
    if t == pa.month_day_nano_interval():
        return _none_or(lambda v: pa.MonthDayNano([v["months"], v["days"], v["nanoseconds"]] if isinstance(v, dict) else v))
    if pa.types.is_dictionary(t):
        return _decoder(t.value_type)
    if pa.types.is_map(t):
        k, item = _decoder(t.key_type), _decoder(t.item_type)
        return _none_or(lambda v: [(k(e["key"]), item(e["value"])) for e in v])
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        inner = _decoder(t.value_type)
        return _none_or(lambda v: [inner(x) for x in v])
    if pa.types.is_struct(t):
        fields = [(t.field(i).name, _decoder(t.field(i).type)) for i in range(t.num_fields)]
        return _none_or(lambda v: {n: d(v.get(n)) for n, d in fields})
    return lambda v: v
