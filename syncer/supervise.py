"""The supervisor: the commands that open the warehouse run it in a child process.

Native code we do not own (DuckDB) can abort the whole process (``SIGABRT`` with its own
``INTERNAL`` line) where no Python ``except`` runs. So ``syncer sync``, ``startup`` and ``demo`` run
the engine in a child and this light parent, which imports only the standard library, turns a child
that dies by a signal into ONE line: the signal,
the step and table it was at, the last line it printed (DuckDB's message), and whether the served
snapshot is unchanged, which the parent checks itself (``current`` read before and after). The
run the child left ``running`` in the history is closed at once as ``failed`` with the signal.
Exit code of a death by signal: 128 + the signal's number, as shells report it (SIGABRT 134,
SIGKILL 137, SIGSEGV 139, SIGTERM 143).

How the child is made: the CLI forks before it has imported anything but the standard library and
before any thread exists (no second interpreter to start: the child goes on in this one and imports
the engine itself); the admin app and the scheduler, which have threads, start ``python -m syncer``
with the same arguments (``posix_spawn``, :func:`run_child`).

How parent and child are tied:

* the child asks the kernel for ``SIGKILL`` when its parent dies (``prctl(PR_SET_PDEATHSIG)``,
  Linux), so a killed supervisor never leaves a sync running alone; the child holds the volume lock
  and names itself in ``.lock.json`` (``pid``; ``supervisor_pid`` is the parent);
* the parent forwards SIGTERM, SIGINT, SIGHUP and SIGUSR1 (the thread dump) to the child, which
  runs in its own process group so a Ctrl-C reaches it once;
* stdout is the parent's own (inherited); stderr goes through a pipe the parent copies to its own
  stderr as it comes (no buffering), remembering the last line;
* the child reports where it is (``step`` events, and the sync's progress events) as JSON lines on
  a pipe (:func:`syncer._child.report`, best effort).

:func:`run_child` is the same machinery for the admin app and the scheduler (stdout captured for
``--json``, progress events to a callback): a DuckDB abort there ends one sync, not the server.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from syncer._child import ENV_CHILD, ENV_FD, ENV_OFF, ENV_PARENT, ENV_TTY, adopt, become_child, end_child, flush_and_exit

__all__ = ["SUPERVISED", "ChildResult", "main", "run_child"]

#: the commands that open the warehouse (``schedule`` runs each of its syncs through run_child instead)
SUPERVISED = frozenset({"sync", "startup", "demo"})

#: the first step a sync reports (syncer.engine.run: taken the lock, nothing written yet)
FIRST_STEP = "sweep and run history"
_FORWARDED = ("SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1")


def main(argv: Sequence[str] | None = None) -> None:
    """The ``syncer`` command: the engine in a child for the warehouse commands, else in process."""
    args = list(sys.argv[1:] if argv is None else argv)
    if os.environ.get(ENV_CHILD) == "1":
        become_child()
    elif _command(args) in SUPERVISED and os.environ.get(ENV_OFF) != "1":
        code = _supervise(args)
        if code is None:  # the forked child: the command runs here
            end_child(lambda: _run_cli(args))
        # nothing of ours is buffered (every line went out with os.write): skip the interpreter's
        # clean-up, a few milliseconds after each command for nothing
        flush_and_exit(code)
    _run_cli(args)


def _run_cli(args: list[str]) -> None:
    from syncer.cli import main as cli

    cli(args=args, prog_name="syncer")


def _command(args: Sequence[str]) -> str | None:
    """The subcommand in ``args`` (skipping the group's own options), or None."""
    it = iter(args)
    for a in it:
        if a == "--config":
            next(it, None)
        elif not a.startswith("-"):
            return a
    return None


# --- the parent --------------------------------------------------------------------------------------


class ChildResult:
    """How a child ended: its exit code (128 + signal when killed), the signal, the one line, its stdout.

    (A plain class: ``dataclasses`` would cost this light parent 9 ms of imports.)
    """

    def __init__(self, exit_code: int, *, stdout: str = "", last_stderr: str = "", step: dict[str, Any] | None = None) -> None:
        self.exit_code = exit_code
        self.signal: str | None = None
        self.line: str | None = None
        self.stdout = stdout
        self.last_stderr = last_stderr
        self.step: dict[str, Any] = step or {}


def _supervise(args: list[str]) -> int | None:
    """The CLI's supervisor: fork (no second interpreter to start: the child goes on in this one) and
    wait; None in the child. Forking is safe here: this process has no thread yet and has imported
    nothing but the standard library. (The app, with threads, starts ``python -m syncer``: run_child.)"""
    tty = sys.stderr is not None and sys.stderr.isatty()
    with _Forwarding() as forwarding:
        try:
            report_r, report_w = os.pipe()
            err_r, err_w = os.pipe()
            me = os.getpid()  # before the fork: a child whose supervisor died already must see it (getppid() is then 1)
            pid = os.fork()
        except OSError as exc:
            res = _not_started(exc)
        else:
            if pid == 0:
                _forked_child(forwarding, (report_r, report_w), (err_r, err_w), tty, me)
                return None
            _own_group(pid)  # both sides set it: no race with a signal sent before the child got to it
            os.close(report_w)
            os.close(err_w)
            forwarding.started(pid)
            res = _wait(pid, args, None, _Relay(err_r, report_r, None), None)
    if res.line:
        os.write(2, f"error: {res.line}\n".encode())
    return res.exit_code


def _own_group(pid: int) -> None:
    """The child in its own process group: a Ctrl-C on the terminal reaches it once, through the parent."""
    try:
        os.setpgid(pid, 0)
    except OSError:  # the child is already gone, or the parent is a session leader's shell trick: harmless
        pass


def _forked_child(forwarding: _Forwarding, report: tuple[int, int], err: tuple[int, int], tty: bool, parent: int) -> None:
    """In the forked child: the parent's handlers off, stderr to the parent's pipe, its own group, adopted."""
    forwarding.restore()
    os.close(report[0])
    os.close(err[0])
    os.dup2(err[1], 2)
    os.close(err[1])
    if tty:
        os.environ[ENV_TTY] = "1"
    _own_group(0)
    adopt(report[1], parent)  # exits at once if ``parent`` died between the fork and the prctl


def run_child(
    args: Sequence[str],
    *,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    capture_stdout: bool = False,
    env: dict[str, str] | None = None,
) -> ChildResult:
    """Run ``python -m syncer ARGS`` supervised; a death by a signal becomes :attr:`ChildResult.line`."""
    child_env = dict(os.environ if env is None else env)
    if sys.stderr is not None and sys.stderr.isatty():
        child_env[ENV_TTY] = "1"
    with _Forwarding() as forwarding:
        try:
            pid, out_fd, err_fd, report_fd = _spawn(list(args), child_env, capture_stdout)
        except OSError as exc:
            return _not_started(exc)
        forwarding.started(pid)
        return _wait(pid, args, env, _Relay(err_fd, report_fd, on_event), out_fd)


def _wait(pid: int, args: Sequence[str], env: dict[str, str] | None, relay: _Relay, out_fd: int | None) -> ChildResult:
    """Wait for the child; its exit code, its stdout (when captured), and the one line if a signal killed it."""
    out = _read_all(out_fd).decode(errors="replace") if out_fd is not None else ""
    rc = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    relay.join()
    res = ChildResult(rc, stdout=out, last_stderr=relay.last_line, step=relay.step)
    if rc < 0:
        root = relay.root or _volume_root(args, env)  # no report came: the config says where the volume is
        _died(res, -rc, (_command(args) or "syncer", pid), root, relay.before)
    return res


def _spawn(args: list[str], env: dict[str, str], capture_stdout: bool) -> tuple[int, int | None, int, int]:
    """Start the child with ``posix_spawn`` (``subprocess`` would cost this parent 5 ms of imports):
    its own process group (a Ctrl-C reaches it once, through the parent), stderr and the report pipe
    (and stdout, when captured) to us. Returns (pid, stdout fd or None, stderr fd, report fd)."""
    opened: list[int] = []
    try:
        report_r, report_w = os.pipe()
        err_r, err_w = os.pipe()
        opened += [report_r, report_w, err_r, err_w]
        actions = [(os.POSIX_SPAWN_DUP2, err_w, 2)]
        out_r = None
        if capture_stdout:
            out_r, out_w = os.pipe()
            opened += [out_r, out_w]
            actions.append((os.POSIX_SPAWN_DUP2, out_w, 1))
        os.set_inheritable(report_w, True)  # the only one of ours the child keeps (by its number)
        env.update({ENV_CHILD: "1", ENV_FD: str(report_w), ENV_PARENT: str(os.getpid())})
        pid = os.posix_spawn(sys.executable, [sys.executable, "-m", "syncer", *args], env, file_actions=actions, setpgroup=0)
    except OSError:
        for fd in opened:
            os.close(fd)
        raise
    for fd in opened:
        if fd not in (report_r, err_r, out_r):
            os.close(fd)  # the child's ends: EOF on ours when it exits
    return pid, out_r, err_r, report_r


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := _read(fd):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _not_started(exc: OSError) -> ChildResult:
    res = ChildResult(1)
    res.line = (
        f"cannot start the sync process ({sys.executable}): {exc.strerror or exc}; nothing was changed "
        "(check the limits on open files and processes, and free memory; then run the command again)"
    )
    return res


class _Relay:
    """Two threads: the child's stderr copied to ours as it comes (last line kept), and its report pipe read."""

    def __init__(self, err_fd: int, report_fd: int, on_event: Callable[[dict[str, Any]], None] | None) -> None:
        import threading

        self.last_line = ""
        self.step: dict[str, Any] = {}
        #: the volume root and what ``current`` named when the run began (read by this process, not told)
        self.root: str | None = None
        self.before: str | None = None
        self._on_event = on_event
        self._threads = [
            threading.Thread(target=self._stderr, args=(err_fd,), daemon=True),
            threading.Thread(target=self._events, args=(report_fd,), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _stderr(self, fd: int) -> None:
        tail = b""
        try:
            while chunk := _read(fd):
                _write_all(2, chunk)
                tail = (tail + chunk)[-4096:]
                lines = [ln.strip() for ln in tail.replace(b"\r", b"\n").split(b"\n") if ln.strip()]
                if lines:
                    self.last_line = lines[-1].decode(errors="replace")
        finally:
            os.close(fd)

    def _events(self, fd: int) -> None:
        import json

        buf = b""
        try:
            while chunk := _read(fd):
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for raw in lines:
                    try:
                        ev = json.loads(raw)
                    except ValueError:
                        continue
                    if ev.get("event") == "step":
                        self._step(ev)
                    elif self._on_event is not None:
                        self._on_event(ev)
        finally:
            os.close(fd)

    def _step(self, ev: dict[str, Any]) -> None:
        if self.root is None and ev.get("step") == FIRST_STEP and isinstance(ev.get("root"), str):
            # the run's first step, right after it took the lock and long before it can publish
            self.root, self.before = ev["root"], _current(ev["root"])
        self.step = ev

    def join(self) -> None:
        # a grandchild holding the pipes open must not hang the supervisor: the child is gone, give it 2 s
        for t in self._threads:
            t.join(2.0)


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""


def _write_all(fd: int, data: bytes) -> None:
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError:
        pass  # our own stderr is gone (a closed pipe): the child's lines have nowhere to go, the run goes on


class _Forwarding:
    """Forward the operator's signals to the child while it runs; restore the handlers after.

    Entered before the child is started: a signal that comes before it exists is kept and sent once
    it does (:meth:`started`), so the parent never dies of a Ctrl-C with a traceback of its own."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.pending: list[int] = []
        self.previous: dict[int, Any] = {}

    def _forward(self, signum: int, _frame: Any) -> None:
        if self.pid is None:
            self.pending.append(signum)
            return
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass  # the child has just exited: its status, reaped next, is the answer

    def started(self, pid: int) -> None:
        self.pid = pid
        for signum in self.pending:
            self._forward(signum, None)
        self.pending.clear()

    def __enter__(self) -> _Forwarding:
        import signal

        for name in _FORWARDED:
            num = getattr(signal, name)
            try:
                self.previous[num] = signal.signal(num, self._forward)
            except ValueError:  # not the main thread (the app's jobs): the server's shutdown ends the child (PDEATHSIG)
                break
        return self

    def __exit__(self, *_exc: object) -> None:
        self.restore()

    def restore(self) -> None:
        import signal

        for num, handler in self.previous.items():
            signal.signal(num, handler)
        self.previous.clear()


def _volume_root(args: Sequence[str], env: dict[str, str] | None) -> str | None:
    """The volume root the child will use (``[volume] root`` of its config), read with tomllib; None if unknown."""
    import tomllib

    environ = os.environ if env is None else env
    path = environ.get("SYNCER_CONFIG") or "sync.toml"
    for i, a in enumerate(args[:-1]):
        if a == "--config":
            path = args[i + 1]
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
        root = (data.get("volume") or {}).get("root", "var/data")
        return os.path.join(os.path.dirname(os.path.abspath(path)), os.path.expanduser(str(root)))
    except (OSError, ValueError, AttributeError):
        return None  # the child says what is wrong with the config


def _current(root: str | None) -> str | None:
    if root is None:
        return None
    try:
        return os.readlink(os.path.join(root, "current"))
    except OSError:
        return None


def _died(res: ChildResult, signo: int, who: tuple[str, int], root: str | None, before: str | None) -> None:
    """The one line for a child killed by ``signo``; the run it left ``running`` closed as failed."""
    import signal

    try:
        name = signal.Signals(signo).name
    except ValueError:
        name = f"signal {signo}"
    res.signal, res.exit_code = name, 128 + signo
    where = ""
    if res.step.get("step"):
        where = f" at step {res.step['step']!r}" + (f", table {res.step['table']!r}" if res.step.get("table") else "")
    said = _native(res.last_stderr)
    command, pid = who
    text = f"the {command} process (pid {pid}) died of {name}{where}" + (f"; it printed: {said}" if said else "")
    after = _current(root)
    closed, status = _close_run(root, pid, f"{text} (the process was killed by {name})", after)
    served = _served(root, before, after, res.step.get("run_id") or closed)
    res.line = f"{text}; {served}" + (f"; run {closed} is marked {status} in the history" if closed else "")


def _native(line: str) -> str:
    """The last line if native code printed it (DuckDB's INTERNAL message, its JSON made one short
    sentence), "" if it is one of our own lines."""
    if not line or line.startswith(("error:", "warning:", "{", "Traceback")):
        return ""
    if "what():" in line:  # C++ std::terminate: "what():  {"exception_type": ..., "exception_message": ...}"
        import json

        said = line.split("what():", 1)[1].strip()
        try:
            info = json.loads(said)
            said = f"{info['exception_type']} Error: {info['exception_message']}"
        except (ValueError, KeyError, TypeError):
            pass  # not DuckDB's JSON form: its text after what() is said as it is
        line = said
    return line[:300]


def _served(root: str | None, before: str | None, after: str | None, run_id: str | None) -> str:
    """Whether ``current`` is what it was when the run began (``before``; unknown when the child died
    before its first report: then only the run itself could have moved it, to its own snapshot)."""
    if root is None:
        return "the served snapshot could not be checked (no volume root); run `syncer status`"
    if before is None and after is not None and os.path.basename(after) != run_id:
        before = after
    if before == after and (after is None or os.path.isfile(os.path.join(root, "current", "manifest.json"))):
        shown = os.path.basename(after) if after else "none"
        return f"the served snapshot is unchanged ({shown}); run `syncer status`"
    return (
        f"the served snapshot moved from {os.path.basename(before or '') or 'none'} to "
        f"{os.path.basename(after or '') or 'none'} before it died; run `syncer status` and `syncer verify`"
    )


def _close_run(root: str | None, pid: int, error: str, after: str | None) -> tuple[str | None, str]:
    """Mark the run ``pid`` left ``running`` as failed (``ok`` when ``current`` names it); its id and status."""
    if root is None or not os.path.exists(os.path.join(root, "syncer.db")):
        return None, ""
    import datetime as dt
    import socket
    import sqlite3

    now = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    try:
        con = sqlite3.connect(os.path.join(root, "syncer.db"), timeout=5)
        try:
            with con:
                # this host's child: a pid means nothing on another host sharing the volume
                where = "status = 'running' AND pid = ? AND (host = ? OR host IS NULL)"
                rows = con.execute(f"SELECT id FROM runs WHERE {where}", (pid, socket.gethostname())).fetchall()
                for (run_id,) in rows:
                    published = after is not None and os.path.basename(after) == run_id
                    status, note = ("ok", f"published snapshot {run_id}; then {error}") if published else ("failed", error)
                    con.execute(
                        "UPDATE runs SET status = ?, error = ?, finished_at = ?, snapshot_id = COALESCE(snapshot_id, ?)"
                        " WHERE id = ? AND status = 'running'",
                        (status, note, now, run_id if published else None, run_id),
                    )
        finally:
            con.close()
    except sqlite3.Error:
        return None, ""  # the history is a record, not a gate: the next sync closes the row
    return (rows[-1][0], status) if rows else (None, "")
