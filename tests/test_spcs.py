"""The SPCS deployment kit (spcs/): the spec parses and agrees with the production config, the
Dockerfile, the deploy SQL and the entrypoint; the entrypoint runs for real.

``docker build`` cannot run here (no container engine); the Dockerfile is checked as text.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

import syncer
from syncer.sources.snowflake_types import sf_table_name

ROOT = Path(__file__).resolve().parents[1]
SPCS = ROOT / "spcs"
PORT = 8501


@pytest.fixture(scope="module")
def spec() -> dict:
    return yaml.safe_load((SPCS / "spec.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def container(spec: dict) -> dict:
    """The service's main container: the admin app with the engine."""
    names = [c["name"] for c in spec["spec"]["containers"]]
    assert names == ["syncer", "dashboard"]
    return spec["spec"]["containers"][0]


@pytest.fixture(scope="module")
def dashboard(spec: dict) -> dict:
    """The end-user example app's container."""
    return spec["spec"]["containers"][1]


def endpoint(spec: dict, name: str) -> dict:
    (found,) = [e for e in spec["spec"]["endpoints"] if e["name"] == name]
    return found


@pytest.fixture(scope="module")
def prod() -> syncer.Config:
    return syncer.load_config(SPCS / "sync.toml")


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (SPCS / "Dockerfile").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def setup_sql() -> str:
    return (SPCS / "setup.sql").read_text(encoding="utf-8")


def sql_statements(text: str) -> str:
    """setup.sql without comment lines, upper-cased, whitespace collapsed (for matching statements)."""
    lines = [line.split("--", 1)[0] for line in text.splitlines()]
    return re.sub(r"\s+", " ", " ".join(lines)).upper()


def runbook(text: str) -> str:
    """The commented-out runbook lines of setup.sql, as statements."""
    lines = [line[2:].strip() for line in text.splitlines() if line.startswith("--   ")]
    return re.sub(r"\s+", " ", " ".join(lines)).upper()


# --- spec.yaml agrees with the production config --------------------------------------------------


def test_volume_is_a_block_volume_mounted_at_the_configured_root(spec: dict, container: dict, prod: syncer.Config) -> None:
    (mount,) = container["volumeMounts"]
    (volume,) = spec["spec"]["volumes"]
    assert mount["name"] == volume["name"]
    assert volume["source"] == "block"  # survives restarts and upgrades; a stage volume cannot rename
    assert re.fullmatch(r"[1-9][0-9]*Gi", volume["size"])
    assert Path(mount["mountPath"]) == prod.root == Path("/data")


def test_readiness_probe_and_public_endpoint_on_the_app_port(spec: dict, container: dict, dockerfile: str) -> None:
    assert container["readinessProbe"] == {"port": PORT, "path": "/ready"}
    app = endpoint(spec, "app")
    assert (app["port"], app["public"], app["protocol"]) == (PORT, True, "HTTP")
    assert container["env"]["SYNCER_PORT"] == str(PORT)
    assert re.search(rf"^EXPOSE {PORT}$", dockerfile, re.MULTILINE)
    streamlit = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert streamlit["server"]["port"] == PORT


def test_container_runs_the_production_config_with_json_logs(container: dict, dockerfile: str) -> None:
    assert container["env"]["SYNCER_CONFIG"] == "/app/spcs/sync.toml"
    assert container["env"]["SYNCER_LOG_FORMAT"] == "json"
    assert "COPY spcs/sync.toml spcs/entrypoint.sh spcs/" in dockerfile and "WORKDIR /app" in dockerfile
    assert "SYNCER_CONFIG=/app/spcs/sync.toml" in dockerfile


def test_operators_have_a_service_role_on_the_endpoint(spec: dict, setup_sql: str, prod: syncer.Config) -> None:
    role, _viewer = spec["serviceRoles"]
    assert role["endpoints"] == ["app"]  # the admin app only: not the dashboard, not the private metrics
    assert f"GRANT SERVICE ROLE VOLUME_DATA_SYNC!{role['name'].upper()} TO ROLE SYNC_OPERATOR;" in sql_statements(setup_sql)
    # the same people are named in the app's [admin] operators and granted the operators' role
    for user in prod.operators:
        assert f"GRANT ROLE SYNC_OPERATOR TO USER {user.upper()};" in sql_statements(setup_sql)
    assert prod.allow_local_operator is False


def test_logs_and_platform_metrics_are_exported(spec: dict) -> None:
    assert spec["spec"]["logExporters"]["eventTableConfig"]["logLevel"] == "INFO"
    assert "system" in spec["spec"]["platformMonitor"]["metricConfig"]["groups"]


