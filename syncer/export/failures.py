"""A table's writer when something fails: the OS's and Arrow's errors as ours, and the clean-up.

The rule (see :func:`discard`): the first error is classified before anything is cleaned up, and a
failure of the clean-up (closing a sink on a full disk, a descriptor gone) is logged and attached
to that error as a note; it never replaces it and never escapes the table.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, NoReturn

import pyarrow as pa

from syncer._exceptions import SyncError, ValidationError, WriteError
from syncer.config import Config, TableConfig
from syncer.formats import open_writer, remove_output

__all__ = ["abandon", "discard", "open_table_writer", "remove_outputs", "write_failure"]

log = logging.getLogger("syncer")


def open_table_writer(table: TableConfig, path: Path, schema: pa.Schema, cfg: Config, parts: int, segmented: bool = False) -> Any:
    try:
        return open_writer(
            table.format,
            path,
            schema,
            compression=cfg.compression,
            row_group_rows=cfg.row_group_rows,
            parts=parts,
            segmented=segmented,
        )
    except OSError as exc:
        raise write_failure(table, path, exc, opening=True) from exc
    except pa.ArrowException as exc:
        raise ValidationError(f"table {table.name!r}: cannot open a {table.format} writer for {path.name}: {exc}") from exc


def write_failure(table: TableConfig, path: Path, exc: BaseException, *, opening: bool = False) -> BaseException:
    """``exc``, raised while writing ``path``, as one of ours: the OS's errors (disk full, volume gone
    read-only) are a :class:`WriteError`, Arrow's a :class:`ValidationError` (the data cannot be
    written in this format); ours, an interrupt or a bug are returned as they are."""
    if isinstance(exc, SyncError):
        return exc
    if isinstance(exc, OSError):
        doing = "opening" if opening else "writing"
        return WriteError(
            f"table {table.name!r}: {doing} {path.name} failed: {exc.strerror or exc}; "
            "the previous data is kept (check free space and permissions on the volume)"
        )
    if isinstance(exc, pa.ArrowException):
        return ValidationError(f"table {table.name!r}: the data cannot be written as {table.format}: {exc}")
    return exc


def discard(writer: Any, path: Path, table: TableConfig, err: BaseException) -> None:
    """Abort ``writer`` and remove its output after ``err``; what fails on the way is logged and
    attached to ``err`` as a note (the staged output is swept by the next run at the latest)."""
    for step, what in ((writer.abort, "aborting the writer"), (lambda: remove_output(path), "removing it")):
        try:
            step()
        except Exception as extra:
            reason = extra.strerror if isinstance(extra, OSError) and extra.strerror else extra
            log.warning(
                "table %s: %s of %s after the failure also failed: %s",
                table.name,
                what,
                path.name,
                reason,
                extra={"table": table.name, "step": "export"},
            )
            err.add_note(f"{what} of {path.name} also failed: {reason}")


def abandon(writer: Any, path: Path, table: TableConfig, exc: BaseException) -> NoReturn:
    """Give up on ``writer`` after ``exc``: classify first, then clean up (a failure of the clean-up,
    the sink's close on a full disk, is noted on the error and logged, never raised instead of it),
    then raise the classified error."""
    err = write_failure(table, path, exc)
    discard(writer, path, table, err)
    if err is exc:
        raise exc
    raise err from exc


def remove_outputs(path: Path, table: TableConfig) -> None:
    """Remove what an export of ``table`` may have staged: its file, or its folder of parts."""
    for p in (path, path.with_name(table.name)):
        try:
            remove_output(p)
        except OSError as exc:
            raise WriteError(
                f"table {table.name!r}: cannot remove the staged {p.name}: {exc.strerror or exc}; "
                "check the permissions of the staging folder (the next run sweeps it)"
            ) from exc
