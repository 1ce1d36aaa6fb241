"""The source interface: what the export needs from a warehouse.

A source answers four questions about one configured table (or query), all describing the same
moment (see :meth:`Source.pinned`), and that moment is the run's: one sync uses one source, and
every table of the run is read as of :attr:`Source.run_moment`, taken once when the run starts
reading (not per table), so the tables of a snapshot agree with each other:

* ``schema(table)``   the Arrow schema of the full relation (before exclusions)
* ``count(table)``    the row count
* ``profile(table, schema)``  per-column statistics (see :mod:`syncer.validate.profile`) for the columns in
  ``schema``, computed where the data lives
* ``stream(table, schema, batch_rows)``  Arrow RecordBatches of at most ``batch_rows`` rows, with only the
  columns in ``schema`` (excluded columns are never even read)

DuckDB implements it here; a Snowpark source implements the same methods. Identifiers are always
quoted by :func:`quote_ident`; table identifiers were validated at config load, and column names come
from the source's own catalogue.
"""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from syncer._exceptions import SourceError
from syncer.config import TableConfig

__all__ = ["Exclusion", "KeyRange", "RowFilter", "Source", "quote_ident", "relation_sql"]


def quote_ident(name: str) -> str:
    """Quote one SQL identifier (ANSI double quotes, embedded quotes doubled)."""
    if "\x00" in name:
        raise ValueError(f"identifier {name!r} contains a NUL character")
    return '"' + name.replace('"', '""') + '"'


def relation_sql(table: TableConfig) -> str:
    """The FROM-clause text of a configured table: a quoted identifier or a parenthesised query."""
    if table.query is not None:
        return f"({table.query}) AS {quote_ident('q')}"
    assert table.source is not None
    return ".".join(quote_ident(part) for part in table.source.split("."))


def select_sql(table: TableConfig, schema: pa.Schema) -> str:
    cols = ", ".join(quote_ident(f.name) for f in schema) or "*"
    return f"SELECT {cols} FROM {relation_sql(table)}"


class RowFilter(abc.ABC):
    """A row condition a source applies in SQL (count/profile ``where=``): ``sql()`` gives the
    condition text with ``?`` placeholders and its parameters."""

    @abc.abstractmethod
    def sql(self) -> tuple[str, list[Any]]: ...


@dataclass(frozen=True)
class Exclusion(RowFilter):
    """Rows left out of count/profile because they were quarantined: null keys and listed keys."""

    keys: tuple[str, ...]
    values: tuple[tuple[Any, ...], ...] = ()

    def sql(self) -> tuple[str, list[Any]]:
        """A WHERE condition keeping every other row, with its parameters."""
        cols = [quote_ident(k) for k in self.keys]
        parts = [f"{c} IS NULL" for c in cols]
        params: list[Any] = []
        if self.values:
            if len(cols) == 1:
                parts.append(f"{cols[0]} IN ({', '.join('?' for _ in self.values)})")
                params += [v[0] for v in self.values]
            else:
                for v in self.values:
                    parts.append("(" + " AND ".join(f"{c} = ?" for c in cols) + ")")
                    params += list(v)
        return "NOT (" + " OR ".join(parts) + ")", params


@dataclass(frozen=True)
class KeyRange(RowFilter):
    """Rows whose first key column lies in [lo, hi] (hi excluded when ``open_hi``); lo None = null keys."""

    key: str
    lo: Any
    hi: Any
    open_hi: bool = False

    def sql(self) -> tuple[str, list[Any]]:
        c = quote_ident(self.key)
        if self.lo is None:
            return f"{c} IS NULL", []
        return f"{c} >= ? AND {c} {'<' if self.open_hi else '<='} ?", [self.lo, self.hi]

    def describe(self) -> str:
        if self.lo is None:
            return f"{self.key} IS NULL"
        return f"{self.key} in [{self.lo!r}, {self.hi!r}{')' if self.open_hi else ']'}"


