"""What the admin app's server runs besides the pages.

* **Startup before UI.** :func:`serving_lifespan` is handed to Streamlit 1.67's
  ``st.App(..., lifespan=...)``: once per server process, before any page is served and even with no
  visitor, it starts the startup step (repair; sync unless fresh) on a background thread and the
  daily scheduler. :class:`StartupGate` answers page and websocket requests with 503 until that
  step has finished, so nobody sees a half-started app, while ``/ready`` and ``/_stcore/health``
  keep answering. If the startup sync fails the previous snapshot is served and the pages say so.
* **Readiness.** :func:`readiness` backs ``GET /ready``: 200 with the snapshot, staleness and tables
  once data is served; 503 with the reason before.
* **Operator actions.** :func:`request_sync` and :func:`request_rollback` check the operator
  themselves (never trusting that the page hid the button), then run through the process-wide job
  runner or the engine's rollback. Each is audited with the user.
* **Read models for the pages**: :func:`freshness`, :func:`rollback_preview`, :func:`quarantined`.

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
from syncer._clock import iso, parse_iso
from syncer._config import Config, load_config
from syncer._exceptions import ConfigError, LockHeldError, SyncError
from syncer._log import configure_logging
from syncer.admin.auth import record_event, require_operator
from syncer.admin.jobs import Job, job_runner
from syncer.engine import rollback, snapshots, startup, status
from syncer.schedule.scheduler import next_fire, scheduler_info, start_scheduler, stop_scheduler
from syncer.volume.history import History
from syncer.volume.layout import Volume

__all__ = [
    "StartupGate",
    "app_config_path",
    "begin_startup",
    "freshness",
    "open_history",
    "quarantined",
    "read_quarantined",
    "readiness",
    "ready_endpoint",
    "request_rollback",
    "request_sync",
    "rollback_preview",
    "serving_lifespan",
    "startup_state",
]

log = logging.getLogger("syncer")


def app_config_path(app_dir: str | os.PathLike) -> Path:
    """The admin app's config: ``$SYNCER_CONFIG``, else ``sync.toml`` next to ``streamlit_app.py``."""
    env = os.environ.get("SYNCER_CONFIG")
    return Path(env) if env else Path(app_dir) / "sync.toml"


def open_history(cfg: Config) -> History:
    return History(Volume(cfg.root).db_path)


# --- the startup step, once per process -------------------------------------------------------------

_state_lock = threading.Lock()
_state: dict[str, Any] = {"phase": "idle"}
_finished = threading.Event()


def startup_state() -> dict[str, Any]:
    """Where this process's startup step is: phase ``idle`` (not started: no server lifespan, e.g.
    AppTest), ``starting``, ``done`` (data can be served), ``unservable`` (startup ran, nothing to
    serve) or ``error`` (the config could not be loaded, or the step crashed); plus its result."""
    with _state_lock:
        return dict(_state)


def _set_state(**values: Any) -> None:
    with _state_lock:
        _state.update(values)


def begin_startup(cfg: Config, *, user: str = "startup", on_done: Callable[[], None] | None = None) -> bool:
    """Run the startup step on a background thread, once per process; False if already begun."""
    with _state_lock:
        if _state.get("phase") not in (None, "idle"):
            return False
        _state.clear()
        _state.update(phase="starting", started_at=iso(clock.utcnow()), config=str(cfg.path) if cfg.path else None)
    _finished.clear()

    def run() -> None:
        try:
            result = startup(cfg, user=user)
        except Exception as exc:  # startup() handles SyncError itself; anything here is unexpected
            log.exception("startup step crashed")
            _set_state(phase="error", error=f"{type(exc).__name__}: {exc}", finished_at=iso(clock.utcnow()))
        else:
            phase = "done" if result["servable"] else "unservable"
            _set_state(phase=phase, result=_summary(result), finished_at=iso(clock.utcnow()))
            log.info(
                "startup %s (%s); serving %s",
                result["action"],
                result.get("reason") or "-",
                result["snapshot_id"],
                extra={"step": "startup"},
            )
        finally:
            _finished.set()
            if on_done is not None:
                on_done()

    threading.Thread(target=run, name="syncer-startup", daemon=True).start()
    return True


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    """The startup result without the bulky per-check run report."""
    run = result.get("run") or {}
    return {
        "action": result["action"],
        "reason": result.get("reason") or run.get("error"),
        "run_status": run.get("status"),
        "snapshot_id": result["snapshot_id"],
        "servable": result["servable"],
        "fallback": result.get("fallback", False),
        "stale_tables": result.get("stale_tables", []),
        "repair": (result.get("repair") or {}).get("actions", []),
    }


def wait_for_startup(timeout: float | None = None) -> bool:
    return _finished.wait(timeout)


def _reset_for_tests() -> None:
    """Forget this process's startup step (tests start several servers' worth in one process)."""
    with _state_lock:
        _state.clear()
        _state["phase"] = "idle"
    _finished.clear()


