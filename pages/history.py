"""History: runs (each linked to its page), a runs x tables grid, speed and time per step against the
budget, and the audit trail."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

import syncer
import syncer.admin
from syncer.admin import fmt, ui

cfg = st.session_state["syncer_config"]
tz = ui.viewer_tz()
st.title("History")

#: a table's status in a run, as the grid writes it
GRID_MARKS = {"fresh": "ok", "quarantined": "ok, quarantined", "carried_over": "CARRIED OVER", "failed": "FAILED"}


def over_time(df: pd.DataFrame, field: str, title: str, tooltip: list[str], fmt_: str = ",.0f") -> alt.Chart:
    """One line per scope (all tables, one table, ...): a one-table run does not zig-zag the
    line of full runs. The point's shape says the trigger."""
    return (
        alt.Chart(df)
        .mark_line(point=True)
        .encode(
            x=alt.X("started:T", title=None, axis=alt.Axis(format="%m-%d %H:%M")),
            y=alt.Y(f"{field}:Q", title=title, axis=alt.Axis(format=fmt_)),
            color=alt.Color("scope:N", title="tables", scale=alt.Scale(range=["#1f77b4", "#9467bd", "#17becf", "#8c564b"])),
            shape=alt.Shape("trigger:N"),
            tooltip=tooltip,
        )
    )


def runs_table(runs: pd.DataFrame) -> None:
    runs = runs.assign(
        page=[ui.run_url(i) for i in runs["id"]],
        when=[fmt.when(t, tz) for t in runs["started_at"]],
        took=[fmt.duration(s) if s is not None and s == s else "running…" for s in runs["duration_s"]],
        size=[fmt.bytes_text(b) for b in runs["bytes"]],
        error=runs["error"].fillna(""),
        user=runs["user"].fillna("-"),
        snapshot_id=runs["snapshot_id"].fillna("-"),
    )
    st.dataframe(
        runs[["when", "page", "trigger", "user", "scope", "status", "took", "rows", "size", "snapshot_id", "error"]],
        hide_index=True,
        column_config={
            "when": st.column_config.TextColumn("started", help=f"in your timezone ({tz or 'UTC'})"),
            "page": st.column_config.LinkColumn("run", display_text=r"run\?id=(.*)", help="open the run's page"),
            "scope": "tables",
            "took": "duration",
            "rows": st.column_config.NumberColumn("rows", format="localized"),
            "snapshot_id": "snapshot",
            "error": st.column_config.TextColumn("error", width="large"),
        },
        key="runs_table",
    )


def grid() -> None:
    st.subheader("Runs x tables")
    cells = syncer.admin.runs_grid(cfg, limit=30)
    if not cells:
        return
    frame = pd.DataFrame([c.to_json() for c in cells])
    frame["mark"] = [GRID_MARKS.get(s, "·" if s == "-" else s) for s in frame["status"]]
    wide = frame.pivot_table(index=["started_at", "run", "run_status"], columns="table", values="mark", aggfunc="first")
    wide = wide[[t.name for t in cfg.tables]].reset_index().iloc[::-1]
    wide.insert(0, "started", [fmt.local(t, tz) for t in wide["started_at"]])
    wide.insert(1, "page", [ui.run_url(r) for r in wide["run"]])
    st.dataframe(
        wide.drop(columns=["started_at", "run"]),
        hide_index=True,
        column_config={
            "page": st.column_config.LinkColumn("run", display_text=r"run\?id=(.*)"),
            "run_status": "run status",
            **{t.name: st.column_config.TextColumn(t.name) for t in cfg.tables},
        },
        key="runs_grid",
    )
    st.caption("One row per run (newest first), one column per table; · = the table was not in the run.")
    cols = st.columns(len(cfg.tables))
    for col, t in zip(cols, cfg.tables, strict=True):
        with col:
            ui.table_link(t.name)


