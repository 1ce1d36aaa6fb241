"""The supervised child's side of :mod:`syncer.supervise` (standard library only, imported by the engine).

In a child the supervisor started, :func:`become_child` asks the kernel to kill this process when
the supervisor dies (``prctl(PR_SET_PDEATHSIG, SIGKILL)``, Linux; nothing elsewhere) and takes the
report pipe; :func:`report` tells the supervisor where the run is. Outside a supervised child both
are no-ops, so the library (``syncer.sync`` from an app's own process) behaves as before.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

__all__ = ["adopt", "become_child", "end_child", "flush_and_exit", "report", "say", "supervisor_pid"]

ENV_CHILD = "SYNCER_SUPERVISED"
ENV_FD = "SYNCER_SUPERVISOR_FD"
ENV_PARENT = "SYNCER_SUPERVISOR_PID"
#: the parent's stderr is a terminal (the child's is a pipe): progress bars still draw
ENV_TTY = "SYNCER_STDERR_TTY"
#: ``1``: run in this process, no child (for debugging under a tool that follows one process)
ENV_OFF = "SYNCER_NO_SUPERVISOR"

_PR_SET_PDEATHSIG = 1

#: the pipe to the parent, in a supervised child (None elsewhere)
_report_fd: int | None = None
#: the supervisor's pid, in a supervised child
supervisor_pid: int | None = None


def become_child() -> None:
    """A child started with ``python -m syncer`` (the app's, the scheduler's): take the report pipe and
    the supervisor's pid from the environment, hidden from what this process starts; then :func:`adopt`."""
    fd, parent = os.environ.pop(ENV_FD, None), os.environ.pop(ENV_PARENT, None)
    os.environ.pop(ENV_CHILD, None)
    if fd:
        os.set_inheritable(int(fd), False)
    adopt(int(fd) if fd else None, int(parent) if parent else None)


def adopt(fd: int | None, parent: int | None) -> None:
    """Report on ``fd`` to the supervisor ``parent`` and die with it (``PR_SET_PDEATHSIG``, Linux)."""
    global _report_fd, supervisor_pid
    _report_fd, supervisor_pid = fd, parent
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        os._exit(137)  # the parent died before the prctl: nobody to report to, and nobody may be left running


def report(event: dict[str, Any]) -> None:
    """Tell the supervisor where the child is (a JSON line on its pipe); a no-op when not supervised."""
    if _report_fd is None:
        return
    import json

    try:
        os.write(_report_fd, (json.dumps(event, default=str) + "\n").encode())
    except (OSError, ValueError):  # best effort: the pipe is a courtesy, never a reason to fail a sync
        pass


def end_child(command: Callable[[], object]) -> NoReturn:
    """The forked child (:mod:`syncer.supervise`): ``command``, its exit handlers (the alert queue's
    deadline, logging's flush), then its exit without the interpreter's own clean-up of the standard
    streams. Under libc I/O faults (the fault sweep's, a failing disk) that last flush can fail, and
    the interpreter reports it on the stream that failed ("Exception ignored ... lost sys.stderr"):
    a dump instead of the command's one line. The exit code is the command's."""
    try:
        command()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        if isinstance(exc.code, str):  # sys.exit("message"): printed, as the interpreter would
            say(exc.code)
    except KeyboardInterrupt:
        code = 130
    except BaseException as exc:  # past the CLI's own last resort (its error line failed too): one line
        say(f"error: {type(exc).__name__}: {exc}")
        code = 1
    atexit._run_exitfuncs()
    flush_and_exit(code)


def say(line: str) -> None:
    """``line`` on fd 2 in one ``write``, past Python's stream (the part that may be broken)."""
    try:
        os.write(2, (line + "\n").encode(errors="replace"))
    except OSError:
        pass  # the stream is broken: the exit code still tells


def flush_and_exit(code: int) -> NoReturn:
    """Flush what Python buffered for the standard streams (a broken one is left: the exit code
    tells), then exit at once, without the interpreter's clean-up."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass  # a closed or broken stream: nothing left to say on it
    os._exit(code)
