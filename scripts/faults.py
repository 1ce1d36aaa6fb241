"""Fault injection into real syncs: syscall failures with strace, random I/O faults with libfiu.

Each case runs one CLI command (a real process) on a small demo volume while a fault is injected
-- a plain ``sync`` (the warehouse is unchanged: every table confirmed and hard-linked), ``sync
courses`` (the others carried over), ``sync --force`` (every table exported, courses through the
engine path and its unload child), ``repair``, ``rollback``, ``status``, ``verify`` -- then checks,
without faults:

* the faulty sync said so in one clear line (non-zero exit) or absorbed the fault (exit 0), and
  printed no traceback;
* ``current`` is intact and ``syncer verify`` is clean;
* a reader reads the served data, and it is the same data as before (nothing lost or changed);
* the next plain sync succeeds and leaves ``staging`` empty;
* the run history tells the truth: no run left ``running``, and a run whose snapshot became
  ``current`` is recorded as published with that snapshot id.

Syscall faults (``strace -f -e inject=SYSCALL:error=ERRNO:when=N``) go into the calls a sync makes on
the volume: a clean run is traced first, and the positions are picked among the calls that touch
the volume (never the interpreter's own start-up). Random faults (``fiu-run -x`` and ``fiu-ctrl``)
are switched on once the sync holds the volume lock, with a probability per libc I/O call.

The sync runs under its supervisor (syncer/supervise.py): ``syncer sync`` is a light parent and the
engine a child (forked). strace follows both (``-f``); libfiu is in the forked child too (its fork
handler makes a control FIFO for the child's pid), and ``fiu-ctrl`` is pointed at the child (the holder record's ``pid``, whose
``supervisor_pid`` is the process this harness started). A child that native code aborts (DuckDB
under libc faults) must come back as the supervisor's one line ("died of SIGABRT ...", exit 134):
counted as ``native_aborts_reported``; a death by a signal of the command itself is a ``crash`` problem.

    python scripts/faults.py                 # the long sweep (`make faults`), figures on stdout
    python scripts/faults.py --quick         # the short sweep that `make test` runs (tests/test_faults.py)
    python scripts/faults.py --json out.json # every case and its outcome, for the README's figures

Needs strace and fiu-utils (Debian packages; .ci/run installs them).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: a faulty sync still running after this long is a hang: its stacks are asked for (SIGUSR1), then it is killed
HANG_SECONDS = 120
#: how long fiu-ctrl may take to hand the faults to the sync
FIU_CTRL_SECONDS = 10
#: extra CLI options of the faulty sync (debugging: ("-v",) adds the traceback of an unexpected error)
VERBOSE: tuple[str, ...] = ()
#: the random-fault runs cycle through these probabilities per libc I/O call
FIU_PROBABILITIES = (0.01, 0.02, 0.05)
TRACED = (
    "fsync",
    "fdatasync",
    "rename",
    "renameat",
    "renameat2",
    "openat",
    "write",
    "pwrite64",
    "link",
    "linkat",
    "symlink",
    "unlink",
    "unlinkat",
    "mkdir",
    "chmod",
    "fchmod",
    "flock",
    "ftruncate",
    "fchown",
    "close",
    "read",
    "pread64",
    "mmap",
)
#: the errors injected into each syscall (what the kernel really answers there)
ERRORS: dict[str, tuple[str, ...]] = {
    "fsync": ("EIO",),
    "fdatasync": ("EIO",),
    "rename": ("EIO", "ENOSPC"),
    "renameat": ("EIO",),
    "renameat2": ("EIO",),
    "openat": ("EMFILE", "ENOSPC", "EACCES", "EIO"),
    "write": ("ENOSPC", "EIO"),
    "pwrite64": ("ENOSPC", "EIO"),
    "link": ("ENOSPC", "EMLINK"),
    "linkat": ("ENOSPC",),
    "symlink": ("ENOSPC", "EIO"),
    "unlink": ("EIO", "EBUSY"),
    "unlinkat": ("EIO",),
    "mkdir": ("ENOSPC", "EDQUOT"),
    "chmod": ("EIO", "EPERM"),
    "fchmod": ("EIO",),
    "flock": ("ENOLCK",),
    "ftruncate": ("EIO", "ENOSPC"),
    "fchown": ("EPERM",),
    "close": ("EIO",),
    "read": ("EIO",),
    "pread64": ("EIO",),
    "mmap": ("ENOMEM",),
}
#: the commands faults go into, each traced on its own: a plain sync of the unchanged warehouse (every
#: table confirmed unchanged and hard-linked, link(2)), a sync of one table (the others carried over),
#: a forced sync (every table exported; courses through the engine path, whose COPY runs in an unload
#: child that strace follows), and the maintenance commands
COMMANDS: tuple[tuple[str, ...], ...] = (
    ("sync",),
    ("sync", "courses"),
    ("sync", "--force"),
    ("repair",),
    ("rollback",),
    ("status",),
    ("verify",),
)
#: the random-fault runs alternate (in threes, one per probability) between these
FIU_COMMANDS: tuple[tuple[str, ...], ...] = (("sync",), ("sync", "--force"))
#: syscalls with many calls get at most this many positions in the commands other than a plain sync
OTHER_COMMAND_POSITIONS = 2
TABLES = """
[[tables]]
name = "courses"
primary_key = ["course_id"]
export = "engine"
exclude_columns = ["metadata"]  # JSON: the engine would stream it (the stream path's type); without it, COPY unloads