def test_image_is_the_repository_setup_sql_creates_at_the_package_version(container: dict, setup_sql: str) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert container["image"] == f"/sync_db/sync/images/volume-data-sync:{version}"
    sql = sql_statements(setup_sql)
    assert "CREATE SCHEMA IF NOT EXISTS SYNC_DB.SYNC;" in sql and "CREATE IMAGE REPOSITORY IF NOT EXISTS IMAGES;" in sql
    assert f"-t volume-data-sync:{version} ." in setup_sql


def test_metrics_are_served_on_a_private_endpoint_of_their_own(spec: dict, container: dict, config_path: Path) -> None:
    metrics = endpoint(spec, "metrics")
    assert (metrics["public"], metrics["protocol"]) == (False, "HTTP")  # service-to-service only
    assert container["env"]["SYNCER_METRICS_PORT"] == str(metrics["port"]) != str(PORT)
    # the same variable really serves /metrics on that port (here on a free one)
    from syncer.admin.metrics import serve_metrics_port
    from tests._net import free_port, get

    port = free_port()
    srv = serve_metrics_port(config_path, port=str(port))
    try:
        status, body = get(f"http://127.0.0.1:{port}/metrics")
    finally:
        srv.shutdown()
        srv.server_close()
    assert status == 200 and "syncer_scrape_error 0.0" in body


def test_the_dashboard_is_a_second_container_reading_the_volume_on_its_own_endpoint(
    spec: dict, container: dict, dashboard: dict, prod: syncer.Config
) -> None:
    (mount,) = dashboard["volumeMounts"]
    assert mount == container["volumeMounts"][0] and Path(mount["mountPath"]) == prod.root
    assert dashboard["env"]["SYNCER_ROOT"] == mount["mountPath"]
    assert "SYNCER_CONFIG" not in dashboard["env"]  # no config, no source, no credentials
    port = int(dashboard["env"]["DASHBOARD_PORT"])
    assert dashboard["readinessProbe"] == {"port": port, "path": "/_stcore/health"}
    ep = endpoint(spec, "dashboard")
    assert (ep["port"], ep["public"], ep["protocol"]) == (port, True, "HTTP")
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert dashboard["image"] == f"/sync_db/sync/images/volume-data-sync-dashboard:{version}"
    viewer = [r for r in spec["serviceRoles"] if r["name"] == "viewer"]
    assert viewer == [{"name": "viewer", "endpoints": ["dashboard"]}]


