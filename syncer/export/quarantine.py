"""Isolating bad records: screening, bisecting and the quarantine file.

Rows that cannot be published are never dropped silently: each goes to
``quarantine/<run id>/<table>.jsonl`` as one JSON object per line, ``{"_reason": ..., "_stage": ...,
"row": {...}}``: ``_reason`` says what is wrong, ``_stage`` where it was caught (``read``,
``convert``, ``check``), ``_rows`` (when more than 1) how many rows the line stands for, and ``row``
holds the record's own columns. The record is nested, so a source column named ``_reason`` or
``_stage`` (or ``row``) keeps its value: no column name can collide with ours. The table's
``max_bad_rows`` decides whether the rest is published (status ``quarantined``) or the table fails
and keeps its previous data.

Quarantined rows are exactly what was kept out of the published data (a null e-mail, a malformed
name): the files are ``0600`` in a ``0700`` folder, readable by the syncing user only, or ``0640`` /
``0750`` and group-owned by ``[volume] quarantine_group`` when one is configured. App users, who read
the published snapshots, cannot read them.

* **screen**: rows with a null in a key or ``not_null`` column are split off each batch;
* **convert**: a batch that cannot be cast to the table's schema is halved until the rows that
  cannot be converted are found;
* **read**: when the source cannot even read a range of rows (a value it cannot convert), the
  table is re-read by key ranges, halving the failing ranges down to the offending keys;
* **duplicates**: rows sharing a key are all quarantined (no way to tell which one is right).
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from syncer._exceptions import BadRowsError, ValidationError, WriteError
from syncer.config import TableConfig
from syncer.formats import conform
from syncer.formats.jsonl import dumps, encode_rows
from syncer.sources.base import Exclusion, KeyRange, Source

__all__ = ["Quarantine", "convert", "ranged_batches", "screen"]

#: rows written to the quarantine file beyond ``max_bad_rows`` (examples for the operator)
EXAMPLES_OVER_BUDGET = 100


class Quarantine:
    """The bad rows of one table in one run (streamed to JSONL; counts and keys kept)."""

    def __init__(self, folder: Path, table: TableConfig, group: int | None = None) -> None:
        self.folder = folder
        self.table = table
        #: the group that may read the file too (``[volume] quarantine_group``), else the owner only
        self.group = group
        self.path = folder / f"{table.name}.jsonl"
        self.count = 0
        self.reasons: collections.Counter[str] = collections.Counter()
        self.by_column: collections.Counter[str] = collections.Counter()
        self.keys: set[tuple[Any, ...]] = set()
        self._fh: Any = None
        self._cap = table.max_bad_rows + EXAMPLES_OVER_BUDGET

    @property
    def over_budget(self) -> bool:
        return self.count > self.table.max_bad_rows

    def add(self, record: dict[str, Any], reason: str, stage: str, key: tuple[Any, ...] | None, n: int = 1) -> None:
        self.count += n
        self.reasons[reason] += n
        if key is not None and not any(v is None for v in key):
            self.keys.add(key)
        if self.count - n < self._cap:
            line: dict[str, Any] = {"_reason": reason, "_stage": stage}
            if n > 1:
                line["_rows"] = n
            line["row"] = record
            text = dumps(line) + "\n"  # the JSONL format's spellings: RFC 8259, no bare NaN
            try:
                if self._fh is None:
                    self._fh = self._open()
                self._fh.write(text)
            except OSError as exc:
                raise self._write_error(exc) from exc

    def _open(self) -> Any:
        """The file, private from its first byte: created with its final mode (no 0644 moment)."""
        dir_mode, file_mode = (0o750, 0o640) if self.group is not None else (0o700, 0o600)
        self.folder.mkdir(mode=dir_mode, parents=True, exist_ok=True)
        os.chmod(self.folder, dir_mode)  # mkdir's mode is cut by the umask, and the folder may exist
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, file_mode)
        try:
            os.fchmod(fd, file_mode)
            if self.group is not None:
                os.chown(self.folder, -1, self.group)
                os.fchown(fd, -1, self.group)
        except OSError:
            os.close(fd)
            raise
        return os.fdopen(fd, "a", encoding="utf-8")

    def add_rows(self, batch: pa.RecordBatch, reasons: list[str], stage: str) -> None:
        keys = self.table.primary_key
        for row, line, reason in zip(batch.to_pylist(), encode_rows(batch), reasons, strict=True):
            self.add(line, reason, stage, tuple(row.get(k) for k in keys))

    def exclusion(self) -> Exclusion:
        return Exclusion(self.table.primary_key, tuple(sorted(self.keys, key=repr)))

    def close(self) -> None:
        if self._fh is not None:
            fh, self._fh = self._fh, None
            try:
                fh.close()
            except OSError as exc:
                raise self._write_error(exc) from exc

    def discard(self) -> None:
        self.close()
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise self._write_error(exc) from exc
        self.count = 0
        self.reasons.clear()
        self.by_column.clear()
        self.keys.clear()

    def _write_error(self, exc: OSError) -> WriteError:
        return WriteError(
            f"table {self.table.name!r}: cannot write the quarantine file {self.path}: {exc.strerror or exc}; "
            "check free space and permissions on the volume"
        )

    def summary(self, root: Path) -> dict[str, Any]:
        return {
            "rows": self.count,
            "file": str(self.path.relative_to(root)) if self.path.exists() else None,
            "reasons": dict(self.reasons.most_common()),
            "max_bad_rows": self.table.max_bad_rows,
        }

    def describe(self) -> str:
        top = "; ".join(f"{r} ({n:,})" for r, n in self.reasons.most_common(3))
        return f"{self.count:,} bad row(s): {top}"


def screen(batch: pa.RecordBatch, table: TableConfig, q: Quarantine) -> pa.RecordBatch:
    """Split off rows with a null in a key or not_null column; returns the rest."""
    cols = list(dict.fromkeys([*table.primary_key, *table.not_null]))
    if all(batch.column(c).null_count == 0 for c in cols):
        return batch  # the fast path: nothing to look at
    masks = {c: pc.is_null(batch.column(c)) for c in cols if batch.column(c).null_count}
    bad_mask = None
    for m in masks.values():
        bad_mask = m if bad_mask is None else pc.or_(bad_mask, m)
    bad = batch.filter(bad_mask)
    reasons = []
    null_lists = {c: bad.column(c).is_null().to_pylist() for c in masks}
    for i in range(bad.num_rows):
        parts = []
        for c in masks:
            if null_lists[c][i]:
                q.by_column[c] += 1
                parts.append(f"null primary key {c}" if c in table.primary_key else f"null in not_null column {c}")
        reasons.append("; ".join(parts))
    q.add_rows(bad, reasons, "check")
    return batch.filter(pc.invert(bad_mask))


def convert(raw: pa.RecordBatch, schema: pa.Schema, table: TableConfig, q: Quarantine) -> list[pa.RecordBatch]:
    """Cast ``raw`` to ``schema``; rows that cannot be cast are found by halving and quarantined."""
    try:
        return [conform(raw, schema)]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        if raw.num_rows == 1:
            row = {k: (None if v is None else str(v)) for k, v in raw.to_pylist()[0].items()}
            q.add(row, f"cannot convert to the table's type: {exc}", "convert", tuple(row.get(k) for k in table.primary_key))
            _stop_if_over(q)
            return []
        if raw.num_rows == 0:
            return []
        half = raw.num_rows // 2
        return convert(raw.slice(0, half), schema, table, q) + convert(raw.slice(half), schema, table, q)


def ranged_batches(
    source: Source,
    table: TableConfig,
    schema: pa.Schema,
    chunk_rows: int,
    q: Quarantine,
    on_range: Callable[[KeyRange], None] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Read the table by key ranges of at most ``chunk_rows`` rows; a range the source cannot read
    is halved until the failing keys are isolated and quarantined (``_stage = read``)."""
    key = table.primary_key[0]
    yield from _read_range(source, table, schema, chunk_rows, q, KeyRange(key, None, None), on_range)
    lo, hi = source.key_bounds(table, key)
    if lo is None:
        return
    yield from _read_range(source, table, schema, chunk_rows, q, KeyRange(key, lo, hi), on_range)


