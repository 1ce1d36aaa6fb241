"""Controls (operators only): re-sync all or chosen tables; roll back to a retained snapshot.

The page hides the actions from non-operators, and every handler (``syncer.admin.request_sync``,
``syncer.admin.request_rollback``) checks the operator again itself.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

import syncer
import syncer.admin

cfg = st.session_state["syncer_config"]
who = syncer.admin.identify(cfg, st.context.headers)
st.title("Controls")

if not who.operator:
    st.info(f"Only operators can re-sync or roll back. {who.reason}.", icon=":material/lock:")
    st.stop()
st.caption(f"Acting as **{who.user}**: {who.reason}.")

flash = st.session_state.pop("controls_flash", None)
if flash:
    st.success(flash)

# --- re-sync ---------------------------------------------------------------------------------------------
st.subheader("Re-sync")
chosen = st.multiselect(
    "Tables to re-sync (none chosen = all tables)",
    [t.name for t in cfg.tables],
    key="resync_tables",
    help="Tables not chosen keep their current files (hard-linked into the new snapshot).",
)
if st.button("Re-sync now", type="primary", key="resync", icon=":material/sync:"):
    try:
        job = syncer.admin.request_sync(cfg, st.context.headers, chosen or None)
        st.session_state["job_id"] = job.id
    except syncer.LockHeldError as exc:
        st.warning(str(exc), icon=":material/hourglass:")
    except syncer.SyncError as exc:
        st.error(str(exc))

running_elsewhere = syncer.status(cfg).running
runner = syncer.admin.job_runner()
active = runner.active()
if running_elsewhere and active is None:
    st.info(
        f"A sync is running outside this page: trigger {running_elsewhere.get('trigger')}, "
        f"pid {running_elsewhere.get('pid')} on {running_elsewhere.get('host')}, started {running_elsewhere.get('started_at')}. "
        "A re-sync started now would be refused until it finishes."
    )


@st.fragment(run_every=0.5 if active is not None else None)
def job_panel() -> None:
    """Polls the process-wide job runner; the job keeps running if this page is left."""
    job = runner.latest("sync")
    if job is None:
        st.caption("No re-sync has been started from this app since the server started.")
        return
    if job.state == "running":
        st.progress(job.fraction, text=job.message)
        return
    if active is not None:
        # The job finished while this page was polling: redraw the whole page (snapshots, metrics) once.
        st.rerun(scope="app")
    text = f"{job.message} (started by {job.user} at {job.submitted_at})"
    if job.state == "ok":
        st.success(text, icon=":material/check_circle:")
    elif job.state in ("partial", "busy"):
        st.warning(text)
    else:
        st.error(text)


job_panel()

# --- rollback --------------------------------------------------------------------------------------------
st.subheader("Roll back")
snaps = syncer.snapshots(cfg)
current = next((s for s in snaps if s.current), None)
choices = [s for s in reversed(snaps) if not s.current and s.ok]
st.write(f"Current snapshot: **{current.id if current else 'none'}**")
if not choices:
    st.caption("There is no other intact retained snapshot to roll back to.")
else:
    created = {s.id: s.created_at for s in choices}
    target = st.selectbox(
        "Roll back to",
        list(created),
        format_func=lambda sid: f"{sid}  (created {created[sid]})",
        key="rollback_target",
    )
    if st.button("Review rollback…", key="rollback_review", icon=":material/undo:"):
        st.session_state["rollback_pending"] = target

    pending = st.session_state.get("rollback_pending")
    if pending:
        try:
            preview = syncer.admin.rollback_preview(cfg, pending)
        except syncer.SyncError as exc:
            st.error(str(exc))
            st.session_state.pop("rollback_pending", None)
        else:
            st.warning(
                f"Rolling back points `current` from **{preview.previous}** to **{preview.to}** "
                f"(created {preview.to_created_at}). Apps read the older data at once. "
                f"{len(preview.changed)} of {len(preview.tables)} table(s) change:"
            )
            st.dataframe(
                pd.DataFrame([t.to_json() for t in preview.tables])[
                    ["table", "rows_now", "rows_after", "rows_change", "age_now_hours", "age_after_hours", "changes"]
                ],
                hide_index=True,
                key="rollback_preview",
            )
            c1, c2 = st.columns(2)
            if c1.button(f"Confirm rollback to {pending}", type="primary", key="rollback_confirm"):
                try:
                    res = syncer.admin.request_rollback(cfg, st.context.headers, pending)
                except syncer.SyncError as exc:
                    st.error(str(exc))
                else:
                    st.session_state.pop("rollback_pending", None)
                    st.session_state["controls_flash"] = f"Rolled back: current {res.previous} → {res.to}."
                    st.rerun()
            if c2.button("Cancel", key="rollback_cancel"):
                st.session_state.pop("rollback_pending", None)
                st.rerun()
