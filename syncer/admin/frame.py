"""What the shared frame of the admin app (``streamlit_app.py``) shows around every page.

* :func:`load_app_config` keeps the app usable when ``sync.toml`` gets a typo while the server
  runs: the pages go on with the config that loaded last, under one banner naming the mistake.
* :func:`startup_banner` is the startup step's banner, shown only while it is news: it clears once
  data is served (each page then says what is wrong, each thing once) or a later run published.
"""

from __future__ import annotations

import threading
from pathlib import Path

import syncer.admin.fmt as fmt
from syncer._exceptions import ConfigError, HistoryError
from syncer.admin.freshness_model import collapse_error, served
from syncer.admin.server import startup_state
from syncer.config import Config, load_config
from syncer.volume.history import History
from syncer.volume.layout import Volume

__all__ = ["load_app_config", "startup_banner"]

_lock = threading.Lock()
#: the config that loaded last, per path (process-wide: every session of this server)
_last_good: dict[str, Config] = {}


def load_app_config(path: Path) -> tuple[Config | None, str | None]:
    """(config, error): the config at ``path``; on a :class:`ConfigError`, the one that loaded last
    in this process with the error to show, or (None, error) when none ever did."""
    key = str(path)
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        with _lock:
            last = _last_good.get(key)
        if last is None:
            return None, fmt.sentence(str(exc))
        text = fmt.sentence(str(exc)).rstrip(".")
        return last, (
            f"{text}{'' if text.endswith('?') else '.'} The app goes on with the configuration that loaded last; "
            "fix the file and reload the page (syncs started now use the last good configuration)."
        )
    with _lock:
        _last_good[key] = cfg
    return cfg, None


def startup_banner(cfg: Config) -> str | None:
    """The startup step's failure, while nothing is served and no later run has published; else None."""
    state = startup_state()
    if state["phase"] not in ("unservable", "error"):
        return None
    if served(cfg).manifest is not None:
        return None  # data is served again (or was all along): the pages say what is wrong
    finished = state.get("finished_at") or ""
    try:
        last = History(Volume(cfg.root).db_path).last_run()
    except HistoryError:
        last = None
    if last is not None and last["started_at"] > finished and last["status"] in ("ok", "partial"):
        return None
    if state["phase"] == "error":
        return f"The startup step failed: {state.get('error')}. Operators can re-sync from Controls."
    result = state.get("result") or {}
    reason = collapse_error(result.get("reason"), [t.name for t in cfg.tables])
    return f"Startup could not publish any data ({result.get('action')}: {reason}). Operators can re-sync from Controls."
