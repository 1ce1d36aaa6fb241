"""Benchmark matrix: every table shape by every format, `syncer sync` against the engine's own writer.

Shapes are generated here (DuckDB SQL, deterministic): narrow-long orders (5M and 20M rows),
string-heavy (long variable strings), wide (300 columns), nested (LIST/STRUCT), many small tables
(200 tables of 2k rows) and the demo tables. Each (shape, format) cell times a full `syncer sync` (export +
validate + hash + publish) against DuckDB's COPY of the same tables to the same format (Arrow IPC:
against a bare pyarrow stream of DuckDB's Arrow reader); Parquet also against the naive pandas way
and polars. Every case is a whole process, the cases of a cell interleaved, ``--repeat`` times;
wall, CPU and peak RSS come from the OS (``os.wait4``; the sync's peak memory is its process tree's,
sampled every 50 ms, when that is higher). Prints one table and the targets, writes JSON,
and with ``--readme`` replaces the matrix block in README.md.

    python benchmarks/matrix.py                         # the whole matrix, 3 runs per case
    python benchmarks/matrix.py --shapes narrow_5m wide --formats parquet csv
    python benchmarks/matrix.py --scale 0.01 --repeat 1 # a quick look at every cell

Not part of the test suite's pass/fail; the exit code is 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import precompile, report, run_process, run_startup, target_lines  # whole processes: wall, CPU and peak RSS from wait4

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
FORMATS = ("parquet", "csv", "jsonl", "arrow")
#: the export paths measured (``--export engine`` adds the engine path's sync to Parquet cells)
EXPORTS: set[str] = {"stream"}


def _orders(n: int) -> str:
    return f"""
    SELECT i AS order_id,
           TIMESTAMPTZ '2020-01-01 00:00:00+00' + to_seconds((i * 7919) % 150000000) AS placed_at,
           DATE '2020-01-01' + ((i * 31) % 2500)::INTEGER AS ship_date,
           CASE WHEN i % 11 = 0 THEN NULL ELSE ((i * 7717) % 10000000) / 100 END::DECIMAL(12, 2) AS amount,
           ((i * 2654435761) % 1000003) / 1000.0 AS score,
           ['new', 'paid', 'shipped', 'returned'][(i % 4) + 1] AS status,
           'customer note ' || repeat(chr(97 + (i % 26)::INTEGER), ((i * 13) % 48)::INTEGER) AS note,
           i % 3 = 0 AS gift,
           md5(i::VARCHAR)::UUID AS token
    FROM range({n}) t(i)"""


def _strings(n: int) -> str:
    return f"""
    SELECT i AS id,
           repeat('lorem ipsum ', ((i * 37) % 60)::INTEGER) || i::VARCHAR AS body,
           repeat(md5(i::VARCHAR), ((i * 7) % 9)::INTEGER) AS digest_chain,
           CASE WHEN i % 5 = 0 THEN NULL ELSE 'tag-' || (i % 1000)::VARCHAR END AS tag
    FROM range({n}) t(i)"""


def _wide(n: int, columns: int = 300) -> str:
    exprs = ["i AS id"]
    for c in range(1, columns):
        kind = c % 3
        if kind == 0:
            exprs.append(f"(i * {c + 7}) % 100003 AS c{c:03d}")
        elif kind == 1:
            exprs.append(f"((i + {c}) * 0.5) % 977 AS c{c:03d}")
        else:
            exprs.append(f"'v' || ((i + {c}) % 97)::VARCHAR AS c{c:03d}")
    return f"SELECT {', '.join(exprs)} FROM range({n}) t(i)"


def _nested(n: int) -> str:
    return f"""
    SELECT i AS id,
           [('t' || ((i + k) % 50)::VARCHAR) FOR k IN range((i % 5)::BIGINT)] AS tags,
           {{'x': (i % 1000) / 10.0, 'y': (i % 77)::INTEGER, 'label': 'p' || (i % 13)::VARCHAR}} AS point,
           [((i * k) % 1000)::INTEGER FOR k IN range((i % 7)::BIGINT)] AS readings
    FROM range({n}) t(i)"""


@dataclass(frozen=True)
class Shape:
    name: str
    rows: int
    tables: int = 1
    build: Callable[[int], str] | None = None  # None: the demo warehouse (`syncer demo`)
    formats: tuple[str, ...] = FORMATS  # CSV cannot hold LIST/STRUCT: the sync refuses it, by design

    def tables_and_keys(self) -> dict[str, list[str]]:
        if self.build is not None:
            return {f"t{k:03d}": [_first_column(self.build)] for k in range(self.tables)}
        demo = tomllib.loads((ROOT / "sync.toml").read_text())["tables"]  # the demo's own tables and keys
        return {t["source"]: t["primary_key"] for t in demo}


def _first_column(build: Callable[[int], str]) -> str:
    return re.search(r"SELECT\s+i AS (\w+)", build(1)).group(1)  # type: ignore[union-attr]


SHAPES = {
    "narrow_5m": Shape("narrow_5m", 5_000_000, build=_orders),
    "narrow_20m": Shape("narrow_20m", 20_000_000, build=_orders),
    "strings": Shape("strings", 1_000_000, build=_strings),
    "wide": Shape("wide", 1_000_000, build=_wide),
    "nested": Shape("nested", 2_000_000, build=_nested, formats=("parquet", "jsonl", "arrow")),
    "many_small": Shape("many_small", 2_000, tables=200, build=_orders),
    "demo": Shape("demo", 5_000_000),
}


_BUILD = """
import duckdb, sys
with duckdb.connect(sys.argv[1]) as con:
    con.execute("SET memory_limit = '2GB'")
    con.execute("CREATE TABLE t000 AS " + sys.argv[2])
    for k in range(1, int(sys.argv[3])):
        con.execute(f"CREATE TABLE t{k:03d} AS SELECT * FROM t000")
