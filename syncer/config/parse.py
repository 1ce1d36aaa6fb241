"""Load and validate ``sync.toml`` once, into the frozen dataclasses of :mod:`syncer.config.model`.

Every mistake is reported at load time with one clear line that names the key or table and the
fix; nothing downstream re-validates. Relative paths resolve against the config file's folder.
Each section has its own function, called in the order of the file's documentation (source,
volume, freshness, schedule, export, admin, retry, tables), so the first mistake is reported first.
"""

from __future__ import annotations

import grp
import math
import os
import re
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from syncer._exceptions import ConfigError
from syncer.config.alerts import ALERTS_KEYS, parse_alerts
from syncer.config.memory import batch_bytes as _batch_bytes
from syncer.config.memory import check_ceiling as _check_ceiling
from syncer.config.memory import memory_limit as _memory_limit
from syncer.config.model import FORMATS, SNOWFLAKE_KEYS, Config, SourceConfig, TableConfig, suggest
from syncer.config.references import check_references, parse_references
from syncer.config.values import check_keys, get, nonempty_str, number, positive_int, positive_number, str_list
from syncer.schedule.cron import check_crontab

__all__ = ["default_config_path", "load_config", "parse_config"]

# A table name becomes a file name on the volume: no path separators, no dots, no NUL.
# \Z, not $: "$" also matches before a trailing newline, which would let "name\n" through.
_TABLE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}\Z")
# A source identifier: up to three dot-separated parts (database.schema.table); each part is quoted
# when SQL is built, so only the characters of ordinary identifiers are allowed here.
_SOURCE_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}\Z")

_SECTIONS: dict[str, set[str]] = {
    "source": {"kind", "path", "memory_limit", "threads"} | set(SNOWFLAKE_KEYS),
    "volume": {"root", "retain", "quarantine_group"},
    "freshness": {"sla_hours", "skip_startup_if_younger_than_hours"},
    "schedule": {"cron", "timezone", "misfire_grace_seconds"},
    "export": {
        "batch_rows",
        "batch_bytes",
        "row_group_rows",
        "compression",
        "time_budget_seconds",
        "watchdog_seconds",
        "writers",
        "engine_min_rows",
    },
    "admin": {"operators", "allow_local_operator"},
    "retry": {"attempts", "backoff_seconds", "max_backoff_seconds"},
    "alerts": ALERTS_KEYS,
}
_TABLE_KEYS = {
    "name",
    "source",
    "query",
    "primary_key",
    "format",
    "exclude_columns",
    "not_null",
    "allow_empty",
    "max_bad_rows",
    "references",
    "references_severity",
    "export",
}
#: [[tables]] export: the stream path, the warehouse's engine (COPY), or the engine above [export] engine_min_rows
_EXPORT_PATHS = ("stream", "engine", "auto")
_TOP_KEYS = set(_SECTIONS) | {"tables"}
_SOURCE_KINDS = ("duckdb", "snowflake")
_DUCKDB_KEYS = ("path", "memory_limit", "threads")
# Secrets never live in the config file (plain text next to the data, copied into images and
# tickets): these keys are refused by name, and their values are never echoed.
_SECRET_KEYS = (
    "password",
    "token",
    "private_key",
    "private_key_passphrase",
    "private_key_file_pwd",
    "passcode",
    "oauth_token",
    "client_secret",
)
_COMPRESSIONS = ("zstd", "snappy", "gzip", "lz4", "none")


