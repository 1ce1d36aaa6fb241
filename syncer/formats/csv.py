"""CSV in one explicit dialect (:data:`DIALECT`, recorded in the manifest entry):

* RFC 4180 quoting: fields separated by ``,``, rows end in ``\\n``, a quote inside a quoted field is
  doubled; UTF-8 without a byte-order mark; a header line always (an empty table too).
* Every string value is quoted (``"007"``, ``""``, ``"NULL"``, ``"\\N"``); NULL is the unquoted
  marker ``\\N``, so no real string can collide with it in a reader that tells quoted from unquoted
  fields (DuckDB, pyarrow, polars). pandas cannot: there a string equal to ``\\N`` reads as NaN.
* Decimals are plain digits at the column's scale (``0.0000000001``, never ``1E-10``), quoted;
  floats ``nan``/``inf``/``-inf``; booleans ``true``/``false``; timestamps ISO-8601 with a space,
  ``Z`` when the column has a time zone; binary values base64 text.

Files of earlier versions (NULL an unquoted empty field) read the same way: the reader takes both an
unquoted empty field and unquoted ``\\N`` as NULL, and neither occurs as a value in the other dialect.
"""

from __future__ import annotations

import base64
import decimal
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from syncer._memory import DEFAULT_BATCH_BYTES
from syncer.formats.base import Format, TableWriter, conform, decimal_array, read_rows, selected
from syncer.formats.csv_lines import faster, header, lines, supported
from syncer.formats.text_encoders import ENCODERS, ParallelTextWriter

__all__ = ["DIALECT", "NULL", "CsvFormat", "CsvTableWriter"]

#: columns from which a table's file is parsed back once closed instead of while it is written
READ_BACK_COLUMNS = 150

#: the unquoted field that means NULL
NULL = "\\N"

#: what the manifest records about a CSV file (``dialect``)
DIALECT: dict[str, Any] = {
    "delimiter": ",",
    "quote": '"',
    "escape": "doubled quote",
    "line_terminator": "\n",
    "encoding": "utf-8",
    "header": True,
    "null": NULL,
    "strings_quoted": True,
    "decimal": "plain digits, quoted",
    "binary": "base64",
}