"""


def build_warehouse(work: Path, shape: Shape, rows: int) -> Path:
    db = work / f"{shape.name}-{rows}.duckdb"
    if db.exists():
        return db
    print(f"building {shape.name} ({shape.tables} × {rows:,} rows) ...", flush=True)
    tmp = db.with_suffix(".building")
    tmp.unlink(missing_ok=True)
    if shape.build is None:
        cfg = work / "demo-build.toml"
        cfg.write_text(sync_config(tmp, work / "unused", shape.tables_and_keys(), "parquet"))
        subprocess.run([PY, "-m", "syncer", "--config", str(cfg), "demo", "--rows", str(rows)], check=True)
    else:
        # in a process of its own: Linux carries a parent's peak RSS into every child it starts
        # (ru_maxrss survives fork + exec), so this process must stay small for the figures to hold
        subprocess.run([PY, "-c", _BUILD, str(tmp), shape.build(rows), str(shape.tables)], check=True)
    tmp.rename(db)
    return db


def sync_config(db: Path, root: Path, tables: dict[str, list[str]], fmt: str, export: str = "stream") -> str:
    head = f'[source]\nkind = "duckdb"\npath = "{db}"\n\n[volume]\nroot = "{root}"\nretain = 2\n'
    body = "".join(
        f'\n[[tables]]\nname = "{t}"\nsource = "{t}"\nformat = "{fmt}"\nprimary_key = {json.dumps(k)}\nexport = "{export}"\n'
        for t, k in tables.items()
    )
    return head + body


COPY = """
import duckdb, sys
fmt, out, tables = sys.argv[2], sys.argv[3], sys.argv[4:]
opts = {"parquet": "FORMAT parquet, COMPRESSION zstd", "csv": "FORMAT csv, HEADER", "jsonl": "FORMAT json"}[fmt]
con = duckdb.connect(sys.argv[1], read_only=True)
for t in tables:
    con.execute(f"COPY (SELECT * FROM {t}) TO '{out}/{t}.{fmt}' ({opts})")