[[tables]]
name = "participants"
primary_key = ["participant_id"]
exclude_columns = ["password_hash"]
format = "csv"

[[tables]]
name = "enrollments"
primary_key = ["enrollment_id"]
format = "jsonl"
"""


@dataclasses.dataclass
class Case:
    kind: str  # "strace" | "fiu"
    syscall: str = ""
    errno: str = ""
    when: int = 0
    probability: float = 0.0
    #: the CLI command and its arguments (``sync courses``: the others are carried over, link(2))
    command: tuple[str, ...] = ("sync",)

    @property
    def label(self) -> str:
        if self.kind == "fiu":
            return f"fiu posix/io/* p={self.probability:g} #{self.when}" + (
                " (sync --force)" if self.command != ("sync",) else ""
            )
        return f"{self.syscall}={self.errno}@{self.when}" + (f" ({' '.join(self.command)})" if self.command != ("sync",) else "")


@dataclasses.dataclass
class Outcome:
    case: Case
    exit_code: int
    outcome: str  # "failed cleanly" | "published" | "published with a warning" | "absorbed"
    message: str
    problems: list[str]
    seconds: float

    @property
    def traceback(self) -> bool:
        return any(p.startswith("traceback") for p in self.problems)

    @property
    def crashed(self) -> bool:
        return self.exit_code < 0

    @property
    def abort_reported(self) -> bool:
        """The child died by a signal and the supervisor said so in its one line (exit 128 + signal)."""
        return self.exit_code > 128 and "died of SIG" in self.message

    @property
    def data_lost(self) -> bool:
        return any(p.startswith("data") for p in self.problems)


class Env:
    """A demo warehouse and a volume with two published snapshots, in a temporary folder."""

    def __init__(self, folder: Path, rows: int = 3000) -> None:
        self.folder = folder
        self.python = sys.executable
        self.config = folder / "sync.toml"
        self.root = folder / "data"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
        self.env = {**env, "PYTHONPATH": str(ROOT), "ARROW_DEFAULT_MEMORY_POOL": "system"}
        subprocess.run(
            [self.python, "-c", f"import syncer; syncer.build_demo({str(folder / 'w.duckdb')!r}, {rows})"],
            check=True,
            env=self.env,
            capture_output=True,
        )
        self.config.write_text(
            # fast retries: a transient error under random faults is retried without minutes of backoff
            f'[source]\nkind = "duckdb"\npath = "w.duckdb"\n\n[volume]\nroot = "data"\nretain = 3\n\n'
            f"[retry]\nattempts = 2\nbackoff_seconds = 0.01\nmax_backoff_seconds = 0.05\n{TABLES}",
            encoding="utf-8",
        )
        for _ in range(2):
            self.cli("sync", check=True)
        #: clean runs traced once per table selection (the positions do not change between cases)
        self.traced: dict[tuple[str, ...], dict[str, list[int]]] = {}
        verified, self.expected, _ = self.served()
        if verified:
            raise RuntimeError(f"the prepared volume does not verify: {verified}")

    def cli(self, *args: str, prefix: list[str] | None = None, check: bool = False) -> subprocess.CompletedProcess[str]:
        argv = [*(prefix or []), self.python, "-m", "syncer", "--config", str(self.config), *args]
        proc = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=300, cwd=self.folder)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def served(self, then_sync: bool = False) -> tuple[str, dict[str, str], str | None]:
        """``syncer verify``'s problems ("" when clean), what a reader gets for each table from the served
        snapshot (a digest of its sorted rows) and, with ``then_sync``, how the next plain sync ended
        ("" when ok): one process for the checks after every case (each process start costs a second)."""
        code = (
            "import hashlib, json, sys, warnings, syncer\n"
            "warnings.simplefilter('ignore')\n"
            "cfg = syncer.load_config(sys.argv[1])\n"
            "res = syncer.verify(cfg)\n"
            "out = {}\n"
            "for t in cfg.tables:\n"
            "    df = syncer.read_table(t.name, config=cfg)\n"
            "    df = df.sort_values(list(t.primary_key)).reset_index(drop=True)\n"
            "    out[t.name] = hashlib.sha256(df.to_csv(index=False).encode()).hexdigest()\n"
            "nxt = None\n"
            "if sys.argv[2] == '1':\n"
            "    try:\n"
            "        rep = syncer.sync(cfg)\n"
            "        nxt = '' if rep['status'] == 'ok' else f\"{rep['status']}: {rep['error']}\"\n"
            "    except syncer.SyncError as exc:\n"
            "        nxt = f'{type(exc).__name__}: {exc}'\n"
            "print(json.dumps({'verify': '' if res['ok'] else '; '.join(res['problems']) or 'failed', 'digests': out, "
            "'next': nxt}))\n"
        )
        argv = [self.python, "-c", code, str(self.config), "1" if then_sync else "0"]
        proc = subprocess.run(argv, capture_output=True, text=True, env=self.env)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "reader failed")
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        return got["verify"], got["digests"], got["next"]

    def current(self) -> str | None:
        try:
            return os.path.basename(os.readlink(self.root / "current"))
        except OSError:
            return None

    def runs(self) -> dict[str, dict[str, Any]]:
        db = self.root / "syncer.db"
        if not db.is_file():
            return {}
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            con.row_factory = sqlite3.Row
            return {r["id"]: dict(r) for r in con.execute("SELECT id, status, snapshot_id FROM runs")}
        except sqlite3.Error:
            return {}
        finally:
            con.close()


def trace_positions(env: Env, command: tuple[str, ...] = ("sync",)) -> dict[str, list[int]]:
    """For each syscall, the invocation numbers (per thread, as strace counts them) that touch the volume."""
    if command not in env.traced:
        env.traced[command] = _trace(env, command)
    return env.traced[command]


def _trace(env: Env, command: tuple[str, ...]) -> dict[str, list[int]]:
    out = env.folder / "trace.txt"
    env.cli(*command, prefix=["strace", "-f", "-qq", "-y", "-o", str(out), "-e", f"trace={','.join(TRACED)}"], check=True)
    counts: dict[tuple[str, str], int] = collections.Counter()
    found: dict[str, set[int]] = collections.defaultdict(set)
    pattern = re.compile(r"^(\d+)\s+(\w+)\(")
    for line in out.read_text(encoding="utf-8", errors="replace").splitlines():
        m = pattern.match(line)
        if not m or m[2] not in ERRORS:
            continue
        tid, call = m[1], m[2]
        counts[tid, call] += 1
        if str(env.root) in line:
            found[call].add(counts[tid, call])
    return {call: sorted(n) for call, n in found.items()}


def pick(positions: list[int], k: int) -> list[int]:
    """``k`` positions spread over the list, always the first and the last (the calls after the swap)."""
    if len(positions) <= k:
        return positions
    if k == 1:
        return [positions[-1]]
    step = (len(positions) - 1) / (k - 1)
    return sorted({positions[round(i * step)] for i in range(k)})


def run_case(env: Env, case: Case) -> Outcome:
    t0 = time.perf_counter()
    before, runs_before = env.current(), set(env.runs())
    if case.kind == "strace":
        inject = f"inject={case.syscall}:error={case.errno}:when={case.when}"
        proc = env.cli(
            *case.command, prefix=["strace", "-f", "-qq", "-o", "/dev/null", "-e", f"trace={case.syscall}", "-e", inject]
        )
    else:
        proc = _fiu_sync(env, case)
    after = env.current()
    problems = _check_output(proc)
    served, nxt_error = _check_served(env, before, after)
    problems += served
    if nxt_error is None:  # not run with the checks (the reader failed): run it on its own
        nxt = env.cli("sync")
        nxt_error = f"exit {nxt.returncode}: {nxt.stderr.strip()[-300:]}" if nxt.returncode != 0 else ""
    if nxt_error:
        problems.append(f"next sync failed ({nxt_error[:300]})")
    leftovers = sorted(p.name for p in (env.root / "staging").iterdir()) if (env.root / "staging").is_dir() else []
    if leftovers:
        problems.append(f"staging not empty after the next sync: {leftovers}")
    problems += _check_history(env, runs_before, before, after)
    lines = [x for x in proc.stderr.strip().splitlines() if x.strip()]
    outcome = (
        "crashed (native code)"
        if proc.returncode < 0
        else "failed cleanly"
        if proc.returncode != 0
        else ("published with a warning" if after != before and lines else "published" if after != before else "absorbed")
    )
    return Outcome(case, proc.returncode, outcome, lines[-1][:300] if lines else "", problems, time.perf_counter() - t0)


def _fiu_sync(env: Env, case: Case) -> subprocess.CompletedProcess[str]:
    """A sync under libfiu's preload; random faults on once it holds the volume lock (not in the start-up)."""
    ctrl = env.folder / "fiu-ctrl"
    argv = ["fiu-run", "-x", "-f", str(ctrl), env.python, "-m", "syncer", "--config", str(env.config), *VERBOSE, *case.command]
    # libfiu's preload deadlocks on its own, faults off, in about 1 of 3 `import pyarrow`: Arrow's jemalloc
    # starts a background thread while the main thread is in dlopen(), the thread's malloc goes through
    # libfiu into dlsym() (the loader's lock, held by dlopen) while dlopen's mmap waits for libfiu's lock.
    # Without that thread (Arrow's own switch) the import is as under no preload. Measured: 4 of 12 bare
    # `fiu-run -x python -c "import pyarrow"` hung, 0 of 12 with it.
    fiu_env = {**env.env, "JE_ARROW_MALLOC_CONF": "background_thread:false"}
    # `with`: the pipes are closed and the process reaped whatever happens here (a fiu-ctrl that does not
    # answer, an interrupt); a pipe left to the garbage collector is a ResourceWarning in a later test
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=fiu_env, cwd=env.folder) as proc:
        note = _enable_faults_once_locked(env, proc, ctrl, case)
        try:
            out, err = proc.communicate(timeout=HANG_SECONDS)
        except subprocess.TimeoutExpired:
            # where it hangs, before it goes: the CLI's faulthandler prints every thread's stack on SIGUSR1
            proc.send_signal(signal.SIGUSR1)
            time.sleep(1)
            proc.kill()  # this one process, by its own handle
            out, err = proc.communicate(timeout=30)
            err += f"\nHUNG: killed after {HANG_SECONDS} s"
    return subprocess.CompletedProcess(argv, proc.returncode, out, err + note)


