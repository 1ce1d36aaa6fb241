"""The supervisor (syncer/supervise.py): real ``syncer sync`` processes, real signals.

A child killed mid-sync (SIGABRT as DuckDB's INTERNAL errors end it, SIGSEGV, SIGKILL) becomes one
line and exit 128 + signal; ``current`` is unchanged and verified, the run is closed as failed, and
the next plain sync is clean. SIGTERM to the supervisor reaches the child; a supervisor killed with
-9 takes its child with it (PDEATHSIG) and the lock is free. The admin app's re-sync and startup run
the sync in a child, so an abort there ends one job, not the server.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

import syncer
from syncer import Config, History, load_config
from syncer.volume.layout import Volume
from tests.conftest import BROKEN_STREAM, LOCAL_OPERATOR, write_config

#: enough rows that a sync is still exporting when the test's signal arrives
ROWS = 600_000

TABLES = """
[[tables]]
name = "enrollments"
primary_key = ["enrollment_id"]

[[tables]]
name = "participants"
primary_key = ["participant_id"]
exclude_columns = ["password_hash"]
"""

#: loaded by every Python started with this folder on PYTHONPATH: once the DuckDB source is imported
#: (never before: the supervisor must stay light), its stream prints DuckDB's message and really aborts
#: mid-export, in a supervised child only (the CLI's forked one, or the app's `python -m syncer`)
ABORTING_CHILD = """
import importlib.abc
import importlib.util
import os
import sys


def _patch(module):
    real = module.DuckDBSource.stream

    def stream(self, table, schema, batch_rows):
        from syncer import _child

        for i, batch in enumerate(real(self, table, schema, batch_rows)):
            if i == 1 and _child.supervisor_pid is not None:
                os.write(2, b"INTERNAL Error: Attempted to dereference unique_ptr that is NULL!\\n")
                os.abort()
            yield batch

    module.DuckDBSource.stream = stream


