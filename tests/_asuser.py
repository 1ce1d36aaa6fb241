"""Run code as another, unprivileged user — the SPCS image's uid 10001, or ``nobody`` — from a test run as root.

The other user must not depend on where the repo was cloned: a clone in a folder only its owner can
enter (``mktemp -d``, a home folder) hides the editable install and the virtualenv from everybody
else. So the user gets its own readable copy of what it runs: the virtualenv hard-linked (copied if
it lives on another file system) into a world-readable temporary folder, without the editable
install's path hook, and beside it a copy of the project's code (``syncer/``, ``pages/``, the app,
the tests) that ``PYTHONPATH`` points at.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the user the SPCS image runs as (``USER 10001`` in spcs/Dockerfile)
PRODUCTION_UID = 10001
PRODUCTION_USER = "vds"
NOBODY_UID = 65534
#: what the other user's copy holds (everything a sync, the app and the tests read)
PROJECT_FILES = ("syncer", "pages", "tests", "docs", "streamlit_app.py", "pyproject.toml", "sync.toml", ".streamlit")


class CannotSwitchUser(Exception):
    """Why this machine cannot run code as another user (the caller skips with it)."""


def ensure_production_user() -> tuple[int, int]:
    """(uid, gid) of the production user, created with ``useradd`` if this machine has no uid 10001."""
    try:
        entry = pwd.getpwuid(PRODUCTION_UID)
    except KeyError:
        if shutil.which("useradd") is None:
            raise CannotSwitchUser("useradd (package passwd) is not installed: cannot create uid 10001") from None
        proc = subprocess.run(
            [
                "useradd",
                "--uid",
                str(PRODUCTION_UID),
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                PRODUCTION_USER,
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise CannotSwitchUser(f"useradd could not create uid {PRODUCTION_UID}: {proc.stderr.strip()}") from None
        entry = pwd.getpwuid(PRODUCTION_UID)
    return entry.pw_uid, entry.pw_gid


def _link_tree(src: Path, dst: Path) -> None:
    """Hard-link ``src`` into ``dst`` (cheap, same inodes, same modes); copy when across file systems."""
    proc = subprocess.run(["cp", "-al", str(src), str(dst)], capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst, symlinks=True)


def _reachable_by_all(path: Path) -> bool:
    """Can any user execute ``path``: every folder above it searchable (o+x), the file o+x?"""
    path = Path(os.path.realpath(path))
    try:
        if not os.stat(path).st_mode & stat.S_IXOTH:
            return False
        return all(os.stat(parent).st_mode & stat.S_IXOTH for parent in path.parents)
    except OSError:
        return False


def _reachable_interpreter() -> Path:
    """This interpreter if every user may run it, else another of the same X.Y that they may (Debian's)."""
    base = Path(os.path.realpath(sys.executable))
    if _reachable_by_all(base):
        return base
    name = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for folder in ("/usr/local/bin", "/usr/bin", "/bin"):
        candidate = Path(folder, name)
        if candidate.exists() and _reachable_by_all(candidate):
            return Path(os.path.realpath(candidate))
    raise CannotSwitchUser(f"{base} is not reachable by other users and there is no other {name} they can run")


def _point_venv_at(venv: Path, interpreter: Path) -> None:
    """Make the copied venv run ``interpreter`` (new links and config: never write through a hard link)."""
    for link in venv.joinpath("bin").glob("python*"):
        if link.is_symlink():
            link.unlink()
            link.symlink_to(interpreter)
    cfg = venv / "pyvenv.cfg"
    lines = cfg.read_text(encoding="utf-8").splitlines()
    cfg.unlink()
    out = [f"home = {interpreter.parent}" if line.startswith("home =") else line for line in lines]
    cfg.write_text("\n".join(out) + "\n", encoding="utf-8")


@dataclass
class Runtime:
    """A world-readable copy of the interpreter's packages and of the project, for other users."""

    folder: Path
    python: str
    project: Path
    env: dict[str, str] = field(default_factory=dict)

    def prefix(self, uid: int, gid: int) -> list[str]:
        """The command prefix that runs what follows as ``uid``/``gid``, with no other groups."""
        return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]

    def run(
        self,
        uid: int,
        gid: int,
        argv: Sequence[str],
        *,
        cwd: Path | str = "/",
        env: Mapping[str, str] | None = None,
        timeout: float = 600,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.prefix(uid, gid), *argv],
            capture_output=True,
            text=True,
            cwd=cwd,
            env={**self.env, **(env or {})},
            timeout=timeout,
        )


def make_runtime() -> Runtime:
    """Build the readable copy (a second or two with hard links); the caller removes ``folder``."""
    if os.geteuid() != 0:
        raise CannotSwitchUser("needs root to switch to another user (this test run is already unprivileged)")
    if shutil.which("setpriv") is None:
        raise CannotSwitchUser("setpriv (util-linux) is not installed: cannot run code as another user")
    folder = Path(tempfile.mkdtemp(prefix="vds-public-"))
    os.chmod(folder, 0o755)
    try:
        venv = Path(sys.prefix)
        _link_tree(venv, folder / "venv")
        purelib = Path(sysconfig.get_paths()["purelib"])
        site = folder / "venv" / purelib.relative_to(venv)
        for hook in site.glob("__editable__*volume_data_sync*"):
            hook.unlink()  # it names the clone's own syncer/, which the other user may not reach
        project = folder / "project"
        project.mkdir()
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
        for name in PROJECT_FILES:
            src = ROOT / name
            if src.is_dir() and name == "docs":
                (project / name).mkdir()
                shutil.copy2(src / "manifest.schema.json", project / name)
            elif src.is_dir():
                shutil.copytree(src, project / name, ignore=ignore)
            elif src.exists():
                shutil.copy2(src, project / name)
        for dirpath, _dirnames, filenames in os.walk(folder / "project"):
            os.chmod(dirpath, 0o755)
            for f in filenames:
                os.chmod(os.path.join(dirpath, f), 0o644)
        _point_venv_at(folder / "venv", _reachable_interpreter())
        python = str(folder / "venv" / "bin" / "python")
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PYTEST_", "COV_")) and k not in ("VIRTUAL_ENV", "PYTHONPATH", "HOME", "TMPDIR")
        }
        env.update(
            PYTHONPATH=str(project),
            PYTHONDONTWRITEBYTECODE="1",
            PATH=f"{folder / 'venv' / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
            VIRTUAL_ENV=str(folder / "venv"),
            HOME="/tmp",
        )
        runtime = Runtime(folder, python, project, env)
        probe = runtime.run(NOBODY_UID, NOBODY_UID, [python, "-c", "import pyarrow, duckdb, syncer"], timeout=120)
        if probe.returncode != 0:
            raise CannotSwitchUser(f"another user cannot run the copied interpreter here: {probe.stderr.strip()[-300:]}")
        return runtime
    except BaseException:
        remove_runtime(folder)
        raise


def remove_runtime(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