def _enable_faults_once_locked(env: Env, proc: subprocess.Popen[str], ctrl: Path, case: Case) -> str:
    """Switch the random faults on in ``proc`` once it holds the volume lock; "" or what went wrong."""
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        pid = _sync_pid(env, proc.pid)
        if pid is not None:
            spec = f"enable_random name=posix/io/*,probability={case.probability}"
            try:  # into the sync that holds the lock: the supervisor's child, whose libfiu has its own FIFO
                argv = ["fiu-ctrl", "-f", str(ctrl), "-c", spec, str(pid)]
                subprocess.run(argv, capture_output=True, timeout=FIU_CTRL_SECONDS)
            except subprocess.TimeoutExpired:
                return f"\nfiu-ctrl did not answer in {FIU_CTRL_SECONDS} s: the faults may not have been switched on"
            return ""
        time.sleep(0.002)
    return ""


def _holds_lock(env: Env, pid: int) -> bool:
    return _sync_pid(env, pid) is not None


def _sync_pid(env: Env, pid: int) -> int | None:
    """The pid holding the volume lock for the command ``pid`` started: its holder record (``.lock.json``
    beside the lock folder ``.writer/``, written just after the ``flock``) names it as ``pid`` (run in
    process) or as the ``supervisor_pid`` of its child. A record left by an earlier, killed run names
    other pids and must not switch the faults on before this run has even started."""
    try:
        holder = json.loads((env.root / ".lock.json").read_text(encoding="utf-8"))
        if holder.get("pid") == pid or holder.get("supervisor_pid") == pid:
            return int(holder["pid"])
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        pass
    return None


