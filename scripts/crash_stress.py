#!/usr/bin/env python
"""Crash stress: SIGKILL real ``syncer sync`` subprocesses at random moments, many times, and look for torn reads.

    python scripts/crash_stress.py --kills 200 --rows 300000 --seed 1

Builds a demo warehouse of ``--rows`` enrollments in a work folder, times an uninterrupted sync (and
again every ``--recalibrate`` runs), then starts ``python -m syncer --config <cfg> sync`` again and
again and SIGKILLs each after a seeded random fraction of that time (stratified from "still
importing" to "just finished", plus extra moments in the last fifth where publishing, the ``current``
swap and retention happen) until ``--kills`` runs have been killed. Meanwhile a reader thread calls
``read_table`` on every table in a loop, as an app would.

A *torn read* is any of:
  * after a kill: ``current`` missing, ``verify`` failing (sha256, sizes, permissions), or a table
    that ``read_table`` cannot read or reads with a row count other than the manifest's and the source's;
  * in the concurrent reader: an exception, a wrong row count, or a fallback to an older snapshot
    (``SnapshotFallbackWarning`` means ``current`` was broken at that moment).

At the end one more sync must succeed and leave ``staging/`` empty. Prints the numbers and exits 1
if any torn read was found or the final sync failed.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import syncer
from syncer import SnapshotFallbackWarning, load_config
from syncer.volume.layout import Volume

# The stress run is the suite's crash test at scale: same tables, same config, same source counts.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.test_crash import lock_holder_of, source_counts, wait_gone, write_crash_config

NAMES = ("enrollments", "participants", "courses", "daily_metrics")


def check_current(cfg: syncer.Config, counts: dict[str, int]) -> list[str]:
    """Problems with what `current` serves right now (empty = complete and readable)."""
    vol = Volume(cfg.root)
    if not vol.current.is_symlink():
        return ["current is missing"]
    res = syncer.verify(cfg)
    if not res["ok"]:
        return [f"verify: {p}" for p in res["problems"]]
    manifest = vol.current_manifest()
    if manifest is None:
        return ["current has no intact manifest"]
    problems = []
    for name in NAMES:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", SnapshotFallbackWarning)
                rows = syncer.read_table(name, config=cfg, as_arrow=True).num_rows
        except Exception as exc:
            problems.append(f"read_table({name!r}): {type(exc).__name__}: {exc}")
            continue
        if not rows == manifest["tables"][name]["rows"] == counts[name]:
            problems.append(f"{name}: read {rows} rows, manifest {manifest['tables'][name]['rows']}, source {counts[name]}")
    return problems


class Reader(threading.Thread):
    """Reads every table in a loop, as an app would, while syncs are started and killed."""

    def __init__(self, cfg: syncer.Config, counts: dict[str, int]) -> None:
        super().__init__(name="reader", daemon=True)
        self.cfg, self.counts = cfg, counts
        self.stop = threading.Event()
        self.reads = 0
        self.torn: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            for name in NAMES:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("error", SnapshotFallbackWarning)
                        rows = syncer.read_table(name, config=self.cfg, as_arrow=True).num_rows
                    if rows != self.counts[name]:
                        self.torn.append(f"concurrent read of {name}: {rows} rows, source has {self.counts[name]}")
                except Exception as exc:
                    self.torn.append(f"concurrent read of {name}: {type(exc).__name__}: {exc}")
                self.reads += 1


def fractions(rng: random.Random, block: int = 30):
    """Endless kill moments as fractions of a run: blocks of ``block`` stratified over [0, 1.05],
    plus a third more in [0.8, 1.1] where publishing, the ``current`` swap and retention happen."""
    while True:
        spread = [1.05 * (i + rng.random()) / block for i in range(block)]
        late = [rng.uniform(0.8, 1.1) for _ in range(block // 3)]
        batch = spread + late
        rng.shuffle(batch)
        yield from batch


def timed_sync(cmd: list[str], env: dict[str, str]) -> float | None:
    """Seconds one uninterrupted sync takes now (None if it failed)."""
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        return None
    return time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=200, help="how many runs to SIGKILL (default 200)")
    ap.add_argument("--rows", type=int, default=300_000, help="enrollments rows in the demo warehouse (default 300,000)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the random delays (default 1)")
    ap.add_argument("--retain", type=int, default=3, help="[volume] retain (default 3)")
    ap.add_argument("--workdir", type=Path, default=None, help="work folder (default: a new temporary folder)")
    ap.add_argument("--recalibrate", type=int, default=20, help="re-time an uninterrupted sync every N runs (default 20)")
    ap.add_argument("--no-reader", action="store_true", help="no concurrent reader thread")
    args = ap.parse_args(argv)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="crash-stress-"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "warehouse.duckdb"
    if not db.exists():
        print(f"building a demo warehouse of {args.rows:,} rows in {db} ...", flush=True)
        syncer.build_demo(db, args.rows)
    config = write_crash_config(work, db, retain=args.retain)
    cfg = load_config(config)
    counts = source_counts(db)
    env = {**os.environ, "SYNCER_LOG_FORMAT": "text"}
    env.pop("SYNCER_CONFIG", None)
    cmd = [sys.executable, "-m", "syncer", "--config", str(config), "sync"]

    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if first.returncode != 0:
        print(first.stderr, file=sys.stderr)
        return 1
    reader = Reader(cfg, counts)
    if not args.no_reader:
        reader.start()
    # Time a run under the same load as the killed ones (the reader shares the CPUs), and again every
    # --recalibrate runs: the kill moments are fractions of what a run takes now.
    duration = timed_sync(cmd, env)
    if duration is None:
        return 1
    print(f"one sync takes {duration:.2f}s; killing {args.kills} runs (seed {args.seed}) ...", flush=True)
    rng = random.Random(args.seed)
    kills = completed = runs = 0
    torn: list[str] = []
    snapshots_seen: set[str] = set()
    started = time.monotonic()
    timings = [duration]
    for fraction in fractions(rng):
        if kills >= args.kills:
            break
        if runs and runs % args.recalibrate == 0:
            again = timed_sync(cmd, env)
            if again is None:
                torn.append(f"after run {runs}: an uninterrupted sync failed")
            else:
                duration = again
                timings.append(again)
        delay = fraction * duration
        runs += 1
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        time.sleep(delay)
        child = lock_holder_of(Path(cfg.root), proc.pid)  # the engine, under its supervisor
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)  # the supervisor: its child dies with it (PDEATHSIG)
        _, err = proc.communicate(timeout=600)
        wait_gone(child)  # and has let go of the lock before the next run starts
        if proc.returncode == -signal.SIGKILL:
            kills += 1
        elif proc.returncode == 0:
            completed += 1
        else:
            torn.append(f"run {runs}: sync exited {proc.returncode}: {err.decode()[-500:]}")
        problems = check_current(cfg, counts)
        torn += [f"after run {runs} (delay {delay:.3f}s): {p}" for p in problems]
        cid = Volume(cfg.root).current_id()
        if cid:
            snapshots_seen.add(cid)
        if runs % 25 == 0:
            print(f"  {runs} runs, {kills} kills, {completed} completed, {len(torn) + len(reader.torn)} torn", flush=True)
    reader.stop.set()
    if reader.is_alive():
        reader.join(timeout=60)

    final = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    vol = Volume(cfg.root)
    leftovers = sorted(p.name for p in vol.staging.iterdir())
    final_ok = final.returncode == 0 and not leftovers and not check_current(cfg, counts)
    all_torn = torn + reader.torn
    for line in all_torn[:20]:
        print("TORN:", line)
    print(
        f"kills: {kills}\n"
        f"runs: {runs} killed or raced ({completed} finished before their kill moment) + {len(timings)} timed, uninterrupted\n"
        f"post-kill checks: {runs} (verify + read_table of {len(NAMES)} tables each)\n"
        f"concurrent reads: {reader.reads}\n"
        f"snapshots published as current: {len(snapshots_seen)}\n"
        f"torn reads found: {len(all_torn)}\n"
        f"final sync: {'ok, staging empty' if final_ok else f'FAILED (exit {final.returncode}, staging {leftovers})'}\n"
        f"time: {time.monotonic() - started:.0f}s (one sync {min(timings):.2f}-{max(timings):.2f}s, {args.rows:,} rows, seed {args.seed})\n"
        f"work folder: {work}"
    )
    return 0 if final_ok and not all_torn else 1


if __name__ == "__main__":
    sys.exit(main())
