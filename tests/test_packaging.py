"""Packaging: the locks, pyproject and environment.yml agree, and the quickstart files exist."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


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


def _runtime_deps() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = {}
    for spec in project["dependencies"]:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]+\])?==([^;\s]+)", spec)
        assert m, f"pyproject dependency {spec!r} is not pinned with =="
        deps[m.group(1).lower()] = m.group(3)
    return deps


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