def _check_output(proc: subprocess.CompletedProcess[str]) -> list[str]:
    text = proc.stdout + proc.stderr
    if "HUNG: killed" in proc.stderr:  # the stack dump asked for is not a traceback the sync printed
        return [f"hung: the sync did not finish in {HANG_SECONDS} s under the faults (killed): {_hung_in(proc.stderr)}"]
    problems = []
    if "Traceback" in text or "Fatal Python error" in text or re.search(r'^\s+File "', text, re.M):
        problems.append("traceback: " + " | ".join(text.strip().splitlines()[-3:])[:400])
    if proc.returncode < 0:
        # the command itself killed by a signal: the supervisor should have turned its child's death into a line
        problems.append(f"crash: killed by signal {-proc.returncode} ({_last_native_line(text)})")
    elif proc.returncode > 128 and "died of SIG" not in (proc.stderr.strip().splitlines() or [""])[-1]:
        problems.append(f"exit {proc.returncode} (a signal) without the supervisor's line: {_last_native_line(text)}")
    elif proc.returncode != 0:
        if not proc.stderr.strip():
            problems.append(f"exit {proc.returncode} without a message")
        elif sum(x.startswith("error: ") for x in proc.stderr.splitlines()) > 1:
            problems.append("more than one error line")
    return problems


