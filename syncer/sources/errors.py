"""DuckDB's errors turned into ours, through ONE table (:data:`DUCKDB_ERRORS`).

Every place that runs DuckDB (the source's queries and streams, the export's duplicate-key scan of
the staged file) calls :func:`map_duckdb_error` and raises what it returns ``from`` DuckDB's error.
Which class an error gets depends on what DuckDB was doing (:class:`Stage`):

=========================  ====================  ======================  ======================  ===========
DuckDB exception           as an Arrow-stream    ``open``                ``read`` (the source)   ``check``
                           ``OSError``, message                                                  (staged file)
                           starts with
=========================  ====================  ======================  ======================  ===========
``OutOfMemoryException``   ``Out of Memory``     SourceUnavailableError  SourceOutOfMemoryError  ValidationError
``ConversionException``    ``Conversion Error``  SourceUnavailableError  BadRowsError            ValidationError
``OutOfRangeException``    ``Out of Range``      SourceUnavailableError  BadRowsError            ValidationError
``InvalidInputException``  ``Invalid Input``     SourceUnavailableError  BadRowsError            ValidationError
``CatalogException``       ``Catalog Error``     SourceUnavailableError  SourceNotFoundError     ValidationError
``IOException``            ``IO Error``          SourceUnavailableError  TransientSourceError    WriteError
any other ``duckdb.Error``  (anything else)       SourceUnavailableError  SourceError             ValidationError
=========================  ====================  ======================  ======================  ===========

DuckDB's errors raised inside an Arrow stream (``to_arrow_reader``) reach Python as pyarrow's plain
``OSError``, with DuckDB's type name only in the message: that is the one place a message is read.
Opening the warehouse fails every table the same way, whatever the cause (a corrupt or locked file,
a file that is not a database); a query's ``IOException`` is retried (the file briefly unreadable);
the duplicate-key scan runs on our own in-memory DuckDB over the staged file, so its failures are a
check that could not be completed, or (``IOException``: spilling to the volume failed) a write error.
Ctrl-C during a query is not an error of the table: see :func:`is_interrupt`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

import duckdb

from syncer._exceptions import (
    BadRowsError,
    SourceError,
    SourceNotFoundError,
    SourceOutOfMemoryError,
    SourceUnavailableError,
    SyncError,
    TransientSourceError,
    ValidationError,
    WriteError,
)

__all__ = ["DUCKDB_ERRORS", "DuckDBContext", "Stage", "first_line", "is_interrupt", "map_duckdb_error"]


class Stage(enum.Enum):
    OPEN = "open"  # opening the warehouse file
    READ = "read"  # a query or stream of the source
    CHECK = "check"  # the export's own DuckDB over the staged file (duplicate-key scan)


@dataclass(frozen=True)
class _Row:
    duckdb_type: type[duckdb.Error]
    stream_prefix: str | None  # start of the message when the error comes through an Arrow stream as OSError
    read: type[SyncError]
    check: type[SyncError]


#: The classification table, most specific DuckDB type first (the first row that matches wins).
DUCKDB_ERRORS: tuple[_Row, ...] = (
    _Row(duckdb.OutOfMemoryException, "Out of Memory Error", SourceOutOfMemoryError, ValidationError),
    _Row(duckdb.ConversionException, "Conversion Error", BadRowsError, ValidationError),
    _Row(duckdb.OutOfRangeException, "Out of Range Error", BadRowsError, ValidationError),
    _Row(duckdb.InvalidInputException, "Invalid Input Error", BadRowsError, ValidationError),
    _Row(duckdb.CatalogException, "Catalog Error", SourceNotFoundError, ValidationError),
    _Row(duckdb.IOException, "IO Error", TransientSourceError, WriteError),
    _Row(duckdb.Error, None, SourceError, ValidationError),
)


@dataclass(frozen=True)
class DuckDBContext:
    """What DuckDB was doing, for the message: the stage, the table, the file, the limits."""

    stage: Stage
    table: str | None = None
    path: Path | None = None
    #: for a missing relation: what the table reads ("source table 'x'" / "query of table 'x'")
    relation: str | None = None
    memory_limit: str | None = None
    #: for the check stage: what was being checked, e.g. "duplicate-key scan of t.parquet"
    what: str | None = None


def classify(exc: BaseException) -> _Row:
    """The table's row for ``exc`` (a ``duckdb.Error``, or the ``OSError`` of an Arrow stream)."""
    if isinstance(exc, duckdb.Error):
        return next(row for row in DUCKDB_ERRORS if isinstance(exc, row.duckdb_type))
    text = first_line(exc)
    return next(row for row in DUCKDB_ERRORS if row.stream_prefix is None or text.startswith(row.stream_prefix))


def map_duckdb_error(exc: BaseException, ctx: DuckDBContext) -> SyncError:
    """Our error for DuckDB's ``exc``; the caller raises it ``from exc``."""
    row = classify(exc)
    text = first_line(exc)
    if ctx.stage is Stage.OPEN:
        return SourceUnavailableError(f"cannot open DuckDB warehouse {ctx.path}: {text}; {_open_hint(text)}")
    if ctx.stage is Stage.CHECK:
        cls = row.check
        if cls is WriteError:
            return cls(
                f"table {ctx.table!r}: {ctx.what} failed: {text}; the previous data is kept "
                "(check free space and permissions on the volume)"
            )
        return cls(f"table {ctx.table!r}: {ctx.what} could not be completed: {text}")
    return _read_error(row.read, text, ctx)


def _read_error(cls: type[SyncError], text: str, ctx: DuckDBContext) -> SyncError:
    table = f"table {ctx.table!r}"
    if cls is SourceOutOfMemoryError:
        return cls(
            f"{table}: DuckDB ran out of its memory_limit ({ctx.memory_limit}): {text}; raise [source] memory_limit in the config"
        )
    if cls is BadRowsError:
        # "table 'x': <reason>": the quarantine keeps what follows the first ": " as the row's reason.
        return cls(f"{table}: a value could not be read: {text}")
    if cls is SourceNotFoundError:
        return cls(
            f"{ctx.relation or table} not found in the DuckDB warehouse {ctx.path}: {text}; "
            f"check [[tables]] {ctx.table!r} in the config"
        )
    if cls is TransientSourceError:
        return cls(f"{table}: DuckDB I/O failed: {text}")
    return cls(f"{table}: DuckDB query failed: {text}")


def _open_hint(text: str) -> str:
    if "lock" in text.lower():
        return "another process has it open for writing; stop it (or wait for it to finish), then sync again"
    if "not a valid DuckDB database" in text:
        return "the file is not a DuckDB database (corrupt?); rebuild it with `syncer demo` or fix [source] path in the config"
    return "check [source] path in the config and the file's permissions"


def is_interrupt(exc: BaseException) -> bool:
    """Ctrl-C during a query: DuckDB 2.0 raises ``RuntimeError("Query interrupted")``, outside its own
    hierarchy (inside an Arrow stream it may come as ``OSError``); callers re-raise it as the
    ``KeyboardInterrupt`` it was, before :func:`map_duckdb_error` could call it a failed table."""
    if isinstance(exc, duckdb.InterruptException):
        return True
    return isinstance(exc, RuntimeError | OSError) and first_line(exc).startswith(("Query interrupted", "INTERRUPT Error"))


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