"""

ARROW_STREAM = """
import duckdb, sys, pyarrow as pa
out, tables = sys.argv[2], sys.argv[3:]
con = duckdb.connect(sys.argv[1], read_only=True)
for t in tables:
    reader = con.sql(f"SELECT * FROM {t}").to_arrow_reader(32768)
    with pa.OSFile(f"{out}/{t}.arrow", "wb") as sink, pa.ipc.new_file(sink, reader.schema) as w:
        for b in reader:
            w.write_batch(b)
"""

PANDAS = """
import duckdb, sys
out, tables = sys.argv[2], sys.argv[3:]
con = duckdb.connect(sys.argv[1], read_only=True)
for t in tables:
    con.execute(f"SELECT * FROM {t}").df().to_parquet(f"{out}/{t}.parquet", compression="zstd")
"""

READ_SYNCER = """
import sys
from syncer import read_table
for t in sys.argv[2:]:
    assert read_table(t, root=sys.argv[1], as_arrow=True).num_rows > 0
"""

READ_PYARROW = """
import sys, pathlib, pyarrow.parquet as pq
current = pathlib.Path(sys.argv[1]) / "current"
for t in sys.argv[2:]:
    path = current / f"{t}.parquet"
    assert pq.read_table(path if path.exists() else current / t).num_rows > 0
"""

POLARS = """
import duckdb, sys
out, tables = sys.argv[2], sys.argv[3:]
con = duckdb.connect(sys.argv[1], read_only=True)
for t in tables:
    con.sql(f"SELECT * FROM {t}").pl().write_parquet(f"{out}/{t}.parquet", compression="zstd")
