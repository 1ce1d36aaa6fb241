"""Run: one run in full — who and what started it, every table's steps with timings and attempts,
every check, the error text unabridged. Reached from every place that names a run (``?id=``).

While the run is still going the page redraws itself every few seconds.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

import syncer
import syncer.admin
from syncer.admin import fmt, ui

cfg = st.session_state["syncer_config"]
tz = ui.viewer_tz()
run_id = st.query_params.get("id")
st.title("Run")

if not run_id:
    runs = syncer.admin.history_view(cfg, limit=20, audit_limit=0).runs
    if not runs:
        st.info("No runs yet; this page shows one run in full once there is one.")
        st.stop()
    run_id = st.selectbox("Run", [r.id for r in runs], format_func=lambda i: i, key="run_pick")


def body() -> None:
    try:
        d = syncer.admin.run_detail(cfg, str(run_id))
    except syncer.SyncError as exc:
        st.error(fmt.sentence(str(exc)))
        st.page_link("pages/history.py", label="All runs on History", icon=":material/history:")
        st.stop()
        return
    r = d.run
    st.subheader(r.id)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Status", r.status)
    c2.metric("Trigger", r.trigger)
    c3.metric("Duration", fmt.duration(r.duration_s) if r.finished else "running…")
    c4.metric("Rows", fmt.number(r.rows))
    st.caption(
        f"Started {fmt.when(r.started_at, tz)} by **{r.user or 'unknown'}**"
        + (f" on {d.host} (pid {d.pid})" if d.host else "")
        + (f"; finished {fmt.local(r.finished_at, tz)}" if r.finished_at else "")
        + f". Tables asked for: {', '.join(d.tables_requested) if d.tables_requested else 'all'}."
    )
    if r.snapshot_id:
        st.markdown(f"Published snapshot **{r.snapshot_id}** ({fmt.bytes_text(r.bytes)}).")
    if r.error:
        st.error(fmt.sentence(r.error))
    if r.steps:
        st.markdown("**Steps:** " + " · ".join(f"{syncer.admin.step_name(k)} {fmt.duration(v)}" for k, v in r.steps.items()))

    st.subheader("Tables")
    if not d.tables:
        st.caption("No table result was recorded (the run ended before exporting, or is still starting).")
    else:
        frame = pd.DataFrame([t.to_json() for t in d.tables]).drop(columns=["attempt_log"])
        frame.insert(1, "page", [ui.table_url(t.table) for t in d.tables])
        frame["size"] = [fmt.bytes_text(t.bytes) for t in d.tables]
        frame["error"] = frame["error"].fillna("")
        frame["rows_per_s"] = [fmt.number(v) if v else "" for v in frame["rows_per_s"]]
        st.dataframe(
            frame[
                [
                    "table",
                    "page",
                    "status",
                    "rows",
                    "size",
                    "export_s",
                    "validate_s",
                    "total_s",
                    "rows_per_s",
                    "attempts",
                    "quarantined",
                    "error",
                ]
            ],
            hide_index=True,
            column_config={
                "page": st.column_config.LinkColumn("details", display_text="open"),
                "rows": st.column_config.NumberColumn("rows", format="localized"),
                "export_s": st.column_config.NumberColumn("export (s)", format="%.2f"),
                "validate_s": st.column_config.NumberColumn("validate (s)", format="%.2f"),
                "total_s": st.column_config.NumberColumn("total (s)", format="%.2f"),
                "rows_per_s": st.column_config.TextColumn("rows/s"),
                "quarantined": st.column_config.NumberColumn("quarantined", format="localized"),
                "error": st.column_config.TextColumn("error", width="large"),
            },
            key="run_tables",
        )
        for t in d.tables:
            if t.error or t.attempts > 1:
                with st.expander(f"{t.table}: {t.status}, {t.attempts} attempt(s)", expanded=bool(t.error)):
                    for a in t.attempt_log:
                        mark = "ok" if a.get("ok") else "failed"
                        retry = f"; retried after {a['retry_in_s']:g} s" if a.get("retry_in_s") is not None else ""
                        st.markdown(f"- attempt {a.get('attempt')}: {mark}{retry}")
                        if a.get("error"):
                            st.code(a["error"], language=None, wrap_lines=True)
                    if t.error:
                        st.code(t.error, language=None, wrap_lines=True)

    st.subheader("Checks")
    if not d.checks:
        st.caption("No check was recorded for this run.")
    else:
        st.dataframe(pd.DataFrame([c.to_json() for c in d.checks]), hide_index=True, key="run_checks")
    if d.events:
        st.subheader("Audited actions")
        st.dataframe(
            pd.DataFrame([{"at": fmt.local(e["at"], tz), "action": e["kind"], "user": e.get("user")} for e in d.events]),
            hide_index=True,
        )
    if not r.finished and st.session_state.get("run_page_polling") is None:
        st.session_state["run_page_polling"] = r.id
    elif r.finished and st.session_state.pop("run_page_polling", None):
        st.rerun(scope="app")  # finished while polling: redraw once without the timer


status = syncer.status(cfg)
running = status.last_run is not None and status.last_run["id"] == run_id and status.last_run["status"] == "running"
st.fragment(body, run_every=ui.REFRESH_S if running else None)()
