"""Benchmark: `syncer sync enrollments` against DuckDB's own COPY and the naive pandas way.

Every case runs as a whole process (interleaved, ``--repeat`` times each); wall time, CPU time and
peak RSS come from the OS (``os.wait4`` rusage of that child). Prints one table per size with
medians (min-max), each ratio against its baseline and the targets, and writes everything as JSON.

    python benchmarks/bench.py                       # 5M and 20M rows, 3 runs each
    python benchmarks/bench.py --rows 1000000 --repeat 5
    python benchmarks/bench.py --dlt                 # also dlt (installed into its own venv)

Not part of the test suite's pass/fail; the exit code is 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

CONFIG = """
[source]
kind = "duckdb"
path = "{db}"
{memory_limit}

[volume]
root = "{root}"
retain = 2

[freshness]
skip_startup_if_younger_than_hours = 20

[[tables]]
name = "enrollments"
source = "enrollments"
primary_key = ["enrollment_id"]
not_null = ["participant_id", "course_id"]
"""

COPY = """
import duckdb, sys
con = duckdb.connect(sys.argv[1], read_only=True, config={"threads": 2})
con.execute(f"COPY (SELECT * FROM enrollments) TO '{sys.argv[2]}' (FORMAT parquet, COMPRESSION zstd)")
"""

PANDAS = """
import duckdb, sys
con = duckdb.connect(sys.argv[1], read_only=True, config={"threads": 2})
con.execute("SELECT * FROM enrollments").df().to_parquet(sys.argv[2], compression="zstd")
"""

ARROW_STREAM = """
import duckdb, sys, pyarrow.parquet as pq
con = duckdb.connect(sys.argv[1], read_only=True, config={"threads": 2})
reader = con.sql("SELECT * FROM enrollments").to_arrow_reader(262144)
with pq.ParquetWriter(sys.argv[2], reader.schema, compression="zstd") as w:
    for b in reader:
        w.write_batch(b)
"""

READ_SYNCER = """
import sys
from syncer import read_table
t = read_table("enrollments", root=sys.argv[1], as_arrow=True)
assert t.num_rows > 0
"""

READ_PYARROW = """
import sys, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
assert t.num_rows > 0
"""

DLT = """
import sys, dlt
from dlt.sources.sql_database import sql_table
src = sql_table(credentials="duckdb:///" + sys.argv[1], table="enrollments", backend="pyarrow", chunk_size=262144)
pipe = dlt.pipeline(pipeline_name="bench", destination=dlt.destinations.filesystem(bucket_url=sys.argv[2]),
                    dataset_name="bench", pipelines_dir=sys.argv[2] + "/.dlt")
