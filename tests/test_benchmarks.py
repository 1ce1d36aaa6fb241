"""The benchmark scripts run end to end (tiny sizes): what they print and write is what they measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_matrix_runs_every_case_of_a_cell_and_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "matrix.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "matrix.py"),
            "--shapes",
            "nested",
            "--formats",
            "parquet",
            "arrow",
            "--scale",
            "0.0005",
            "--repeat",
            "1",
            "--work",
            str(tmp_path / "work"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode in (0, 1), proc.stderr  # 1 = a target missed (expected at this size), never a crash
    assert "Traceback" not in proc.stderr
    data = json.loads(out.read_text())
    cells = {c["format"]: c for c in data["cells"]}
    assert set(cells) == {"parquet", "arrow"}
    assert set(cells["parquet"]["median"]) == {
        "syncer sync",
        "duckdb COPY",
        "naive pandas",
        "polars",
        "unchanged sync",
        "read_table",
        "pyarrow read_table",
        "startup /ready",
    }
    assert set(cells["arrow"]["median"]) == {"syncer sync", "pyarrow stream"}
    for c in cells.values():
        for name, m in c["median"].items():
            assert m["wall_s"] > 0  # real processes, measured by the OS (startup: to the first 200 of /ready)
            assert name == "startup /ready" or m["rss_mib"] > 10
        assert c["ratio"] == pytest.approx(
            c["median"]["syncer sync"]["wall_s"]
            / min(m["wall_s"] for k, m in c["median"].items() if k in ("duckdb COPY", "pyarrow stream"))
        )
    assert any(t["target"] == "nested/parquet: peak memory ≤ 400 MiB" for t in data["targets"])
    names = {t["target"] for t in data["targets"]}
    assert {"nested/parquet: read_table ≤ 1.2× pyarrow", "nested/parquet: startup to /ready ≤ 5 s (fresh snapshot)"} <= names
    assert "| nested (1,000) | parquet |" in proc.stdout
    # the re-sync of an unchanged warehouse is proven to export nothing, from the manifest it published
    (nothing,) = (t for t in data["targets"] if t["target"].startswith("nested/parquet: unchanged re-sync exports nothing"))
    assert nothing["met"] and nothing["measured"].startswith("100% unchanged")
    # the published snapshot of the last sync holds every row the generator made
    import pyarrow.parquet as pq

    vol = tmp_path / "work" / "vol-nested-parquet" / "current"
    entry = json.loads((vol / "manifest.json").read_text())["tables"]["t000"]
    assert entry["rows"] == 1000
    assert pq.read_table(vol / entry["file"]).num_rows == 1000  # one file or the folder of its parts


_TWO_CHILDREN = """
import subprocess, sys
hold = "b = bytearray(100 * 2**20); b[::4096] = b'x' * len(b[::4096]); import time; time.sleep(1.5)"
kids = [subprocess.Popen([sys.executable, "-c", hold]) for _ in range(2)]
for k in kids:
    k.wait()
"""


def test_the_process_trees_peak_counts_children_side_by_side() -> None:
    """wait4 reports the largest one process; a sync and its unload child run side by side, so the
    benchmarks sample the whole tree: two children holding 100 MiB each at once are >= 200 MiB.
    Measured from a small process of its own: a child's ru_maxrss starts at its parent's peak (pytest's)."""
    measure = (
        f"import json, sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); from bench import run_process; "
        f"print(json.dumps(run_process([sys.executable, '-c', {_TWO_CHILDREN!r}])))"
    )
    out = subprocess.run([sys.executable, "-c", measure], capture_output=True, text=True, check=True, timeout=120)
    m = json.loads(out.stdout.splitlines()[-1])
    assert 100 <= m["rss_mib"] < 190  # one child's peak: the two are not summed by the OS
    assert m["tree_mib"] >= 200