"""


def cell_cases(work: Path, db: Path, keys: dict[str, list[str]], fmt: str, tag: str) -> dict[str, Callable[[], dict[str, float]]]:
    """The processes of one (shape, format) cell; each starts from an empty output folder."""
    env = {**os.environ, "SYNCER_LOG_FORMAT": "text", "ARROW_DEFAULT_MEMORY_POOL": "system"}
    vol = work / f"vol-{tag}"
    cfg = work / f"sync-{tag}.toml"
    cfg.write_text(sync_config(db, vol, keys, fmt))
    tables = list(keys)

    def fresh(name: str) -> str:
        out = work / f"out-{tag}-{name}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        return str(out)

    def sync() -> dict[str, float]:
        shutil.rmtree(vol, ignore_errors=True)  # a full export every time, not a carried-over one
        return run_process([PY, "-m", "syncer", "--config", str(cfg), "sync"], env=env)

    cases: dict[str, Callable[[], dict[str, float]]] = {"syncer sync": sync}
    if "engine" in EXPORTS and fmt == "parquet":  # --export engine: the warehouse writes the files too
        vol_e, cfg_e = work / f"vol-{tag}-engine", work / f"sync-{tag}-engine.toml"
        cfg_e.write_text(sync_config(db, vol_e, keys, fmt, export="engine"))

        def sync_engine() -> dict[str, float]:
            shutil.rmtree(vol_e, ignore_errors=True)
            return run_process([PY, "-m", "syncer", "--config", str(cfg_e), "sync"], env=env)

        cases["syncer engine"] = sync_engine
    if fmt == "arrow":
        cases["pyarrow stream"] = lambda: run_process([PY, "-c", ARROW_STREAM, str(db), fresh("base"), *tables])
    else:
        cases["duckdb COPY"] = lambda: run_process([PY, "-c", COPY, str(db), fmt, fresh("base"), *tables])
    if fmt == "parquet":
        # after "syncer sync" in the same round, on the volume it published: the table did not change
        cases["unchanged sync"] = lambda: unchanged_sync(cfg, vol, env)
        cases["read_table"] = lambda: run_process([PY, "-c", READ_SYNCER, str(vol), *tables], env=env)
        cases["pyarrow read_table"] = lambda: run_process([PY, "-c", READ_PYARROW, str(vol), *tables], env=env)
        cases["startup /ready"] = lambda: run_startup(cfg)
        cases["naive pandas"] = lambda: run_process([PY, "-c", PANDAS, str(db), fresh("pandas"), *tables])
        cases["polars"] = lambda: run_process([PY, "-c", POLARS, str(db), fresh("polars"), *tables])
    return cases


def unchanged_sync(cfg: Path, vol: Path, env: dict[str, str]) -> dict[str, float]:
    """The re-sync of a volume whose tables did not change, and the share of them the snapshot it
    published calls ``unchanged`` (hard-linked, not exported): the proof that it cost no export."""
    m = run_process([PY, "-m", "syncer", "--config", str(cfg), "sync"], env=env)
    tables = json.loads((vol / "current" / "manifest.json").read_text(encoding="utf-8"))["tables"]
    m["unchanged_share"] = sum(t["status"] == "unchanged" for t in tables.values()) / len(tables)
    return m


def warm(path: Path) -> None:
    """Read the warehouse file once (into the page cache), as every case after the first finds it."""
    with open(path, "rb") as f:
        while f.read(16 * 2**20):
            pass


def baseline_of(fmt: str) -> str:
    return "pyarrow stream" if fmt == "arrow" else "duckdb COPY"


def run_cell(work: Path, shape: Shape, rows: int, fmt: str, repeat: int) -> dict[str, Any]:
    db = build_warehouse(work, shape, rows)
    warm(db)  # the first case of a round must not pay a cold page cache that the others do not
    cases = cell_cases(work, db, shape.tables_and_keys(), fmt, f"{shape.name}-{fmt}")
    samples: dict[str, list[dict[str, float]]] = {k: [] for k in cases}
    for i in range(repeat):
        for name, fn in cases.items():  # interleaved: one of each per round
            samples[name].append(fn())
            print(f"  {shape.name:<11} {fmt:<7} {i + 1}/{repeat} {name:<14} {samples[name][-1]['wall_s']:7.2f} s", flush=True)
    for out in work.glob(f"out-{shape.name}-{fmt}-*"):  # the baselines' files: a 20M-row cell leaves GBs
        shutil.rmtree(out, ignore_errors=True)
    fields = ("wall_s", "cpu_s", "rss_mib", "tree_mib")
    med = {k: {f: statistics.median(x.get(f, math.nan) for x in v) for f in fields} for k, v in samples.items()}
    spread = {k: [min(x["wall_s"] for x in v), max(x["wall_s"] for x in v)] for k, v in samples.items()}
    base = med[baseline_of(fmt)]
    return {
        "shape": shape.name,
        "rows": rows,
        "tables": shape.tables,
        "format": fmt,
        "samples": samples,
        "median": med,
        "spread": spread,
        "ratio": med["syncer sync"]["wall_s"] / base["wall_s"],
    }


def peak(m: dict[str, float]) -> float:
    """A sync's peak memory: its process tree's (the supervisor, the sync and any unload child
    together) when sampled, never below the largest single process's (``wait4``)."""
    tree = m.get("tree_mib", math.nan)
    return m["rss_mib"] if math.isnan(tree) else max(tree, m["rss_mib"])


