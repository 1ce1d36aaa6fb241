"""Freshness: one row per table, the headline metrics, age against the SLA, rows over snapshots."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

import syncer
import syncer.admin

cfg = st.session_state["syncer_config"]
st.title("Freshness")

try:
    f = syncer.admin.freshness(cfg)
    snaps = syncer.snapshots(cfg)
except syncer.SyncError as exc:
    st.error(str(exc))
    st.stop()

for banner in f.banners:
    st.warning(banner, icon=":material/warning:")
if f.running:
    r = f.running
    st.info(f"A sync is running now: trigger {r.get('trigger')}, user {r.get('user') or '-'}, started {r.get('started_at')}.")

last = f.last_run
snap = f.snapshot
st.caption(f"Serving snapshot **{snap['id']}**, created {snap['created_at']}." if snap else "Nothing is published yet.")


def hours_until(iso_time: str | None) -> str:
    if not iso_time:
        return "-"
    delta = (pd.Timestamp(iso_time) - pd.Timestamp.now(tz="UTC")).total_seconds() / 3600
    return f"in {delta:.1f} h" if delta >= 1 else f"in {max(delta * 60, 0):.0f} min"


c1, c2, c3 = st.columns(3)
c1.metric("Tables fresh", f"{f.fresh} of {f.total}")
c2.metric(
    "Last run",
    f"{last.status} · {last.trigger}" if last else "never",
    help=f"{last.id} started {last.started_at}, {last.duration_s or 0:.1f} s" if last else None,
)
c3.metric(
    "Next run",
    hours_until(f.next_run),
    help=f"{f.next_run} (cron {cfg.cron!r}, {cfg.timezone})"
    + ("; the scheduler is running in this server" if f.scheduler else "; computed from the cron"),
)

table = pd.DataFrame([r.to_json() for r in f.tables], columns=[*syncer.admin.FreshnessRow.__dataclass_fields__])
columns = ["table", "status", "rows", "exported_at", "age_hours", "sla", "snapshot"]
if table["error"].notna().any():
    columns.append("error")
st.dataframe(
    table[columns],
    hide_index=True,
    column_config={
        "rows": st.column_config.NumberColumn("rows", format="localized"),
        "age_hours": st.column_config.NumberColumn("age (h)", format="%.2f"),
        "sla": st.column_config.TextColumn(f"SLA ({cfg.sla_hours:g} h)"),
        "snapshot": st.column_config.TextColumn("snapshot", help="the snapshot whose export produced this data"),
    },
    key="freshness_table",
)
syncer.admin.show_consistency(cfg)

left, right = st.columns(2)
with left:
    st.subheader("Age against the SLA")
    ages = table.dropna(subset=["age_hours"])
    if ages.empty:
        st.caption("No table has been published yet.")
    else:
        base = alt.Chart(ages).encode(
            x=alt.X(
                "age_hours:Q",
                title="age (hours)",
                scale=alt.Scale(domainMin=0, domainMax=max(cfg.sla_hours, float(ages["age_hours"].max() or 0)) * 1.1),
            ),
            y=alt.Y("table:N", sort=None, title=None),
            tooltip=["table", "age_hours", "status", "exported_at"],
        )
        bars = base.mark_bar().encode(
            color=alt.Color(
                "status:N",
                scale=alt.Scale(domain=["fresh", "stale", "carried over"], range=["#2e7d32", "#c62828", "#ef6c00"]),
                legend=alt.Legend(orient="bottom"),
            )
        )
        labels = base.mark_text(align="left", dx=4).encode(text=alt.Text("age_hours:Q", format=".1f"))
        sla = alt.Chart(pd.DataFrame({"sla": [cfg.sla_hours]})).mark_rule(color="#c62828", strokeDash=[6, 3]).encode(x="sla:Q")
        st.altair_chart(bars + labels + sla, width="stretch")
        st.caption(f"The dashed line is the freshness SLA: {cfg.sla_hours:g} h.")
with right:
    st.subheader("Rows per table over recent snapshots")
    history = pd.DataFrame(
        [
            {"snapshot": s.id, "created_at": s.created_at, "table": n, "rows": t["rows"]}
            for s in snaps
            for n, t in s.tables.items()
        ]
    )
    if history.empty or not (history["rows"] > 0).any():
        st.caption("No snapshots with rows yet.")
    else:
        lines = (
            alt.Chart(history[history["rows"] > 0])
            .mark_line(point=True)
            .encode(
                x=alt.X("snapshot:O", sort=None, title="snapshot", axis=alt.Axis(labelAngle=-30, labelLimit=240)),
                y=alt.Y("rows:Q", title="rows (log scale)", scale=alt.Scale(type="log")),
                color=alt.Color("table:N", legend=alt.Legend(orient="bottom", columns=2)),
                tooltip=["snapshot", "created_at", "table", "rows"],
            )
        )
        st.altair_chart(lines, width="stretch")