class CsvTableWriter(ParallelTextWriter):
    """CSV text; binary columns base64, decimal columns plain-digit text (CSV holds text only).

    Both are spelled vectorised, the same text as the row-wise spelling (``vectorised=False``)
    gives: decimals of scale 0 to 6 by Arrow's cast, other decimals and binary by DuckDB on the
    Arrow batch (``CAST(d AS VARCHAR)``, ``to_base64(b)``: one projection per batch); a column
    neither spells exactly (a scale past 6 in decimal256, a negative scale) is spelled row-wise.
    The lines are built with Arrow compute (:mod:`syncer.formats.csv_lines`, the bytes pyarrow's
    CSV writer writes) where that is faster (UTC timestamps; ``lines_always``: wherever it can, for
    the tests), else by pyarrow's writer, one batch into one buffer. Batches are spelled on
    ``encoders`` threads and written in order, and read back from the file while it is written
    (:mod:`syncer.formats.text_encoders`)."""

    def __init__(
        self, path: Path, schema: pa.Schema, *, vectorised: bool = True, lines_always: bool = False, encoders: int = ENCODERS
    ) -> None:
        # Read back while written, but a wide table: the read-back's parser, batches and profile
        # of 300 columns held ~15 MiB more than its batch budget leaves (the matrix's 300-column
        # table peaked at 396-398 MiB, 383 without, whatever the batch size): it parses the
        # closed file, as before.
        self.reads_back = len(schema) < READ_BACK_COLUMNS
        super().__init__(path, schema, encoders=encoders)
        self._text = [i for i, f in enumerate(schema) if _as_text(f.type)]
        self._how = [_spelling(schema[i]) if vectorised else None for i in self._text]
        self._cons: list[Any] = [None] * self.encoders  # each encoder's private DuckDB, made when it needs one
        text_schema = _csv_schema(schema)
        self._text_schema = text_schema
        self._lines = vectorised and supported(text_schema) and (lines_always or faster(text_schema))
        self._options = pcsv.WriteOptions(quoting_style="needed", null_string=NULL, include_header=False)
        # The header is written when the writer is made: an empty table is still a header line.
        if self._lines:
            self.write_head(header(text_schema))
        else:
            head = pa.BufferOutputStream()
            pcsv.write_csv(pa.Table.from_batches([], text_schema), head, write_options=_with_header(self._options))
            self.write_head(head.getvalue().to_pybytes())

    def parse(self, opened: Callable[[], pa.NativeFile]) -> Iterator[pa.RecordBatch]:
        """Rows of this writer (no header), parsed as :meth:`CsvFormat.iter_batches` parses the
        file, in blocks of _BLOCK bytes (as they come: the profile gathers them)."""
        return _in_blocks(lambda block: _parsed(opened(), self.schema, None, block=block, header=False, gather=False))

    def encode(self, encoder: int, batch: pa.RecordBatch) -> list[pa.Buffer]:
        if self._text:
            batch = self._as_text_batch(encoder, batch)
        if self._lines:
            return [lines(batch, NULL)]
        out = pa.BufferOutputStream()
        pcsv.write_csv(batch, out, write_options=self._options)
        return [out.getvalue()]

    def _as_text_batch(self, encoder: int, batch: pa.RecordBatch) -> pa.RecordBatch:
        cols = list(batch.columns)
        fast = [(i, h) for i, h in zip(self._text, self._how, strict=True) if h not in (None, ARROW) and _fits(cols[i])]
        if fast:
            for (i, _), text in zip(fast, self._spelled(encoder, batch, fast), strict=True):
                cols[i] = text
        spelled = {i for i, _ in fast}
        for i, how in zip(self._text, self._how, strict=True):
            if how == ARROW:
                cols[i] = pc.cast(cols[i], pa.string())
            elif i not in spelled:
                cols[i] = pa.array([_text(v) for v in cols[i].to_pylist()], pa.string())
        return pa.RecordBatch.from_arrays(cols, schema=self._text_schema)

    def _spelled(self, encoder: int, batch: pa.RecordBatch, fast: list[tuple[int, str]]) -> list[pa.Array]:
        """The text of the ``fast`` columns, spelled by DuckDB in one projection of the batch."""
        import duckdb  # the engine's extra; the reader never needs it

        if self._cons[encoder] is None:
            self._cons[encoder] = duckdb.connect(config={"threads": 1})
        part = pa.RecordBatch.from_arrays([batch.column(i) for i, _ in fast], names=[f"c{k}" for k in range(len(fast))])
        sql = ", ".join(f"{expr.format(f'c{k}')} AS c{k}" for k, (_, expr) in enumerate(fast))
        try:
            table = self._cons[encoder].from_arrow(part).project(sql).to_arrow_table()
        except duckdb.Error:
            # not expected (_fits guards what DuckDB cannot hold); row-wise then, on a new DuckDB
            # next time (an internal error invalidates the database)
            self._close_con(encoder)
            return [pa.array([_text(v) for v in batch.column(i).to_pylist()], pa.string()) for i, _ in fast]
        return [col.combine_chunks().cast(pa.string()) if len(col) else pa.array([], pa.string()) for col in table.columns]

    def _finish(self) -> None:
        for k in range(self.encoders):
            self._close_con(k)

    def _close_con(self, encoder: int) -> None:
        con, self._cons[encoder] = self._cons[encoder], None
        if con is not None:
            con.close()


def _with_header(options: pcsv.WriteOptions) -> pcsv.WriteOptions:
    return pcsv.WriteOptions(quoting_style=options.quoting_style, null_string=options.null_string, include_header=True)


#: a column Arrow's own cast spells exactly (see :func:`_spelling`)
ARROW = "arrow"
_EXACT = decimal.Context(prec=100)