def test_the_dashboard_image_has_the_reader_only_and_runs_as_another_user() -> None:
    text = (ROOT / "examples" / "dashboard" / "Dockerfile").read_text(encoding="utf-8")
    assert "pip install --constraint requirements.lock . streamlit" in text  # no extras: no engine, no driver
    (user,) = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert user.split(":")[0] not in ("root", "0", "10001")  # not the writer of the volume
    assert re.search(r"^EXPOSE 8502$", text, re.MULTILINE) and "examples/dashboard/app.py" in text
    copied = {p.rstrip("/") for src in re.findall(r"^COPY (.+) \S+$", text, re.MULTILINE) for p in src.split()}
    assert all((ROOT / p).exists() for p in copied)
    lines = (ROOT / "examples" / "dashboard" / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*" and {r[1:].rstrip("/") for r in rules if r.startswith("!")} == copied


def test_setup_sql_creates_the_alert_integration_the_production_config_names(setup_sql: str, prod: syncer.Config) -> None:
    sql = sql_statements(setup_sql)
    assert prod.alerts.snowflake, "production alerts go through Snowflake (no outbound network)"
    for target in prod.alerts.snowflake:
        name = target.integration.upper()
        assert f"CREATE NOTIFICATION INTEGRATION IF NOT EXISTS {name} TYPE = {target.type.upper()} ENABLED = TRUE" in sql
        assert f"GRANT USAGE ON INTEGRATION {name} TO ROLE SYNC_SERVICE_ROLE;" in sql
        allowed = re.search(rf"INTEGRATION IF NOT EXISTS {name} .*?ALLOWED_RECIPIENTS = \(([^)]*)\)", sql)
        assert allowed and {r.upper() for r in target.recipients} <= {a.strip(" '") for a in allowed.group(1).split(",")}
    # the webhook integration is a commented template (its secret must be put in by hand)
    book = runbook(setup_sql)
    assert "CREATE NOTIFICATION INTEGRATION IF NOT EXISTS SYNC_ALERTS_WEBHOOK TYPE = WEBHOOK" in book
    assert "GRANT READ ON SECRET SYNC_DB.SYNC.SYNC_ALERTS_WEBHOOK_SECRET TO ROLE SYNC_SERVICE_ROLE;" in book
    assert "WEBHOOK_SECRET = SYNC_DB.SYNC.SYNC_ALERTS_WEBHOOK_SECRET" in book
    assert "SYNC_ALERTS_WEBHOOK" not in sql
    assert "GRANT SERVICE ROLE VOLUME_DATA_SYNC!VIEWER TO ROLE SYNC_VIEWER;" in sql


# --- setup.sql ------------------------------------------------------------------------------------


def test_setup_sql_creates_and_grants_everything_the_service_needs(setup_sql: str, prod: syncer.Config) -> None:
    sql = sql_statements(setup_sql)
    warehouse = prod.source.warehouse
    assert warehouse is not None
    for statement in (
        "CREATE ROLE IF NOT EXISTS SYNC_SERVICE_ROLE",
        "CREATE COMPUTE POOL IF NOT EXISTS SYNC_POOL",
        "GRANT USAGE, MONITOR ON COMPUTE POOL SYNC_POOL TO ROLE SYNC_SERVICE_ROLE;",
        f"GRANT USAGE ON WAREHOUSE {warehouse} TO ROLE SYNC_SERVICE_ROLE;",
        "GRANT BIND SERVICE ENDPOINT ON ACCOUNT TO ROLE SYNC_SERVICE_ROLE;",
        "CREATE SERVICE IF NOT EXISTS VOLUME_DATA_SYNC IN COMPUTE POOL SYNC_POOL FROM @SPECS SPECIFICATION_FILE = 'SPEC.YAML'",
        f"QUERY_WAREHOUSE = {warehouse}",
        "MAX_INSTANCES = 1",  # one writer, one block volume
        "SHOW ENDPOINTS IN SERVICE VOLUME_DATA_SYNC;",
    ):
        assert statement in sql, statement


def test_setup_sql_grants_select_on_every_configured_source_table(setup_sql: str, prod: syncer.Config) -> None:
    sql = sql_statements(setup_sql)
    db, schema = prod.source.database, prod.source.schema
    assert f"GRANT USAGE ON DATABASE {db} TO ROLE SYNC_SERVICE_ROLE;" in sql
    assert f"GRANT USAGE ON SCHEMA {db}.{schema} TO ROLE SYNC_SERVICE_ROLE;" in sql
    for t in prod.tables:
        assert t.source is not None
        name = sf_table_name(t.source).replace('"', "")
        assert f"GRANT SELECT ON TABLE {db}.{schema}.{name} TO ROLE SYNC_SERVICE_ROLE;" in sql, t.name


def test_setup_sql_runbook_snapshots_and_restores_the_spec_volume(setup_sql: str, spec: dict) -> None:
    volume = spec["spec"]["volumes"][0]["name"]
    book = runbook(setup_sql)
    created = re.findall(
        rf'CREATE SNAPSHOT (SYNC_DATA_SNAPSHOT_\d{{8}}) FROM SERVICE VOLUME_DATA_SYNC VOLUME "{volume.upper()}" INSTANCE 0', book
    )
    assert len(created) == 1, "the runbook takes one snapshot, under a dated name"
    (name,) = created
    assert f'ALTER SERVICE VOLUME_DATA_SYNC RESTORE VOLUME "{volume.upper()}" INSTANCES 0 FROM SNAPSHOT {name};' in book
    assert book.index("SUSPEND;") < book.index("RESTORE VOLUME") < book.index("RESUME;")
    # the runbook is commented out: running the file never suspends the service or restores a volume
    live = sql_statements(setup_sql)
    assert "RESTORE VOLUME" not in live and "ALTER SERVICE VOLUME_DATA_SYNC SUSPEND" not in live


def test_setup_sql_creates_the_unload_stage_the_engine_path_uses(setup_sql: str) -> None:
    from syncer.sources.snowflake_unload import STAGE

    live = sql_statements(setup_sql)
    db, schema, name = STAGE.split(".")
    assert f"CREATE STAGE IF NOT EXISTS {name} ENCRYPTION = (TYPE = 'SNOWFLAKE_SSE')" in live
    # created by the service role (it owns it: READ and WRITE), in the schema the stage name says
    assert live.index("USE ROLE SYNC_SERVICE_ROLE") < live.index(f"CREATE STAGE IF NOT EXISTS {name}")
    assert f"CREATE SCHEMA IF NOT EXISTS {db}.{schema}" in live


def test_setup_sql_snapshots_have_dated_names_and_say_how_to_list_and_drop_them(setup_sql: str) -> None:
    """A fixed name with IF NOT EXISTS keeps the first snapshot forever: every later upgrade's
    snapshot is silently skipped. Dated names, and the way to list and drop old ones."""
    book = runbook(setup_sql)
    assert "SNAPSHOT IF NOT EXISTS" not in book
    assert not re.search(r"SNAPSHOT SYNC_DATA_SNAPSHOT\b(?!_)", book), "a snapshot named without its date"
    assert "SHOW SNAPSHOTS LIKE 'SYNC_DATA_SNAPSHOT_%' IN SCHEMA SYNC_DB.SYNC;" in book
    assert re.search(r"DROP SNAPSHOT IF EXISTS SYNC_DATA_SNAPSHOT_\d{8};", book)
    fixed = [line for line in setup_sql.splitlines() if "fromSnapshot:" in line]
    assert fixed and all(re.search(r"SYNC_DATA_SNAPSHOT_\d{8}$", line) for line in fixed)


# --- Dockerfile (checked as text: no container engine here) ---------------------------------------


def test_dockerfile_installs_the_pinned_lock_and_runs_as_a_non_root_user(dockerfile: str) -> None:
    assert dockerfile.count("\nFROM ") + dockerfile.startswith("FROM ") == 1
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.MULTILINE)
    assert "COPY requirements.lock ./" in dockerfile
    assert "pip install --no-deps -r requirements.lock" in dockerfile
    user = re.findall(r"^USER (\S+)$", dockerfile, re.MULTILINE)
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert re.search(r'^ENTRYPOINT \["/app/spcs/entrypoint.sh"\]$', dockerfile, re.MULTILINE)