def step_chart(view: syncer.admin.HistoryView) -> None:
    st.subheader("Time per step against the time budget")
    if not view.steps or view.slowest_s is None:
        return
    frame = pd.DataFrame([step.to_json() for step in view.steps], columns=["run", "step", "seconds"])
    budget_s, slowest = view.budget_s, view.slowest_s
    runs = list(dict.fromkeys(frame["run"]))
    # Horizontal bars, one row per run: every run keeps its label, however many there are.
    chart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            y=alt.Y("run:N", sort=runs[::-1], title=None, axis=alt.Axis(labelLimit=260, labelOverlap=False)),
            x=alt.X("seconds:Q", stack="zero", title="seconds"),
            color=alt.Color("step:N", scale=alt.Scale(range=["#1f77b4", "#17becf", "#bcbd22", "#7f7f7f"])),
            tooltip=["run", "step", alt.Tooltip("seconds:Q", format=".2f")],
        )
        .properties(height=max(120, 22 * len(runs)))
    )
    if slowest >= budget_s / 20:
        rule = alt.Chart(pd.DataFrame({"budget": [budget_s]})).mark_rule(color="#424242", strokeDash=[6, 3]).encode(x="budget:Q")
        st.altair_chart(chart + rule, width="stretch")
        st.caption(f"The dashed line is the time budget: {budget_s:g} s ([export] time_budget_seconds).")
    else:
        st.altair_chart(chart, width="stretch")
        st.caption(
            f"The slowest run shown took {fmt.duration(slowest)}, {slowest / budget_s:.1%} of the "
            f"{budget_s:g} s time budget ([export] time_budget_seconds); the budget line is off this scale."
        )


try:
    view = syncer.admin.history_view(cfg, limit=200, audit_limit=300)
except syncer.SyncError as exc:
    st.error(fmt.sentence(str(exc)))
    st.stop()

RUN_COLUMNS = [*syncer.admin.RunRow.__dataclass_fields__]
runs = pd.DataFrame([r.to_json() for r in view.runs], columns=RUN_COLUMNS)
if runs.empty:
    st.info("No runs yet.")
else:
    runs_table(runs)
    grid()
    done = pd.DataFrame([r.to_json() for r in view.finished], columns=RUN_COLUMNS)
    done["started"] = pd.to_datetime(done["started_at"], utc=True).dt.tz_convert(str(fmt.zone(tz)))
    if done.empty:
        st.caption("No run has finished yet.")
    else:
        left, right = st.columns(2)
        with left:
            st.subheader("Duration")
            st.altair_chart(
                over_time(done, "duration_s", "seconds", ["id", "scope", "status", "duration_s"], ",.2f"), width="stretch"
            )
        with right:
            st.subheader("Rows per second")
            chart = over_time(done.fillna({"rows_per_s": 0}), "rows_per_s", "rows/s", ["id", "scope", "rows", "rows_per_s"])
            st.altair_chart(chart, width="stretch")
        step_chart(view)

st.subheader("Audit trail")
st.caption("Rollbacks, repairs, manual syncs and refused or blocked actions, with who did them.")
audit = pd.DataFrame([a.to_json() for a in view.audit], columns=[*syncer.admin.AuditRow.__dataclass_fields__])
if audit.empty:
    st.caption("Nothing recorded yet.")
else:
    audit["at"] = [fmt.when(t, tz) for t in audit["at"]]
    audit["run"] = [ui.run_url(r) if isinstance(r, str) and r else None for r in audit["run"]]
    audit["user"] = audit["user"].fillna("-")
    st.dataframe(
        audit,
        hide_index=True,
        column_config={
            "run": st.column_config.LinkColumn("run", display_text=r"run\?id=(.*)"),
            "detail": st.column_config.TextColumn("detail", width="large"),
        },
        key="audit_table",
    )
    longest = max(audit["detail"], key=len)
    if len(longest) > 120:
        with st.expander("Audit details in full"):
            for a in view.audit:
                if len(a.detail) > 120:
                    st.markdown(f"**{fmt.local(a.at, tz)} · {a.action} · {a.user or '-'}**")
                    st.text(a.detail)
