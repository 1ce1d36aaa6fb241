"""sync.toml: the shipped default loads, relative paths follow the file, and every mistake is one clear line."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from syncer._exceptions import ConfigError, SyncError
from syncer.config import TableConfig, default_config_path, load_config, parse_config

REPO_CONFIG = Path(__file__).parents[1] / "sync.toml"

HEAD = """
[source]
kind = "duckdb"
path = "warehouse.duckdb"

[volume]
root = "data"
"""

TABLE = """
[[tables]]
name = "t"
primary_key = ["id"]
"""


def _write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sync.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _table(body: str) -> str:
    return HEAD + "\n[[tables]]\n" + textwrap.dedent(body)


# --- the shipped default ------------------------------------------------------------------------


def test_repo_default_config_loads():
    cfg = load_config(REPO_CONFIG)
    assert [t.name for t in cfg.tables] == ["participants", "courses", "enrollments", "daily_metrics"]
    assert all(t.format == "parquet" for t in cfg.tables)
    assert cfg.source.kind == "duckdb"
    assert cfg.retain >= 2


def test_repo_default_config_keeps_password_hash_in_the_warehouse():
    cfg = load_config(REPO_CONFIG)
    participants = cfg.table("participants")
    assert participants.exclude_columns == ("password_hash",)
    assert participants.primary_key == ("participant_id",)
    assert not any("password_hash" in t.exclude_columns for t in cfg.tables if t.name != "participants")


def test_repo_default_config_resolves_paths_against_its_folder():
    cfg = load_config(REPO_CONFIG)
    folder = REPO_CONFIG.resolve().parent
    assert cfg.root == folder / "var" / "data"
    assert cfg.source.path == folder / "var" / "warehouse.duckdb"


def test_config_table_lookup_suggests_a_close_name():
    cfg = load_config(REPO_CONFIG)
    with pytest.raises(ConfigError, match=r"unknown table 'participant'; did you mean 'participants'\?; configured: "):
        cfg.table("participant")


# --- paths and defaults -------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_config_folder_not_the_cwd(tmp_path, monkeypatch):
    path = _write(tmp_path / "cfg", HEAD.replace('"warehouse.duckdb"', '"db/warehouse.duckdb"') + TABLE)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(path)
    folder = path.resolve().parent
    assert cfg.root == folder / "data"
    assert cfg.source.path == folder / "db" / "warehouse.duckdb"
    assert cfg.path == path


def test_relative_config_path_resolves_from_the_cwd_then_paths_from_its_folder(tmp_path, monkeypatch):
    _write(tmp_path / "cfg", HEAD + TABLE)
    monkeypatch.chdir(tmp_path)
    cfg = load_config("cfg/sync.toml")
    assert cfg.root == (tmp_path / "cfg").resolve() / "data"
    assert cfg.source.path == (tmp_path / "cfg").resolve() / "warehouse.duckdb"


def test_absolute_paths_are_kept(tmp_path):
    db = tmp_path / "abs" / "w.duckdb"
    text = f'[source]\npath = "{db}"\n[volume]\nroot = "{tmp_path / "vol"}"\n' + TABLE
    cfg = load_config(_write(tmp_path / "cfg", text))
    assert cfg.source.path == db
    assert cfg.root == tmp_path / "vol"


def test_source_defaults_to_the_table_name(tmp_path):
    cfg = load_config(_write(tmp_path, HEAD + TABLE))
    assert cfg.tables == (TableConfig(name="t", source="t", primary_key=("id",)),)


def test_query_is_kept_stripped_of_a_trailing_semicolon(tmp_path):
    path = _write(tmp_path, _table('name = "q"\nprimary_key = ["id"]\nquery = "  select id from t where id > 1 ;  "\n'))
    (table,) = load_config(path).tables
    assert table.query == "select id from t where id > 1"
    assert table.source is None


def test_with_query_is_accepted(tmp_path):
    body = 'name = "q"\nprimary_key = ["id"]\nquery = "WITH x AS (SELECT 1 AS id) SELECT * FROM x;"\n'
    (table,) = load_config(_write(tmp_path, _table(body))).tables
    assert table.query == "WITH x AS (SELECT 1 AS id) SELECT * FROM x"


def test_three_part_source_identifier_is_accepted(tmp_path):
    body = 'name = "t"\nprimary_key = ["id"]\nsource = "db.main.t_1$x"\n'
    (table,) = load_config(_write(tmp_path, _table(body))).tables
    assert table.source == "db.main.t_1$x"


def test_single_string_primary_key_becomes_a_tuple(tmp_path):
    (table,) = load_config(_write(tmp_path, _table('name = "t"\nprimary_key = "id"\n'))).tables
    assert table.primary_key == ("id",)


def test_parse_config_takes_an_already_parsed_document(tmp_path):
    data = {"source": {"path": "w.duckdb"}, "tables": [{"name": "t", "primary_key": ["id"]}]}
    cfg = parse_config(data, base=tmp_path)
    assert cfg.path is None
    assert cfg.root == tmp_path / "var" / "data"
    assert cfg.source.path == tmp_path / "w.duckdb"
    assert (cfg.retain, cfg.cron, cfg.timezone, cfg.compression) == (7, "0 3 * * *", "UTC", "zstd")


def test_parse_config_errors_name_the_document(tmp_path):
    with pytest.raises(ConfigError, match=r"^config: unknown key 'nope'"):
        parse_config({"nope": 1}, base=tmp_path)


# --- SYNCER_CONFIG ------------------------------------------------------------------------------


def test_syncer_config_env_var_is_the_default_path(tmp_path, monkeypatch):
    path = _write(tmp_path / "elsewhere", HEAD + TABLE)
    monkeypatch.setenv("SYNCER_CONFIG", str(path))
    assert default_config_path() == path
    cfg = load_config()
    assert cfg.path == path
    assert cfg.root == path.resolve().parent / "data"


def test_default_path_is_sync_toml_in_the_cwd(tmp_path, monkeypatch):
    monkeypatch.delenv("SYNCER_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_config_path() == Path("sync.toml")
    with pytest.raises(ConfigError, match=r"config file sync\.toml not found"):
        load_config()


def test_empty_syncer_config_falls_back_to_sync_toml(monkeypatch):
    monkeypatch.setenv("SYNCER_CONFIG", "")
    assert default_config_path() == Path("sync.toml")


# --- the error catalogue ------------------------------------------------------------------------

ERRORS = [
    pytest.param(
        HEAD + TABLE + "\n[sources]\nkind = 'duckdb'\n",
        r"unknown key 'sources'; did you mean 'source'\?",
        id="unknown-top-level-key",
    ),
    pytest.param(HEAD + TABLE + "\n[zzz]\n", r"unknown key 'zzz'$", id="unknown-top-level-key-no-suggestion"),
    pytest.param(
        HEAD + "retian = 3\n" + TABLE, r"\[volume\] unknown key 'retian'; did you mean 'retain'\?", id="unknown-section-key"
    ),
    pytest.param(
        HEAD + "\n[schedule]\ncorn = '0 3 * * *'\n" + TABLE,
        r"\[schedule\] unknown key 'corn'; did you mean 'cron'\?",
        id="unknown-schedule-key",
    ),
    pytest.param(HEAD + "\n[source]\n", r"invalid TOML", id="section-twice"),
    pytest.param(
        _table('name = "t"\nprimary_keys = ["id"]\n'),
        r"table 't': unknown key 'primary_keys'; did you mean 'primary_key'\?",
        id="unknown-table-key",
    ),
    pytest.param(
        _table('name = "../etc"\nprimary_key = ["id"]\n'),
        r"table name '\.\./etc' is not allowed; use only letters",
        id="name-dotdot",
    ),
    pytest.param(_table('name = "a/b"\nprimary_key = ["id"]\n'), r"table name 'a/b' is not allowed", id="name-slash"),
    pytest.param(_table('name = "a.b"\nprimary_key = ["id"]\n'), r"table name 'a\.b' is not allowed", id="name-dot"),
    pytest.param(
        _table('name = "with space"\nprimary_key = ["id"]\n'), r"table name 'with space' is not allowed", id="name-space"
    ),
    pytest.param(_table('name = ""\nprimary_key = ["id"]\n'), r"\[\[tables\]\] #1 has no name; add name = ", id="name-empty"),
    pytest.param(_table('primary_key = ["id"]\n'), r"\[\[tables\]\] #1 has no name", id="name-missing"),
    pytest.param(_table('name = 7\nprimary_key = ["id"]\n'), r"\[\[tables\]\] #1 has no name", id="name-not-a-string"),
    pytest.param(
        _table('name = "a\\u0000b"\nprimary_key = ["id"]\n'), re.escape("table name 'a\\x00b' is not allowed"), id="name-nul"
    ),
    pytest.param(
        _table('name = "a\\\\b"\nprimary_key = ["id"]\n'), re.escape("table name 'a\\\\b' is not allowed"), id="name-backslash"
    ),
    pytest.param(
        _table('name = "t\\n"\nprimary_key = ["id"]\n'), re.escape("table name 't\\n' is not allowed"), id="name-trailing-newline"
    ),
    pytest.param(
        _table(f'name = "{"x" * 129}"\nprimary_key = ["id"]\n'), r"table name 'x{129}' is not allowed", id="name-too-long"
    ),
    pytest.param(HEAD + TABLE + TABLE, r"duplicate table 't'; each \[\[tables\]\] name must be unique", id="duplicate-table"),
    pytest.param(HEAD + TABLE + TABLE.replace('"t"', '"T"'), r"duplicate table 'T'", id="duplicate-table-case-insensitive"),
    pytest.param(_table('name = "t"\n'), r"table 't' has no primary_key; name its key column\(s\)", id="missing-primary-key"),
    pytest.param(_table('name = "t"\nprimary_key = []\n'), r"table 't' has no primary_key", id="empty-primary-key"),
    pytest.param(
        _table('name = "t"\nprimary_key = ["id", "id"]\n'), r"table 't': primary_key lists a column twice", id="primary-key-twice"
    ),
    pytest.param(
        _table('name = "t"\nprimary_key = ["id"]\nexclude_columns = ["id"]\n'),
        r"table 't': primary key column 'id' is also in exclude_columns; remove it from one",
        id="primary-key-excluded",
    ),
    pytest.param(
        _table('name = "t"\nprimary_key = ["id"]\nnot_null = ["x"]\nexclude_columns = ["x"]\n'),
        r"table 't': not_null column 'x' is also in exclude_columns",
        id="not-null-excluded",
    ),
    pytest.param(
        _table('name = "t"\nprimary_key = ["id"]\nformat = "parqet"\n'),
        r"table 't': format = 'parqet' is not supported; choose one of: parquet, csv, jsonl, arrow; did you mean 'parquet'\?",
        id="bad-format",
    ),
    pytest.param(
        HEAD + "\n[schedule]\ncron = '0 25 * * *'\n" + TABLE,
        r"\[schedule\] cron = '0 25 \* \* \*' is not a valid crontab expression .*use five fields",
        id="cron-hour-25",
    ),
    pytest.param(
        HEAD + "\n[schedule]\ncron = '0 3 * *'\n" + TABLE,
        r"cron = '0 3 \* \*' is not a valid crontab expression",
        id="cron-four-fields",
    ),
    pytest.param(
        HEAD + "\n[schedule]\ntimezone = 'Mars/Olympus'\n" + TABLE,
        r"\[schedule\] timezone = 'Mars/Olympus' is not a known time zone",
        id="bad-timezone",
    ),
    pytest.param(HEAD + "\n[schedule]\ntimezone = '../../etc/passwd'\n" + TABLE, r"is not a known time zone", id="timezone-path"),
    pytest.param(
        HEAD + "retain = 1\n" + TABLE, r"\[volume\] retain = 1 is too small; keep at least 2 snapshots", id="retain-one"
    ),
    pytest.param(HEAD + "retain = 0\n" + TABLE, r"\[volume\] retain must be a positive integer, got 0", id="retain-zero"),
    pytest.param(
        HEAD + "\n[freshness]\nskip_startup_if_younger_than_hours = -1\n" + TABLE,
        r"skip_startup_if_younger_than_hours must be >= 0",
        id="negative-skip-window",
    ),
    pytest.param(
        HEAD + "\n[freshness]\nsla_hours = 0\n" + TABLE, r"\[freshness\] sla_hours must be greater than 0", id="zero-sla"
    ),
    pytest.param(
        _table('name = "t"\nprimary_key = ["id"]\nsource = "t"\nquery = "select 1 as id"\n'),
        r"table 't' sets both source and query; keep one",
        id="source-and-query",
    ),
    pytest.param(
        _table('name = "t"\nprimary_key = ["id"]\nquery = "delete from t"\n'),
        r"table 't': query must be a single SELECT \(or WITH \.\.\. SELECT\) statement",
        id="query-not-select",
    ),
    pytest.param(
        _table('name = "t"\nprimary_key = ["id"]\nquery = "select 1 as id; drop table t"\n'),
        r"table 't': query must be one statement; remove the ';'",
        id="query-two-statements",
    ),
    pytest.param(
        _table('name = "t"\nprimary_key = ["id"]\nsource = "users; drop table x"\n'),
        r"table 't': source = 'users; drop table x' is not a valid table identifier",
        id="source-injection",
    ),
    pytest.param(
        _table('name = "t"\nprimary_key = ["id"]\nsource = "a.b.c.d"\n'),
        r"source = 'a\.b\.c\.d' is not a valid table identifier",
        id="source-four-parts",
    ),
    pytest.param(
        _table('name = "t"\nprimary_key = ["id"]\nsource = "a..b"\n'),
        r"source = 'a\.\.b' is not a valid table identifier",
        id="source-empty-part",
    ),
    pytest.param(
        _table('name = "t"\nprimary_key = ["id"]\nsource = "t\\n"\n'),
        r"source = 't\\n' is not a valid table identifier",
        id="source-trailing-newline",
    ),
    pytest.param(HEAD + 'retain = "7"\n' + TABLE, r"\[volume\] retain must be a positive integer, got '7'", id="retain-string"),
    pytest.param(HEAD + "retain = true\n" + TABLE, r"\[volume\] retain must be a positive integer, got True", id="retain-bool"),
    pytest.param(
        _table('name = "t"\nprimary_key = ["id"]\nallow_empty = "yes"\n'),
        r"table 't': allow_empty must be true or false",
        id="allow-empty-string",
    ),
    pytest.param(
        HEAD + "\n[admin]\nallow_local_operator = 1\n" + TABLE,
        r"\[admin\] allow_local_operator must be bool, got 1",
        id="bool-as-int",
    ),
    pytest.param(
        HEAD + "\n[admin]\noperators = [1]\n" + TABLE,
        r"\[admin\] operators must be a list of non-empty strings",
        id="operators-not-strings",
    ),
    pytest.param(
        HEAD + "\n[export]\ncompression = 'brotli'\n" + TABLE,
        r"\[export\] compression = 'brotli' is not supported",
        id="bad-compression",
    ),
    pytest.param(
        HEAD + "\n[export]\nbatch_rows = 0\n" + TABLE,
        r"\[export\] batch_rows must be a positive integer, got 0",
        id="zero-batch-rows",
    ),
    pytest.param(
        TABLE.replace("[[tables]]", "[source]\nkind = 'duckdb'\n[[tables]]"),
        r"\[source\] path is required",
        id="source-path-missing",
    ),
    pytest.param(
        HEAD.replace('kind = "duckdb"', 'kind = "snowflak"') + TABLE,
        r"\[source\] kind = 'snowflak' is not supported",
        id="bad-source-kind",
    ),
    pytest.param('volume = 3\n[source]\npath = "w.duckdb"\n' + TABLE, r"\[volume\] must be a table", id="section-not-a-table"),
    pytest.param(HEAD, r"no tables configured; add at least one \[\[tables\]\] section", id="no-tables"),
    pytest.param("tables = []\n" + HEAD, r"no tables configured", id="empty-tables-list"),
    pytest.param(
        HEAD.replace("[source]", 'tables = "t"\n[source]'),
        r"tables must be written as \[\[tables\]\] sections",
        id="tables-not-a-list",
    ),
    pytest.param(
        HEAD + "\n[freshness]\nsla_hours = nan\n" + TABLE,
        r"\[freshness\] sla_hours = nan is not a finite number",
        id="sla-hours-nan",
    ),
    pytest.param(
        HEAD + "\n[freshness]\nsla_hours = inf\n" + TABLE,
        r"\[freshness\] sla_hours = inf is not a finite number",
        id="sla-hours-inf",
    ),
    pytest.param(
        HEAD + "\n[freshness]\nskip_startup_if_younger_than_hours = -inf\n" + TABLE,
        r"\[freshness\] skip_startup_if_younger_than_hours = -inf is not a finite number",
        id="skip-window-minus-inf",
    ),
    pytest.param(
        HEAD + "\n[export]\ntime_budget_seconds = inf\n" + TABLE,
        r"\[export\] time_budget_seconds = inf is not a finite number",
        id="time-budget-inf",
    ),
    pytest.param(
        HEAD + "\n[retry]\nbackoff_seconds = nan\n" + TABLE,
        r"\[retry\] backoff_seconds = nan is not a finite number",
        id="retry-backoff-nan",
    ),
    pytest.param(
        _table('name = "t"\nprimary_key = ["id"]\nmax_bad_rows = nan\n'),
        r"\[\[tables\]\] #1 max_bad_rows = nan is not a finite number",
        id="table-key-nan",
    ),
    pytest.param(
        HEAD.replace('path = "warehouse.duckdb"', 'path = "warehouse.duckdb"\nmemory_limit = "16"') + TABLE,
        r"\[source\] memory_limit = '16' is not a memory size DuckDB accepts",
        id="memory-limit-no-unit",
    ),
    pytest.param(
        HEAD.replace('path = "warehouse.duckdb"', 'path = "warehouse.duckdb"\nmemory_limit = "lots"') + TABLE,
        r"\[source\] memory_limit = 'lots' is not a memory size",
        id="memory-limit-not-a-number",
    ),
    pytest.param(
        HEAD.replace('path = "warehouse.duckdb"', 'path = "warehouse.duckdb"\nmemory_limit = "16MBx"') + TABLE,
        r"\[source\] memory_limit = '16MBx' is not a memory size",
        id="memory-limit-bad-unit",
    ),
    pytest.param(
        HEAD.replace('path = "warehouse.duckdb"', 'path = "warehouse.duckdb"\nmemory_limit = "100KB"') + TABLE,
        r"\[source\] memory_limit = '100KB' is not a memory size DuckDB accepts; write a number and a unit of at least 1 MB",
        id="memory-limit-too-small",
    ),
    pytest.param(HEAD + "[[tables]\n", r"invalid TOML", id="invalid-toml"),
    pytest.param(HEAD + 'root = "twice"\n' + TABLE, r"invalid TOML", id="duplicate-key"),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_config_error(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert "\n" not in str(info.value).rstrip() or "TOML" in str(info.value), "one line per mistake"


def test_config_error_is_a_sync_error_with_exit_code_2(tmp_path):
    with pytest.raises(SyncError) as info:
        load_config(_write(tmp_path, HEAD))
    assert isinstance(info.value, ConfigError)
    assert info.value.exit_code == 2


def test_error_message_names_the_config_file(tmp_path):
    path = _write(tmp_path, HEAD + TABLE + TABLE)
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: duplicate table"):
        load_config(path)


def test_missing_config_file_says_how_to_point_at_one(tmp_path):
    missing = tmp_path / "nope" / "sync.toml"
    with pytest.raises(
        ConfigError, match=rf"config file {re.escape(str(missing))} not found; pass --config PATH or set SYNCER_CONFIG"
    ):
        load_config(missing)


def test_config_path_that_is_a_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=rf"cannot read config file {re.escape(str(tmp_path))}"):
        load_config(tmp_path)


def test_invalid_toml_names_the_file_and_the_line(tmp_path):
    path = _write(tmp_path, HEAD + "[[tables]\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: invalid TOML: .*line \d+"):
        load_config(path)


@pytest.mark.parametrize("limit", ["16MB", "16 mb", "1.5GiB", "512MiB", "2 GB", "1MB"])
def test_memory_limit_in_duckdb_syntax_is_accepted(tmp_path, limit):
    text = HEAD.replace('path = "warehouse.duckdb"', f'path = "warehouse.duckdb"\nmemory_limit = "{limit}"') + TABLE
    assert load_config(_write(tmp_path, text)).source.memory_limit == limit


def test_memory_limit_accepted_at_load_is_accepted_by_duckdb(tmp_path):
    # what the load-time check lets through, DuckDB opens (the check is no looser than the warehouse)
    import duckdb

    for limit in ("1MB", "1.5GiB", "16 mb"):
        text = HEAD.replace('path = "warehouse.duckdb"', f'path = "warehouse.duckdb"\nmemory_limit = "{limit}"') + TABLE
        cfg = load_config(_write(tmp_path, text))
        duckdb.connect(config={"memory_limit": cfg.source.memory_limit}).close()


def test_cli_refuses_an_invalid_memory_limit_before_touching_the_volume(tmp_path):
    text = HEAD.replace('path = "warehouse.duckdb"', 'path = "warehouse.duckdb"\nmemory_limit = "16"') + TABLE
    path = _write(tmp_path, text)
    proc = subprocess.run([sys.executable, "-m", "syncer", "--config", str(path), "sync"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "memory_limit = '16'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "data").exists(), "refused at load: the sync never started"
