"""What a full sync does beyond DuckDB's COPY, each step timed on its own: the floor of a matrix cell.

DuckDB's COPY scans the table, encodes it and writes the bytes. A ``syncer sync`` does that too
(scan, convert to the published types, encode, write), and then what the validation requires and
COPY does not: the source's profile (a query of its own), the profile of every batch written, the
sha256 of every byte, the fsync that makes the files durable before they are published, and for
the formats our own encoders spell (CSV, JSONL) the re-read of the closed file with every value
parsed back and profiled. This script times each of those steps alone, single-threaded, on the
matrix's own warehouses (``benchmarks/matrix.py``), next to the whole COPY process and the whole
sync process, and prints what the steps add to COPY's CPU:

    python benchmarks/floor.py                          # narrow_5m, every format
    python benchmarks/floor.py --shapes wide --scale 0.25 --formats parquet

On two cores both busy (COPY's CPU / wall near 2), a process's wall cannot be less than its CPU
over two; the checks' CPU over COPY's is then what the sync adds at least, however it overlaps.
The fsync is the disk's time (wall), which COPY leaves to the kernel's writeback after it exits.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import run_process  # whole processes: wall, CPU and peak RSS from wait4
from matrix import ARROW_STREAM, COPY, FORMATS, PY, SHAPES, build_warehouse, sync_config, warm


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(CPU s of this process, wall s) of ``fn()``."""
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c0, time.perf_counter() - w0


def _drain(batches: Iterator[Any], each: Callable[[Any], None] | None = None) -> None:
    for b in batches:
        if each is not None:
            each(b)


def published_files(vol: Path, table: str) -> list[Path]:
    entry = json.loads((vol / "current" / "manifest.json").read_text(encoding="utf-8"))["tables"][table]
    base = vol / "current" / entry["file"]
    return sorted(p for p in base.iterdir()) if base.is_dir() else [base]


