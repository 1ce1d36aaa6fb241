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
    cfg, config_error = syncer.admin.load_app_config(CONFIG_PATH)
    if cfg is None:
        st.error(config_error)
        st.stop()
    if config_error:
        # A typo made while the server runs: keep the app usable on the config that last loaded.
        st.error(config_error, icon=":material/settings_alert:")
    st.session_state["syncer_config"] = cfg
    who = syncer.admin.identify(cfg, st.context.headers)

    # The startup step's own banner, only while it is news: once a later run has published, or the
    # data is being served (the pages then say what is wrong, each thing once), it is gone.
    banner = syncer.admin.startup_banner(cfg)
    st.session_state["startup_banner"] = banner
    if banner:
        st.error(banner, icon=":material/error:")

    with st.sidebar:
        st.markdown(f"**{who.user or 'unknown user'}** · {'operator' if who.operator else 'viewer'}")
        st.caption(who.reason)
        st.caption(f"Config: `{cfg.path}` · volume `{cfg.root}`")
        st.caption(f"Times in {st.context.timezone or 'UTC'}.")

    pages = [
        st.Page("pages/freshness.py", title="Freshness", icon=":material/schedule:", default=True),
        st.Page("pages/validation.py", title="Validation", icon=":material/fact_check:"),
        st.Page("pages/history.py", title="History", icon=":material/history:"),
        st.Page("pages/controls.py", title="Controls", icon=":material/tune:"),
        st.Page("pages/data_preview.py", title="Data preview", icon=":material/table_view:"),
        st.Page("pages/alerts.py", title="Alerts", icon=":material/notifications:"),
        # Reached from every place that names a run or a table (links carry ?id= / ?name=).
        st.Page("pages/run.py", title="Run", icon=":material/play_circle:", url_path="run", visibility="hidden"),
        st.Page("pages/table.py", title="Table", icon=":material/table_chart:", url_path="table", visibility="hidden"),
    ]
    st.navigation(pages).run()