def startup_finished() -> bool:
    return startup_state()["phase"] in ("done", "unservable", "error")


# --- readiness --------------------------------------------------------------------------------------


def readiness(cfg: Config | None) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) for ``GET /ready``: 200 once data is served, 503 before."""
    state = startup_state()
    if state["phase"] in ("idle", "starting"):
        return 503, {"ready": False, "phase": state["phase"], "reason": "the startup step has not finished"}
    if cfg is None:
        return 503, {"ready": False, "phase": state["phase"], "reason": state.get("error") or "no configuration"}
    try:
        st = status(cfg)
    except SyncError as exc:
        return 503, {"ready": False, "phase": state["phase"], "reason": str(exc)}
    if st["snapshot"] is None:
        reason = "; ".join(st["warnings"]) or "no snapshot is published"
        start = state.get("result") or {}
        if start.get("reason"):
            reason = f"{reason} (startup {start['action']}: {start['reason']})"
        return 503, {"ready": False, "phase": state["phase"], "snapshot": None, "reason": reason}
    return 200, {
        "ready": True,
        "snapshot": st["snapshot"]["id"],
        "created_at": st["snapshot"]["created_at"],
        "stale": st["stale"],
        "tables": {
            t["name"]: {"rows": t["rows"], "age_seconds": t["age_seconds"], "stale": t["stale"], "status": t["status"]}
            for t in st["tables"]
        },
        "startup": (state.get("result") or {}).get("action"),
        "next_run": _next_run(cfg),
    }


def _next_run(cfg: Config) -> str | None:
    """The running scheduler's next fire time; without one (CLI, AppTest), the cron's."""
    info = scheduler_info()
    if info is not None:
        return info["next_run"]
    return next_fire(cfg)


# --- the ASGI pieces handed to st.App --------------------------------------------------------------------

#: requests that pass the startup gate: probes must answer while the startup step runs
_OPEN_PATHS = ("/ready", "/_stcore/health")

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
            _set_state(phase="error", error=str(exc), finished_at=iso(clock.utcnow()))
            _finished.set()
            yield {"config": None}
            return
        begin_startup(cfg)
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


# --- operator actions ---------------------------------------------------------------------------------


def request_sync(cfg: Config, headers: Any, tables: Sequence[str] | None = None) -> Job:
    """Start a manual sync (all tables, or ``tables``) on the job runner, as the operator in ``headers``.

    Raises :class:`NotAuthorizedError` (recorded) for a non-operator, :class:`ConfigError` for an
    unknown table, :class:`LockHeldError` while another job of this app runs. A writer in another
    process is found when the job starts: the job ends ``busy`` with the holder named.
    """
    who = require_operator(cfg, headers, "sync", tables=list(tables) if tables else "all")
    names = [cfg.table(n).name for n in tables] if tables else None

    def work(progress: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        from syncer.engine import sync

        try:
            return sync(cfg, names, trigger="manual", user=who.user, progress=progress)
        except LockHeldError as exc:
            record_event(cfg, "busy", user=who.user, action="sync", reason=str(exc))
            raise

    label = "re-sync of " + (", ".join(names) if names else "all tables")
    try:
        return job_runner().submit("sync", work, label=label, user=who.user, tables_total=len(names or cfg.tables))
    except LockHeldError as exc:
        record_event(cfg, "busy", user=who.user, action="sync", reason=str(exc))
        raise


def request_rollback(cfg: Config, headers: Any, to: str) -> dict[str, Any]:
    """Point ``current`` at snapshot ``to``, as the operator in ``headers`` (audited by the engine)."""
    who = require_operator(cfg, headers, "rollback", to=to)
    running = job_runner().active()
    if running is not None:
        raise LockHeldError(f"{running.label} started by {running.user} is still running; roll back after it finishes")
    return rollback(cfg, to, user=who.user)


# --- read models for the pages --------------------------------------------------------------------------


def _state_of(t: dict[str, Any], failed_last_run: set[str]) -> str:
    if t["status"] == "missing":
        return "failed" if t["name"] in failed_last_run else "missing"
    if t["status"] == "carried_over":
        return "carried over"
    if t["stale"]:
        return "stale"
    return "fresh"


def freshness(cfg: Config) -> dict[str, Any]:
    """Everything the Freshness page shows, one row per configured table."""
    st = status(cfg)
    last = st["last_run"]
    hist = open_history(cfg)
    failed_last: set[str] = set()
    if last is not None:
        failed_last = {r["table_name"] for r in hist.table_results(last["id"]) if r["status"] == "failed"}
    origin = _origins(cfg, st)
    rows = []
    for t in st["tables"]:
        age_h = t["age_seconds"] / 3600 if t["age_seconds"] is not None else None
        rows.append(
            {
                "table": t["name"],
                "rows": t["rows"],
                "exported_at": t["exported_at"],
                "age_hours": round(age_h, 2) if age_h is not None else None,
                "sla": "n/a" if age_h is None else ("over SLA" if t["stale"] else "within SLA"),
                "status": _state_of(t, failed_last),
                "snapshot": origin.get(t["name"]),
                "error": t.get("error"),
            }
        )
    fresh = sum(1 for r in rows if r["status"] == "fresh")
    banners = list(st["warnings"])
    if last is not None and last["status"] in ("failed", "aborted", "partial"):
        banners.insert(
            0, f"the last run ({last['trigger']}, {last['started_at']}) {last['status']}: {last.get('error') or ''}".rstrip(": ")
        )
    return {
        "snapshot": st["snapshot"],
        "sla_hours": cfg.sla_hours,
        "tables": rows,
        "fresh": fresh,
        "total": len(rows),
        "last_run": last,
        "running": st["running"],
        "next_run": _next_run(cfg),
        "scheduler": scheduler_info(),
        "banners": banners,
    }


def _origins(cfg: Config, st: dict[str, Any]) -> dict[str, str]:
    """For each table, the snapshot whose export produced the data ``current`` holds.

    A table that was not re-exported is hard-linked into the next snapshot with its manifest entry,
    so the origin is the oldest retained snapshot with the same ``exported_at``; if that one was
    removed by retention, the oldest retained one that still has it.
    """
    if st["snapshot"] is None:
        return {}
    out: dict[str, str] = {t["name"]: t["exported_in"] for t in st["tables"] if t.get("exported_in")}
    want = {t["name"]: t["exported_at"] for t in st["tables"] if t["exported_at"]}
    for snap in snapshots(cfg):  # oldest first
        for name, t in snap["tables"].items():
            if name in want and name not in out and t["exported_at"] == want[name]:
                out[name] = snap["id"]
    return out


def rollback_preview(cfg: Config, to: str) -> dict[str, Any]:
    """What a rollback to ``to`` changes, table by table: rows and ages now and after."""
    snaps = {s["id"]: s for s in snapshots(cfg)}
    if to not in snaps:
        raise ConfigError(f"snapshot {to} is not retained; choose one of: {', '.join(snaps) or 'none'}")
    cur = next((s for s in snaps.values() if s["current"]), None)
    now = clock.utcnow()

    def age(t: dict[str, Any] | None) -> float | None:
        return round((now - parse_iso(t["exported_at"])).total_seconds() / 3600, 2) if t else None

    names = [t.name for t in cfg.tables]
    extra = [n for n in snaps[to]["tables"] if n not in names]
    rows = []
    for name in names + extra:
        a = (cur or {}).get("tables", {}).get(name)
        b = snaps[to]["tables"].get(name)
        rows.append(
            {
                "table": name,
                "rows_now": a["rows"] if a else None,
                "rows_after": b["rows"] if b else None,
                "rows_change": (b["rows"] if b else 0) - (a["rows"] if a else 0),
                "age_now_hours": age(a),
                "age_after_hours": age(b),
                "exported_now": a["exported_at"] if a else None,
                "exported_after": b["exported_at"] if b else None,
                "changes": a is None or b is None or a["exported_at"] != b["exported_at"] or a["rows"] != b["rows"],
            }
        )
    return {
        "from": cur["id"] if cur else None,
        "to": to,
        "to_created_at": snaps[to]["created_at"],
        "ok": snaps[to]["ok"],
        "problems": snaps[to]["problems"],
        "tables": rows,
    }


_QUARANTINE_FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".arrow": "arrow"}


def quarantined(cfg: Config, snapshot_id: str | None = None) -> list[dict[str, Any]]:
    """Quarantined record files of a snapshot (default: the current one), one entry per file."""
    vol = Volume(cfg.root)
    sid = snapshot_id or vol.current_id()
    if sid is None:
        return []
    folder = vol.quarantine / sid
    if not folder.is_dir():
        return []
    out = []
    for p in sorted(folder.rglob("*")):
        fmt = _QUARANTINE_FORMATS.get(p.suffix)
        if p.is_file() and fmt:
            out.append(
                {"table": p.stem, "file": str(p.relative_to(folder)), "format": fmt, "bytes": p.stat().st_size, "path": str(p)}
            )
    return out


def read_quarantined(entry: dict[str, Any], limit: int | None = None) -> Any:
    """The records of one quarantine file as a pandas DataFrame (first ``limit`` rows)."""
    import pyarrow as pa

    path, fmt = Path(entry["path"]), entry["format"]
    if fmt == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
    elif fmt == "csv":
        import pyarrow.csv as pcsv

        table = pcsv.read_csv(path)
    elif fmt == "jsonl":
        # Quarantined rows are bad by definition (mixed types, missing keys): pandas reads them as they are.
        import pandas as pd

        return pd.read_json(path, lines=True, nrows=limit, dtype=False)
    else:
        with pa.memory_map(str(path)) as src:
            table = pa.ipc.open_file(src).read_all()
    if limit is not None:
        table = table.slice(0, limit)
    return table.to_pandas()
