"""Packaging: the locks, pyproject and environment.yml agree, the extras add up to the lock, the reader
imports none of the engine's heavy packages, and the quickstart files exist."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from syncer import load_config, sync
from tests.conftest import write_config

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "volume-data-sync"
_SPEC = re.compile(r"([A-Za-z0-9_.-]+)(\[[^\]]+\])?(?:==([^;\s]+))?")


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-r")):
            continue
        name, _, version = line.partition("==")
        assert version, f"{path.name}: {line!r} is not pinned with =="
        pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _flat(specs: list[str], seen: set[str] | None = None) -> list[str]:
    """``specs`` with the project's references to its own extras replaced by those extras' specs."""
    extras = _project()["optional-dependencies"]
    seen = set() if seen is None else seen
    out: list[str] = []
    for spec in specs:
        m = _SPEC.fullmatch(spec)
        assert m, f"pyproject dependency {spec!r} is not a plain name[extras]==version"
        if _norm(m.group(1)) != PROJECT:
            out.append(spec)
            continue
        for extra in m.group(2)[1:-1].split(","):
            assert extra in extras, f"{spec!r} names an extra that pyproject does not define"
            if extra not in seen:
                seen.add(extra)
                out += _flat(extras[extra], seen)
    return out


def _deps(specs: list[str]) -> dict[str, str]:
    """name -> pinned version of ``specs`` (own extras followed)."""
    deps: dict[str, str] = {}
    for spec in _flat(specs):
        m = _SPEC.fullmatch(spec)
        assert m and m.group(3), f"pyproject dependency {spec!r} is not pinned with =="
        deps[m.group(1).lower()] = m.group(3)
    return deps


def _runtime_specs() -> list[str]:
    """What the app image installs: the base dependencies and the `all` extra."""
    project = _project()
    return _flat(project["dependencies"]) + _flat(project["optional-dependencies"]["all"])


def _runtime_deps() -> dict[str, str]:
    return _deps(_runtime_specs())


def _closure(roots: list[str]) -> set[str]:
    """Every installed distribution ``roots`` (requirement strings) need, by their installed metadata."""
    todo = [Requirement(r) for r in roots]
    done: set[tuple[str, str]] = set()
    found: set[str] = set()
    while todo:
        req = todo.pop()
        name = _norm(req.name)
        for extra in {"", *req.extras}:
            if (name, extra) in done:
                continue
            done.add((name, extra))
            found.add(name)
            for text in importlib.metadata.requires(name) or []:
                dep = Requirement(text)
                if dep.marker is None or dep.marker.evaluate({"extra": extra}):
                    todo.append(dep)
    return found


def test_every_runtime_dependency_is_pinned_in_the_lock_at_the_same_version() -> None:
    lock = _pins(ROOT / "requirements.lock")
    for name, version in _runtime_deps().items():
        assert lock.get(name) == version, f"{name}: pyproject {version}, lock {lock.get(name)}"


def test_dev_lock_builds_on_the_runtime_lock() -> None:
    text = (ROOT / "requirements-dev.lock").read_text()
    assert "-r requirements.lock" in text
    dev = _pins(ROOT / "requirements-dev.lock")
    assert {"pytest", "ruff"} <= set(dev)


def test_environment_yml_mirrors_the_runtime_dependencies_in_snowflake_channel_format() -> None:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["snowflake"]
    deps = env["dependencies"]
    assert all(isinstance(d, str) for d in deps), "no pip section: every entry is a conda spec"
    specs = dict(d.split("=", 1) for d in deps)
    assert all("==" not in d for d in deps), "conda pins use a single ="
    assert specs.pop("python") == "3.11"
    assert specs == _runtime_deps()


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make run" in readme
    assert re.search(r"^make test$", ci, re.MULTILINE)


def test_every_extra_but_dev_is_part_of_all() -> None:
    extras = _project()["optional-dependencies"]
    runtime = _runtime_deps()
    for name, specs in extras.items():
        if name != "dev":
            assert _deps(specs).items() <= runtime.items(), f"extra {name!r} has packages the `all` extra lacks"


def test_the_lock_is_exactly_what_the_dependencies_and_the_all_extra_need() -> None:
    # Nothing pinned that no dependency asks for (left over after a removal), nothing needed missing.
    # `pip freeze` leaves out the installer's own packages, which snowpark lists as requirements.
    needed = _closure(_runtime_specs()) - {"pip", "setuptools", "wheel"}
    assert needed == set(_pins(ROOT / "requirements.lock"))


# Imported when present by a base dependency, without being one of its requirements.
OPTIONAL_IMPORTS = {
    "cloudpickle": "pyarrow registers its pickling support when cloudpickle is installed",
    "setuptools": "its _distutils_hack .pth hook runs at interpreter start-up",
    PROJECT: "the editable install's import hook",
}
HEAVY = ("streamlit", "apscheduler", "snowflake", "duckdb")


@pytest.fixture
def published(tmp_path: Path, demo_db: Path) -> Path:
    """A config with an explicit schedule whose volume holds a published snapshot."""
    path = write_config(tmp_path / "cfg", demo_db, extra="[schedule]\ncron = '30 2 * * 1-5'\ntimezone = 'Europe/Berlin'\n")
    assert sync(load_config(path))["status"] == "ok"
    return path


def _imported(code: str, config: Path) -> tuple[str, set[str]]:
    """Run ``code`` under ``-X importtime``; its stdout and the top-level packages it imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCER_")} | {"SYNCER_CONFIG": str(config)}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, env=env, cwd=config.parent, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    return proc.stdout, {name.split(".")[0] for name in lines[1:]}