def _hung_in(stderr: str) -> str:
    """The innermost frame of the main thread in the SIGUSR1 dump (where the hang is)."""
    lines = stderr.splitlines()
    start = next((i for i, x in enumerate(lines) if x.startswith("Current thread")), None)
    frames = [x.strip() for x in lines[start + 1 :] if x.strip().startswith("File ")] if start is not None else []
    return frames[0][:200] if frames else "no stack dump"


def _last_native_line(text: str) -> str:
    lines = [x.strip() for x in text.splitlines() if x.strip()]
    native = [x for x in lines if "what():" in x or "terminate called" in x]
    return (native or lines or ["no output"])[-1][:200]


def _check_served(env: Env, before: str | None, after: str | None) -> tuple[list[str], str | None]:
    """Problems with what is served after the faulty run, and how the next plain sync (run in the same
    process, after the checks) ended: "" ok, None not run."""
    problems: list[str] = []
    if after is None:
        return [f"data: current is gone (was {before})"], None
    try:
        verified, got, nxt = env.served(then_sync=True)
    except RuntimeError as exc:
        return [f"data: the reader failed: {exc}"], None
    if verified:
        problems.append(f"data: verify failed on {after}: {verified[-300:]}")
    if got != env.expected:
        problems.append(f"data: the reader got other data ({sorted(k for k in got if got[k] != env.expected.get(k))})")
    return problems, nxt


def _check_history(env: Env, runs_before: set[str], before: str | None, after: str | None) -> list[str]:
    """After the next plain sync (which closes what a faulty run left open)."""
    runs = env.runs()
    problems = [f"history: run {rid} left running" for rid, r in runs.items() if r["status"] == "running"]
    if after != before and after is not None:
        row = runs.get(after)
        if row is None:
            problems.append(f"history: run {after} published but is not in the history")
        elif row["status"] not in ("ok", "partial") or row["snapshot_id"] != after:
            problems.append(f"history: run {after} published but recorded as {row['status']}, snapshot {row['snapshot_id']}")
    for rid in set(runs) - runs_before:
        r = runs[rid]
        if r["snapshot_id"] and r["snapshot_id"] != rid:
            problems.append(f"history: run {rid} names snapshot {r['snapshot_id']}")
    return problems


