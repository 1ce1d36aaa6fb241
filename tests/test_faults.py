"""The short fault-injection sweep (scripts/faults.py --quick): real syncs with real injected faults.

One command per case, in a real process, with one syscall failing (strace ``-e inject``: fsync,
fdatasync, rename, openat, write, pwrite64, link, symlink, unlink, mkdir, chmod, flock, ftruncate,
fchown, close, read, pread64, mmap; the first or the last call of each that touches the volume in a
plain sync, the last one coming after the ``current`` swap; one fault each in ``sync courses``,
``sync --force`` (the engine's unload child), ``repair``, ``rollback``, ``status`` and ``verify``)
or random libc I/O faults (libfiu's ``fiu-run``, switched on once the sync holds the lock). After
each: one clear line and a non-zero exit or an absorbed fault, no traceback, ``current`` intact and
verified, the reader's data unchanged, the history truthful, the next sync clean with staging empty.
The long sweep is ``make faults`` (README "Fault injection").
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def _faults():
    spec = importlib.util.spec_from_file_location("vds_faults", ROOT / "scripts" / "faults.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["vds_faults"] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


faults = _faults()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    missing = [t for t in ("strace", "fiu-run", "fiu-ctrl") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (Debian packages strace, fiu-utils; .ci/run installs them)")
    return faults.Env(tmp_path_factory.mktemp("faults"), rows=1500)


@pytest.fixture(scope="module")
def cases(env) -> list:
    return faults.plan(env, per_syscall=1, fiu_runs=0, quick=True)


def test_the_sweep_reaches_every_syscall_a_sync_makes_on_the_volume(cases) -> None:
    reached = {c.syscall for c in cases}
    assert {
        "fsync",
        "fdatasync",
        "rename",
        "openat",
        "write",
        "pwrite64",
        "link",
        "symlink",
        "unlink",
        "mkdir",
        "chmod",
        "flock",
        "ftruncate",
        "fchown",
        "close",
        "read",
        "pread64",
        "mmap",
    } <= reached
    # and not only `sync`: one carrying tables over, a forced one (the engine's unload child), and
    # repair, rollback, status and verify each get a fault too
    assert {c.command for c in cases} == set(faults.COMMANDS)


def test_every_injected_syscall_fault_ends_cleanly(env, cases) -> None:
    outcomes = [faults.run_case(env, c) for c in cases]
    bad = [f"{o.case.label}: {'; '.join(o.problems)}" for o in outcomes if o.problems]
    assert not bad, "\n".join(bad)
    summary = faults.summarize(outcomes)
    assert summary["tracebacks"] == 0 and summary["data_lost"] == 0
    assert summary["outcomes"].get("failed cleanly", 0) > 0, "control: some faults must fail the sync"


def test_the_fsync_after_the_current_swap_leaves_the_run_recorded_as_published(env) -> None:
    # issue 13, item 3: `current` moved, then the directory fsync failed
    last = faults.trace_positions(env)["fsync"][-1]
    o = faults.run_case(env, faults.Case("strace", "fsync", "EIO", last))
    assert not o.problems, o.problems
    assert o.outcome == "published with a warning" and "published and current" in o.message


def test_random_io_faults_never_end_in_a_traceback_or_lost_data(env) -> None:
    # two runs at p=0.03 (the long sweep, `make faults`, runs 24 at several probabilities)
    outcomes = [faults.run_case(env, faults.Case("fiu", when=i, probability=0.03)) for i in range(1, 3)]
    # native code (DuckDB opening its file) may abort under libc faults it does not handle: the engine
    # runs in the supervisor's child, so that is the supervisor's one line (exit 134), not a crash, and
    # every check after it (current intact and verified, the same data, the next sync clean) holds
    bad = [f"{o.case.label}: {p}" for o in outcomes for p in o.problems]
    assert not bad, "\n".join(bad)
    assert not any(o.crashed for o in outcomes)
    assert all(o.exit_code <= 128 or o.abort_reported for o in outcomes), [o.message for o in outcomes]


def test_no_module_is_imported_once_the_sync_holds_the_volume_lock(env) -> None:
    # an import is file I/O (and dlopen): a fault or a hang there is one the run cannot report, so
    # everything is loaded before the lock (syncer/engine/preload.py). Held to the real calls:
    trace = env.folder / "imports.txt"
    env.cli("sync", "--force", prefix=["strace", "-f", "-qq", "-o", str(trace), "-e", "trace=openat,flock,execve"], check=True)
    lines = trace.read_text(encoding="utf-8").splitlines()
    # the engine's unload child (courses, export = "engine") is a new interpreter by design: its own
    # imports run in it, never in the run that holds the lock
    child = {x.split()[0] for x in lines if "execve(" in x and "syncer.sources.duckdb_unload" in x}
    assert child, "the forced sync did not start the engine's unload child"
    locked = next(i for i, x in enumerate(lines) if "flock(" in x and "LOCK_EX" in x)
    late = [x for x in lines[locked:] if x.split()[0] not in child and "openat(" in x and re.search(r'\.(py|pyc|so)[."]', x)]
    assert not late, "imported after the volume lock:\n" + "\n".join(late[:5])


def test_faults_wait_for_the_holder_record_of_this_sync_not_a_stale_one(tmp_path: Path) -> None:
    # a record left by an earlier, killed run names another pid: it must not switch the faults on early
    env = faults.Env.__new__(faults.Env)
    env.root = tmp_path
    (tmp_path / ".lock.json").write_text(json.dumps({"pid": 4242, "run_id": "old"}), encoding="utf-8")
    assert not faults._holds_lock(env, 4343)
    assert faults._holds_lock(env, 4242)
    # under the supervisor the record names the child (which holds the lock) and the supervisor that
    # the harness started: the faults go to the child
    (tmp_path / ".lock.json").write_text(json.dumps({"pid": 4244, "supervisor_pid": 4243}), encoding="utf-8")
    assert faults._sync_pid(env, 4243) == 4244 and faults._sync_pid(env, 4242) is None
    (tmp_path / ".lock.json").write_text("{torn", encoding="utf-8")
    assert not faults._holds_lock(env, 4242)


def test_a_fiu_ctrl_that_does_not_answer_leaks_no_pipe_and_no_process(env, tmp_path: Path, monkeypatch) -> None:
    # the harness's own fault: fiu-ctrl blocks (its FIFO is never read). The sync's pipes used to be
    # left to the garbage collector, a ResourceWarning in whatever test ran next (tests/test_manifest.py)
    slow_ctrl = tmp_path / "bin" / "fiu-ctrl"
    slow_ctrl.parent.mkdir()
    slow_ctrl.write_text("#!/bin/sh\nsleep 30\n", encoding="utf-8")
    slow_ctrl.chmod(0o755)
    monkeypatch.setenv("PATH", f"{slow_ctrl.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(faults, "FIU_CTRL_SECONDS", 0.5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        proc = faults._fiu_sync(env, faults.Case("fiu", when=1, probability=0.5))
        gc.collect()
    assert "fiu-ctrl did not answer" in proc.stderr and proc.returncode is not None
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], [str(w.message) for w in caught]


def test_a_hang_is_reported_with_where_it_hung() -> None:
    # the harness asks a hung sync for its stacks (SIGUSR1, the CLI's faulthandler) before killing it
    proc = subprocess.CompletedProcess(
        [],
        -9,
        "",
        'Current thread 0x00007f (most recent call first):\n  File "/x/duckdb.py", line 83 in _connect\n'
        '  File "/x/run.py", line 240 in _export_all\n\nHUNG: killed after 120 s',
    )
    (problem,) = faults._check_output(proc)
    assert problem.startswith("hung:") and "duckdb.py" in problem and "_connect" in problem


def test_the_cli_prints_every_thread_s_stack_on_sigusr1_and_goes_on(env) -> None:
    proc = subprocess.Popen(
        [env.python, "-m", "syncer", "--config", str(env.config), "schedule"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env.env, "PYTHONUNBUFFERED": "1"},
        cwd=env.folder,
    )
    try:
        assert proc.stdout is not None
        assert "scheduler running" in proc.stdout.readline()  # started: the handler is in place
        proc.send_signal(signal.SIGUSR1)
        time.sleep(0.5)
        assert proc.poll() is None, "SIGUSR1 must not end the command"
    finally:
        proc.terminate()  # this one process, by its own handle
        _, err = proc.communicate(timeout=30)
    assert "most recent call first" in err and 'File "' in err


def test_an_unchanged_table_whose_link_fails_is_exported_instead(env) -> None:
    """The unchanged path hard-links the previous files; with every link(2) failing (EMLINK: the file's
    link count at its limit), the sync exported nothing and failed as a whole: each table is now
    exported instead, and the run is ok."""
    inject = "inject=link,linkat:error=EMLINK"
    before = set(env.runs())
    proc = env.cli("sync", prefix=["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=link,linkat", "-e", inject])
    assert proc.returncode == 0, proc.stderr[-500:]
    assert "Traceback" not in proc.stderr and "exporting it instead" in proc.stderr
    (run,) = set(env.runs()) - before
    assert env.runs()[run]["status"] == "ok" and env.current() == run
    verified, got, nxt = env.served(then_sync=True)
    assert verified == "" and got == env.expected and nxt == ""


def test_the_last_resort_line_says_where_an_unexpected_os_error_escaped(tmp_path: Path, monkeypatch) -> None:
    """An OSError that escaped every wrapper (random I/O faults found one: "OSError: [Errno 28] No space
    left on device", no file, no place) is still one line, and it names where in the engine it was raised."""
    from click.testing import CliRunner

    import syncer.cli as cli

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli.syncer, "status", full)
    (tmp_path / "sync.toml").write_text(
        '[source]\nkind = "duckdb"\npath = "w.duckdb"\n\n[volume]\nroot = "data"\n\n[[tables]]\nname = "t"\nprimary_key = ["id"]\n'
    )
    res = CliRunner().invoke(cli.main, ["--config", str(tmp_path / "sync.toml"), "status"])
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert res.exit_code == 1 and len(lines) == 1, res.output
    assert lines[0].startswith("error: OSError: [Errno 28] No space left on device at ") and "test_faults.py" not in lines[0], (
        lines[0]
    )
    assert " in full" not in lines[0] and "cli.py:" in lines[0] and "in status" in lines[0], lines[0]
