"""``[source] memory_limit`` and ``[export] batch_bytes``: the config's side of the memory budget
(:mod:`syncer._memory`). Sizes are read once, at load; an explicit DuckDB limit above the
container's ceiling is refused here, before any table is touched."""

from __future__ import annotations

import re
from typing import Any

from syncer import _memory
from syncer._exceptions import ConfigError
from syncer.config.values import get

__all__ = ["AUTO", "batch_bytes", "check_ceiling", "memory_limit"]

AUTO = "auto"
# [source] memory_limit: what DuckDB's own parser accepts, minus its odd cases ("-1", "none", "80%").
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*\Z", re.IGNORECASE)
#: a batch smaller than this costs more in per-batch work than it saves; larger than this is no
#: longer "a batch" next to a container of a few GiB
_BATCH_BYTES_RANGE = (2**20, 2**30)


def memory_limit(src: dict[str, Any]) -> str:
    """``"auto"`` (the default: derived per query, see :func:`syncer._memory.duckdb_limit_for`) or
    a DuckDB memory size (``"16MB"``, ``"1.5 GiB"``) of at least 1 MB, checked here."""
    val = get(src, "memory_limit", str, AUTO, "[source] memory_limit")
    if val.strip().lower() == AUTO:
        return AUTO
    m = _MEMORY.match(val)
    if m is None or _memory.parse_size(f"{m[1]}{m[2]}") < 1_000_000:
        raise ConfigError(
            f"[source] memory_limit = {val!r} is not a memory size DuckDB accepts; write a number and a unit of at least 1 MB, "
            'e.g. memory_limit = "16MB" or "2GiB", or "auto" (derived per table)'
        )
    return val


def batch_bytes(ex: dict[str, Any]) -> int:
    """``[export] batch_bytes``: a size (``"16MiB"``) or a whole number of bytes, 1 MiB to 1 GiB."""
    val = ex.get("batch_bytes", _memory.DEFAULT_BATCH_BYTES)
    size: int | None = None
    if isinstance(val, int) and not isinstance(val, bool):
        size = val
    elif isinstance(val, str):
        try:
            size = _memory.parse_size(val)
        except ValueError:
            size = None
    lo, hi = _BATCH_BYTES_RANGE
    if size is None or not lo <= size <= hi:
        raise ConfigError(f'[export] batch_bytes must be a size from 1 MiB to 1 GiB, e.g. batch_bytes = "16MiB", got {val!r}')
    return size


def check_ceiling(limit: str, batch: int) -> int:
    """The ceiling of DuckDB's memory_limit in this container; ConfigError when an explicit limit is above it."""
    ceiling = _memory.memory_ceiling(batch)
    if limit != AUTO and _memory.parse_size(limit.replace(" ", "")) > ceiling:
        raise ConfigError(
            f"[source] memory_limit = {limit!r} is above this container's ceiling of {_memory.format_size(ceiling)} "
            f"(half of its memory, {_memory.format_size(_memory.container_limit_here())}, after the process's own needs); "
            'set memory_limit = "auto" or a smaller size, or give the container more memory'
        )
    return ceiling