def plan(env: Env, per_syscall: int, fiu_runs: int, quick: bool, commands: tuple[tuple[str, ...], ...] = COMMANDS) -> list[Case]:
    """The long sweep: ``per_syscall`` positions of every syscall in a plain sync, at most
    OTHER_COMMAND_POSITIONS in each other command, every errno at each. The short one (``quick``): one
    position per syscall in a plain sync, the first or the last in turn; one case per other command."""
    cases: list[Case] = []
    for k, command in enumerate(commands):
        positions = trace_positions(env, command)
        calls = [(n, call, errnos) for n, (call, errnos) in enumerate(ERRORS.items()) if positions.get(call)]
        if quick and command != ("sync",):
            if calls:  # one syscall of this command, a different one for each command
                n, call, errnos = calls[(7 * k) % len(calls)]
                cases.append(Case("strace", call, errnos[0], positions[call][-1 if k % 2 else 0], command=command))
            continue
        for n, call, errnos in calls:
            pos = positions[call]
            if quick:
                cases.append(Case("strace", call, errnos[n % len(errnos)], pos[-1] if n % 2 else pos[0], command=command))
                continue
            k_pos = per_syscall if command == ("sync",) else min(per_syscall, OTHER_COMMAND_POSITIONS)
            for when in pick(pos, k_pos):
                cases += [Case("strace", call, errno, when, command=command) for errno in errnos]
    # every other random run a forced sync: every table exported, courses by the engine (the faults go
    # into the run while its unload child runs; the child itself starts with them off)
    cases += [
        Case("fiu", when=i + 1, probability=FIU_PROBABILITIES[i % len(FIU_PROBABILITIES)], command=FIU_COMMANDS[(i // 3) % 2])
        for i in range(fiu_runs)
    ]
    return cases


def summarize(outcomes: list[Outcome]) -> dict[str, Any]:
    by_call: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for o in outcomes:
        by_call[o.case.syscall or "fiu random I/O"][o.outcome] += 1
    return {
        "faults": len(outcomes),
        "per_syscall": {k: dict(v) for k, v in sorted(by_call.items())},
        "outcomes": dict(collections.Counter(o.outcome for o in outcomes)),
        "tracebacks": sum(o.traceback for o in outcomes),
        "native_crashes": sum(o.crashed for o in outcomes),
        "native_aborts_reported": sum(o.abort_reported for o in outcomes),
        "data_lost": sum(o.data_lost for o in outcomes),
        "problems": sum(bool(o.problems) for o in outcomes),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="the short sweep (about a minute)")
    ap.add_argument("--positions", type=int, default=None, help="positions per syscall (default 2 quick, 4 long)")
    ap.add_argument("--fiu", type=int, default=None, help="random-fault runs (default 2 quick, 24 long)")
    ap.add_argument("--only", default="", help="comma-separated syscalls to inject (default: all)")
    ap.add_argument(
        "--commands", default="", help='comma-separated commands to inject into, e.g. "sync --force,repair" (default: all)'
    )
    ap.add_argument("--json", type=Path, default=None, help="write every case and outcome here")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args(argv)
    missing = [t for t in ("strace", "fiu-run", "fiu-ctrl") if shutil.which(t) is None]
    if missing:
        print(f"error: {', '.join(missing)} not installed (Debian packages strace, fiu-utils)", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="vds-faults-"))
    try:
        env = Env(folder)
        commands = tuple(tuple(c.split()) for c in args.commands.split(",")) if args.commands else COMMANDS
        cases = plan(
            env,
            args.positions or (2 if args.quick else 4),
            (2 if args.quick else 24) if args.fiu is None else args.fiu,
            args.quick,
            commands,
        )
        if args.only:
            keep = set(args.only.split(","))
            cases = [c for c in cases if c.syscall in keep or (c.kind == "fiu" and "fiu" in keep)]
        outcomes = []
        for n, case in enumerate(cases, 1):
            o = run_case(env, case)
            outcomes.append(o)
            flag = "ok " if not o.problems else "BAD"
            print(
                f"[{n:3}/{len(cases)}] {flag} {case.label:<34} exit {o.exit_code}  {o.outcome:<25} {o.message[:110]}", flush=True
            )
            for p in o.problems:
                print(f"          problem: {p}", flush=True)
        summary = summarize(outcomes)
        print(json.dumps(summary, indent=2))
        if args.json:
            detail = [{**dataclasses.asdict(o), "label": o.case.label} for o in outcomes]
            args.json.write_text(json.dumps({"summary": summary, "cases": detail}, indent=2), encoding="utf-8")
        return 0 if summary["problems"] == 0 else 1
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
