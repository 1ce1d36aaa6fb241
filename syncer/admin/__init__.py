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

from syncer.admin.actions import request_rollback, request_sync
from syncer.admin.auth import USER_HEADER, Identity, identify, record_event, require_operator
from syncer.admin.consistency import CutRow, ReferenceRow, cut_rows, reference_rows, show_consistency, show_references
from syncer.admin.history_models import AuditRow, HistoryView, RunRow, StepTime, history_view
from syncer.admin.jobs import Job, JobRunner, job_runner
from syncer.admin.metrics import metrics_endpoint, serve_metrics_port
from syncer.admin.models import (
    CheckRow,
    FreshnessRow,
    FreshnessView,
    PreviewRow,
    QuarantineFile,
    RollbackPreview,
    freshness,
    open_history,
    quarantined,
    read_quarantined,
    rollback_preview,
    validation_rows,
)
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
    "STEP",
    "USER_HEADER",
    "AlertRow",
    "AuditRow",
    "CheckRow",
    "CutRow",
    "FreshnessRow",
    "FreshnessView",
    "HistoryView",
    "Identity",
    "Job",
    "JobRunner",
    "PreviewRow",
    "QuarantineFile",
    "ReferenceRow",
    "RollbackPreview",
    "RunRow",
    "StartupGate",
    "StartupStep",
    "StepTime",
    "app_config_path",
    "begin_startup",
    "cut_rows",
    "freshness",
    "history_view",
    "identify",
    "job_runner",
    "metrics_endpoint",
    "open_history",
    "quarantined",
    "read_quarantined",
    "readiness",
    "ready_endpoint",
    "recent_alerts",
    "record_event",
    "reference_rows",
    "request_rollback",
    "request_sync",
    "require_operator",
    "rollback_preview",
    "serve_metrics_port",
    "serving_lifespan",
    "show_consistency",
    "show_references",
    "startup_state",
    "validation_rows",
    "wait_for_startup",
]