pipe.run(src, loader_file_format="parquet")
"""


def precompile() -> None:
    """Byte-compile the package first, as ``pip install .`` does in the image: an editable install
    does not, and with ``PYTHONDONTWRITEBYTECODE`` every measured process would compile it again."""
    subprocess.run([PY, "-m", "compileall", "-q", str(ROOT / "syncer")], check=True, stdout=subprocess.DEVNULL)


def _tree_rss_mib(pid: int) -> float:
    """The memory of ``pid`` and every process under it, MiB, as a container is charged for it: each
    process's anonymous pages (``statm`` resident minus shared) plus the largest one's file pages (the
    interpreter and libraries the processes map alike, counted once). From the kernel's counters, not
    a page walk (``smaps_rollup`` takes each process's memory-map lock every sample and slowed the
    measured processes several-fold)."""
    anon, files, todo = 0, 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm", "rb") as f:
                resident, shared = (int(x) for x in f.read().split()[1:3])
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children", "rb") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            continue
        anon, files = anon + resident - shared, max(files, shared)
    return (anon + files) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_process(argv: list[str], *, env: dict[str, str] | None = None) -> dict[str, float]:
    """Run argv to completion; wall, CPU (user+sys) and peak RSS of that process from the OS
    (``wait4``: the largest one process's peak, its children included only as their own peaks), and
    ``tree_mib``: the peak of the whole process tree's memory (:func:`_tree_rss_mib`), sampled every 50 ms."""
    # the previous case's dirty pages written out first, untimed: a baseline that does not fsync would
    # hand its writeback to whichever case runs next (100M rows: an engine sync waited 97 s for 52 s of CPU)
    os.sync()
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    tree = [0.0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            tree[0] = max(tree[0], _tree_rss_mib(proc.pid))

    errs: list[bytes] = []

    def drain() -> None:  # read while it runs: a full pipe would stop a chatty process
        assert proc.stderr is not None
        with proc.stderr:
            errs.append(proc.stderr.read())

    threads = [threading.Thread(target=sample, daemon=True), threading.Thread(target=drain, daemon=True)]
    for t in threads:
        t.start()
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    stop.set()
    for t in threads:
        t.join(10)  # a descendant still holding stderr open must not hang the benchmark
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = b"".join(errs).decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} ... failed ({proc.returncode}):\n{err[-2000:]}")
    floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if floor > 200:  # a child's ru_maxrss starts at this process's peak (kept across fork + exec)
        print(
            f"warning: the benchmark process itself peaked at {floor:.0f} MiB: peak RSS below that is not measured",
            file=sys.stderr,
        )
    rss = ru.ru_maxrss / 1024
    return {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "rss_mib": rss, "tree_mib": max(tree[0], rss)}


def target_lines(checks: list[tuple[str, bool, str]]) -> list[str]:
    """The targets as a Markdown table."""
    return ["| target | met | measured |", "|---|---|---|", *(f"| {n} | {'yes' if ok else 'NO'} | {v} |" for n, ok, v in checks)]


def report(checks: list[tuple[str, bool, str]], out: Path, payload: dict[str, Any]) -> int:
    """Print the targets, write ``payload`` (with the machine and the targets) as JSON to ``out``;
    the exit code: 1 if a target is missed."""
    print("\n" + "\n".join(target_lines(checks)))
    out.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        **payload,
        "targets": [{"target": n, "met": ok, "measured": v} for n, ok, v in checks],
    }
    out.write_text(json.dumps(data, indent=2, default=str))
    print(f"\nwritten {out}")
    return 0 if all(ok for _, ok, _ in checks) else 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_startup(cfg: Path) -> dict[str, float]:
    """Process start of `streamlit run streamlit_app.py` to the first 200 from /ready."""
    port = free_port()
    env = {**os.environ, "SYNCER_CONFIG": str(cfg)}
    argv = [
        PY,
        "-m",
        "streamlit",
        "run",
        str(ROOT / "streamlit_app.py"),
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - t0 < 60:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as r:
                    if r.status == 200:
                        return {"wall_s": time.perf_counter() - t0, "cpu_s": float("nan"), "rss_mib": float("nan")}
            except OSError:
                time.sleep(0.05)
            if proc.poll() is not None:
                raise RuntimeError("streamlit exited before /ready answered")
        raise RuntimeError("/ready did not answer 200 within 60 s")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def size_mib(path: Path) -> float:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*.parquet")) / 2**20
    return path.stat().st_size / 2**20


def ensure_warehouse(work: Path, rows: int) -> Path:
    db = work / f"warehouse-{rows}.duckdb"
    if not db.exists():
        print(f"building demo warehouse with {rows:,} enrollments ...", flush=True)
        cfg = work / "demo.toml"
        cfg.write_text(CONFIG.format(db=db, root=work / "unused", memory_limit='memory_limit = "1GB"'))
        subprocess.run([PY, "-m", "syncer", "--config", str(cfg), "demo", "--rows", str(rows)], check=True)
    return db


def bench_size(work: Path, rows: int, repeat: int, with_dlt: Path | None, memory_limit: str | None) -> dict[str, Any]:
    db = ensure_warehouse(work, rows)
    vol = work / f"volume-{rows}"
    shutil.rmtree(vol, ignore_errors=True)
    cfg = work / f"sync-{rows}.toml"
    # the product's defaults unless --memory-limit says otherwise
    cfg.write_text(CONFIG.format(db=db, root=vol, memory_limit=f'memory_limit = "{memory_limit}"' if memory_limit else ""))
    out = work / "out"
    out.mkdir(exist_ok=True)
    env = {**os.environ, "SYNCER_LOG_FORMAT": "text"}

    cases: dict[str, Any] = {
        # --force: the warehouse does not change between rounds, and an unchanged table is hard-linked,
        # not exported (every round after the first measured the unchanged path: 0.47x COPY, 133 MiB)
        "syncer sync": lambda: run_process([PY, "-m", "syncer", "--config", str(cfg), "sync", "--force", "enrollments"], env=env),
        "duckdb COPY": lambda: run_process([PY, "-c", COPY, str(db), str(out / "copy.parquet")]),
        "naive pandas": lambda: run_process([PY, "-c", PANDAS, str(db), str(out / "pandas.parquet")]),
        "bare arrow stream": lambda: run_process([PY, "-c", ARROW_STREAM, str(db), str(out / "arrow.parquet")]),
    }
    if with_dlt is not None:

        def dlt_case() -> dict[str, float]:
            target = out / "dlt"
            shutil.rmtree(target, ignore_errors=True)
            return run_process([str(with_dlt), "-c", DLT, str(db), str(target)])

        cases["dlt"] = dlt_case
    samples: dict[str, list[dict[str, float]]] = {k: [] for k in cases}
    for i in range(repeat):
        for name, fn in cases.items():
            samples[name].append(fn())
            print(f"  run {i + 1}/{repeat} {name:<20} {samples[name][-1]['wall_s']:.2f} s", flush=True)

    # read_table against pyarrow on the file the sync published
    entry = json.loads((vol / "current" / "manifest.json").read_text())["tables"]["enrollments"]
    published = vol / "current" / entry["file"]  # one file, or the folder of a table written in parts
    reads = {
        "read_table": lambda: run_process([PY, "-c", READ_SYNCER, str(vol)]),
        "pyarrow read_table": lambda: run_process([PY, "-c", READ_PYARROW, str(published)]),
    }
    for name in reads:
        samples[name] = []
    for _ in range(max(repeat, 7)):  # sub-second cases: more runs for a stable median
        for name, fn in reads.items():
            samples[name].append(fn())
    if (ROOT / "streamlit_app.py").exists():
        samples["startup to /ready"] = [run_startup(cfg) for _ in range(repeat)]

    sizes = {
        "syncer sync": size_mib(published),
        "duckdb COPY": size_mib(out / "copy.parquet"),
        "naive pandas": size_mib(out / "pandas.parquet"),
        "bare arrow stream": size_mib(out / "arrow.parquet"),
    }
    if with_dlt is not None:
        sizes["dlt"] = size_mib(out / "dlt" / "bench")  # the destination, not dlt's own load package copy
    return {"rows": rows, "samples": samples, "sizes": sizes}


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def summarize(res: dict[str, Any]) -> dict[str, Any]:
    s = res["samples"]
    m = {k: {f: med([x[f] for x in v]) for f in ("wall_s", "cpu_s", "rss_mib")} for k, v in s.items()}
    spread = {k: (min(x["wall_s"] for x in v), max(x["wall_s"] for x in v)) for k, v in s.items()}
    sync = m["syncer sync"]
    ratios = {
        "sync / COPY wall": sync["wall_s"] / m["duckdb COPY"]["wall_s"],
        "pandas / sync wall": m["naive pandas"]["wall_s"] / sync["wall_s"],
        "sync / pandas peak RSS": sync["rss_mib"] / m["naive pandas"]["rss_mib"],
        "read_table / pyarrow wall": m["read_table"]["wall_s"] / m["pyarrow read_table"]["wall_s"],
        "sync / COPY output size": res["sizes"]["syncer sync"] / res["sizes"]["duckdb COPY"],
    }
    if "dlt" in m:
        ratios["dlt / sync wall"] = m["dlt"]["wall_s"] / sync["wall_s"]
    return {"median": m, "spread": spread, "ratios": ratios}


def print_table(res: dict[str, Any], summ: dict[str, Any]) -> None:
    print(f"\n### {res['rows']:,} rows\n")
    print("| case | wall s (median, min–max) | CPU s | peak RSS MiB | output MiB | ratio |")
    print("|---|---|---|---|---|---|")
    m, sp = summ["median"], summ["spread"]
    base = {"syncer sync": ("duckdb COPY", "wall_s"), "read_table": ("pyarrow read_table", "wall_s")}
    for name, v in m.items():
        lo, hi = sp[name]
        size = res["sizes"].get(name)
        ratio = ""
        if name in base:
            b, f = base[name]
            ratio = f"{v[f] / m[b][f]:.2f}× {b}"
        elif name in ("naive pandas", "dlt", "bare arrow stream"):
            ratio = f"{v['wall_s'] / m['syncer sync']['wall_s']:.2f}× sync"
        cpu = "" if v["cpu_s"] != v["cpu_s"] else f"{v['cpu_s']:.2f}"
        rss = "" if v["rss_mib"] != v["rss_mib"] else f"{v['rss_mib']:.0f}"
        print(
            f"| {name} | {v['wall_s']:.2f} ({lo:.2f}–{hi:.2f}) | {cpu} | {rss} | "
            f"{'' if size is None else f'{size:.1f}'} | {ratio} |"
        )


def check_targets(results: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[tuple[str, bool, str]]:
    out = []
    by_rows = {r["rows"]: s for r, s in results}
    for r, s in results:
        n = f"{r['rows'] // 1_000_000}M" if r["rows"] >= 1_000_000 else f"{r['rows']:,}"
        ra, m = s["ratios"], s["median"]
        if r["rows"] == min(by_rows):
            out.append((f"{n}: sync ≤ 1.3× COPY wall", ra["sync / COPY wall"] <= 1.3, f"{ra['sync / COPY wall']:.2f}×"))
            out.append((f"{n}: peak RSS ≤ 400 MiB", m["syncer sync"]["rss_mib"] <= 400, f"{m['syncer sync']['rss_mib']:.0f} MiB"))
        out.append((f"{n}: ≥ 3× faster than pandas", ra["pandas / sync wall"] >= 3, f"{ra['pandas / sync wall']:.2f}×"))
        out.append(
            (f"{n}: ≤ 1/5 of pandas' peak RSS", ra["sync / pandas peak RSS"] <= 0.2, f"{ra['sync / pandas peak RSS']:.2f}")
        )
        out.append(
            (f"{n}: read_table ≤ 1.2× pyarrow", ra["read_table / pyarrow wall"] <= 1.2, f"{ra['read_table / pyarrow wall']:.2f}×")
        )
        out.append((f"{n}: output ≤ 1.2× COPY's", ra["sync / COPY output size"] <= 1.2, f"{ra['sync / COPY output size']:.2f}×"))
        if "dlt / sync wall" in ra:
            out.append((f"{n}: ≥ 10× faster than dlt", ra["dlt / sync wall"] >= 10, f"{ra['dlt / sync wall']:.1f}×"))
        if "startup to /ready" in m:
            out.append(
                (f"{n}: start-up ready ≤ 5 s", m["startup to /ready"]["wall_s"] <= 5, f"{m['startup to /ready']['wall_s']:.2f} s")
            )
    if len(by_rows) > 1:
        small, big = min(by_rows), max(by_rows)
        a, b = by_rows[small]["median"]["syncer sync"]["rss_mib"], by_rows[big]["median"]["syncer sync"]["rss_mib"]
        out.append(
            (
                f"peak RSS at {big // 1_000_000}M ≤ 1.15× {small // 1_000_000}M",
                b <= 1.15 * a,
                f"{b / a:.2f}× ({b:.0f} vs {a:.0f} MiB)",
            )
        )
    return out


def dlt_python(work: Path) -> Path:
    venv = work / "dlt-venv"
    py = venv / "bin" / "python"
    if not py.exists():
        print("installing dlt 1.31 into its own venv (once) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [
                str(py),
                "-m",
                "pip",
                "install",
                "-q",
                "dlt[duckdb,filesystem,parquet,sql_database]==1.31.0",
                "duckdb==2.0.0",
                "duckdb-engine==0.17.0",
                "sqlalchemy==2.0.44",  # duckdb-engine 0.17's reflection fails on SQLAlchemy 2.1
                "pyarrow==26.0.1",
            ],
            check=True,
        )
    return py


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[5_000_000, 20_000_000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "vds-bench")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench.json")
    ap.add_argument("--memory-limit", default=None, help="[source] memory_limit of the benchmarked sync (default: the product's)")
    ap.add_argument("--dlt", action="store_true", help="also measure dlt (installs it into a venv under --work)")
    args = ap.parse_args()
    precompile()
    args.work.mkdir(parents=True, exist_ok=True)
    with_dlt = dlt_python(args.work) if args.dlt else None
    results = []
    for rows in args.rows:
        print(f"\n== {rows:,} rows ==", flush=True)
        res = bench_size(args.work, rows, args.repeat, with_dlt, args.memory_limit)
        results.append((res, summarize(res)))
    for res, summ in results:
        print_table(res, summ)
    return report(check_targets(results), args.out, {"results": [{**r, "summary": s} for r, s in results]})


if __name__ == "__main__":
    sys.exit(main())