def _spelling(field: pa.Field) -> str | None:
    """How a text column is spelled vectorised: :data:`ARROW`, DuckDB SQL (``{}`` the column), or
    None (row-wise). Arrow's cast writes a decimal in plain digits while its adjusted exponent is
    -6 or more, always true at a scale of 6 or less; DuckDB's ``CAST(d AS VARCHAR)`` always, save
    for precision = scale (it drops the "0" of "0.1"); ``to_base64`` is RFC 4648 with padding, as
    Python's ``format(d, "f")`` and ``base64.b64encode``."""
    t = field.type
    if pa.types.is_decimal(t) and 0 <= t.scale <= 6:
        return ARROW
    if pa.types.is_decimal128(t) and 0 <= t.scale < t.precision <= 38:
        return "CAST({} AS VARCHAR)"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "to_base64({})"
    return None


def _fits(arr: pa.Array) -> bool:
    """Whether DuckDB can take a decimal column's values (Arrow lets a decimal128(38, s) hold any
    HUGEINT, beyond 38 digits; DuckDB's DECIMAL(38) cannot): binary always."""
    t = arr.type
    if not pa.types.is_decimal(t) or arr.null_count == len(arr):
        return True
    mm = pc.min_max(arr)
    bound = decimal.Decimal(10**t.precision - 1).scaleb(-t.scale, _EXACT)
    return bool(_EXACT.minus(bound) <= mm["min"].as_py() and mm["max"].as_py() <= bound)


def _text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bytes):
        return base64.b64encode(v).decode("ascii")
    return format(v, "f")  # a Decimal in plain digits


#: the CSV reader's block. Its memory is ~35x a block whatever the columns: Arrow reads the file
#: ahead on a background thread into a queue of 32 blocks (measured: 140 MiB of Arrow's default
#: pool for 4 MiB blocks, the re-read of 5M narrow rows peaking 228 MiB above the export; 1 MiB:
#: 35 MiB, no slower). The rows of small blocks are gathered into batches of about
#: DEFAULT_BATCH_BYTES (read_rows) for the profile. A longer row (pyarrow refuses a row across
#: blocks) is read with blocks 4x bigger, up to _MAX_BLOCK
_BLOCK = 1 << 20
_MAX_BLOCK = 1 << 30
#: the multithreaded CSV reader keeps a block in flight per CPU: above this many, one thread
_THREADED_CPUS = 4


def _reader_pool() -> pa.MemoryPool:
    """mimalloc for the CSV reader's blocks: with the system allocator (the CLI's default pool) its
    threads' freed blocks stay in glibc's per-thread arenas, and a 490 MB re-read of 300 columns
    peaked at 781 MiB instead of 298."""
    try:
        return pa.mimalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without it
        return pa.default_memory_pool()