def steps(db: Path, vol: Path, table: str, key: tuple[str, ...], fmt: str, work: Path) -> dict[str, tuple[float, float]]:
    """Each check of one synced table, alone: name -> (CPU s, wall s)."""
    from syncer._memory import DEFAULT_BATCH_BYTES, batch_rows_for
    from syncer.config import SourceConfig, TableConfig
    from syncer.formats import reread_batches
    from syncer.sources.duckdb import DuckDBSource
    from syncer.validate.profile import ProfileAccumulator

    files = published_files(vol, table)
    cfg = TableConfig(name=table, source=table, format=fmt, primary_key=key)
    out: dict[str, tuple[float, float]] = {}
    with DuckDBSource(SourceConfig(kind="duckdb", path=db)) as src:
        schema = src.schema(cfg)
        src.count(cfg)
        out["source profile (DuckDB query)"] = _timed(lambda: src.profile(cfg, schema))
        rows = batch_rows_for(schema, DEFAULT_BATCH_BYTES, 131_072)  # batches of the product's byte target
        scan = _timed(lambda: _drain(src.stream(cfg, schema, rows)))
        acc = ProfileAccumulator(schema, footer_ranges=fmt == "parquet")
        both = _timed(lambda: _drain(src.stream(cfg, schema, rows), acc.update))
        out["written profile (Arrow compute)"] = (max(0.0, both[0] - scan[0]), max(0.0, both[1] - scan[1]))

    def sha() -> None:
        for f in files:
            h = hashlib.sha256()
            with open(f, "rb") as fh:
                while chunk := fh.read(4 * 2**20):
                    h.update(chunk)

    out["sha256 of the file"] = _timed(sha)
    copies = [work / f"fsync-{i}" for i in range(len(files))]
    for f, c in zip(files, copies, strict=True):
        shutil.copyfile(f, c)  # dirty in the page cache, as the writer leaves it

    def fsync() -> None:
        for c in copies:
            fd = os.open(c, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    out["fsync of the file (disk)"] = _timed(fsync)
    for c in copies:
        c.unlink()
    if fmt in ("csv", "jsonl"):
        back = ProfileAccumulator(schema)
        out["re-read, parsed and profiled"] = _timed(lambda: [_drain(reread_batches(fmt, f, schema), back.update) for f in files])
    return out


def cell(work: Path, shape_name: str, scale: float, fmt: str) -> dict[str, Any]:
    shape = SHAPES[shape_name]
    rows = max(100, int(shape.rows * scale))
    db = build_warehouse(work, shape, rows)
    warm(db)
    keys = shape.tables_and_keys()
    table = next(iter(keys))
    vol, cfg = work / f"floor-{shape_name}-{fmt}", work / f"floor-{shape_name}-{fmt}.toml"
    cfg.write_text(sync_config(db, vol, {table: keys[table]}, fmt))
    env = {**os.environ, "SYNCER_LOG_FORMAT": "text", "ARROW_DEFAULT_MEMORY_POOL": "system"}
    shutil.rmtree(vol, ignore_errors=True)
    sync = run_process([PY, "-m", "syncer", "--config", str(cfg), "sync"], env=env)
    unchanged = run_process([PY, "-m", "syncer", "--config", str(cfg), "sync"], env=env)
    bare = run_process([PY, "-c", "import duckdb"])  # what COPY's process pays to start
    base = work / f"floor-copy-{shape_name}-{fmt}"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    # the matrix's baseline of the cell: DuckDB's COPY, for Arrow IPC a bare pyarrow stream
    argv = (
        [PY, "-c", ARROW_STREAM, str(db), str(base), table]
        if fmt == "arrow"
        else [PY, "-c", COPY, str(db), fmt, str(base), table]
    )
    copy = run_process(argv)
    shutil.rmtree(base, ignore_errors=True)
    return {
        "shape": shape_name,
        "rows": rows,
        "format": fmt,
        "sync": sync,
        "unchanged": unchanged,
        "bare_start": bare,
        "copy": copy,
        "steps": steps(db, vol, table, tuple(keys[table]), fmt, work),
    }


def lines(c: dict[str, Any]) -> list[str]:
    copy_cpu, copy_wall = c["copy"]["cpu_s"], c["copy"]["wall_s"]
    checks = sum(cpu for name, (cpu, _) in c["steps"].items() if "fsync" not in name)
    fixed = c["unchanged"]["cpu_s"]
    extra = max(0.0, fixed - c["bare_start"]["cpu_s"])
    least = copy_cpu + checks + extra
    out = [
        f"### {c['shape']} ({c['rows']:,}) → {c['format']}",
        "",
        "| step | CPU s | wall s | share of COPY's CPU |",
        "|---|---|---|---|",
        f"| DuckDB COPY, whole process | {copy_cpu:.2f} | {copy_wall:.2f} | CPU/wall {copy_cpu / copy_wall:.2f} |",
    ]
    out += [f"| {name} | {cpu:.2f} | {wall:.2f} | {cpu / copy_cpu:.0%} |" for name, (cpu, wall) in c["steps"].items()]
    out += [
        f"| a sync process with nothing to export (start, imports, checks, publish) | {fixed:.2f} | {c['unchanged']['wall_s']:.2f} | {fixed / copy_cpu:.0%} |",
        f"| **the checks (without the fsync) over COPY's CPU** | {checks:.2f} | | **+{checks / copy_cpu:.0%}** |",
        f"| the process's start beyond COPY's (`import duckdb`: {c['bare_start']['cpu_s']:.2f} s) | {extra:.2f} | | +{extra / copy_cpu:.0%} |",
        f"| **least CPU of a sync: COPY's + the checks + the start** | {least:.2f} | | **{least / copy_cpu:.2f}× COPY's CPU** |",
        f"| the whole sync, for comparison | {c['sync']['cpu_s']:.2f} | {c['sync']['wall_s']:.2f} | {c['sync']['wall_s'] / copy_wall:.2f}× COPY's wall |",
        "",
    ]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="+", choices=[s for s in SHAPES if SHAPES[s].tables == 1], default=["narrow_5m"])
    ap.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS))
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--work", type=Path, default=Path("/tmp") / "vds-matrix")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "floor.json")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    cells = [cell(args.work, s, args.scale, f) for s in args.shapes for f in args.formats if f in SHAPES[s].formats]
    for c in cells:
        print("\n".join(lines(c)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(cells, indent=1, default=str), encoding="utf-8")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
