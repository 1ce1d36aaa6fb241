"""The admin app's pieces (what ``streamlit_app.py`` and ``pages/`` use), under their own name.

* serving: :func:`serving_lifespan`, :class:`StartupGate`, :func:`ready_endpoint`, :func:`readiness`,
  :func:`begin_startup`, :func:`startup_state`, :func:`app_config_path` (:mod:`.server`);
* who may act: :func:`identify`, :func:`require_operator`, :data:`USER_HEADER` (:mod:`.auth`);
* actions: :func:`request_sync`, :func:`request_rollback`, the job runner (:mod:`.actions`, :mod:`.jobs`);
* alerts: :func:`recent_alerts`, :class:`AlertRow` (:mod:`syncer.alerts`); metrics: :func:`metrics_endpoint`
  (:mod:`.metrics`);
* read models for the pages: :func:`freshness`, :func:`rollback_preview`, :func:`validation_rows`,
  :func:`quarantined`, :func:`read_quarantined`, :func:`open_history` (:mod:`.models`), and
  :func:`history_view` with :class:`RunRow`, :class:`StepTime`, :class:`AuditRow` (:mod:`.history_models`);
* consistency and references: :func:`show_consistency` (Freshness), :func:`show_references`
  (Validation), their rows :func:`cut_rows`, :func:`reference_rows` (:mod:`.consistency`).

Importing it loads the engine and Streamlit's server pieces on demand; an app that only reads the
volume imports :mod:`syncer` (the reader) and never this.
"""

from __future__ import annotations

from syncer.admin import fmt
from syncer.admin.actions import CurrentMovedError, request_repair, request_rollback, request_sync
from syncer.admin.auth import USER_HEADER, Identity, identify, record_event, require_operator
from syncer.admin.consistency import CutRow, ReferenceRow, cut_rows, reference_rows, show_consistency, show_references
from syncer.admin.detail import (
    GridCell,
    RunCheck,
    RunDetail,
    RunTable,
    SchemaChange,
    TableDetail,
    TableRun,
    TableSnapshot,
    run_detail,
    runs_grid,
    table_detail,
)
from syncer.admin.frame import load_app_config, startup_banner
from syncer.admin.freshness_model import STATES, FreshnessRow, FreshnessView, Served, collapse_error, freshness, served
from syncer.admin.history_models import AuditRow, HistoryView, RunRow, StepTime, history_view, step_name
from syncer.admin.jobs import Job, JobRunner, job_runner
from syncer.admin.metrics import metrics_endpoint, serve_metrics_port
from syncer.admin.models import (
    CheckRow,
    PreviewRow,
    QuarantineFile,
    RollbackPreview,
    open_history,
    quarantined,
    read_quarantined,
    rollback_default,
    rollback_preview,
    validation_rows,
)
from syncer.admin.preview import TablePreview, preview_table
from syncer.admin.server import (
    STEP,
    StartupGate,
    StartupStep,
    app_config_path,
    begin_startup,
    readiness,
    ready_endpoint,
    serving_lifespan,
    startup_state,
    wait_for_startup,
)
from syncer.alerts import AlertRow, recent_alerts

__all__ = [
    "STATES",
    "STEP",
    "USER_HEADER",
    "AlertRow",
    "AuditRow",
    "CheckRow",
    "CurrentMovedError",
    "CutRow",
    "FreshnessRow",
    "FreshnessView",
    "GridCell",
    "HistoryView",
    "Identity",
    "Job",
    "JobRunner",
    "PreviewRow",
    "QuarantineFile",
    "ReferenceRow",
    "RollbackPreview",
    "RunCheck",
    "RunDetail",
    "RunRow",
    "RunTable",
    "SchemaChange",
    "Served",
    "StartupGate",
    "StartupStep",
    "StepTime",
    "TableDetail",
    "TablePreview",
    "TableRun",
    "TableSnapshot",
    "app_config_path",
    "begin_startup",
    "collapse_error",
    "cut_rows",
    "fmt",
    "freshness",
    "history_view",
    "identify",
    "job_runner",
    "load_app_config",
    "metrics_endpoint",
    "open_history",
    "preview_table",
    "quarantined",
    "read_quarantined",
    "readiness",
    "ready_endpoint",
    "recent_alerts",
    "record_event",
    "reference_rows",
    "request_repair",
    "request_rollback",
    "request_sync",
    "require_operator",
    "rollback_default",
    "rollback_preview",
    "run_detail",
    "runs_grid",
    "serve_metrics_port",
    "served",
    "serving_lifespan",
    "show_consistency",
    "show_references",
    "startup_banner",
    "startup_state",
    "step_name",
    "table_detail",
    "ui",
    "validation_rows",
    "wait_for_startup",
]


def __getattr__(name: str) -> object:
    """``syncer.admin.ui`` (the pages' Streamlit helpers) on first use: importing :mod:`syncer.admin`
    for ``/ready`` or a test does not load Streamlit's script-runner pieces."""
    if name == "ui":
        import importlib

        return importlib.import_module("syncer.admin.ui")
    raise AttributeError(f"module 'syncer.admin' has no attribute {name!r}")
