"""Shared fixtures: a small real demo warehouse (DuckDB) and configs on tmp_path volumes."""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from syncer import Config, build_demo, load_config
from tests._asuser import CannotSwitchUser, Runtime, ensure_production_user, make_runtime, remove_runtime

DEMO_ROWS = 5_000

DEFAULT_TABLES = """
[[tables]]
name = "participants"
source = "participants"
primary_key = ["participant_id"]
exclude_columns = ["password_hash"]
not_null = ["email"]

[[tables]]
name = "courses"
source = "courses"
primary_key = ["course_id"]
not_null = ["title"]

[[tables]]
name = "enrollments"
source = "enrollments"
primary_key = ["enrollment_id"]
not_null = ["participant_id", "course_id"]

[[tables]]
name = "daily_metrics"
source = "daily_metrics"
primary_key = ["metric_date"]
"""


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo warehouse built once per test session. Treat as read-only; copy it to change it."""
    path = tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb"
    build_demo(path, DEMO_ROWS)
    return path


@pytest.fixture
def warehouse(demo_db: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the demo warehouse for tests that change the source."""
    dst = tmp_path / "warehouse.duckdb"
    shutil.copy(demo_db, dst)
    return dst


def write_config(folder: Path, db: Path, *, tables: str = DEFAULT_TABLES, extra: str = "") -> Path:
    """Write a sync.toml into ``folder`` (volume at folder/data) and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    text = textwrap.dedent(
        f"""
        [source]
        kind = "duckdb"
        path = "{db}"

        [volume]
        root = "data"
        retain = 3

        [freshness]
        sla_hours = 24
        skip_startup_if_younger_than_hours = 20

        [export]
        batch_rows = 1000
        """
    )
    path = folder / "sync.toml"
    path.write_text(text + extra + tables, encoding="utf-8")
    return path


@pytest.fixture
def make_config(tmp_path: Path, demo_db: Path) -> Callable[..., Config]:
    """Build a Config on a fresh volume under tmp_path: make_config(db=..., tables=..., extra=...)."""

    def make(*, db: Path | None = None, tables: str = DEFAULT_TABLES, extra: str = "", folder: Path | None = None) -> Config:
        return load_config(write_config(folder or tmp_path / "cfg", db or demo_db, tables=tables, extra=extra))

    return make


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    """The four demo tables, Parquet, on a fresh volume, reading the shared demo warehouse."""
    return make_config()


@pytest.fixture
def config_path(tmp_path: Path, demo_db: Path) -> Path:
    """Path of a sync.toml like ``config`` (for CLI subprocess tests)."""
    return write_config(tmp_path / "cfg", demo_db)


@pytest.fixture(scope="session")
def public_runtime() -> Iterator[Runtime]:
    """A world-readable copy of the virtualenv and the project, for code run as another user (tests/_asuser.py)."""
    try:
        runtime = make_runtime()
    except CannotSwitchUser as exc:
        pytest.skip(str(exc))
    try:
        yield runtime
    finally:
        remove_runtime(runtime.folder)


@pytest.fixture(scope="session")
def production_user(public_runtime: Runtime) -> tuple[int, int]:
    """(uid, gid) of the SPCS image's user, 10001, created on this machine if missing."""
    try:
        return ensure_production_user()
    except CannotSwitchUser as exc:
        pytest.skip(str(exc))


MANIFEST_SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "manifest.schema.json"


@pytest.fixture(scope="session")
def manifest_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(MANIFEST_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(autouse=True)
def every_written_manifest_matches_the_schema(
    monkeypatch: pytest.MonkeyPatch, manifest_validator: jsonschema.Draft202012Validator
) -> Iterator[None]:
    """Every manifest the engine writes in this process, in every test, is checked against
    docs/manifest.schema.json (the contract with readers in other languages)."""
    from syncer.volume.layout import Volume

    real = Volume.write_manifest
    bad: list[str] = []

    def checked(self: Volume, folder: Path, manifest: Any) -> None:
        data = manifest.to_json() if hasattr(manifest, "to_json") else manifest
        bad.extend(
            f"{folder.name}: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in manifest_validator.iter_errors(data)
        )
        real(self, folder, manifest)

    monkeypatch.setattr(Volume, "write_manifest", checked)
    yield
    assert not bad, "manifests that do not match docs/manifest.schema.json:\n" + "\n".join(bad[:20])


# --- the admin app's tests (test_app, test_admin_app) -----------------------------------------------

LOCAL_OPERATOR = "\n[admin]\nallow_local_operator = true\n"


@pytest.fixture
def no_jobs_left_behind(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh startup step, as in a new server process; a job the test started is waited for."""
    import syncer.admin
    from syncer.admin import server

    monkeypatch.setattr(server, "STEP", server.StartupStep())
    yield
    job = syncer.admin.job_runner().active()
    if job is not None:
        job.wait(60)


@pytest.fixture
def app_config(tmp_path: Path, demo_db: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Config]:
    """Write a config (volume under tmp_path) and point the app at it with $SYNCER_CONFIG."""

    def make(extra: str = LOCAL_OPERATOR) -> Config:
        path = write_config(tmp_path / "cfg", demo_db, extra=extra)
        monkeypatch.setenv("SYNCER_CONFIG", str(path))
        return load_config(path)

    return make


#: the source of a stand-in for a standard stream under a libc write fault (every write and flush
#: fails), for the scripts the stream tests run in a process of their own
BROKEN_STREAM = """class Broken:
    def write(self, s):
        raise OSError(77, "File descriptor in bad state")
    def flush(self):
        raise OSError(77, "File descriptor in bad state")
    def isatty(self):
        return False
"""


@pytest.fixture(scope="session")
def catalogue_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The type catalogue's warehouse (tests/catalogue.py), built once."""
    from tests.catalogue import build_catalogue

    return build_catalogue(tmp_path_factory.mktemp("cat") / "catalogue.duckdb")


@pytest.fixture(scope="module")
def catalogue_source(catalogue_path: Path) -> Iterator[Any]:
    """A DuckDB source on the catalogue, one per test module (its memory limits are its own)."""
    from syncer.config import SourceConfig
    from syncer.sources.duckdb import DuckDBSource

    with DuckDBSource(SourceConfig(kind="duckdb", path=catalogue_path)) as src:
        yield src