def default_config_path() -> Path:
    """``$SYNCER_CONFIG`` if set, else ``sync.toml`` in the working directory."""
    return Path(os.environ.get("SYNCER_CONFIG") or "sync.toml")


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Read and validate a config file (default: :func:`default_config_path`)."""
    p = Path(path) if path is not None else default_config_path()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {p} not found; pass --config PATH or set SYNCER_CONFIG") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {p} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from exc
    return parse_config(data, base=p.resolve().parent, path=p)


def parse_config(data: dict[str, Any], *, base: Path, path: Path | None = None) -> Config:
    """Validate an already-parsed TOML document."""
    where = str(path) if path else "config"
    try:
        return _parse(data, base, path, where)
    except ConfigError as exc:
        # Every message names the file, whichever helper raised it.
        if str(exc).startswith(where + ":"):
            raise
        raise ConfigError(f"{where}: {exc}") from None


def _parse(data: dict[str, Any], base: Path, path: Path | None, where: str) -> Config:
    _refuse_non_finite(data, "")
    sections = _sections(data, where)
    source = _source(sections["source"], base, where)
    volume, freshness, schedule = (
        _volume(sections["volume"], base, where),
        _freshness(sections["freshness"], where),
        _schedule(sections["schedule"], where),
    )
    export = _export(sections["export"], where)
    source = replace(source, memory_ceiling=_check_ceiling(source.memory_limit, export["batch_bytes"]))
    return Config(
        path=path,
        source=source,
        **volume,
        **freshness,
        **schedule,
        **export,
        **_admin(sections["admin"]),
        **_retry(sections["retry"]),
        tables=_tables(data, where),
        alerts=parse_alerts(sections["alerts"], where, source.kind),
    )


def _sections(data: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    """Each known section as a dict (empty when absent), after refusing unknown keys and secrets."""
    check_keys(data, _TOP_KEYS, where, "")
    sections: dict[str, dict[str, Any]] = {}
    for name, keys in _SECTIONS.items():
        sec = data.get(name, {})
        if not isinstance(sec, dict):
            raise ConfigError(f"{where}: [{name}] must be a table (a [{name}] section)")
        if name == "source":
            _refuse_secrets(sec, where)
        check_keys(sec, keys, where, f"[{name}] ")
        sections[name] = sec
    return sections


def _source(src: dict[str, Any], base: Path, where: str) -> SourceConfig:
    kind = get(src, "kind", str, "duckdb", "[source] kind")
    if kind not in _SOURCE_KINDS:
        raise ConfigError(f"{where}: [source] kind = {kind!r} is not supported; choose one of: {', '.join(_SOURCE_KINDS)}")
    src_path = get(src, "path", str, None, "[source] path")
    if kind == "duckdb" and not src_path:
        raise ConfigError(f'{where}: [source] path is required for kind = "duckdb" (e.g. path = "var/warehouse.duckdb")')
    for key in SNOWFLAKE_KEYS if kind != "snowflake" else _DUCKDB_KEYS:
        if key in src:
            other = "snowflake" if kind != "snowflake" else "duckdb"
            raise ConfigError(f'{where}: [source] {key} applies to kind = "{other}" only; remove it or set kind = "{other}"')
    sf = {key: nonempty_str(src, key, f"[source] {key}") for key in SNOWFLAKE_KEYS}
    key_file = sf.pop("private_key_file")
    return SourceConfig(
        kind=kind,
        path=_resolve(base, src_path) if src_path else None,
        memory_limit=_memory_limit(src),
        memory_ceiling=0,  # set once [export] batch_bytes is known
        threads=positive_int(src, "threads", 1, "[source] threads"),
        private_key_file=_resolve(base, key_file) if key_file else None,
        **sf,
    )


def _volume(vol: dict[str, Any], base: Path, where: str) -> dict[str, Any]:
    root = get(vol, "root", str, "var/data", "[volume] root")
    retain = positive_int(vol, "retain", 7, "[volume] retain")
    if retain < 2:
        raise ConfigError(f"{where}: [volume] retain = {retain} is too small; keep at least 2 snapshots so rollback works")
    group = nonempty_str(vol, "quarantine_group", "[volume] quarantine_group")
    gid = None
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise ConfigError(
                f"{where}: [volume] quarantine_group = {group!r} is not a group on this machine; create it, or remove "
                "the key (then only the syncing user may read quarantined rows)"
            ) from None
    return {"root": _resolve(base, root), "retain": retain, "quarantine_group": group, "quarantine_gid": gid}


def _freshness(fr: dict[str, Any], where: str) -> dict[str, Any]:
    sla = positive_number(fr, "sla_hours", 24.0, "[freshness] sla_hours")
    skip = number(fr, "skip_startup_if_younger_than_hours", 20.0, "[freshness] skip_startup_if_younger_than_hours")
    if skip < 0:
        raise ConfigError(f"{where}: [freshness] skip_startup_if_younger_than_hours must be >= 0 (0 = always sync at startup)")
    return {"sla_hours": sla, "skip_startup_if_younger_than_hours": skip}


def _schedule(sch: dict[str, Any], where: str) -> dict[str, Any]:
    cron = get(sch, "cron", str, "0 3 * * *", "[schedule] cron")
    tz = get(sch, "timezone", str, "UTC", "[schedule] timezone")
    _check_cron(cron, tz, where)
    grace = positive_int(sch, "misfire_grace_seconds", 3600, "[schedule] misfire_grace_seconds")
    return {"cron": cron, "timezone": tz, "misfire_grace_seconds": grace}


def _export(ex: dict[str, Any], where: str) -> dict[str, Any]:
    batch_rows = positive_int(ex, "batch_rows", 32_768, "[export] batch_rows")
    row_group_rows = positive_int(ex, "row_group_rows", 131_072, "[export] row_group_rows")
    compression = get(ex, "compression", str, "zstd", "[export] compression")
    if compression not in _COMPRESSIONS:
        raise ConfigError(
            f"{where}: [export] compression = {compression!r} is not supported; choose one of: {', '.join(_COMPRESSIONS)}"
        )
    budget = positive_number(ex, "time_budget_seconds", 600.0, "[export] time_budget_seconds")
    # past the budget a run is flagged; past the watchdog it is stopped (syncer/engine/watchdog.py)
    watchdog = positive_number(ex, "watchdog_seconds", 3 * budget, "[export] watchdog_seconds")
    writers = ex.get("writers", "auto")
    if writers == "auto":
        writers = 0
    elif isinstance(writers, bool) or not isinstance(writers, int) or not 1 <= writers <= 64:
        raise ConfigError(
            f'{where}: [export] writers must be "auto" or a whole number from 1 to 64 (1 = always one file), got {writers!r}'
        )
    return {
        "batch_rows": batch_rows,
        "batch_bytes": _batch_bytes(ex),
        "row_group_rows": row_group_rows,
        "compression": compression,
        "writers": writers,
        "time_budget_seconds": budget,
        "watchdog_seconds": watchdog,
        "engine_min_rows": positive_int(ex, "engine_min_rows", 1_000_000_000, "[export] engine_min_rows"),
    }


def _admin(adm: dict[str, Any]) -> dict[str, Any]:
    operators = str_list(adm, "operators", "[admin] operators")
    allow_local = get(adm, "allow_local_operator", bool, False, "[admin] allow_local_operator")
    return {"operators": operators, "allow_local_operator": allow_local}


def _retry(rt: dict[str, Any]) -> dict[str, Any]:
    return {
        "retry_attempts": positive_int(rt, "attempts", 3, "[retry] attempts"),
        "retry_backoff_seconds": positive_number(rt, "backoff_seconds", 1.0, "[retry] backoff_seconds"),
        "retry_max_backoff_seconds": positive_number(rt, "max_backoff_seconds", 30.0, "[retry] max_backoff_seconds"),
    }


def _tables(data: dict[str, Any], where: str) -> tuple[TableConfig, ...]:
    raw_tables = data.get("tables", [])
    if not isinstance(raw_tables, list) or not all(isinstance(t, dict) for t in raw_tables):
        raise ConfigError(f"{where}: tables must be written as [[tables]] sections")
    if not raw_tables:
        raise ConfigError(f"{where}: no tables configured; add at least one [[tables]] section")
    tables: list[TableConfig] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_tables, 1):
        t = _parse_table(raw, i, where)
        if t.name.lower() in seen:
            raise ConfigError(f"{where}: duplicate table {t.name!r}; each [[tables]] name must be unique")
        seen.add(t.name.lower())
        tables.append(t)
    check_references(tables, where)
    return tuple(tables)


def _parse_table(raw: dict[str, Any], i: int, where: str) -> TableConfig:
    name = raw.get("name")
    label = f"[[tables]] #{i}" if not isinstance(name, str) else f"table {name!r}"
    check_keys(raw, _TABLE_KEYS, where, f"{label}: ")
    if not isinstance(name, str) or not name:
        raise ConfigError(f'{where}: [[tables]] #{i} has no name; add name = "..."')
    if not _TABLE_NAME.match(name):
        raise ConfigError(
            f"{where}: table name {name!r} is not allowed; use only letters, digits, '_' and '-' "
            "(it becomes a file name on the volume)"
        )
    source, query = _table_relation(raw, name, where)
    pk = str_list(raw, "primary_key", f"table {name!r}: primary_key")
    if not pk:
        raise ConfigError(f'{where}: table {name!r} has no primary_key; name its key column(s), e.g. primary_key = ["id"]')
    fmt = raw.get("format", "parquet")
    if fmt not in FORMATS:
        raise ConfigError(
            f"{where}: table {name!r}: format = {fmt!r} is not supported; choose one of: {', '.join(FORMATS)}"
            f"{suggest(str(fmt), list(FORMATS))}"
        )
    exclude, not_null = _table_columns(raw, name, pk, where)
    max_bad_rows, allow_empty = _table_budget(raw, name, where)
    export = raw.get("export", "stream")
    if export not in _EXPORT_PATHS:
        raise ConfigError(
            f"{where}: table {name!r}: export = {export!r} is not supported; choose one of: {', '.join(_EXPORT_PATHS)}"
            f"{suggest(str(export), list(_EXPORT_PATHS))}"
        )
    if export == "engine" and fmt != "parquet":
        raise ConfigError(
            f'{where}: table {name!r}: export = "engine" writes Parquet only; set format = "parquet" or export = "stream"'
        )
    return TableConfig(
        name=name,
        source=source,
        query=query,
        primary_key=pk,
        format=fmt,
        exclude_columns=exclude,
        not_null=not_null,
        allow_empty=allow_empty,
        max_bad_rows=max_bad_rows,
        references=parse_references(raw, name, where),
        export=export,
    )


def _table_relation(raw: dict[str, Any], name: str, where: str) -> tuple[str | None, str | None]:
    """``(source, query)``: exactly one is set; the source defaults to the table's name."""
    source = raw.get("source")
    query = raw.get("query")
    if source is not None and query is not None:
        raise ConfigError(f"{where}: table {name!r} sets both source and query; keep one")
    if source is None and query is None:
        source = name
    if source is not None and (
        not isinstance(source, str) or not all(_SOURCE_PART.match(p) for p in source.split(".")) or source.count(".") > 2
    ):
        raise ConfigError(
            f"{where}: table {name!r}: source = {source!r} is not a valid table identifier; "
            "use [database.][schema.]table with letters, digits and '_' (or use query = \"select ...\")"
        )
    if query is not None:
        if not isinstance(query, str) or not re.match(r"^\s*(select|with)\b", query, re.IGNORECASE):
            raise ConfigError(f"{where}: table {name!r}: query must be a single SELECT (or WITH ... SELECT) statement")
        if ";" in query.strip().rstrip(";"):
            raise ConfigError(f"{where}: table {name!r}: query must be one statement; remove the ';'")
        query = query.strip().rstrip(";").strip()
    return source, query


