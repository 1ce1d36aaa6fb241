"""The validated configuration: frozen dataclasses, built once by :mod:`syncer.config.parse`.

Nothing downstream re-validates: a ``Config`` that exists is a config that passed every check.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path

from syncer._exceptions import ConfigError

__all__ = [
    "FORMATS",
    "SNOWFLAKE_KEYS",
    "AlertsConfig",
    "Config",
    "Reference",
    "SnowflakeNotifyConfig",
    "SourceConfig",
    "TableConfig",
    "WebhookConfig",
    "suggest",
]

#: format name -> file extension
FORMATS = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl", "arrow": "arrow"}

#: [source] keys of kind = "snowflake" (connection order: SPCS token file, named connection, these).
SNOWFLAKE_KEYS = (
    "connection_name",
    "account",
    "host",
    "user",
    "role",
    "warehouse",
    "database",
    "schema",
    "authenticator",
    "private_key_file",
)


def suggest(word: str, options: list[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``options``, or ``""``."""
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


@dataclass(frozen=True)
class SourceConfig:
    kind: str = "duckdb"
    path: Path | None = None
    #: DuckDB's memory_limit: "auto" (derived per query, see syncer._memory) or a size
    memory_limit: str = "auto"
    #: the most DuckDB's memory_limit may be in this container (bytes; set at load, 0 = not computed)
    memory_ceiling: int = 0
    threads: int = 1
    # kind = "snowflake" (see syncer.sources.snowflake_connect for the connection order)
    connection_name: str | None = None
    account: str | None = None
    host: str | None = None
    user: str | None = None
    role: str | None = None
    warehouse: str | None = None
    database: str | None = None
    schema: str | None = None
    authenticator: str | None = None
    private_key_file: Path | None = None


@dataclass(frozen=True)
class Reference:
    """A declared relationship: every non-null ``columns`` tuple of the table must appear as
    ``target_columns`` in table ``target`` of the same snapshot (checked in the written files)."""

    columns: tuple[str, ...]
    target: str
    target_columns: tuple[str, ...]
    #: "error" fails the referencing table (its old data is kept); "warn" publishes and records
    severity: str = "error"

    @property
    def label(self) -> str:
        """``participant_id -> participants.participant_id`` (composite keys comma-separated)."""
        return f"{','.join(self.columns)} -> {self.target}.{','.join(self.target_columns)}"


@dataclass(frozen=True)
class TableConfig:
    name: str
    source: str | None = None
    query: str | None = None
    primary_key: tuple[str, ...] = ()
    format: str = "parquet"
    exclude_columns: tuple[str, ...] = ()
    not_null: tuple[str, ...] = ()
    allow_empty: bool = False
    max_bad_rows: int = 0
    references: tuple[Reference, ...] = ()
    #: stream (Arrow batches through the container) | engine (the warehouse writes the files) | auto
    export: str = "stream"

    @property
    def extension(self) -> str:
        return FORMATS[self.format]

    @property
    def file_name(self) -> str:
        return f"{self.name}.{self.extension}"


# --- [alerts] (parsed by syncer.config.alerts) ----------------------------------------------------


@dataclass(frozen=True)
class WebhookConfig:
    """One ``[[alerts.webhooks]]``: a JSON POST (``format = "slack"``: Slack's ``{"text": ...}``)."""

    url: str
    format: str = "json"
    name: str = "webhook"


@dataclass(frozen=True)
class SnowflakeNotifyConfig:
    """One ``[[alerts.snowflake]]``: ``SYSTEM$SEND_SNOWFLAKE_NOTIFICATION`` through a notification integration."""

    integration: str
    type: str = "email"  # email | webhook | queue
    subject: str = "Volume Data Sync alert"
    recipients: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"snowflake:{self.integration}"


@dataclass(frozen=True)
class AlertsConfig:
    """``[alerts]``: where alerts go and how hard delivery tries (never on the sync's critical path)."""

    enabled: bool = True
    timeout_seconds: float = 5.0
    retries: int = 3
    backoff_seconds: float = 1.0
    exit_deadline_seconds: float = 10.0
    queue_size: int = 100
    webhooks: tuple[WebhookConfig, ...] = ()
    snowflake: tuple[SnowflakeNotifyConfig, ...] = ()


@dataclass(frozen=True)
class Config:
    path: Path | None
    source: SourceConfig
    root: Path
    retain: int = 7
    #: the group that may read quarantine files besides the syncing user (``[volume] quarantine_group``)
    quarantine_group: str | None = None
    quarantine_gid: int | None = None
    sla_hours: float = 24.0
    skip_startup_if_younger_than_hours: float = 20.0
    cron: str = "0 3 * * *"
    timezone: str = "UTC"
    misfire_grace_seconds: int = 3600
    batch_rows: int = 32_768
    #: the Arrow bytes one batch aims at; rows per batch come from the table's row width
    batch_bytes: int = 8 * 2**20
    row_group_rows: int = 131_072
    compression: str = "zstd"
    writers: int = 0  # Parquet encoder threads per big table; 0 = one per CPU core (at most 4)
    time_budget_seconds: float = 600.0
    #: a run still going after this long is stopped (default: three time budgets)
    watchdog_seconds: float = 1800.0
    #: export = "auto" tables with at least this many source rows go through the engine
    engine_min_rows: int = 1_000_000_000  # above the measured range: on 2 cores the engine lost at 5M, 20M and 100M rows (README)
    operators: tuple[str, ...] = ()
    allow_local_operator: bool = False
    retry_attempts: int = 3
    retry_backoff_seconds: float = 1.0
    retry_max_backoff_seconds: float = 30.0
    tables: tuple[TableConfig, ...] = field(default_factory=tuple)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)

    def parquet_parts(self, rows: int) -> int:
        """How many part files a Parquet table of ``rows`` rows is written as: one per encoder
        thread when every part gets at least two full row groups, else a single file."""
        n = self.writers or min(os.cpu_count() or 1, 4)
        while n > 1 and rows < 2 * n * self.row_group_rows:
            n -= 1
        return n

    def table(self, name: str) -> TableConfig:
        for t in self.tables:
            if t.name == name:
                return t
        known = [t.name for t in self.tables]
        raise ConfigError(f"unknown table {name!r}{suggest(name, known)}; configured: {', '.join(known)}")