def _read_range(
    source: Source,
    table: TableConfig,
    schema: pa.Schema,
    chunk_rows: int,
    q: Quarantine,
    rng: KeyRange,
    on_range: Callable[[KeyRange], None] | None,
) -> Iterator[pa.RecordBatch]:
    stack = [rng]
    while stack:
        r = stack.pop()
        if on_range is not None:
            on_range(r)
        n = source.count(table, r)
        if n == 0:
            continue
        if n > chunk_rows and r.lo is not None:
            m = source.split_key(table, r)
            if m is not None and m != r.lo:
                # upper half pushed first so the lower half is read first (key order)
                stack.append(KeyRange(r.key, m, r.hi, r.open_hi))
                stack.append(KeyRange(r.key, r.lo, m, True))
                continue
        try:
            batches = list(source.stream_range(table, schema, chunk_rows, r))  # at most ~chunk_rows rows
        except BadRowsError as exc:
            m = source.split_key(table, r) if r.lo is not None and n > 1 else None
            if m is not None and m != r.lo:
                stack.append(KeyRange(r.key, m, r.hi, r.open_hi))
                stack.append(KeyRange(r.key, r.lo, m, True))
                continue
            # one key value (or the null keys) that cannot be read: quarantine it by key
            key = (r.lo,) if len(table.primary_key) == 1 else None
            q.add({r.key: r.lo}, _reason_of(exc), "read", key, n=n)
            _stop_if_over(q)
            continue
        yield from batches


def _reason_of(exc: BadRowsError) -> str:
    text = str(exc)
    return text.split(": ", 1)[1] if text.startswith("table ") and ": " in text else text


def _stop_if_over(q: Quarantine) -> None:
    # Isolating rows costs queries; past the budget the table fails anyway, so stop here.
    if q.over_budget:
        raise ValidationError(
            f"table {q.table.name!r}: {q.describe()}; more than max_bad_rows = {q.table.max_bad_rows} "
            f"(examples in {q.path.name} under quarantine/)"
        )