def test_reading_a_table_imports_none_of_the_engine_packages(published: Path) -> None:
    code = textwrap.dedent(
        """
        from syncer import read_table
        df = read_table("courses")  # finds the volume through $SYNCER_CONFIG: the config is loaded and validated
        print(type(df).__name__, len(df))
        """
    )
    out, modules = _imported(code, published)
    assert out.split() == ["DataFrame", "20"]
    assert "pandas" in modules and "pyarrow" in modules and "syncer" in modules
    assert not modules & set(HEAVY), f"read_table imported {sorted(modules & set(HEAVY))}"
    base = _closure(_project()["dependencies"])
    by_module = importlib.metadata.packages_distributions()
    dists = {_norm(d) for m in modules for d in by_module.get(m, [])}
    assert dists - base - set(OPTIONAL_IMPORTS) == set(), "read_table needs more than pyproject's base dependencies"


def test_the_engine_the_app_and_every_public_name_still_import(published: Path) -> None:
    code = textwrap.dedent(
        """
        import syncer
        import syncer.admin.server, syncer.cli, syncer.engine, syncer.schedule.scheduler
        import syncer.sources.duckdb, syncer.sources.snowflake
        for name in syncer.__all__:
            getattr(syncer, name)
        print(syncer.next_run(syncer.load_config()) is not None)
        """
    )
    out, modules = _imported(code, published)
    assert out.split() == ["True"]
    assert {"apscheduler", "snowflake", "duckdb"} <= modules  # streamlit: the pages import it (tests/test_app.py)


def _recipe(target: str) -> str:
    text = (ROOT / "Makefile").read_text()
    m = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)+)", text, re.MULTILINE)
    assert m, f"Makefile has no {target} target"
    return m.group(1)


def test_make_test_runs_everything_and_test_fast_leaves_out_the_slow_tests() -> None:
    pytest_ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "-m" not in pytest_ini["addopts"].split(), "the slow tests run by default"
    assert {"--strict-markers", "--strict-config"} <= set(pytest_ini["addopts"].split())
    assert pytest_ini["xfail_strict"] is True
    assert any(m.startswith("slow:") for m in pytest_ini["markers"])
    check = _recipe("check")
    assert "ruff check ." in check and "ruff format --check ." in check and "scripts/check_structure.py" in check
    assert "mypy" in check, "the engine is type-checked"
    for target in ("test", "test-fast"):
        assert re.search(rf"^{target}: check$", (ROOT / "Makefile").read_text(), re.MULTILINE), f"{target} runs check first"
    assert "not slow" not in _recipe("test")
    assert '-m "not corpus"' in _recipe("test"), "make test runs one case a shape of the corpus, not all of it"
    assert '-m "not slow and not corpus"' in _recipe("test-fast")
    assert "-m corpus" in _recipe("test-corpus") and any(m.startswith("corpus:") for m in pytest_ini["markers"])


def test_the_public_face_is_one_list_held_to_all_and_the_type_checking_imports() -> None:
    """syncer/__init__.py: _FACE (name -> module) is the list; __all__ and the TYPE_CHECKING imports match it."""
    import ast

    import syncer

    tree = ast.parse((Path(syncer.__file__)).read_text(encoding="utf-8"))
    checked: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.module, ast.dump(stmt)
                checked.update({a.name: stmt.module for a in stmt.names})
    assert checked == syncer._FACE
    assert sorted(syncer.__all__) == sorted(syncer._FACE) == sorted(dir(syncer))
    for name, module in syncer._FACE.items():
        assert getattr(syncer, name) is getattr(importlib.import_module(module), name), name
    admin_only = {"freshness", "request_sync", "StartupGate", "identify", "startup_state"}
    assert not admin_only & set(syncer.__all__), "the admin app's pieces live in syncer.admin"


@pytest.mark.parametrize(
    ("path", "faces"),
    [
        pytest.param("syncer/cli.py", {"syncer"}, id="cli"),
        pytest.param("streamlit_app.py", {"syncer", "syncer.admin"}, id="app"),
        *(
            pytest.param(f"pages/{p.name}", {"syncer", "syncer.admin"}, id=f"page-{p.stem}")
            for p in sorted((ROOT / "pages").glob("*.py"))
        ),
    ],
)
def test_the_cli_the_app_and_the_pages_import_only_public_faces(path: str, faces: set[str]) -> None:
    import ast

    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            used |= {a.name for a in node.names if a.name.split(".")[0] == "syncer"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "syncer":
            used.add(node.module)
    assert used and used <= faces, f"{path} imports {sorted(used - faces)}; use {sorted(faces)}"
