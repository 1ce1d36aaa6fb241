"""History: runs, their speed and time per step against the budget, and the audit trail."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

import syncer
import syncer.admin


def _over_time(df: pd.DataFrame, field: str, title: str, tooltip: list[str]) -> alt.Chart:
    """One line per trigger of ``field`` over the runs' start times."""
    return (
        alt.Chart(df)
        .mark_line(point=True)
        .encode(
            x=alt.X("started_at:T", title=None, axis=alt.Axis(format="%m-%d %H:%M")),
            y=alt.Y(f"{field}:Q", title=title),
            color="trigger:N",
            tooltip=tooltip,
        )
    )


cfg = st.session_state["syncer_config"]
st.title("History")

try:
    view = syncer.admin.history_view(cfg, limit=200, audit_limit=300)
except syncer.SyncError as exc:
    st.error(str(exc))
    st.stop()

RUN_COLUMNS = [*syncer.admin.RunRow.__dataclass_fields__]
runs = pd.DataFrame([r.to_json() for r in view.runs], columns=RUN_COLUMNS)
if runs.empty:
    st.info("No runs yet.")
else:
    runs["started_at"] = pd.to_datetime(runs["started_at"], utc=True)
    st.dataframe(
        runs[["started_at", "trigger", "user", "status", "duration_s", "rows", "bytes", "snapshot_id", "error"]],
        hide_index=True,
        column_config={
            "started_at": st.column_config.DatetimeColumn("started", format="YYYY-MM-DD HH:mm:ss"),
            "duration_s": st.column_config.NumberColumn("duration (s)", format="%.2f"),
            "rows": st.column_config.NumberColumn("rows", format="localized"),
            "bytes": st.column_config.NumberColumn("bytes", format="localized"),
        },
        key="runs_table",
    )
    done = pd.DataFrame([r.to_json() for r in view.finished], columns=RUN_COLUMNS)
    done["started_at"] = pd.to_datetime(done["started_at"], utc=True)
    if done.empty:
        st.caption("No run has finished yet.")
    else:
        left, right = st.columns(2)
        with left:
            st.subheader("Duration")
            st.altair_chart(_over_time(done, "duration_s", "seconds", ["id", "status", "duration_s"]), width="stretch")
        with right:
            st.subheader("Rows per second")
            chart = _over_time(done.fillna({"rows_per_s": 0}), "rows_per_s", "rows/s", ["id", "rows", "rows_per_s"])
            st.altair_chart(chart, width="stretch")

        st.subheader("Time per step against the time budget")
        if view.steps and view.slowest_s is not None:
            frame = pd.DataFrame([step.to_json() for step in view.steps], columns=["run", "step", "seconds"])
            budget_s, slowest = view.budget_s, view.slowest_s
            chart = (
                alt.Chart(frame)
                .mark_bar()
                .encode(
                    x=alt.X("run:N", sort=None, title="run", axis=alt.Axis(labelAngle=-45, labelLimit=240)),
                    y=alt.Y("seconds:Q", stack="zero", title="seconds"),
                    color="step:N",
                    tooltip=["run", "step", "seconds"],
                )
            )
            if slowest >= budget_s / 20:
                # Close enough to the budget for the line to be readable next to the bars.
                chart += (
                    alt.Chart(pd.DataFrame({"budget": [budget_s]}))
                    .mark_rule(color="#c62828", strokeDash=[6, 3])
                    .encode(y="budget:Q")
                )
                st.altair_chart(chart, width="stretch")
                st.caption(f"The dashed line is the time budget: {budget_s:g} s ([export] time_budget_seconds).")
            else:
                st.altair_chart(chart, width="stretch")
                st.caption(
                    f"The slowest run shown took {slowest:.1f} s, {slowest / budget_s:.1%} of the "
                    f"{budget_s:g} s time budget ([export] time_budget_seconds); the budget line is off this scale."
                )

st.subheader("Audit trail")
st.caption("Rollbacks, repairs, manual syncs and refused or blocked actions, with who did them.")
audit = pd.DataFrame([a.to_json() for a in view.audit], columns=[*syncer.admin.AuditRow.__dataclass_fields__])
if audit.empty:
    st.caption("Nothing recorded yet.")
else:
    st.dataframe(audit, hide_index=True, key="audit_table")
