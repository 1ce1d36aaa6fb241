"""What the admin app's server runs besides the pages.

* **Startup before UI.** :func:`serving_lifespan` is handed to Streamlit 1.67's
  ``st.App(..., lifespan=...)``: once per server process, before any page is served and even with no
  visitor, it starts the startup step (repair; sync unless fresh) on a background thread and the
  daily scheduler. :class:`StartupGate` answers page and websocket requests with 503 until that
  step has finished, so nobody sees a half-started app, while ``/ready`` and ``/_stcore/health``
  keep answering. If the startup sync fails the previous snapshot is served and the pages say so.
* **Readiness.** :func:`readiness` backs ``GET /ready``: 503 while the startup step runs, then 200
  with the data's state (ok, stale, degraded, missing) and why, so operators can always reach the
  app to fix what is wrong.

The operator actions are in :mod:`syncer.admin.actions`, the pages' read models in
:mod:`syncer.admin.models`.

Starlette (Streamlit's server) is imported lazily, so ``import syncer`` stays light for apps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from syncer import _clock as clock
from syncer._clock import iso
from syncer._exceptions import ConfigError, SyncError
from syncer._log import configure_logging
from syncer.admin.freshness_model import FreshnessView, freshness
from syncer.admin.metrics import serve_metrics_port
from syncer.config import Config, load_config
from syncer.engine import startup
from syncer.engine.results import StartupResult
from syncer.engine.supervised import sync_in_child
from syncer.schedule.scheduler import start_scheduler, stop_scheduler

__all__ = [
    "StartupGate",
    "app_config_path",
    "begin_startup",
    "readiness",
    "ready_endpoint",
    "serving_lifespan",
    "startup_state",
    "wait_for_startup",
]

log = logging.getLogger("syncer")


def app_config_path(app_dir: str | os.PathLike) -> Path:
    """The admin app's config: ``$SYNCER_CONFIG``, else ``sync.toml`` next to ``streamlit_app.py``."""
    env = os.environ.get("SYNCER_CONFIG")
    return Path(env) if env else Path(app_dir) / "sync.toml"


# --- the startup step, once per process -------------------------------------------------------------


class StartupStep:
    """The startup step of one server process: its phase, its result, and an event when it is done.

    One instance per process (:data:`STEP`); a test that plays several servers in one process gives
    each its own instance (``monkeypatch.setattr(server, "STEP", StartupStep())``).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {"phase": "idle"}
        self.finished = threading.Event()

    def state(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._state)

    def update(self, **values: Any) -> None:
        with self._lock:
            self._state.update(values)

    def claim(self, cfg: Config) -> bool:
        """Mark the step as starting; False if it was already begun in this process."""
        with self._lock:
            if self._state.get("phase") not in (None, "idle"):
                return False
            self._state = {"phase": "starting", "started_at": iso(clock.utcnow()), "config": str(cfg.path) if cfg.path else None}
        self.finished.clear()
        return True


#: this process's startup step
STEP = StartupStep()


def startup_state() -> dict[str, Any]:
    """Where this process's startup step is: phase ``idle`` (not started: no server lifespan, e.g.
    AppTest), ``starting``, ``done`` (data can be served), ``unservable`` (startup ran, nothing to
    serve) or ``error`` (the config could not be loaded, or the step crashed); plus its result."""
    return STEP.state()


def begin_startup(cfg: Config, *, user: str = "startup", on_done: Callable[[], None] | None = None) -> bool:
    """Run the startup step on a background thread, once per process; False if already begun."""
    step = STEP
    if not step.claim(cfg):
        return False

    def run() -> None:
        try:
            result = startup(cfg, user=user, run_sync=sync_in_child)  # the sync in a child: an abort is not the server's
        except Exception as exc:  # startup() handles SyncError itself; anything here is unexpected
            log.exception("startup step crashed")
            step.update(phase="error", error=f"{type(exc).__name__}: {exc}", finished_at=iso(clock.utcnow()))
        else:
            phase = "done" if result.servable else "unservable"
            step.update(phase=phase, result=_summary(result), finished_at=iso(clock.utcnow()))
            log.info(
                "startup %s (%s); serving %s", result.action, result.reason or "-", result.snapshot_id, extra={"step": "startup"}
            )
        finally:
            step.finished.set()
            if on_done is not None:
                on_done()

    threading.Thread(target=run, name="syncer-startup", daemon=True).start()
    return True


def _summary(result: StartupResult) -> dict[str, Any]:
    """The startup result without the bulky per-check run report."""
    return {
        "action": result.action,
        "reason": result.reason or (result.run.error if result.run else None),
        "run_status": result.run.status if result.run else None,
        "snapshot_id": result.snapshot_id,
        "servable": result.servable,
        "fallback": result.fallback,
        "stale_tables": list(result.stale_tables),
        "repair": list(result.repair.actions),
    }


def wait_for_startup(timeout: float | None = None) -> bool:
    return STEP.finished.wait(timeout)


def startup_finished() -> bool:
    return startup_state()["phase"] in ("done", "unservable", "error")


# --- readiness --------------------------------------------------------------------------------------


def readiness(cfg: Config | None) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) for ``GET /ready``: 503 only while the startup step runs.

    Once it has finished the answer is 200 whatever state the data is in, and the body says which
    (``data``: ``ok``, ``stale``, ``degraded``, ``missing``; ``reason`` in one sentence). In SPCS the
    readiness probe decides whether the endpoint sends traffic to the (only) instance: a 503 for
    missing or broken data would lock the operators out of the very app that repairs it.
    """
    state = startup_state()
    if state["phase"] in ("idle", "starting"):
        return 503, {"ready": False, "phase": state["phase"], "reason": "the startup step has not finished"}
    start = (state.get("result") or {}).get("action")
    if cfg is None:
        why = state.get("error") or "the configuration cannot be loaded"
        return 200, {"ready": True, "phase": state["phase"], "data": "unknown", "snapshot": None, "stale": True, "reason": why}
    try:
        view = freshness(cfg)
    except SyncError as exc:
        return 200, {
            "ready": True,
            "phase": state["phase"],
            "data": "unknown",
            "snapshot": None,
            "stale": True,
            "reason": str(exc),
        }
    data, reason = _data_state(view)
    start_reason = (state.get("result") or {}).get("reason")
    if data == "missing" and start_reason:
        reason = f"{reason} (startup {start}: {start_reason})"
    return 200, {
        "ready": True,
        "phase": state["phase"],
        "data": data,
        "reason": reason,
        "snapshot": view.snapshot["id"] if view.snapshot else None,
        "created_at": view.snapshot["created_at"] if view.snapshot else None,
        "fallback": view.fallback,
        "stale": any(t.sla != "within SLA" or t.status == "future" for t in view.tables),
        "tables": {
            t.table: {
                "rows": t.rows,
                "age_seconds": round(t.age_hours * 3600, 1) if t.age_hours is not None else None,
                "stale": t.sla != "within SLA" or t.status == "future",
                "status": t.status,
            }
            for t in view.tables
        },
        "startup": start,
        "next_run": view.next_run,
        "consistency": view.consistency,
    }