class _AfterImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "syncer.sources.duckdb" or os.environ.get("TEST_ABORT_IN_CHILD") != "1":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            _patch(module)

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _AfterImport())
"""


@pytest.fixture(scope="module")
def big_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("supervisor-warehouse") / "warehouse.duckdb"
    syncer.build_demo(path, ROWS)
    return path


@pytest.fixture(scope="module")
def _template(tmp_path_factory: pytest.TempPathFactory, big_warehouse: Path) -> Path:
    """One published snapshot of the big warehouse, made once; each test gets a copy of its volume."""
    folder = tmp_path_factory.mktemp("supervisor-template")
    assert syncer.sync(load_config(write_config(folder, big_warehouse, tables=TABLES)))["status"] == "ok"
    return folder / "data"


@pytest.fixture
def published(tmp_path: Path, big_warehouse: Path, _template: Path) -> tuple[Path, Config]:
    """A config on its own volume with one published snapshot."""
    path = write_config(tmp_path / "cfg", big_warehouse, tables=TABLES)
    shutil.copytree(_template, path.parent / "data", symlinks=True)
    cfg = load_config(path)
    assert syncer.verify(cfg)["ok"]
    return path, cfg


@pytest.fixture
def abort_hook(tmp_path: Path) -> dict[str, str]:
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(textwrap.dedent(ABORTING_CHILD), encoding="utf-8")
    return {"PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]), "TEST_ABORT_IN_CHILD": "1"}


def cli(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "syncer", "--config", str(config), *args]


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("SYNCER_CONFIG", "SYNCER_NO_SUPERVISOR")}
    return {**base, "SYNCER_LOG_FORMAT": "text", **extra}


def child_of(vol: Volume, parent: subprocess.Popen[bytes], timeout: float = 60) -> int:
    """The pid of the child holding the lock for ``parent``, once its run is recorded ``running``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert parent.poll() is None, "the sync ended before the test could signal it"
        try:
            holder = json.loads((vol.root / ".lock.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            holder = {}
        if holder.get("supervisor_pid") == parent.pid:
            pid = int(holder["pid"])
            if any(r["pid"] == pid and r["status"] == "running" for r in History(vol.db_path).runs(limit=5)):
                return pid
        time.sleep(0.01)
    raise AssertionError("no child named itself in .lock.json")


def gone(pid: int) -> bool:
    """The process has exited (a zombie nobody reaped yet counts: it runs nothing and holds no lock).
    A zombie leader whose other threads are still exiting does not count: the process's files (its
    lock) are closed when the last thread is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in status and "Threads:\t1\n" in status


def assert_current(cfg: Config, expected: str) -> None:
    vol = Volume(cfg.root)
    assert os.path.basename(os.readlink(vol.current)) == expected
    res = syncer.verify(cfg)
    assert res["ok"] and res["snapshot"] == expected, res["problems"]


def assert_next_sync_clean(config: Path, cfg: Config) -> None:
    vol = Volume(cfg.root)
    after = subprocess.run(cli(config, "sync", "--force"), capture_output=True, text=True, env=env(), timeout=120)
    assert after.returncode == 0, after.stderr
    assert list(vol.staging.iterdir()) == []
    assert [r for r in History(vol.db_path).runs(limit=50) if r["status"] == "running"] == []
    assert syncer.verify(cfg)["ok"]


@pytest.mark.parametrize("sig", [signal.SIGABRT, signal.SIGSEGV, signal.SIGKILL], ids=lambda s: s.name)
def test_a_child_killed_mid_sync_is_one_line_and_128_plus_the_signal(published: tuple[Path, Config], sig: signal.Signals) -> None:
    config, cfg = published
    vol = Volume(cfg.root)
    before = os.path.basename(os.readlink(vol.current))
    proc = subprocess.Popen(cli(config, "sync", "--force"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env())
    pid = child_of(vol, proc)
    os.kill(pid, sig)
    out, err = proc.communicate(timeout=60)

    assert proc.returncode == 128 + sig, err.decode()
    (line,) = err.decode().strip().splitlines()  # one line, no traceback, no DuckDB noise
    assert line.startswith(f"error: the sync process (pid {pid}) died of {sig.name} at step ")
    assert f"the served snapshot is unchanged ({before}); run `syncer status`" in line
    assert out == b""
    assert_current(cfg, before)
    (run,) = [r for r in History(vol.db_path).runs(limit=5) if r["pid"] == pid]
    assert run["status"] == "failed" and sig.name in run["error"] and run["finished_at"]
    assert f"run {run['id']} is marked failed in the history" in line
    assert_next_sync_clean(config, cfg)


def test_a_native_abort_names_the_table_and_duckdbs_message(published: tuple[Path, Config], abort_hook: dict[str, str]) -> None:
    config, cfg = published
    before = os.path.basename(os.readlink(Volume(cfg.root).current))
    proc = subprocess.run(cli(config, "sync", "--force"), capture_output=True, text=True, env=env(**abort_hook), timeout=120)

    assert proc.returncode == 134, proc.stderr
    lines = proc.stderr.strip().splitlines()
    # DuckDB's own line passes through as it came; ours is the last, and the only "error:" line
    assert lines[-2] == "INTERNAL Error: Attempted to dereference unique_ptr that is NULL!"
    assert [ln for ln in lines if ln.startswith("error:")] == [lines[-1]]
    assert "died of SIGABRT at step 'export', table 'enrollments'" in lines[-1]
    assert "it printed: INTERNAL Error: Attempted to dereference unique_ptr that is NULL!" in lines[-1]
    assert f"the served snapshot is unchanged ({before})" in lines[-1] and "Traceback" not in proc.stderr
    assert_current(cfg, before)
    assert_next_sync_clean(config, cfg)


def test_sigterm_to_the_supervisor_is_forwarded_and_the_child_stops(published: tuple[Path, Config]) -> None:
    config, cfg = published
    vol = Volume(cfg.root)
    before = os.path.basename(os.readlink(vol.current))
    proc = subprocess.Popen(cli(config, "sync", "--force"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env())
    pid = child_of(vol, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)

    assert proc.returncode == 128 + signal.SIGTERM, err.decode()
    (line,) = err.decode().strip().splitlines()
    assert f"(pid {pid}) died of SIGTERM" in line and f"unchanged ({before})" in line
    assert gone(pid)
    assert_current(cfg, before)
    assert_next_sync_clean(config, cfg)


def test_sigint_to_the_supervisor_interrupts_the_child_once(published: tuple[Path, Config]) -> None:
    config, cfg = published
    vol = Volume(cfg.root)
    before = os.path.basename(os.readlink(vol.current))
    proc = subprocess.Popen(cli(config, "sync", "--force"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env())
    pid = child_of(vol, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)

    # the child's own handling of Ctrl-C: one line, exit 130
    assert proc.returncode == 130, err.decode()
    assert err.decode().strip().splitlines() == ["error: interrupted; the published snapshot is unchanged"]
    assert gone(pid)
    assert_current(cfg, before)
    assert_next_sync_clean(config, cfg)


def test_a_supervisor_killed_with_9_takes_its_child_and_frees_the_lock(published: tuple[Path, Config]) -> None:
    config, cfg = published
    vol = Volume(cfg.root)
    before = os.path.basename(os.readlink(vol.current))
    proc = subprocess.Popen(cli(config, "sync", "--force"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env())
    pid = child_of(vol, proc)
    assert any(f" {pid} " in ln and "FLOCK" in ln for ln in Path("/proc/locks").read_text().splitlines()), (
        "the child holds the lock"
    )
    proc.kill()
    proc.wait(10)
    deadline = time.monotonic() + 1.0
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gone(pid), "the child outlived its supervisor by more than a second"
    assert not any(f" {pid} " in ln for ln in Path("/proc/locks").read_text().splitlines())
    assert_current(cfg, before)
    assert_next_sync_clean(config, cfg)  # takes the lock, closes the dead run, publishes


def test_the_holder_record_names_the_child_and_its_supervisor(published: tuple[Path, Config]) -> None:
    config, cfg = published
    vol = Volume(cfg.root)
    proc = subprocess.Popen(cli(config, "sync", "--force"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env())
    pid = child_of(vol, proc)
    holder = json.loads((vol.root / ".lock.json").read_text(encoding="utf-8"))
    assert pid != proc.pid and holder["pid"] == pid and holder["supervisor_pid"] == proc.pid
    assert Path(f"/proc/{pid}/status").read_text().count(f"PPid:\t{proc.pid}") == 1
    proc.communicate(timeout=120)
    assert proc.returncode == 0


def test_exit_codes_and_output_pass_through(published: tuple[Path, Config]) -> None:
    config, _ = published
    unknown = subprocess.run(cli(config, "sync", "nosuch"), capture_output=True, text=True, env=env(), timeout=60)
    assert unknown.returncode == 2 and unknown.stdout == ""
    (line,) = unknown.stderr.strip().splitlines()
    assert line.startswith("error: ") and "nosuch" in line
    ok = subprocess.run(cli(config, "sync", "--json"), capture_output=True, text=True, env=env(), timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["status"] == "ok"


def test_the_supervisor_imports_no_engine(published: tuple[Path, Config]) -> None:
    # the supervisor forks: the child goes on in the same interpreter and imports the engine; the
    # parent, after a whole sync, has still loaded nothing but the standard library and syncer.supervise
    config, _ = published
    script = (
        "import os, sys\n"
        "from syncer import supervise\n"
        f"args = ['--config', {str(config)!r}, 'sync', '--json']\n"
        "code = supervise._supervise(args)\n"
        "if code is None:\n"
        "    supervise._run_cli(args)\n"
        "else:\n"
        "    print('PARENT', code, ' '.join(sorted(sys.modules)), flush=True)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env(), timeout=120)
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("PARENT ")]
    _, code, *modules = line.split()
    assert code == "0", proc.stderr
    assert json.loads(proc.stdout[: proc.stdout.index("PARENT ")])["status"] == "ok"  # the child's report
    assert "syncer.supervise" in modules
    heavy = [m for m in modules if m.split(".")[0] in {"pyarrow", "duckdb", "pandas", "click", "numpy", "subprocess"}]
    assert heavy == [] and not [m for m in modules if m.startswith(("syncer.engine", "syncer.cli", "syncer.sources"))]


def test_an_admin_resync_whose_child_aborts_fails_the_job_and_the_app_lives_on(
    tmp_path: Path, big_warehouse: Path, abort_hook: dict[str, str], monkeypatch: pytest.MonkeyPatch, no_jobs_left_behind: None
) -> None:
    import syncer.admin

    path = write_config(tmp_path / "cfg", big_warehouse, extra=LOCAL_OPERATOR, tables=TABLES)
    cfg = load_config(path)
    first = syncer.sync(cfg)["snapshot_id"]
    for k, v in abort_hook.items():
        monkeypatch.setenv(k, v)
    job = syncer.admin.request_sync(cfg, {})
    assert job.wait(120)
    assert job.state == "failed", job.error
    assert "died of SIGABRT at step 'export', table 'enrollments'" in (job.error or "")
    assert "INTERNAL Error: Attempted to dereference unique_ptr that is NULL!" in (job.error or "")
    assert f"the served snapshot is unchanged ({first})" in (job.error or "")
    assert job.message.startswith("re-sync of all tables failed: the sync process")
    assert_current(cfg, first)

    monkeypatch.delenv("TEST_ABORT_IN_CHILD")
    again = syncer.admin.request_sync(cfg, {})
    assert again.wait(120) and again.state == "ok", again.error
    assert again.rows_finished > 0 or again.tables_done == 2  # the child's progress reached the job
    assert again.result["snapshot_id"] not in (None, first)
    (run,) = [r for r in History(Volume(cfg.root).db_path).runs(limit=5) if r["id"] == again.result["snapshot_id"]]
    assert run["trigger"] == "manual" and run["user"] == job.user


def test_the_apps_startup_sync_aborting_still_serves_the_previous_snapshot(
    tmp_path: Path, big_warehouse: Path, abort_hook: dict[str, str], monkeypatch: pytest.MonkeyPatch, no_jobs_left_behind: None
) -> None:
    from syncer.admin import server

    db = tmp_path / "warehouse.duckdb"
    shutil.copy(big_warehouse, db)
    path = write_config(tmp_path / "cfg", db, tables=TABLES)
    cfg = load_config(path)
    first = syncer.sync(cfg)["snapshot_id"]
    con = duckdb.connect(str(db))  # the source changes: startup exports again (and its child aborts)
    con.execute("DELETE FROM enrollments WHERE enrollment_id % 1000 = 0")
    con.close()
    for k, v in abort_hook.items():
        monkeypatch.setenv(k, v)
    stale = _config_that_always_syncs(path)  # the data is fresh: without this, startup would skip its sync
    assert server.begin_startup(stale)
    assert server.wait_for_startup(120)
    state = server.startup_state()
    assert state["phase"] == "done", state
    assert state["result"]["action"] == "failed" and state["result"]["snapshot_id"] == first
    assert "died of SIGABRT" in state["result"]["reason"] and "INTERNAL Error" in state["result"]["reason"]
    assert_current(cfg, first)


def _config_that_always_syncs(path: Path) -> Config:
    text = path.read_text(encoding="utf-8").replace(
        "skip_startup_if_younger_than_hours = 20", "skip_startup_if_younger_than_hours = 0"
    )
    path.write_text(text, encoding="utf-8")
    return load_config(path)


@pytest.mark.parametrize(
    ("last", "said"),
    [
        pytest.param(
            'what():  {"exception_type":"INTERNAL","exception_message":"Attempted to dereference unique_ptr that is NULL!",'
            '"stack_trace_pointers":"140359206298987;140359206323121"}',
            "INTERNAL Error: Attempted to dereference unique_ptr that is NULL!",
            id="duckdb-terminate-json",
        ),
        pytest.param("INTERNAL Error: x", "INTERNAL Error: x", id="plain-native-line"),
        pytest.param("error: sync run 1 stopped", "", id="our-own-line"),
        pytest.param("warning: the run history could not record", "", id="our-warning"),
        pytest.param("", "", id="nothing"),
    ],
)
def test_the_last_native_line_is_said_shortly(last: str, said: str) -> None:
    from syncer.supervise import _native

    assert _native(last) == said


def test_a_child_that_cannot_be_started_is_one_line(config_path: Path) -> None:
    import resource

    def few_files() -> None:  # enough to start Python, not for the supervisor's pipes
        resource.setrlimit(resource.RLIMIT_NOFILE, (6, 6))

    proc = subprocess.run(cli(config_path, "sync"), capture_output=True, text=True, env=env(), timeout=60, preexec_fn=few_files)
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: cannot start the sync process") and "Too many open files" in line
    assert not (config_path.parent / "data" / "current").exists()


ORPHAN = """
import inspect, os, sys, time
from syncer import supervise

me = os.getpid()
r, w = os.pipe()
e_r, e_w = os.pipe()
pid = os.fork()
if pid:
    os._exit(0)  # the supervisor dies between the fork and the child's prctl
while os.getppid() == me:
    time.sleep(0.001)
with supervise._Forwarding() as forwarding:
    new = "parent" in inspect.signature(supervise._forked_child).parameters  # the old one took getppid() after the fork
    supervise._forked_child(forwarding, (r, w), (e_r, e_w), False, *([me] if new else []))
    os.write(1, b"still running without its supervisor\\n")
    os._exit(0)
"""


def test_a_child_whose_supervisor_died_before_it_was_adopted_exits_at_once(tmp_path: Path) -> None:
    """The supervisor's pid is taken before the fork: after it, a dead supervisor's child sees
    another parent (1 or a subreaper) and must not go on to run the sync alone (it held the lock
    while the next sync was refused, in the crash test's random kills)."""
    out = tmp_path / "out"
    with open(out, "wb") as fh:
        proc = subprocess.run([sys.executable, "-c", ORPHAN], stdout=fh, timeout=30, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and not out.read_bytes():
        time.sleep(0.05)
    time.sleep(0.3)
    assert out.read_bytes() == b""


#: a process whose stderr's last flush fails once (what a libc write fault does to it at exit):
#: the command wrote a line without flushing it, and ends with ``sys.exit(3)``
_FAILING_FLUSH = """
import sys
class Flaky:
    def __init__(self, real):
        self.real, self.held, self.failed = real, [], False
    def write(self, s):
        self.held.append(s)
        return len(s)
    def flush(self):
        if not self.failed:
            self.failed = True
            raise OSError(77, "File descriptor in bad state")
        self.real.write("".join(self.held)); self.real.flush()
sys.stderr = Flaky(sys.stderr)
def command():
    sys.stderr.write("the command's line\\n")
    sys.exit(3)
if sys.argv[1] == "end_child":
    from syncer._child import end_child
    end_child(command)
command()
"""


@pytest.mark.parametrize("ending", ["interpreter", "end_child"])
def test_the_forked_child_s_failing_last_flush_is_never_an_interpreter_dump(ending: str) -> None:
    """The forked child ends through ``end_child``: its exit handlers, one guarded flush, its exit
    code. Left to the interpreter, a failing last flush of stderr (a libc write fault: the fault
    sweep met it) changes the exit code to 120 or comes out as its own dump ("Exception ignored
    ... lost sys.stderr") -- the control shows it does."""
    proc = subprocess.run([sys.executable, "-c", _FAILING_FLUSH, ending], capture_output=True, text=True, timeout=60)
    dumped = "Exception ignored" in proc.stderr or "lost sys.stderr" in proc.stderr or "Traceback" in proc.stderr
    if ending == "interpreter":
        assert proc.returncode == 120 or dumped, (proc.returncode, proc.stderr)  # control
    else:
        assert proc.returncode == 3 and not dumped, (proc.returncode, proc.stderr)


_BROKEN_STDERR = f"""
import sys
{BROKEN_STREAM}sys.stderr = Broken()
from syncer.supervise import main
main(["--config", sys.argv[1], "sync"])
"""


def test_an_error_line_that_cannot_be_written_to_stderr_goes_out_past_it_with_its_exit_code(tmp_path: Path) -> None:
    """The command's error line written while Python's stderr fails (a write fault): the line still
    reaches fd 2 (one ``write``), the exit code is the error's (a config error: 2), no dump."""
    bad = tmp_path / "sync.toml"
    bad.write_text('[source]\nkind = "nowhere"\n', encoding="utf-8")
    proc = subprocess.run([sys.executable, "-c", _BROKEN_STDERR, str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "error: " in proc.stderr and "nowhere" in proc.stderr, proc.stderr
    assert not any(s in proc.stderr for s in ("Traceback", "Exception ignored", "lost sys.stderr")), proc.stderr
