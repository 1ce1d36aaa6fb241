"""Freshness: one row per table, the headline metrics, age against the SLA, rows over snapshots.

While a sync runs (from this app, the CLI or the scheduler) the page redraws itself every few
seconds, and once more when it has finished.
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

import syncer
import syncer.admin
from syncer.admin import fmt, ui

cfg = st.session_state["syncer_config"]
tz = ui.viewer_tz()
st.title("Freshness")

#: colours of the ordinary series (rows per table): none of them the red that means "stale"
SERIES = ["#1f77b4", "#17becf", "#9467bd", "#8c564b", "#7f7f7f", "#bcbd22", "#2ca02c", "#e377c2"]


def load() -> tuple[syncer.admin.FreshnessView, list[syncer.engine.results.SnapshotSummary]]:
    try:
        return syncer.admin.freshness(cfg, tz), syncer.snapshots(cfg)
    except syncer.SyncError as exc:
        st.error(fmt.sentence(str(exc)))
        st.stop()
        raise  # unreachable: st.stop() ends the run


def metrics(f: syncer.admin.FreshnessView) -> None:
    last = f.last_run
    c1, c2, c3 = st.columns(3)
    c1.metric("Tables fresh", f"{f.fresh} of {f.total}")
    c2.metric(
        "Last run",
        f"{last.status} · {last.trigger}" if last else "never",
        help=f"{last.id} started {fmt.when(last.started_at, tz)}, took {fmt.duration(last.duration_s)}" if last else None,
    )
    c3.metric(
        "Next run",
        fmt.ago(f.next_run) if f.next_run else "-",
        help=f"{fmt.local(f.next_run, tz)} (cron {cfg.cron!r}, {cfg.timezone})"
        + ("; the scheduler is running in this server" if f.scheduler else "; computed from the cron"),
    )
    if last:
        ui.run_link(last.id, f"Last run: {last.id} ({fmt.ago(last.started_at)})")


def table_frame(f: syncer.admin.FreshnessView) -> pd.DataFrame:
    rows = pd.DataFrame([r.to_json() for r in f.tables], columns=[*syncer.admin.FreshnessRow.__dataclass_fields__])
    rows["page"] = [ui.table_url(n) for n in rows["table"]]
    rows["exported"] = [fmt.when(t, tz) for t in rows["exported_at"]]
    rows["quarantined"] = [fmt.number(n) if n == n and n else "" for n in rows["quarantined"]]
    return rows


def freshness_table(rows: pd.DataFrame) -> None:
    columns = ["table", "page", "status", "rows", "quarantined", "exported", "age", "sla", "snapshot"]
    if rows["error"].notna().any():
        columns.append("error")
    st.dataframe(
        rows[columns],
        hide_index=True,
        column_config={
            "page": st.column_config.LinkColumn("details", display_text="open", help="the table's page"),
            "rows": st.column_config.NumberColumn("rows", format="localized"),
            "quarantined": st.column_config.TextColumn("quarantined rows", help="source rows set aside by the export"),
            "exported": st.column_config.TextColumn("exported", help=f"in your timezone ({tz or 'UTC'})"),
            "age": st.column_config.TextColumn("age"),
            "sla": st.column_config.TextColumn(f"SLA ({cfg.sla_hours:g} h)"),
            "snapshot": st.column_config.TextColumn("snapshot", help="the snapshot whose export produced this data"),
        },
        key="freshness_table",
    )


def age_chart(rows: pd.DataFrame) -> None:
    st.subheader("Age against the SLA")
    ages = rows.dropna(subset=["age_hours"])
    if ages.empty:
        st.caption("No table has been published yet.")
        return
    states = dict(syncer.admin.STATES)
    for extra in sorted(set(ages["status"]) - set(states)):  # a state newer than this page: an error colour
        states[extra] = ("#4a148c", True)
    top = max(cfg.sla_hours, float(ages["age_hours"].max() or 0)) * 1.1
    base = alt.Chart(ages).encode(
        x=alt.X("age_hours:Q", title="age (hours)", scale=alt.Scale(domainMin=0, domainMax=top)),
        y=alt.Y("table:N", sort=None, title=None),
        tooltip=["table", "age", "status", "exported"],
    )
    colour = alt.Color(
        "status:N",
        scale=alt.Scale(domain=list(states), range=[c for c, _ in states.values()]),
        legend=alt.Legend(orient="bottom", title="state", values=list(states), columns=4),
    )
    bars = base.mark_bar().encode(color=colour)
    # A point at the end of each bar: a table exported a minute ago is a visible dot, not a 0-pixel bar.
    points = base.mark_point(filled=True, size=80).encode(color=colour)
    labels = base.mark_text(align="left", dx=8).encode(text="age:N")  # the table's own "age" text
    sla = alt.Chart(pd.DataFrame({"sla": [cfg.sla_hours]})).mark_rule(color="#424242", strokeDash=[6, 3]).encode(x="sla:Q")
    st.altair_chart(bars + points + labels + sla, width="stretch")
    st.caption(f"The dashed line is the freshness SLA: {cfg.sla_hours:g} h.")


def rows_chart(snaps: list[syncer.engine.results.SnapshotSummary]) -> None:
    st.subheader("Rows per table over recent snapshots")
    history = pd.DataFrame(
        [
            {"snapshot": s.id, "created": fmt.local(s.created_at, tz), "table": n, "rows": t["rows"]}
            for s in snaps
            for n, t in s.tables.items()
        ],
        columns=["snapshot", "created", "table", "rows"],
    )
    if history.empty or not (history["rows"] > 0).any():
        st.caption("No snapshots with rows yet.")
        return
    lines = (
        alt.Chart(history[history["rows"] > 0])
        .mark_line(point=True)
        .encode(
            x=alt.X("snapshot:O", sort=None, title="snapshot", axis=alt.Axis(labelAngle=-30, labelLimit=240)),
            y=alt.Y("rows:Q", title="rows (log scale)", scale=alt.Scale(type="log"), axis=alt.Axis(format=",")),
            color=alt.Color("table:N", scale=alt.Scale(range=SERIES), legend=alt.Legend(orient="bottom", columns=2)),
            tooltip=["snapshot", "created", "table", alt.Tooltip("rows:Q", format=",")],
        )
    )
    st.altair_chart(lines, width="stretch")


def body() -> None:
    f, snaps = load()
    banners = f.banners
    if st.session_state.get("startup_banner"):
        # The frame already says why startup published nothing: the same run's error once is enough.
        banners = tuple(b for b in banners if not b[1].startswith("The last run (startup,"))
    ui.show_banners(banners)
    if f.running:
        r = f.running
        st.info(
            f"A sync is running now: trigger {r.get('trigger')}, user {r.get('user') or '-'}, "
            f"started {fmt.when(r.get('started_at'), tz)}. This page refreshes itself until it ends.",
            icon=":material/sync:",
        )
    snap = f.snapshot
    if snap:
        served = "Apps read the fallback snapshot" if f.fallback else "Serving snapshot"
        st.caption(f"{served} **{snap['id']}**, created {fmt.when(snap['created_at'], tz)}.")
    else:
        st.caption("Nothing is published yet.")
    metrics(f)
    rows = table_frame(f)
    freshness_table(rows)
    syncer.admin.show_consistency(cfg)
    left, right = st.columns(2)
    with left:
        age_chart(rows)
    with right:
        rows_chart(snaps)
    if st.session_state.get("freshness_was_running") and not f.running:
        st.session_state["freshness_was_running"] = False
        st.rerun(scope="app")  # the sync ended: redraw once more, then stop polling
    st.session_state["freshness_was_running"] = bool(f.running)


running_now = syncer.status(cfg).running is not None or syncer.admin.job_runner().active() is not None
st.fragment(body, run_every=ui.REFRESH_S if running_now else None)()