def table_lines(cells: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| shape | format | sync wall s (min–max) | baseline wall s | sync / baseline | sync peak MiB (tree) | baseline peak MiB | others (wall s, peak MiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        m, sp, b = c["median"], c["spread"], baseline_of(c["format"])
        s = m["syncer sync"]
        lo, hi = sp["syncer sync"]
        others = ", ".join(
            f"{k} {v['wall_s']:.2f}" + ("" if math.isnan(v["rss_mib"]) else f" / {v['rss_mib']:.0f}")
            for k, v in m.items()
            if k not in ("syncer sync", b)
        )
        shape = f"{c['shape']} ({c['tables']} × {c['rows']:,})" if c["tables"] > 1 else f"{c['shape']} ({c['rows']:,})"
        lines.append(
            f"| {shape} | {c['format']} | {s['wall_s']:.2f} ({lo:.2f}–{hi:.2f}) | {b} {m[b]['wall_s']:.2f} | "
            f"{c['ratio']:.2f}× | {peak(s):.0f} | {m[b]['rss_mib']:.0f} | {others} |"
        )
    return lines


def targets(cells: list[dict[str, Any]]) -> list[tuple[str, bool, str]]:
    out: list[tuple[str, bool, str]] = []
    for c in cells:
        where = f"{c['shape']}/{c['format']}"
        limit = 2.0 if c["tables"] > 1 else 1.3
        out.append((f"{where}: sync ≤ {limit}× baseline", c["ratio"] <= limit, f"{c['ratio']:.2f}×"))
        rss = peak(c["median"]["syncer sync"])
        out.append((f"{where}: peak memory ≤ 400 MiB", rss <= 400, f"{rss:.0f} MiB"))
        m = c["median"]
        if "read_table" in m:
            r = m["read_table"]["wall_s"] / m["pyarrow read_table"]["wall_s"]
            out.append((f"{where}: read_table ≤ 1.2× pyarrow", r <= 1.2, f"{r:.2f}×"))
            ready = m["startup /ready"]["wall_s"]
            out.append((f"{where}: startup to /ready ≤ 5 s (fresh snapshot)", ready <= 5, f"{ready:.2f} s"))
            # no export: every table hard-linked as `unchanged` in every round; the time is what a
            # process costs anyway (start, imports, the marker check, the publish), shown as a ratio
            u = m["unchanged sync"]["wall_s"] / m["syncer sync"]["wall_s"]
            share = min(x.get("unchanged_share", 0.0) for x in c["samples"]["unchanged sync"])
            out.append(
                (
                    f"{where}: unchanged re-sync exports nothing (every table `unchanged`)",
                    share == 1.0,
                    f"{share:.0%} unchanged, {u:.2f}× the sync's wall",
                )
            )
    by = {(c["shape"], c["format"]): c for c in cells}
    for fmt in FORMATS:
        small, big = by.get(("narrow_5m", fmt)), by.get(("narrow_20m", fmt))
        if small and big:
            a, b = (peak(x["median"]["syncer sync"]) for x in (small, big))
            out.append((f"narrow/{fmt}: peak RSS 20M ≤ 1.15× 5M", b <= 1.15 * a, f"{b / a:.2f}× ({b:.0f} vs {a:.0f} MiB)"))
    return out


def run_line(args: argparse.Namespace) -> str:
    """What produced the block: the command, the commit, the date and the machine."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = ""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    return (
        f"Latest run: `python benchmarks/matrix.py {' '.join(sys.argv[1:])}` at {commit or 'an unknown commit'}, {when}, "
        f"on {os.cpu_count()} cores / {ram:.0f} GiB: medians of {args.repeat} interleaved rounds (min–max), "
        "every case a whole process started after the previous one's writeback is flushed, ratios within this run."
    )


def update_readme(lines: list[str]) -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = "<!-- benchmark-matrix:start -->", "<!-- benchmark-matrix:end -->"
    if start not in text or end not in text:
        raise SystemExit(f"README.md has no {start} … {end} block to replace")
    block = "\n".join([start, *lines, end])
    readme.write_text(re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S))
    print("README.md: matrix block replaced")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    ap.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every shape's row count (a quick look: 0.01)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "vds-matrix")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "matrix.json")
    ap.add_argument("--readme", action="store_true", help="replace the matrix block in README.md with this run's table")
    ap.add_argument(
        "--export", choices=("stream", "engine"), default="stream", help="engine: also time export = engine (Parquet)"
    )
    args = ap.parse_args()
    produced = run_line(args)  # the commit measured, before anything else is committed meanwhile
    precompile()
    EXPORTS.add(args.export)
    args.work.mkdir(parents=True, exist_ok=True)
    cells = []
    for name in args.shapes:
        shape = SHAPES[name]
        rows = max(100, int(shape.rows * args.scale))
        for fmt in (f for f in args.formats if f in shape.formats):
            cells.append(run_cell(args.work, shape, rows, fmt, args.repeat))
    lines = table_lines(cells)
    print("\n" + "\n".join(lines))
    checks = targets(cells)
    code = report(checks, args.out, {"scale": args.scale, "repeat": args.repeat, "cells": cells})
    if args.readme:
        update_readme([produced, "", *lines, "", *target_lines(checks)])
    return code


if __name__ == "__main__":
    sys.exit(main())
