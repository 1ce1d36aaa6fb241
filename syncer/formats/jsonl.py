"""JSON Lines: one object per line; decimals as strings, times as ISO-8601, binary as base64."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from syncer.formats.base import READ_BATCH, Format, TableWriter, selected
from syncer.formats.files import StreamTableWriter

__all__ = ["JsonlFormat", "JsonlTableWriter", "json_default"]


class JsonlTableWriter(StreamTableWriter):
    def _write(self, batch: pa.RecordBatch) -> None:
        lines = [json.dumps(row, default=json_default, ensure_ascii=False) for row in batch.to_pylist()]
        if lines:
            self.stream.write(("\n".join(lines) + "\n").encode("utf-8"))


def json_default(value: Any) -> Any:
    """The JSON spelling of a value ``json`` has none for (the reader parses it back by column type)."""
    if isinstance(value, decimal.Decimal):
        return str(value)
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


class JsonlFormat(Format):
    name = "jsonl"

    def open_writer(self, path: Path, schema: pa.Schema, *, compression: str, row_group_rows: int, parts: int) -> TableWriter:
        return JsonlTableWriter(path, schema)

    def iter_batches(self, path: Path, schema: pa.Schema, columns: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
        target = selected(schema, columns)
        parsers = [_jsonl_parser(f.type) for f in target]
        with open(path, encoding="utf-8") as fh:
            while True:
                rows = [json.loads(line) for _, line in zip(range(READ_BATCH // 4), fh, strict=False) if line.strip()]
                if not rows:
                    return
                arrays = [pa.array([p(r.get(f.name)) for r in rows], type=f.type) for f, p in zip(target, parsers, strict=True)]
                yield pa.RecordBatch.from_arrays(arrays, schema=target)


def _jsonl_parser(t: pa.DataType) -> Any:
    def none_or(fn: Any) -> Any:
        return lambda v: None if v is None else fn(v)

    if pa.types.is_decimal(t):
        return none_or(decimal.Decimal)
    if pa.types.is_timestamp(t):
        return none_or(lambda v: dt.datetime.fromisoformat(v))
    if pa.types.is_date(t):
        return none_or(dt.date.fromisoformat)
    if pa.types.is_time(t):
        return none_or(dt.time.fromisoformat)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return none_or(base64.b64decode)
    if pa.types.is_duration(t):
        return none_or(lambda v: dt.timedelta(seconds=v))
    if t == pa.month_day_nano_interval():
        return none_or(lambda v: pa.MonthDayNano(v))
    return lambda v: v
