"""Memory budget of one export, derived from the table and the container instead of constants.

Three numbers bound what a sync holds, whatever the table's shape:

* **the ceiling** — what this process may use for an export: a fraction of the container's memory
  limit (cgroup v2 ``memory.max``, cgroup v1 ``memory.limit_in_bytes``, else the machine's RAM).
  In SPCS the container's limit is the spec's ``resources.limits.memory``; the admin app's server
  runs in the same process, hence the fraction and not all of it;
* **the batch** — rows per Arrow batch from a byte target and the schema's row width, so a
  300-column table gets fewer rows per batch than an 8-column one (never more than the configured
  ``batch_rows``; a single row when one is wider than the target: no row-count floor may multiply
  a value of many MB into a batch of GBs). The stream measures every batch it reads too
  (:func:`syncer.sources.duckdb_memory.gathered`): the width is a sample's, a later row may be wider;
* **DuckDB's buffer cache** (``memory_limit = "auto"``) — what a scan of these columns needs (DuckDB
  pins about one 256 KiB block per column it scans, measured: 300 columns need ~97 MB, 8 need < 4 MB),
  with room to spare, and never above the ceiling.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pyarrow loads only where a schema is sized: the CLI picks Arrow's allocator first
    import pyarrow as pa

__all__ = [
    "CGROUP_ROOT_ENV",
    "DEFAULT_BATCH_BYTES",
    "FILE_CHUNKS",
    "ROW_GROUP_BATCHES",
    "TARGET_SLACK",
    "batch_rows_for",
    "container_limit",
    "container_limit_here",
    "duckdb_limit_for",
    "format_size",
    "groups_per_file",
    "has_variable_width",
    "leaf_columns",
    "memory_ceiling",
    "needs_segments",
    "parse_size",
    "read_limit",
    "row_bytes",
    "table_batch_bytes",
]

#: the folder read as the cgroup file system (default ``/sys/fs/cgroup``): a test or an operator
#: points it at a folder holding a ``memory.max`` to run the sync under a smaller budget
CGROUP_ROOT_ENV = "SYNCER_CGROUP_ROOT"
#: ``[export] batch_bytes``: the Arrow bytes one batch aims at. Measured, peak RSS of a sync of
#: 300 columns x 60k rows to Parquet in a 512 MiB container: 4 MiB 298, 8 MiB 347, 16 MiB 458 MiB
#: (the process alone: 148 MiB); a narrow table (8 columns) keeps [export] batch_rows either way
DEFAULT_BATCH_BYTES = 8 * 2**20
#: a Parquet row group holds this many batches' bytes (the writer buffers one per part while it
#: encodes, so it is sized by bytes too; a narrow table keeps [export] row_group_rows)
ROW_GROUP_BATCHES = 2
#: what the process holds besides DuckDB's cache: the interpreter with pyarrow, DuckDB and the app's
#: modules loaded (measured 148 MiB peak RSS for ``python -m syncer sync`` of a 100-row table) and
#: the batches in flight (read ahead, converting, profiled, queued for the writer, a row group of
#: two batches per Parquet part: measured ~12 batches' worth between batch_bytes 8 and 16 MiB)
PROCESS_BASE = 160 * 2**20
#: a batch (and a Parquet row group) closes early once it holds this many times the bytes it was
#: sized for: its row count came from a sample's row width, and ordinary rows vary around it;
#: rows far wider than the sample (a skewed table) close it on their bytes
TARGET_SLACK = 1.5
BATCHES_IN_FLIGHT = 12
#: of what is left, DuckDB's memory_limit may take this share: the limit bounds DuckDB's buffer
#: manager, not every allocation it makes (measured up to ~1.5x the limit in RSS on a wide scan),
#: and the writers' own buffers (a Parquet row group per part) come on top
CEILING_FRACTION = 0.5
#: what one sync holds at most, whatever the table (issue 14's bound): the process, DuckDB's cache
#: for the table's columns and the batches in flight. A table of many columns needs more of DuckDB
#: (its limit grows by DUCKDB_PER_COLUMN a column), so its batches get less (table_batch_bytes)
WORKING_SET = 400 * 2**20
#: the batches a sync holds at once, as measured (README "Where the memory goes"): about seven in
#: flight (read ahead, converting, profiled, queued), and the text of the two batches being spelled
#: by the CSV/JSONL encoders (BATCHES_IN_FLIGHT, for the ceiling, keeps headroom on top)
TABLE_BATCHES_HELD = 9
#: DuckDB's resident memory for a scan as a multiple of its memory_limit: the limit bounds its
#: buffer manager, not every allocation it makes (measured up to ~1.5x on a wide scan)
DUCKDB_RSS = 1.5
#: table_batch_bytes never goes below this: smaller batches cost more per batch than they save
MIN_TABLE_BATCH_BYTES = 2**20
#: a ceiling is never set below this: DuckDB cannot run a query in less
MIN_CEILING = 8 * 2**20

#: bytes assumed per value of a variable-width column before any is read (the batch target keeps
#: headroom for longer ones; a table of long strings should set a smaller ``batch_bytes``)
VARIABLE_WIDTH_GUESS = 48
#: DuckDB's buffer cache for a scan: a floor, plus this much per column a running query scans (a
#: pinned block of 256 KiB and its bookkeeping, measured 0.2-0.35 MB per column), for the stream's
#: scan of every column (one per source thread) and the profile's query running beside it, which
#: scans at most PROFILE_COLUMNS columns at a time (syncer.sources.duckdb_sql.GROUP_COLUMNS).
#: Measured on 300 columns x 1M rows: 100 MB ran (95 MiB), 133.5 MiB did not while the profile
#: scanned every column at once; DuckDB keeps blocks cached up to its limit, so the process's RSS
#: follows the limit (640 KiB a column, the former figure, peaked at 433-541 MiB there)
DUCKDB_BASE = 16 * 2**20
DUCKDB_PER_COLUMN = 320 * 2**10
PROFILE_COLUMNS = 64

_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def parse_size(text: str) -> int:
    """``"16MB"`` / ``"1.5GiB"`` / ``"4096"`` as bytes (DuckDB's units: KB = 1000, KiB = 1024);
    ``ValueError`` with the accepted forms otherwise."""
    m = _SIZE.match(text)
    unit = m.group(2).upper() if m else ""
    value = float(m.group(1)) * _UNITS[unit] if m and unit in _UNITS else 0.0
    if value < 1:
        raise ValueError(f'{text!r} is not a size; write a number and a unit, e.g. "16MB", "512MiB" or "2GB"')
    return int(value)


def format_size(n: float) -> str:
    """``"96 MiB"``/``"1.5 GiB"``: a size for a message."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"


def memory_ceiling(batch_bytes: int = DEFAULT_BATCH_BYTES, limit: int | None = None) -> int:
    """The most DuckDB's memory_limit may be in this container: a share of the container's limit
    after what the process needs besides DuckDB (its base and the batches in flight)."""
    if limit is None:
        limit = container_limit_here()
    free = limit - PROCESS_BASE - BATCHES_IN_FLIGHT * batch_bytes
    return max(MIN_CEILING, int(free * CEILING_FRACTION))


def container_limit_here() -> int:
    """:func:`container_limit` of this process (the cgroup root ``$SYNCER_CGROUP_ROOT`` names, if set)."""
    return container_limit(Path(os.environ.get(CGROUP_ROOT_ENV) or "/sys/fs/cgroup"))


def container_limit(cgroup_root: Path = Path("/sys/fs/cgroup"), proc: Path = Path("/proc")) -> int:
    """The memory this process's container may use: the tightest of its cgroup's limit (v2 or v1,
    walking up from the process's own cgroup) and the machine's RAM."""
    limits = [_mem_total(proc)]
    for rel in _own_cgroups(proc):
        for base in (cgroup_root / rel.lstrip("/"), cgroup_root / "memory" / rel.lstrip("/")):
            limits.extend(_walk_up_limits(base, cgroup_root))
    limits.extend(
        v for v in (_read_limit(cgroup_root / "memory.max"), _read_limit(cgroup_root / "memory" / "memory.limit_in_bytes")) if v
    )
    return min(limits)


def _walk_up_limits(start: Path, root: Path) -> list[int]:
    found = []
    here = start
    while True:
        for name in ("memory.max", "memory.limit_in_bytes"):
            v = _read_limit(here / name)
            if v:
                found.append(v)
        if here == root or root not in here.parents:
            return found
        here = here.parent


def _read_limit(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text.isdigit():
        return None  # "max": no limit at this level
    value = int(text)
    return value if 0 < value < 2**62 else None  # cgroup v1 writes a huge number for "no limit"


def _own_cgroups(proc: Path) -> list[str]:
    try:
        lines = (proc / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3 and (parts[1] in ("", "memory") or "memory" in parts[1].split(",")):
            out.append(parts[2])
    return out


def _mem_total(proc: Path) -> int:
    """MemTotal from /proc/meminfo; when it cannot be read, the RAM sysconf reports."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in (proc / "meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def row_bytes(schema: pa.Schema) -> int:
    """Estimated in-memory bytes of one row in Arrow (values, offsets and validity)."""
    return max(1, sum(_field_bytes(f.type) for f in schema))


def _field_bytes(t: pa.DataType) -> int:
    import pyarrow as pa

    if pa.types.is_boolean(t):
        return 1
    if pa.types.is_dictionary(t):
        return _field_bytes(t.index_type)
    if pa.types.is_struct(t):
        return 1 + sum(_field_bytes(t.field(i).type) for i in range(t.num_fields))
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_map(t):
        return 8 + 4 * _field_bytes(t.value_type if not pa.types.is_map(t) else t.item_type)  # a few items
    try:
        width = t.bit_width
    except ValueError:
        width = 0
    if width:
        return max(1, width // 8) + 1
    return VARIABLE_WIDTH_GUESS + 8  # strings, binary: the guess plus its offset and validity


def batch_rows_for(schema: pa.Schema, batch_bytes: int, max_rows: int, width: float | None = None) -> int:
    """Rows per batch so one batch holds about ``batch_bytes``, within [1, max_rows]; ``width``: the
    bytes of a row as measured (a sample of the table), else the schema's estimate. No floor of
    rows: one of 1,024 made a table of 4 MiB strings read 1,024 of them (4 GiB) at a time."""
    rows = int(batch_bytes // max(1.0, width if width else row_bytes(schema)))
    return int(min(max_rows, max(1, rows)))


def table_batch_bytes(schema: pa.Schema, batch_bytes: int, encoder_batches: int = 0) -> int:
    """``[export] batch_bytes`` for this table: what is left of WORKING_SET after the process and
    DuckDB's part for scanning its columns (its limit, times DUCKDB_RSS: what DuckDB holds beyond
    its buffer manager), over the batches in flight (TABLE_BATCHES_HELD, and ``encoder_batches``
    more for a format whose encoder holds more than a batch's text: ``Format.encoder_batches``), at
    most ``batch_bytes`` (a table of up to ~240 columns keeps it; to CSV and JSONL, ~200), at least
    MIN_TABLE_BATCH_BYTES. 300 columns: (400 - 160 - 1.5 x 134 MiB) / 9
    = 4.3 MiB a batch instead of 8 (the 300-column CSV sync peaked at 430 MiB with 8, 388-392 with
    4, 355-360 with 3 MiB, which cost 10% more CPU: the per-column work of each batch; with the
    limit lowered to 134 MiB, 8 MiB batches peaked at 388 (Arrow) to 432 MiB (CSV) at 1M rows). To
    JSONL (6 more): 3 MiB a batch, 416 -> 395 MiB at 1M rows for 8% more wall and CPU (paired runs)."""
    duckdb_part = DUCKDB_RSS * duckdb_limit_for(schema, ceiling=2**62)
    budget = (WORKING_SET - PROCESS_BASE - duckdb_part) // (TABLE_BATCHES_HELD + encoder_batches)
    return int(min(batch_bytes, max(MIN_TABLE_BATCH_BYTES, budget)))


#: the most column chunks (row groups x leaf columns) one file of a segmented table holds: its
#: footer's memory, ~7 MiB while the file is written and ~14 MiB while its footer is
FILE_CHUNKS = 8192


def groups_per_file(schema: pa.Schema) -> int:
    """Row groups one file of a segmented table holds: FILE_CHUNKS column chunks' worth."""
    return max(1, FILE_CHUNKS // leaf_columns(schema))


def needs_segments(schema: pa.Schema, rows: int, group_rows: int, parts: int) -> bool:
    """Whether a table of ``rows`` rows in row groups of ``group_rows`` is written in segments: its
    parts would hold more row groups each than :func:`groups_per_file` (counting row groups that
    close early on their bytes, up to TARGET_SLACK more)."""
    groups = TARGET_SLACK * rows / max(1, group_rows) / max(1, parts)
    return groups > groups_per_file(schema)


def has_variable_width(schema: pa.Schema) -> bool:
    """Whether a row's size depends on its values (strings, binary, lists): the estimate is a guess."""
    return any(_variable(f.type) for f in schema)


def _variable(t: pa.DataType) -> bool:
    import pyarrow as pa

    if pa.types.is_struct(t):
        return any(_variable(t.field(i).type) for i in range(t.num_fields))
    if pa.types.is_dictionary(t):
        return False
    try:
        return not t.bit_width
    except ValueError:
        return True


def duckdb_limit_for(schema: pa.Schema, ceiling: int, floor: int = DUCKDB_BASE, batch_bytes: int = 0, threads: int = 1) -> int:
    """DuckDB's memory_limit for scanning these columns into batches of ``batch_bytes`` on
    ``threads`` threads while the profile scans some of them beside it: what the scans need (their
    pinned blocks, and one batch as DuckDB builds it), never above ceiling."""
    columns = leaf_columns(schema)
    pinned = max(1, threads) * columns + min(columns, PROFILE_COLUMNS)
    return int(min(ceiling, max(floor, DUCKDB_BASE + DUCKDB_PER_COLUMN * pinned + batch_bytes)))


def read_limit() -> int:
    """DuckDB's memory_limit for parsing a written JSONL file back: the ceiling (DuckDB's default is 80% of the machine's RAM, not the container's).
    Not the scan's own figure: the JSON reader holds whole lines, and one line with a 10 MB value
    needs ~150 MB to parse; what a file of ordinary lines takes stays O(batch) below it."""
    return memory_ceiling()


def leaf_columns(schema: pa.Schema) -> int:
    """The columns a table's storage holds: a STRUCT's fields, a LIST's items and the LIST itself."""
    return sum(_leaves(f.type) for f in schema)


def _leaves(t: pa.DataType) -> int:
    import pyarrow as pa

    if pa.types.is_struct(t):
        return sum(_leaves(t.field(i).type) for i in range(t.num_fields))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return 1 + _leaves(t.value_type)
    if pa.types.is_map(t):
        return 1 + _leaves(t.key_type) + _leaves(t.item_type)
    return 1