def _table_columns(raw: dict[str, Any], name: str, pk: tuple[str, ...], where: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(exclude_columns, not_null)``, neither overlapping the other lists where that makes no sense."""
    exclude = str_list(raw, "exclude_columns", f"table {name!r}: exclude_columns")
    not_null = str_list(raw, "not_null", f"table {name!r}: not_null")
    for col in pk:
        if col in exclude:
            raise ConfigError(
                f"{where}: table {name!r}: primary key column {col!r} is also in exclude_columns; remove it from one"
            )
    for col in not_null:
        if col in exclude:
            raise ConfigError(f"{where}: table {name!r}: not_null column {col!r} is also in exclude_columns; remove it from one")
    if len(set(pk)) != len(pk):
        raise ConfigError(f"{where}: table {name!r}: primary_key lists a column twice")
    return exclude, not_null


def _table_budget(raw: dict[str, Any], name: str, where: str) -> tuple[int, bool]:
    """``(max_bad_rows, allow_empty)``."""
    max_bad_rows = raw.get("max_bad_rows", 0)
    if isinstance(max_bad_rows, bool) or not isinstance(max_bad_rows, int) or max_bad_rows < 0:
        raise ConfigError(
            f"{where}: table {name!r}: max_bad_rows must be an integer >= 0 (0 = any bad row fails the table), "
            f"got {max_bad_rows!r}"
        )
    allow_empty = raw.get("allow_empty", False)
    if not isinstance(allow_empty, bool):
        raise ConfigError(f"{where}: table {name!r}: allow_empty must be true or false")
    return max_bad_rows, allow_empty


def _check_cron(cron: str, tz: str, where: str) -> None:
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(tz)
    except Exception:
        raise ConfigError(
            f'{where}: [schedule] timezone = {tz!r} is not a known time zone (e.g. "UTC", "Europe/Berlin")'
        ) from None
    try:
        check_crontab(cron)
    except ValueError as exc:
        raise ConfigError(
            f"{where}: [schedule] cron = {cron!r} is not a valid crontab expression ({exc}); "
            'use five fields: minute hour day month weekday, e.g. "0 3 * * *"'
        ) from None


def _refuse_non_finite(value: Any, key: str) -> None:
    """nan and inf are valid TOML but no valid setting: ``sla_hours = nan`` would turn staleness off."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key} = {value} is not a finite number; write a plain number (nan and inf are not allowed)")
    for k, v in value.items() if isinstance(value, dict) else enumerate(value, 1) if isinstance(value, list) else ():
        # named as the messages name keys: "[freshness] sla_hours", "[[tables]] #2 max_bad_rows"
        sub = f"[[{key}]] #{k}" if key == "tables" else f"{key}[{k}]" if isinstance(k, int) else f"{key} {k}".strip()
        _refuse_non_finite(v, f"[{k}]" if not key and isinstance(v, dict) else sub)


def _refuse_secrets(src: dict[str, Any], where: str) -> None:
    for key in src:
        if key.lower() in _SECRET_KEYS:
            raise ConfigError(
                f"{where}: [source] {key} is a secret and is never read from the config file; remove it and use "
                "the SPCS session token (automatic in Snowpark Container Services), a named connection in "
                "connections.toml ([source] connection_name), key-pair authentication ([source] private_key_file "
                "with the passphrase in $SNOWFLAKE_PRIVATE_KEY_PASSPHRASE), or $SNOWFLAKE_PASSWORD"
            )


def _resolve(base: Path, p: str) -> Path:
    path = Path(os.path.expandvars(os.path.expanduser(p)))
    return path if path.is_absolute() else (base / path)
