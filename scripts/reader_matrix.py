"""The reader matrix: every catalogue type, synced in every format, read back by every reader.

    python scripts/reader_matrix.py --out docs/compatibility.md --json docs/compatibility.json

Builds the type catalogue (tests/catalogue.py) as a DuckDB warehouse in a temporary folder, syncs
every table in every format with the real engine (``syncer.sync``), then reads each published file
with each reader in a subprocess of its own (a reader that crashes is a cell, not a dead script) and
compares every cell with the catalogue's source values (scripts/compare_values.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from compare_values import arrow_columns, converted, exact, frame_columns, show  # noqa: E402

from tests.catalogue import CATALOGUE, FORMATS, Entry, build_catalogue, entry  # noqa: E402

COMMAND = "python scripts/reader_matrix.py --out docs/compatibility.md --json docs/compatibility.json"

#: the CSV and JSONL readers with the options README gives (scripts/documented_readers.py)
DOCUMENTED = ("pyarrow (documented)", "pandas (documented)", "polars (documented)", "duckdb (documented)")

# format -> readers, in column order
READERS: dict[str, tuple[str, ...]] = {
    "parquet": ("read_table arrow", "read_table pandas", "pyarrow", "pandas", "pandas fastparquet", "polars", "duckdb"),
    "csv": ("read_table arrow", "read_table pandas", "pyarrow", "pandas", "polars", "duckdb", *DOCUMENTED),
    "jsonl": ("read_table arrow", "read_table pandas", "pyarrow", "pandas", "polars", "duckdb", *DOCUMENTED),
    "arrow": ("read_table arrow", "read_table pandas", "pyarrow", "pandas", "polars", "duckdb"),
}
CALLS = {
    "parquet": {
        "pyarrow": "pq.read_table",
        "pandas": 'pd.read_parquet(engine="pyarrow")',
        "pandas fastparquet": 'pd.read_parquet(engine="fastparquet")',
        "polars": "pl.read_parquet",
        "duckdb": "read_parquet(...).fetchall()",
    },
    "csv": {
        "pyarrow": "pa.csv.read_csv",
        "pandas": "pd.read_csv",
        "polars": "pl.read_csv",
        "duckdb": "read_csv(...).fetchall()",
        "pyarrow (documented)": r"pa.csv.read_csv(ParseOptions(newlines_in_values=True), ConvertOptions(null_values=['\N'], "
        "strings_can_be_null=True, quoted_strings_can_be_null=False, column_types={every column: its type; binary, "
        "HUGEINT: pa.string()}))",
        "pandas (documented)": r"pd.read_csv(keep_default_na=False, na_values={every column: ['\N'], floats: ['\N', 'nan']}, "
        "dtype={integers: 'Int64'/'UInt64'..., booleans: 'boolean', floats: their width, others: str}), then Decimal(...)",
        "polars (documented)": r"pl.read_csv(null_values=['\N'], schema_overrides={every column: its type; binary, HUGEINT: pl.String})",
        "duckdb (documented)": r"read_csv(header = true, nullstr = '\N', allow_quoted_nulls = false, "
        "types = {every column: its type; binary: 'VARCHAR', HUGEINT: 'HUGEINT'}), from_base64(binary)",
    },
    "jsonl": {
        "pyarrow": "pa.json.read_json",
        "pandas": "pd.read_json(lines=True)",
        "polars": "pl.read_ndjson",
        "duckdb": "read_json(...).fetchall()",
        "pyarrow (documented)": "pa.json.read_json(ParseOptions(explicit_schema={decimals, HUGEINT: pa.string(); unsigned: "
        'their type}, unexpected_field_behavior="infer")), then .cast(decimal type)',
        "pandas (documented)": "pd.read_json(lines=True, dtype=False, precise_float=True), then float(...) / Decimal(...)",
        "polars (documented)": "pl.read_ndjson(schema_overrides={floats, decimals, HUGEINT: pl.String}), then "
        ".cast(pl.Float64 / pl.Decimal(p, s))",
        "duckdb (documented)": "read_json(columns = {every column: its type; floats, decimals, binary: 'VARCHAR'; MAP: "
        "'STRUCT(key K, value V)[]'; INTERVAL: 'STRUCT(months INTEGER, days INTEGER, nanoseconds BIGINT)'}), then "
        "::DOUBLE / ::DECIMAL(p,s) / from_base64 / map_from_entries",
    },
    "arrow": {
        "pyarrow": "pa.ipc.open_file",
        "pandas": "pd.read_feather",
        "polars": "pl.read_ipc",
        "duckdb": "pa.ipc → duckdb.from_arrow(...).fetchall()",
    },
}
KINDS = ("exact", "converted", "differs", "error", "crash", "refused")

#: what the matrix shows that no option of ours can fix, with the way around it
READER_LIMITS = (
    "polars `read_ipc` (also `scan_ipc`, `from_arrow`) panics on an INTERVAL column (a polars bug: no import of "
    "`month_day_nano_interval`); the matrix runs each reader in a process of its own and records it as a **crash**. "
    "Workaround: `POLARS_IMPORT_INTERVAL_AS_STRUCT=1` in the environment (a struct of months, days, nanoseconds; "
    "unstable in polars), or read with pyarrow and drop or convert the column before `pl.from_arrow`.",
    "DuckDB's and polars' Python values (`fetchall()`, `to_dict()`) of nanosecond timestamps and times are microsecond "
    "datetimes and times: the columns hold nanoseconds (`TIMESTAMP_NS`, `TIME_NS`, `Datetime('ns')`, `Time`); fetch "
    "them as Arrow to keep them (the matrix shows a time64[ns] read through pyarrow as its ISO text).",
    "pyarrow's JSON reader refuses a float column holding NaN or ±inf (JSONL spells them as strings among numbers).",
    "pandas `read_json` makes integers of a column with nulls `float64` (exact only within ±2^53); with "
    "`precise_float=True` it refuses a subnormal double (`5e-324`), without it rounds such values.",
    'polars `read_csv` keeps the doubled quote of a quoted header name (`quote""d` for the column `quote"d`).',
    "fastparquet gives decimals as float64, dates as `datetime64[ns]` (1677-2262 only) and integers with nulls as "
    'float64 through pandas (README "Reading Parquet with other tools").',
)


# --- reading (runs in the worker subprocess) ----------------------------------------------------------


def _frame(df: Any) -> dict[str, list[Any]]:
    return frame_columns(df)


def _duck(sql: str, arrow: Any = None) -> dict[str, list[Any]]:
    import duckdb

    con = duckdb.connect()
    try:
        rel = con.from_arrow(arrow) if arrow is not None else con.sql(sql)
        names = [d[0] for d in rel.description]
        rows = rel.fetchall()
    finally:
        con.close()
    return {n: [r[i] for r in rows] for i, n in enumerate(names)}


def read_with(reader: str, fmt: str, path: Path, root: Path, table: str) -> dict[str, list[Any]]:
    """The columns of the published file as ``reader`` gives them to an app."""
    if reader.startswith("read_table"):
        import syncer

        got = syncer.read_table(table, root=root, as_arrow=reader.endswith("arrow"))
        return arrow_columns(got) if reader.endswith("arrow") else _frame(got)
    if reader.endswith(" (documented)"):
        from documented_readers import read_documented

        import syncer
        from syncer.formats import schema_from_b64

        entry_ = syncer.current_snapshot(root).tables[table]
        notes = {c.name: str(c.extra["converted"]) for c in entry_.schema if "converted" in c.extra}
        return read_documented(reader.split(" ")[0], fmt, path, schema_from_b64(entry_.arrow_schema or ""), notes)
    p = str(path)
    q = "'" + p.replace("'", "''") + "'"
    if reader == "pyarrow":
        import pyarrow as pa
        import pyarrow.csv as pcsv
        import pyarrow.ipc as ipc
        import pyarrow.json as pjson
        import pyarrow.parquet as pq

        tbl = {
            "parquet": lambda: pq.read_table(p),
            "csv": lambda: pcsv.read_csv(p),
            "jsonl": lambda: pjson.read_json(p),
            "arrow": lambda: ipc.open_file(pa.memory_map(p)).read_all(),
        }[fmt]()
        return arrow_columns(tbl)
    if reader.startswith("pandas"):
        import pandas as pd

        df = {
            "parquet": lambda: pd.read_parquet(p, engine="fastparquet" if "fastparquet" in reader else "pyarrow"),
            "csv": lambda: pd.read_csv(p),
            "jsonl": lambda: pd.read_json(p, lines=True),
            "arrow": lambda: pd.read_feather(p),
        }[fmt]()
        return _frame(df)
    if reader == "polars":
        import polars as pl

        df = {"parquet": pl.read_parquet, "csv": pl.read_csv, "jsonl": pl.read_ndjson, "arrow": pl.read_ipc}[fmt](p)
        return df.to_dict(as_series=False)
    if reader == "duckdb":
        if fmt == "arrow":  # DuckDB reads no Arrow IPC file itself: through pyarrow, as an app would
            import pyarrow as pa
            import pyarrow.ipc as ipc

            return _duck("", ipc.open_file(pa.memory_map(p)).read_all())
        fn = {"parquet": "read_parquet", "csv": "read_csv", "jsonl": "read_json"}[fmt]
        return _duck(f"SELECT * FROM {fn}({q})")
    raise ValueError(f"unknown reader {reader!r}")


def _key(v: Any) -> Any:
    try:
        f = float(v)
        return int(f) if f.is_integer() else v
    except (TypeError, ValueError):
        return v


def judge(expected: dict[str, list[Any]], got: dict[str, list[Any]]) -> tuple[str, str]:
    """(exact | converted | differs, the first difference or conversion, short)."""
    if "k" not in got:
        return "differs", f"no column k (columns: {', '.join(list(got)[:6])})"
    index = {_key(k): i for i, k in enumerate(got["k"])}
    if len(got["k"]) != len(expected["k"]):
        return "differs", f"{len(got['k'])} rows, the source has {len(expected['k'])}"
    kind, detail = "exact", ""
    for col, values in expected.items():
        if col == "k":
            continue
        if col not in got:
            return "differs", f"no column {col!r} (columns: {', '.join(list(got)[:6])})"
        for k, want in zip(expected["k"], values, strict=True):
            if k not in index:
                return "differs", f"no row k={k}"
            have = got[col][index[k]]
            if exact(want, have):
                continue
            where = f"k={k}" if col == "v" else f"{col} k={k}"
            if not converted(want, have):
                return "differs", f"{where}: {show(want)} → {show(have)}"
            if kind == "exact":
                kind, detail = "converted", f"{where}: {show(want, 30)} → {show(have, 30)}"
    return kind, detail


def worker(reader: str, fmt: str, jobs_file: Path) -> None:
    """Read and judge every job of ``jobs_file``; one JSON line per table on stdout."""
    warnings.simplefilter("ignore")
    for job in json.loads(jobs_file.read_text(encoding="utf-8")):
        e = entry(job["entry"])
        try:
            got = read_with(reader, fmt, Path(job["path"]), Path(job["root"]), job["table"])
            kind, detail = judge(e.expected(), got)
        except Exception as exc:  # a reader's error is a cell result
            kind, detail = "error", f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:160]
        print(json.dumps({"entry": e.name, "result": kind, "detail": detail}), flush=True)


# --- syncing ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    entry: str
    fmt: str
    table: str
    status: str  # published | refused | write error | fails validation (checks) | engine crash
    detail: str = ""
    path: str = ""


def _config_text(db: Path, tables: list[tuple[Entry, str]]) -> str:
    head = f'[source]\nkind = "duckdb"\npath = "{db}"\n\n[volume]\nroot = "data"\nretain = 3\n\n[export]\nbatch_rows = 1000\n'
    body = "".join(
        f'\n[[tables]]\nname = "{e.name}__{fmt}"\nsource = "{e.table}"\nprimary_key = ["k"]\nformat = "{fmt}"\n'
        for e, fmt in tables
    )
    return head + body


def sync_all(folder: Path, entries: tuple[Entry, ...]) -> tuple[Path, dict[tuple[str, str], Published]]:
    """Sync every (entry, format) table; one sync per format, then per table if the engine crashes."""
    import syncer

    db = build_catalogue(folder / "catalogue.duckdb", entries)
    out: dict[tuple[str, str], Published] = {}
    cfg_dir = folder / "cfg"
    cfg_dir.mkdir()
    (cfg_dir / "sync.toml").write_text(_config_text(db, [(e, f) for f in FORMATS for e in entries]), encoding="utf-8")
    cfg = syncer.load_config(cfg_dir / "sync.toml")
    for fmt in FORMATS:
        names = [f"{e.name}__{fmt}" for e in entries]
        try:
            report = syncer.sync(cfg, names)
        except Exception:
            report = None
        if report is not None:
            _check_served(cfg, report)
        for e in entries:
            name = f"{e.name}__{fmt}"
            result = None if report is None else next((t for t in report.tables if t.table == name), None)
            if result is None:
                result = _sync_one(cfg, name)
            if isinstance(result, str):
                out[(e.name, fmt)] = Published(e.name, fmt, name, "engine crash", result)
            elif result.status in ("fresh", "quarantined"):
                out[(e.name, fmt)] = Published(e.name, fmt, name, "published")
            else:
                out[(e.name, fmt)] = Published(e.name, fmt, name, _why_not(result), result.error or "")
    manifest = syncer.current_snapshot(config=cfg)
    snap = cfg.root / "snapshots" / manifest.id
    for key, pub in list(out.items()):
        if pub.status == "published":
            out[key] = Published(pub.entry, pub.fmt, pub.table, pub.status, path=str(snap / manifest.tables[pub.table].file))
    return cfg.root, out


def _check_served(cfg: Any, report: Any) -> None:
    """What a run says it published is what ``current`` serves: else the volume's story, in full."""
    import syncer
    from syncer.volume.served import SERVED_LOG

    published = {t.table for t in report.tables if t.status in ("fresh", "quarantined")}
    if report.snapshot_id is None and not published:
        return  # nothing published, nothing said to be
    served = syncer.current_snapshot(config=cfg)
    lost = sorted(published - set(served.tables))
    if served.id == report.snapshot_id and not lost:
        return
    snaps = sorted(p.name for p in (cfg.root / "snapshots").iterdir())
    chain = []
    for sid in snaps:
        try:
            m = json.loads((cfg.root / "snapshots" / sid / "manifest.json").read_text(encoding="utf-8"))
            chain.append(f"{sid}: previous={m.get('previous')} created={m.get('created_at')} tables={len(m.get('tables', {}))}")
        except OSError as exc:
            chain.append(f"{sid}: {exc}")
    served_log = (cfg.root / SERVED_LOG).read_text(encoding="utf-8") if (cfg.root / SERVED_LOG).exists() else "(none)"
    raise AssertionError(
        f"run {report.run_id} ({report.status}, snapshot {report.snapshot_id}, warnings {list(report.warnings)}) "
        f"but current serves {served.id} (fallback {served.fallback}); published and not served: {lost[:5]}; "
        f"snapshots: {chain}; served log: {served_log}"
    )