class CsvFormat(Format):
    name = "csv"
    dialect = DIALECT
    #: the Arrow compute spelling holds each column's text and the joined lines while a batch is
    #: encoded: a 250-column table of strings, timestamps, decimals and dates (450k rows) peaked at
    #: 418-422 MiB with 6 MiB batches, 386-394 with 4.5 (what 6 more in flight give it)
    encoder_batches = 6

    def open_writer(
        self, path: Path, schema: pa.Schema, *, compression: str, row_group_rows: int, parts: int, segmented: bool = False
    ) -> TableWriter:
        return CsvTableWriter(path, schema)

    def iter_batches(self, path: Path, schema: pa.Schema, columns: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
        """The file's rows in blocks of _BLOCK bytes (see :func:`_in_blocks`)."""
        return _in_blocks(lambda block: _parsed(path, schema, columns, block=block, header=True))

    def unsupported_columns(self, schema: pa.Schema) -> list[pa.Field]:
        """Nested, dictionary and interval columns: this dialect has no spelling for them."""
        return [
            f
            for f in schema
            if pa.types.is_nested(f.type) or pa.types.is_dictionary(f.type) or f.type == pa.month_day_nano_interval()
        ]


def _in_blocks(blocks: Callable[[int], Iterator[pa.RecordBatch]]) -> Iterator[pa.RecordBatch]:
    """The batches of ``blocks(_BLOCK)``; a row longer than a block (a 10 MB value) reads the
    source again with blocks that hold it, skipping the rows already given."""
    given, block = 0, _BLOCK
    while True:
        seen = 0
        try:
            for b in blocks(block):
                start = max(0, given - seen)  # rows of b given before the read started again
                seen += b.num_rows
                if start < b.num_rows:
                    yield b.slice(start) if start else b
                    given = seen
            return
        except pa.ArrowInvalid as exc:
            if "straddl" not in str(exc) or block >= _MAX_BLOCK:
                raise
            block *= 4


def _parsed(
    source: Path | pa.NativeFile,
    schema: pa.Schema,
    columns: Sequence[str] | None,
    *,
    block: int,
    header: bool,
    gather: bool = True,
) -> Iterator[pa.RecordBatch]:
    """The rows of a file of this dialect (``header``: its first line names the columns), or of a
    run of its lines, as batches of ``schema`` (or of only ``columns``; ``gather``: of about
    DEFAULT_BATCH_BYTES, else a block's each): one parse for both."""
    target = selected(schema, columns)
    reader = pcsv.open_csv(
        source,
        # A file's threads parse blocks ahead, one per CPU Arrow sees (the host's, in a container):
        # bounded to _THREADED_CPUS of them. A run of lines read back while the file is written
        # is parsed on the read-back's own thread (the encoders have the other cores).
        read_options=pcsv.ReadOptions(
            block_size=block,
            use_threads=header and pa.cpu_count() <= _THREADED_CPUS,
            column_names=None if header else schema.names,
        ),
        memory_pool=_reader_pool(),
        parse_options=pcsv.ParseOptions(newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(
            column_types={f.name: f.type for f in _csv_schema(schema)},
            include_columns=list(target.names),
            # Only an unquoted \N (or, in files of earlier versions, an unquoted empty field) is
            # null; the default null spellings would turn a float NaN ("nan") into null.
            null_values=[NULL, ""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )
    has_text = any(_as_text(f.type) for f in target)
    for b in _gathered(reader, read_rows(target)) if gather else reader:
        yield _decode_text(b, target) if has_text else conform(b, target)


def _gathered(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """``batches`` gathered into batches of at least ``rows`` rows or DEFAULT_BATCH_BYTES (the last
    one: what is left); one copy, of one batch's worth, at a time."""
    held: list[pa.RecordBatch] = []
    count = size = 0
    for b in batches:
        held.append(b)
        count, size = count + b.num_rows, size + b.nbytes
        # rows from the schema's estimate: values of MBs close the batch on its bytes (a file of
        # 1 MiB values was gathered whole, 200 MiB, for the profile)
        if count >= rows or size >= DEFAULT_BATCH_BYTES:
            yield held[0] if len(held) == 1 else pa.concat_batches(held)
            held, count, size = [], 0, 0
    if held:
        yield held[0] if len(held) == 1 else pa.concat_batches(held)


def _is_binary(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)


def _as_text(t: pa.DataType) -> bool:
    """Columns written as text of our own spelling: binary (base64) and decimals (plain digits)."""
    return _is_binary(t) or pa.types.is_decimal(t)


def _csv_schema(schema: pa.Schema) -> pa.Schema:
    """The schema as CSV holds it: binary and decimal columns become text."""
    return pa.schema([f.with_type(pa.string()) if _as_text(f.type) else f for f in schema])


def _decode_text(batch: pa.RecordBatch, target: pa.Schema) -> pa.RecordBatch:
    cols = list(batch.columns)
    for i, f in enumerate(target):
        if _is_binary(f.type):
            cols[i] = pa.array([None if v is None else base64.b64decode(v) for v in cols[i].to_pylist()], f.type)
        elif pa.types.is_decimal(f.type):
            cols[i] = decimal_array(cols[i], f.type)  # exact: the text has the column's scale
    return pa.RecordBatch.from_arrays(cols, schema=target)
