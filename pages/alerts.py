"""Alerts: every change of state that was sent, when, what, on which channel, delivered or the error."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import syncer
import syncer.admin

cfg = st.session_state["syncer_config"]
st.title("Alerts")
st.caption(
    "One alert per change of state (a run failing, a table going stale, rows quarantined, a verify mismatch, "
    "a startup that could not serve) and one when it recovers. Channels are set in sync.toml [alerts]."
)

try:
    alerts = syncer.admin.recent_alerts(cfg, limit=300)
except syncer.SyncError as exc:
    st.error(str(exc))
    st.stop()

if not alerts:
    st.info("No alerts yet: nothing has changed state since alerting started.")
    st.stop()


def _delivery(delivered: bool | None, error: str | None) -> str:
    if delivered is None:
        return "pending"
    return "delivered" if delivered else f"error: {error}"


df = pd.DataFrame(
    {
        "when": [a.at for a in alerts],
        "kind": [a.kind for a in alerts],
        "subject": [a.subject for a in alerts],
        "state": [a.state for a in alerts],
        "message": [a.message for a in alerts],
        "channel": [a.channel for a in alerts],
        "delivery": [_delivery(a.delivered, a.error) for a in alerts],
    }
)
failed = int(df["delivery"].str.startswith("error").sum())
if failed:
    st.warning(f"{failed} alert(s) could not be delivered; see the delivery column.")
st.dataframe(df, hide_index=True, width="stretch")
