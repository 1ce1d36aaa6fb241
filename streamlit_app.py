"""Volume Data Sync — the admin app: `streamlit run streamlit_app.py`.

How startup-before-UI works (Streamlit 1.67): `streamlit run` parses this file, finds the `st.App`
assigned to `app` and serves it with uvicorn, which imports this file once as the module
`streamlit_app`. That import takes the first branch below and builds the server: its lifespan runs
once per server process, before any page is served and even when nobody visits. It starts the
startup step (repair, then a sync unless the data is fresh) and the daily scheduler, and
`StartupGate` answers page requests with 503 until the startup step has finished. `/ready` is the
readiness probe. For every browser rerun Streamlit executes this same file as the module
`__main__`; that takes the second branch: the page router. Pages live in `pages/` and call only the
`syncer` public face.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

import syncer
import syncer.admin

HERE = Path(__file__).resolve().parent
CONFIG_PATH = syncer.admin.app_config_path(HERE)

if __name__ != "__main__":
    # Imported by the server (uvicorn), once per process: the ASGI app, its lifespan and routes.
    from starlette.middleware import Middleware
    from starlette.routing import Route
    from streamlit.runtime.pages_manager import PagesManager

    # `pages/` holds st.navigation pages, not Streamlit's older auto-discovered pages folder, but
    # Streamlit only learns that when a session first calls st.navigation: until then, a first
    # visit straight to /controls would run pages/controls.py on its own, without this router.
    # Say it now, once per process, exactly as st.navigation does.
    PagesManager.uses_pages_directory = False

    app = st.App(
        __file__,
        lifespan=syncer.admin.serving_lifespan(CONFIG_PATH),
        routes=[
            Route("/ready", syncer.admin.ready_endpoint(CONFIG_PATH), methods=["GET"]),
            Route(
                "/metrics",
                syncer.admin.metrics_endpoint(CONFIG_PATH, lambda: syncer.admin.startup_state()["phase"]),
                methods=["GET"],
            ),
        ],
        middleware=[Middleware(syncer.admin.StartupGate)],
    )
else:
    # Executed for every rerun of every browser session: shared frame + navigation.
    st.set_page_config(page_title="Volume Data Sync", page_icon=":material/sync:", layout="wide")
    try:
        cfg = syncer.load_config(CONFIG_PATH)
    except syncer.ConfigError as exc:
        st.error(str(exc))
        st.stop()
    st.session_state["syncer_config"] = cfg
    who = syncer.admin.identify(cfg, st.context.headers)

    start = syncer.admin.startup_state()
    result = start.get("result") or {}
    if start["phase"] == "unservable":
        st.error(
            f"Startup could not publish any data ({result.get('action')}: {result.get('reason')}). Operators can re-sync from Controls."
        )
    elif start["phase"] == "error":
        st.error(f"Startup failed: {start.get('error')}")
    elif start["phase"] == "done" and (result.get("action") in ("failed", "busy") or result.get("run_status") == "partial"):
        st.warning(f"Startup sync {result.get('run_status') or result['action']}: {result.get('reason')}")

    with st.sidebar:
        st.markdown(f"**{who.user or 'unknown user'}** · {'operator' if who.operator else 'viewer'}")
        st.caption(who.reason)
        st.caption(f"Config: `{cfg.path}` · volume `{cfg.root}`")

    pages = [
        st.Page("pages/freshness.py", title="Freshness", icon=":material/schedule:", default=True),
        st.Page("pages/validation.py", title="Validation", icon=":material/fact_check:"),
        st.Page("pages/history.py", title="History", icon=":material/history:"),
        st.Page("pages/controls.py", title="Controls", icon=":material/tune:"),
        st.Page("pages/data_preview.py", title="Data preview", icon=":material/table_view:"),
        st.Page("pages/alerts.py", title="Alerts", icon=":material/notifications:"),
    ]
    st.navigation(pages).run()