def test_dockerfile_copies_only_files_that_exist(dockerfile: str) -> None:
    for src in re.findall(r"^COPY (.+) \S+$", dockerfile, re.MULTILINE):
        for path in src.split():
            assert (ROOT / path).exists(), path


def test_dockerignore_keeps_the_copied_files_and_drops_the_rest(dockerfile: str) -> None:
    lines = (SPCS / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*"  # everything out, then the copied paths back in
    kept = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    copied = {p.rstrip("/") for src in re.findall(r"^COPY (.+) \S+$", dockerfile, re.MULTILINE) for p in src.split()}
    assert copied == kept


# --- entrypoint.sh, run for real -------------------------------------------------------------------


def run_entrypoint(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    bin_dir = str(Path(sys.executable).parent)
    full = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": env.pop("HOME", os.environ.get("HOME", "/tmp")),
        "SYNCER_APP_DIR": str(ROOT),
        **env,
    }
    return subprocess.run(
        ["sh", str(SPCS / "entrypoint.sh"), *args], env=full, capture_output=True, text=True, timeout=120, check=False
    )


def local_config(tmp_path: Path, root: Path) -> Path:
    path = tmp_path / "sync.toml"
    path.write_text(
        f'[source]\nkind = "duckdb"\npath = "w.duckdb"\n[volume]\nroot = "{root}"\n'
        '[[tables]]\nname = "t"\nprimary_key = ["id"]\n',
        encoding="utf-8",
    )
    return path


def test_entrypoint_serves_the_admin_app_on_8501(tmp_path: Path) -> None:
    cfg = local_config(tmp_path, tmp_path / "data")
    done = run_entrypoint({"SYNCER_CONFIG": str(cfg), "SYNCER_DRY_RUN": "1"})
    assert done.returncode == 0, done.stderr + done.stdout
    assert done.stdout.split() == [
        "streamlit",
        "run",
        "streamlit_app.py",
        f"--server.port={PORT}",
        "--server.address=0.0.0.0",
        "--server.headless=true",
        "--browser.gatherUsageStats=false",
    ]
    assert (ROOT / "streamlit_app.py").is_file()


def test_entrypoint_runs_a_cli_command(tmp_path: Path) -> None:
    cfg = local_config(tmp_path, tmp_path / "data")
    done = run_entrypoint({"SYNCER_CONFIG": str(cfg)}, "syncer", "snapshots", "--json")
    assert done.returncode == 0, done.stderr + done.stdout
    assert done.stdout.strip() == "[]"


def test_entrypoint_refuses_a_bad_config_with_one_json_line(tmp_path: Path) -> None:
    cfg = tmp_path / "sync.toml"
    cfg.write_text('[source]\nkind = "snowflake"\npassword = "never-in-config"\n', encoding="utf-8")
    done = run_entrypoint({"SYNCER_CONFIG": str(cfg), "SYNCER_DRY_RUN": "1"})
    assert done.returncode == 2
    (line,) = done.stdout.strip().splitlines()
    event = json.loads(line)
    assert event["level"] == "ERROR" and "is a secret" in event["message"]
    assert "never-in-config" not in done.stdout + done.stderr


def test_entrypoint_refuses_an_unwritable_volume(tmp_path: Path) -> None:
    # A regular file where the volume should be: not writable as a folder, whoever runs the test.
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x", encoding="utf-8")
    cfg = local_config(tmp_path, blocker / "data")
    done = run_entrypoint({"SYNCER_CONFIG": str(cfg), "SYNCER_DRY_RUN": "1"})
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"volume root {blocker / 'data'} is not writable" in done.stdout