def _data_state(view: FreshnessView) -> tuple[str, str]:
    """(``ok`` | ``stale`` | ``degraded`` | ``missing``, why) for the body of ``/ready``."""
    if view.snapshot is None:
        return "missing", next((text for _, text in view.banners), "nothing is published yet")
    errors = [t.table for t in view.tables if t.status in ("failed", "missing", "future")]
    if view.fallback or errors:
        why = next((text for sev, text in view.banners if sev == "error"), "")
        return "degraded", why or f"table(s) without servable data: {', '.join(errors)}"
    stale = [t.table for t in view.tables if t.status == "stale"]
    if stale:
        return "stale", f"over the {view.sla_hours:g} h freshness SLA: {', '.join(stale)}"
    return "ok", f"snapshot {view.snapshot['id']}: {view.fresh} of {view.total} tables fresh"


# --- the ASGI pieces handed to st.App --------------------------------------------------------------------

#: requests that pass the startup gate: probes must answer while the startup step runs
_OPEN_PATHS = ("/ready", "/metrics", "/_stcore/health")

_STARTING_PAGE = """<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>Volume Data Sync — starting</title></head>
<body style="font-family:sans-serif;margin:3rem">
<h2>Volume Data Sync is starting</h2>
<p>The startup export is running (repair, then a sync unless the data is fresh).
This page reloads itself and opens the admin app as soon as it is done.</p></body></html>"""


class StartupGate:
    """ASGI middleware: 503 for pages and websockets until the startup step has finished."""

    def __init__(self, app: Any, open_paths: Sequence[str] = _OPEN_PATHS) -> None:
        self.app = app
        self.open_paths = tuple(open_paths)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and not startup_finished():
            path = scope.get("path", "").rstrip("/")
            if not path.endswith(self.open_paths):
                if scope["type"] == "http":
                    from starlette.responses import HTMLResponse

                    response = HTMLResponse(_STARTING_PAGE, status_code=503, headers={"Retry-After": "2"})
                    await response(scope, receive, send)
                else:
                    from starlette.websockets import WebSocketClose

                    await WebSocketClose(code=1013, reason="starting up")(scope, receive, send)
                return
        await self.app(scope, receive, send)


def ready_endpoint(config_path: Path) -> Callable[[Any], Any]:
    """The ``GET /ready`` handler (a Starlette endpoint)."""

    async def ready(_request: Any) -> Any:
        from starlette.responses import JSONResponse

        try:
            cfg: Config | None = load_config(config_path)
        except ConfigError:
            cfg = None
        code, body = await asyncio.to_thread(readiness, cfg)
        return JSONResponse(body, status_code=code, headers={"Cache-Control": "no-store"})

    return ready


def serving_lifespan(config_path: Path) -> Callable[[Any], contextlib.AbstractAsyncContextManager[dict[str, Any]]]:
    """The ``st.App`` lifespan: startup step + scheduler once per process, scheduler stopped at exit."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[dict[str, Any]]:
        configure_logging(os.environ.get("SYNCER_LOG_LEVEL", "INFO"))
        try:
            cfg = load_config(config_path)
        except ConfigError as exc:
            # Serve anyway: the pages show the error, /ready stays 503, nothing is written.
            log.error("%s", exc, extra={"step": "startup"})
            STEP.update(phase="error", error=str(exc), finished_at=iso(clock.utcnow()))
            STEP.finished.set()
            yield {"config": None}
            return
        begin_startup(cfg)
        # $SYNCER_METRICS_PORT: /metrics on a port of its own too (the SPCS private endpoint)
        serve_metrics_port(config_path, lambda: STEP.state()["phase"])
        # Started now, not after the startup sync: a scheduled run that meets the startup sync
        # steps aside (one writer), and the next run time is known from the first page view.
        start_scheduler(cfg)
        try:
            yield {"config": cfg}
        finally:
            # Uvicorn runs this on SIGTERM/SIGINT. A sync still running is abandoned safely: the
            # next run marks it aborted and sweeps its staging folder.
            stop_scheduler()

    return lifespan