class Source(abc.ABC):
    """A warehouse the engine exports from. Not thread-safe: one sync uses one source."""

    kind: str = "?"
    #: True when ``profile`` may run on another thread while ``stream`` runs (on its own connection,
    #: still describing the pinned moment); the export then overlaps the two.
    concurrent_profile: bool = False

    #: True when an unchanged change marker also proves the table's Arrow schema unchanged (DuckDB:
    #: the file's identity and the engine's versions), so confirming a table unchanged needs no
    #: schema query (see syncer.export.unchanged)
    marker_covers_schema: bool = False

    #: the run's one moment (aware, UTC): every table of the run is read as of it. Set when the
    #: run starts reading (DuckDB: when the file is opened; Snowflake: the server clock, read once,
    #: at the first table); None before.
    run_moment: dt.datetime | None = None

    def describe(self) -> dict[str, Any]:
        """What the manifest records about the source (never secrets)."""
        return {"kind": self.kind}

    @contextlib.contextmanager
    def pinned(self, table: TableConfig) -> Iterator[dict[str, Any]]:
        """Make count, profile and stream of ``table`` describe the run's moment; yields what to
        record (``as_of``, ``pinned``: whether the table is really read at that moment, ``isolation``
        and, when it is not pinned, ``reason``)."""
        yield {}

    def change_marker(self, table: TableConfig) -> str | None:
        """A token that changes whenever the data of ``table`` may have changed (metadata only, no
        scan), read before the table is exported; None when the source cannot tell (a query, a
        view): the table is then always exported. See :mod:`syncer.export.unchanged`."""
        return None

    def plan(self, tables: Sequence[TableConfig]) -> None:  # noqa: B027 - optional hook
        """The tables the run is about to export, told before the first one: a source may then ask
        for what they share in one go (DuckDB: the counts, the small tables' profiles)."""

    @abc.abstractmethod
    def schema(self, table: TableConfig) -> pa.Schema: ...

    @abc.abstractmethod
    def count(self, table: TableConfig, where: RowFilter | None = None) -> int: ...

    @abc.abstractmethod
    def profile(self, table: TableConfig, schema: pa.Schema, where: RowFilter | None = None) -> dict[str, Any]: ...

    #: True when the source implements the key-range methods below, which the export uses to
    #: isolate rows whose values cannot be read (halving key ranges down to the culprits).
    supports_key_ranges: bool = False

    def key_bounds(self, table: TableConfig, key: str) -> tuple[Any, Any]:
        """(min, max) of the non-null values of ``key``."""
        raise SourceError(f"table {table.name!r}: this source cannot read by key ranges")

    def split_key(self, table: TableConfig, rng: KeyRange) -> Any:
        """A key value m with lo < m <= hi splitting ``rng`` about in half, or None if it holds one value."""
        raise SourceError(f"table {table.name!r}: this source cannot read by key ranges")

    def stream_range(self, table: TableConfig, schema: pa.Schema, batch_rows: int, rng: KeyRange) -> Iterator[pa.RecordBatch]:
        """Like ``stream`` for the rows of one key range."""
        raise SourceError(f"table {table.name!r}: this source cannot read by key ranges")

    @abc.abstractmethod
    def stream(self, table: TableConfig, schema: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]: ...

    def sample_row_bytes(self, table: TableConfig, schema: pa.Schema) -> float | None:
        """Arrow bytes per row of a few of the table's rows, when the source can tell cheaply
        (sizes batches by what the strings really hold); None: the schema's estimate is used."""
        return None

    #: True when the source implements ``unload`` (see :mod:`syncer.export.engine`)
    supports_unload: bool = False

    def unload_refusal(self, table: TableConfig, schema: pa.Schema) -> str | None:
        """Why ``unload`` would not give back the stream path's types for ``schema`` (None: it would)."""
        return None

    def unload(self, table: TableConfig, schema: pa.Schema, folder: Path, *, compression: str, row_group_rows: int) -> None:
        """Write the columns of ``schema`` of ``table`` as Parquet files into the new ``folder``,
        in the warehouse's engine, at the pinned moment."""
        raise SourceError(f"table {table.name!r}: this source cannot unload")

    def close(self) -> None:  # noqa: B027 - optional hook, most sources have something to close
        """Release connections."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
