"""Data preview: the first rows of what end-user apps see, with the code that reads it.

Only the rows shown are read (``syncer.admin.preview_table``: the first batches of the file, stopped
at the limit), converted to pandas exactly as ``syncer.read_table`` would: a 20M-row table costs
what 100 rows cost, in the same process that syncs.
"""

from __future__ import annotations

import streamlit as st

import syncer
import syncer.admin
from syncer.admin import fmt, ui

cfg = st.session_state["syncer_config"]
st.title("Data preview")

name = st.selectbox("Table", [t.name for t in cfg.tables], key="preview_table")
limit = st.number_input("Rows to show", min_value=1, max_value=10_000, value=100, step=100, key="preview_rows")

try:
    preview = syncer.admin.preview_table(cfg, name, int(limit))
except syncer.SyncError as exc:
    st.error(fmt.sentence(str(exc)))
    st.stop()
for text in preview.warnings:
    st.warning(fmt.sentence(text), icon=":material/warning:")

st.caption(
    f"{fmt.number(preview.rows)} rows x {preview.columns} columns in snapshot {preview.snapshot_id}; "
    f"showing the first {fmt.number(preview.shown)}."
)
ui.table_link(name, f"{name}: snapshots, runs and checks over time")
st.dataframe(preview.frame, hide_index=True, key="preview_frame")

st.subheader("Read it from your app")
st.code(
    f"""import streamlit as st
from syncer import read_table

df = read_table("{name}")  # the published snapshot; warns if stale
st.dataframe(df)""",
    language="python",
)
st.caption(
    f"The app finds the volume through `SYNCER_ROOT` (here `{cfg.root}`) or its `sync.toml`; it never needs warehouse credentials."
)