def _why_not(result: Any) -> str:
    """refused (the format cannot hold the type, by design) | write error | fails validation (checks)."""
    error = result.error or ""
    if "cannot hold column" in error:
        return "refused"
    if "cannot be written" in error:
        return "write error"
    failed = [c.name for c in result.checks if not c.ok and c.severity == "error"]
    return f"fails validation ({', '.join(failed)})" if failed else "refused"


def _sync_one(cfg: Any, name: str) -> Any:
    import syncer

    try:
        report = syncer.sync(cfg, [name])
    except Exception as exc:
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        return f"{type(exc).__name__}: {exc} (at {Path(tb.filename).name}:{tb.lineno})"[:200]
    _check_served(cfg, report)  # not caught: a report that is not what `current` serves fails the matrix
    return next(t for t in report.tables if t.table == name)


# --- the matrix -----------------------------------------------------------------------------------------


def _run_worker(reader: str, fmt: str, jobs: list[dict[str, str]], folder: Path, timeout: float) -> dict[str, dict[str, str]]:
    jobs_file = folder / f"jobs-{fmt}-{reader.replace(' ', '_')}-{jobs[0]['entry'] if len(jobs) == 1 else 'all'}.json"
    jobs_file.write_text(json.dumps(jobs), encoding="utf-8")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", reader, fmt, str(jobs_file)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=folder)
    except subprocess.TimeoutExpired:
        return {j["entry"]: {"result": "error", "detail": f"timed out after {timeout:g} s"} for j in jobs}
    done = {r["entry"]: r for r in (json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{"))}
    if proc.returncode != 0 and len(done) < len(jobs):
        if len(jobs) == 1:
            why = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
            tail = (proc.stderr.strip().splitlines() or [""])[-1][:120]
            return {jobs[0]["entry"]: {"result": "crash", "detail": f"{why} {tail}".strip()}}
        for j in jobs:  # find the table that kills the reader: one process each for the rest
            if j["entry"] not in done:
                done.update(_run_worker(reader, fmt, [j], folder, timeout))
    return {k: {"result": v["result"], "detail": v["detail"]} for k, v in done.items()}


def run_matrix(entries: tuple[Entry, ...] = CATALOGUE, *, workers: int = 2, timeout: float = 120) -> dict[str, Any]:
    """Build, sync and read everything; the matrix as JSON-ready data."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="reader-matrix-") as tmp:
        folder = Path(tmp)
        root, published = sync_all(folder, entries)
        tasks = []
        for fmt in FORMATS:
            jobs = [
                {"entry": p.entry, "table": p.table, "path": p.path, "root": str(root)}
                for p in (published[(e.name, fmt)] for e in entries)
                if p.status == "published"
            ]
            tasks += [(fmt, r, jobs) for r in READERS[fmt] if jobs]
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(lambda t: (t[0], t[1], _run_worker(t[1], t[0], t[2], folder, timeout)), tasks))
    cells: dict[tuple[str, str], dict[str, dict[str, str]]] = {}
    for fmt, reader, got in results:
        for name, cell in got.items():
            cells.setdefault((fmt, name), {})[reader] = cell
    return _assemble(entries, published, cells, time.monotonic() - started)


def _assemble(entries: tuple[Entry, ...], published: dict, cells: dict, seconds: float) -> dict[str, Any]:
    formats: dict[str, Any] = {}
    total: Counter[str] = Counter()
    for fmt in FORMATS:
        rows: dict[str, Any] = {}
        count: Counter[str] = Counter()
        for e in entries:
            pub = published[(e.name, fmt)]
            if pub.status == "published":
                row = {r: cells.get((fmt, e.name), {}).get(r, {"result": "error", "detail": "no result"}) for r in READERS[fmt]}
            else:
                kind = "crash" if pub.status == "engine crash" else "refused"
                detail = pub.detail if pub.status == "refused" else f"{pub.status}: {pub.detail}"
                row = {r: {"result": kind, "detail": detail[:200]} for r in READERS[fmt]}
            count.update(c["result"] for c in row.values())
            rows[e.name] = {
                "sql_type": e.sql_type or ", ".join(t for t, _ in e.all_columns().values()),
                "sync": pub.status,
                "sync_detail": pub.detail[:300],
                "promised_by_catalogue": fmt in e.exact_in,
                "note": e.note,
                "cells": row,
            }
        total.update(count)
        formats[fmt] = {"readers": list(READERS[fmt]), "calls": CALLS[fmt], "rows": rows, "summary": {k: count[k] for k in KINDS}}
    return {
        "command": COMMAND,
        "versions": _versions(),
        "seconds": round(seconds, 1),
        "summary": {k: total[k] for k in KINDS},
        "formats": formats,
    }


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {p: version(p) for p in ("volume-data-sync", "pyarrow", "pandas", "polars", "fastparquet", "duckdb")}


# --- output ---------------------------------------------------------------------------------------------


def _cell(c: dict[str, str]) -> str:
    text = c["result"] if not c["detail"] else f"{c['result']}: {c['detail']}"
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 110 else text[:109] + "…"


def to_markdown(m: dict[str, Any]) -> str:
    s = m["summary"]
    lines = [
        "# Reading the volume from other tools: the compatibility matrix",
        "",
        "Generated by `" + m["command"] + "` (about "
        f"{m['seconds']:.0f} s); do not edit by hand. The catalogue of types is `tests/catalogue.py`; the comparison is "
        "`scripts/compare_values.py`. `tests/test_reader_matrix.py` runs the matrix again and fails when a cell "
        "marked **exact** here is not exact any more: regenerate this page after a fix to raise the bar.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".",
        "",
        "Each catalogue table (an integer key `k` and a column `v` of the type, with its edge values and a null) is synced "
        "in each format with the real engine, then read by each reader in a process of its own, and every cell is compared "
        "with the source value:",
        "",
        "* **exact**: every value is the same value of the same kind (a pandas `Timestamp` equals a `datetime` of the same "
        "instant; NaN equals NaN; `-0.0` is not `0.0`; `1.0` is not `1`).",
        "* **converted**: every value survives but as another kind the app must convert (a DATE as text, an integer as an "
        "exact float, a null as NaN, bytes as base64); the first conversion is shown.",
        "* **differs**: a value is lost or changed (the first one is shown, `source → read`): `''` read as null, "
        "2^53 + 1 read as a float, a time-zone offset dropped.",
        "* **error**: the reader raised; **crash**: the reader's process died (e.g. a segmentation fault); "
        "**refused**: the engine did not publish the table: the format cannot hold the type "
        "(refused), the writer failed cleanly (write error) or a check failed (fails validation), with its message; an engine "
        "traceback would be a **crash** with the message.",
        "",
        f"**Summary** ({sum(s.values())} cells): "
        + ", ".join(f"{s[k]} {k}" for k in KINDS)
        + ". Per format: "
        + "; ".join(
            f"{f} " + ", ".join(f"{v['summary'][k]} {k}" for k in KINDS if v["summary"][k]) for f, v in m["formats"].items()
        )
        + ".",
        "",
        "*promised* marks the tables that `tests/catalogue.py` says the project means to write exactly in that format.",
        "",
        "The plain reader columns use each reader's defaults. The CSV and JSONL columns marked **(documented)** read with "
        'exactly the options README "Reading CSV and JSONL with other tools" gives (`scripts/documented_readers.py`; '
        "`tests/test_text_formats.py` runs the README's own code), binary columns decoded from base64 and HUGEINT text made "
        "`int` afterwards as README says: what a user following our docs gets.",
        "",
        "**Known reader limits** (not the files'; workarounds in README):",
        "",
        *(f"* {note}" for note in READER_LIMITS),
    ]
    for fmt, data in m["formats"].items():
        lines += ["", f"## {fmt}", ""]
        calls = ", ".join(f"{r}: `{c}`" for r, c in data["calls"].items())
        lines += [f"Readers: `syncer.read_table(as_arrow=True)` and `read_table()` (pandas), {calls}.", ""]
        lines.append("| type | promised | " + " | ".join(data["readers"]) + " |")
        lines.append("|---|---|" + "---|" * len(data["readers"]))
        for name, row in data["rows"].items():
            t = f"`{row['sql_type']}`".replace("|", "\\|")
            if row["sync"] == "published":
                cells = " | ".join(_cell(row["cells"][r]) for r in data["readers"])
            else:  # the engine's message once; every reader has nothing to read
                first = row["cells"][data["readers"][0]]
                cells = " | ".join([_cell(first)] + [first["result"]] * (len(data["readers"]) - 1))
            lines.append(f"| {name} {t} | {'yes' if row['promised_by_catalogue'] else ''} | {cells} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the Markdown page here")
    parser.add_argument("--json", type=Path, help="write the JSON data here")
    parser.add_argument("--worker", nargs=3, metavar=("READER", "FORMAT", "JOBS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker[0], args.worker[1], Path(args.worker[2]))
        return 0
    matrix = run_matrix()
    if args.json:
        args.json.write_text(json.dumps(matrix, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    md = to_markdown(matrix)
    if args.out:
        args.out.write_text(md, encoding="utf-8")
    else:
        sys.stdout.write(md)
    print(json.dumps(matrix["summary"]), f"in {matrix['seconds']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
