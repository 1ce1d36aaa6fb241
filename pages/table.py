"""Table: one table over time — its snapshots, rows, checks, schema changes, last success and last
failure with the reason. Reached from every place that names a table (``?name=``)."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

import syncer
import syncer.admin
from syncer.admin import fmt, ui

cfg = st.session_state["syncer_config"]
tz = ui.viewer_tz()
names = [t.name for t in cfg.tables]
st.title("Table")

name = st.query_params.get("name")
if name not in names:
    if name:
        st.error(f"There is no configured table {name!r}; configured tables: {', '.join(names)}.")
    name = st.selectbox("Table", names, key="table_pick")

try:
    d = syncer.admin.table_detail(cfg, str(name))
except syncer.SyncError as exc:
    st.error(fmt.sentence(str(exc)))
    st.stop()

st.subheader(d.name)
st.caption(
    f"Format {d.format} · source `{d.source}` · primary key {', '.join(d.primary_key) or 'none'} · "
    f"{len(d.snapshots)} retained snapshot(s) hold it."
)
c1, c2 = st.columns(2)
with c1:
    s = d.last_success
    st.markdown("**Last success**")
    if s:
        st.success(f"{fmt.when(s.started_at, tz)}: {fmt.number(s.rows)} rows in {fmt.duration(s.total_s)} ({s.trigger})")
        ui.run_link(s.run)
    else:
        st.caption("No successful export in the run history.")
with c2:
    f = d.last_failure
    st.markdown("**Last failure**")
    if f:
        st.error(f"{fmt.when(f.started_at, tz)} ({f.trigger}): {fmt.sentence(f.error) or f.status}")
        ui.run_link(f.run)
    else:
        st.caption("No failed export in the run history.")

st.subheader("Snapshots")
if d.snapshots:
    snaps = pd.DataFrame([x.to_json() for x in d.snapshots])
    snaps["created"] = [fmt.when(t, tz) for t in snaps["created_at"]]
    snaps["exported"] = [fmt.when(t, tz) for t in snaps["exported_at"]]
    st.dataframe(
        snaps[["snapshot", "current", "created", "rows", "status", "exported", "columns", "checks_failed"]],
        hide_index=True,
        column_config={"rows": st.column_config.NumberColumn("rows", format="localized")},
        key="table_snapshots",
    )
else:
    st.caption("No retained snapshot holds this table.")

runs = pd.DataFrame([x.to_json() for x in d.runs], columns=[*syncer.admin.TableRun.__dataclass_fields__])
if not runs.empty:
    runs["started"] = pd.to_datetime(runs["started_at"], utc=True).dt.tz_convert(str(fmt.zone(tz)))
    left, right = st.columns(2)
    with left:
        st.subheader("Rows over time")
        ok = runs[runs["rows"] > 0]
        chart = (
            alt.Chart(ok)
            .mark_line(point=True, color="#1f77b4")
            .encode(
                x=alt.X("started:T", title=None, axis=alt.Axis(format="%m-%d %H:%M")),
                y=alt.Y("rows:Q", title="rows", axis=alt.Axis(format=",.0f")),
                tooltip=["run", alt.Tooltip("rows:Q", format=","), "status"],
            )
        )
        st.altair_chart(chart, width="stretch")
    with right:
        st.subheader("Checks over time")
        checks = runs.melt(
            id_vars=["run", "started"], value_vars=["checks_passed", "checks_failed"], var_name="result", value_name="checks"
        )
        checks["result"] = checks["result"].str.removeprefix("checks_")
        chart = (
            alt.Chart(checks)
            .mark_bar()
            .encode(
                x=alt.X("started:T", title=None, axis=alt.Axis(format="%m-%d %H:%M")),
                y=alt.Y("checks:Q", stack="zero", axis=alt.Axis(format="d")),
                color=alt.Color("result:N", scale=alt.Scale(domain=["passed", "failed"], range=["#2e7d32", "#c62828"])),
                tooltip=["run", "result", "checks"],
            )
        )
        st.altair_chart(chart, width="stretch")

st.subheader("Runs")
if runs.empty:
    st.caption("No run has exported this table yet.")
else:
    runs["page"] = [ui.run_url(r) for r in runs["run"]]
    runs["when"] = [fmt.when(t, tz) for t in runs["started_at"]]
    runs["error"] = runs["error"].fillna("")
    st.dataframe(
        runs[["when", "page", "trigger", "status", "rows", "total_s", "attempts", "quarantined", "checks_failed", "error"]],
        hide_index=True,
        column_config={
            "page": st.column_config.LinkColumn("run", display_text=r"run\?id=(.*)"),
            "rows": st.column_config.NumberColumn("rows", format="localized"),
            "total_s": st.column_config.NumberColumn("seconds", format="%.2f"),
            "error": st.column_config.TextColumn("error", width="large"),
        },
        key="table_runs",
    )

st.subheader("Schema changes between snapshots")
if not d.schema_changes:
    st.caption("The columns did not change across the retained snapshots.")
for c in d.schema_changes:
    parts = [f"added {', '.join(c.added)}" if c.added else "", f"removed {', '.join(c.removed)}" if c.removed else ""]
    parts += [f"retyped {x}" for x in c.retyped]
    st.markdown(f"- **{c.snapshot}** (after {c.previous}): " + "; ".join(p for p in parts if p))
if d.schema:
    with st.expander(f"Columns in the current snapshot ({len(d.schema)})"):
        st.dataframe(pd.DataFrame(d.schema, columns=["column", "type"]), hide_index=True)
