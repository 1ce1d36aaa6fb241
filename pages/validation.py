"""Validation: every check of the current snapshot per table, failing first; quarantined records."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import streamlit as st

import syncer
import syncer.admin
from syncer.admin import fmt, ui

cfg = st.session_state["syncer_config"]
tz = ui.viewer_tz()
st.title("Validation")

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", syncer.StaleDataWarning)
    try:
        manifest = syncer.current_snapshot(config=cfg)
    except syncer.SyncError as exc:
        st.info(fmt.sentence(str(exc)))
        st.stop()
for w in caught:
    st.warning(fmt.sentence(str(w.message)))

rows = [r.to_json() for r in syncer.admin.validation_rows(manifest)]
checks = pd.DataFrame(rows, columns=["table", "check", "result", "severity", "detail"])
failing = checks[checks["result"] == "FAIL"]
st.caption(f"Checks recorded in the manifest of snapshot **{manifest.id}** (created {fmt.when(manifest.created_at, tz)}).")
c1, c2, c3 = st.columns(3)
c1.metric("Tables", len(manifest.tables))
c2.metric("Checks", len(checks))
c3.metric("Failing", len(failing))
if len(failing):
    st.error(f"{len(failing)} check(s) failing: " + ", ".join(f"{r.table}.{r.check}" for r in failing.itertuples()))

order = checks.assign(_fail=checks["result"] != "FAIL", _warn=checks["severity"] != "error").sort_values(
    ["_fail", "_warn", "table", "check"], kind="stable"
)
order = order.drop(columns=["_fail", "_warn"])
order.insert(1, "page", [ui.table_url(t) if t != "(run)" else None for t in order["table"]])
st.dataframe(
    order,
    hide_index=True,
    column_config={
        "page": st.column_config.LinkColumn("details", display_text="open", help="the table's page"),
        "detail": st.column_config.TextColumn("detail", width="large"),
    },
    key="checks_table",
)
syncer.admin.show_references(manifest)

st.subheader("Quarantined records")
files = syncer.admin.quarantined(cfg, manifest.id)
if not files:
    st.caption(f"No records were quarantined in snapshot {manifest.id}.")
for entry in files:
    with st.expander(f"{entry.table} — {entry.file} ({fmt.bytes_text(entry.bytes)})", expanded=True):
        preview = syncer.admin.read_quarantined(entry, limit=200)
        st.dataframe(preview, hide_index=True)
        st.download_button(
            f"Download {entry.file}",
            data=entry.read_bytes(),
            file_name=Path(entry.file).name,
            key=f"dl_{entry.file}",
        )
