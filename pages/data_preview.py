"""Data preview: what end-user apps see, read through ``syncer.read_table``."""

from __future__ import annotations

import warnings

import streamlit as st

import syncer

cfg = st.session_state["syncer_config"]
st.title("Data preview")

name = st.selectbox("Table", [t.name for t in cfg.tables], key="preview_table")
limit = st.number_input("Rows to show", min_value=1, max_value=10_000, value=100, step=100, key="preview_rows")

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", syncer.StaleDataWarning)
    try:
        table = syncer.read_table(name, as_arrow=True, config=cfg)
        manifest = syncer.current_snapshot(config=cfg)
    except syncer.SyncError as exc:
        st.error(str(exc))
        st.stop()
for w in caught:
    if issubclass(w.category, syncer.StaleDataWarning):
        st.warning(str(w.message), icon=":material/warning:")

st.caption(
    f"{table.num_rows:,} rows × {table.num_columns} columns from snapshot {manifest.id}; showing the first {min(limit, table.num_rows):,}."
)
st.dataframe(table.slice(0, int(limit)).to_pandas(), hide_index=True, key="preview_frame")

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
