"""Controls (operators only): re-sync all or chosen tables; roll back to a retained snapshot; repair.

The page hides the actions from non-operators, and every handler (``syncer.admin.request_sync``,
``request_rollback``, ``request_repair``) checks the operator again itself. A rollback's confirm is
tied to its preview: if ``current`` moved in between, nothing changes and the preview is shown again.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

import syncer
import syncer.admin
from syncer.admin import fmt, ui

cfg = st.session_state["syncer_config"]
tz = ui.viewer_tz()
who = syncer.admin.identify(cfg, st.context.headers)
st.title("Controls")

if not who.operator:
    st.info(f"Only operators can re-sync, roll back or repair: {who.reason}.", icon=":material/lock:")
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
        st.warning(fmt.sentence(str(exc)), icon=":material/hourglass:")
    except syncer.SyncError as exc:
        st.error(fmt.sentence(str(exc)))

runner = syncer.admin.job_runner()
polling = runner.active() is not None or syncer.status(cfg).running is not None


@st.fragment(run_every=ui.REFRESH_S / 4 if polling else None)
def job_panel() -> None:
    """Polls the job runner and the volume lock; the job keeps running if this page is left."""
    active = runner.active()
    elsewhere = syncer.status(cfg).running
    if elsewhere and active is None:
        st.info(
            f"A sync is running outside this page: trigger {elsewhere.get('trigger')}, pid {elsewhere.get('pid')} "
            f"on {elsewhere.get('host')}, started {fmt.when(elsewhere.get('started_at'), tz)}. "
            "A re-sync started now would be refused until it finishes; this panel updates by itself.",
            icon=":material/sync:",
        )
    job = runner.latest("sync")
    if job is not None and job.state == "running":
        st.progress(job.fraction, text=job.message)
    elif polling and active is None and not elsewhere:
        st.rerun(scope="app")  # what was running has finished: redraw the page (snapshots, metrics) once
    elif job is None:
        st.caption("No re-sync has been started from this app since the server started.")
    elif job.id == st.session_state.get("job_id"):
        # The result banner is for the session that started the job; others get one quiet line.
        text = f"{fmt.sentence(job.message)} (started by {job.user} {fmt.ago(job.submitted_at)})"
        {"ok": st.success, "partial": st.warning, "busy": st.warning}.get(job.state, st.error)(text)
        if job.result and job.result.get("run_id"):
            ui.run_link(job.result["run_id"])
    else:
        st.caption(f"Last re-sync from this app: {job.state}, started by {job.user} {fmt.ago(job.submitted_at)}.")


job_panel()

# --- rollback --------------------------------------------------------------------------------------------
st.subheader("Roll back")
snaps = syncer.snapshots(cfg)
served = syncer.admin.served(cfg)
current_id = served.current_id
choices = [s for s in reversed(snaps) if not s.current and s.ok]
st.write(f"Current snapshot: **{current_id or 'none'}**" + (" (broken)" if served.problem else ""))
if not choices:
    st.caption("There is no other intact retained snapshot to roll back to.")
else:
    # The default is the snapshot before the current one, every time (as `syncer rollback`): a pick
    # made before `current` moved is forgotten, and so is a preview made before.
    ids = [s.id for s in choices]
    seen = st.session_state.get("rollback_for", current_id)
    if seen != current_id:
        st.session_state["rollback_for"] = current_id
        st.session_state.pop("rollback_target", None)
        again = st.session_state.pop("rollback_pending", None) or st.session_state.pop("rollback_repreview", None)
        if again in ids:
            # A preview was open when current moved: whatever was clicked is not acted on; the same
            # target is previewed afresh, against the new current, to be confirmed again.
            st.session_state["rollback_pending"] = again
            st.session_state["controls_flash_error"] = (
                f"Current moved from {seen or 'nothing'} to {current_id or 'nothing'} since the preview (another sync "
                f"or rollback published); nothing was rolled back. Review the rollback to {again} again below."
            )
    st.session_state["rollback_for"] = current_id
    default = syncer.admin.rollback_default(cfg)
    created = {s.id: s.created_at for s in choices}
    target = st.selectbox(
        "Roll back to",
        ids,
        index=ids.index(default) if default in ids else 0,
        format_func=lambda sid: (
            f"{sid}  (created {fmt.when(created[sid], tz)})" + ("  · the previous snapshot" if sid == default else "")
        ),
        key="rollback_target",
    )
    if st.button("Review rollback…", key="rollback_review", icon=":material/undo:"):
        st.session_state["rollback_pending"] = target
        st.session_state.pop("rollback_seen_current", None)

    moved = st.session_state.pop("controls_flash_error", None)
    if moved:
        st.error(moved, icon=":material/block:")
    pending = st.session_state.get("rollback_pending")
    if pending:
        # What `current` was when the operator saw the preview they may be confirming now.
        seen_before = st.session_state.get("rollback_seen_current")
        try:
            preview = syncer.admin.rollback_preview(cfg, pending)
        except syncer.SyncError as exc:
            st.error(fmt.sentence(str(exc)))
            st.session_state.pop("rollback_pending", None)
        else:
            st.session_state["rollback_seen_current"] = preview.previous
            st.warning(
                f"Rolling back points `current` from **{preview.from_text}** to **{preview.to}** "
                f"(created {fmt.when(preview.to_created_at, tz)}). Apps read the older data at once. "
                f"{len(preview.changed)} of {len(preview.tables)} tables change:"
            )
            frame = pd.DataFrame([t.to_json() for t in preview.tables])
            frame["exported_now"] = [fmt.when(t, tz) for t in frame["exported_now"]]
            frame["exported_after"] = [fmt.when(t, tz) for t in frame["exported_after"]]
            st.dataframe(
                frame[["table", "changes", "rows_now", "rows_after", "rows_change", "exported_now", "exported_after"]],
                hide_index=True,
                column_config={
                    "table": "Table",
                    "changes": st.column_config.CheckboxColumn("Changes"),
                    "rows_now": st.column_config.NumberColumn("Rows now", format="localized"),
                    "rows_after": st.column_config.NumberColumn("Rows after", format="localized"),
                    "rows_change": st.column_config.NumberColumn("Change in rows", format="localized"),
                    "exported_now": "Exported (now)",
                    "exported_after": "Exported (after)",
                },
                key="rollback_preview",
            )
            c1, c2 = st.columns(2)
            if c1.button(f"Confirm rollback to {pending}", type="primary", key="rollback_confirm"):
                try:
                    res = syncer.admin.request_rollback(cfg, st.context.headers, pending, seen_current=seen_before)
                except syncer.admin.CurrentMovedError as exc:
                    # The rerun previews the same target against the new current, to confirm again.
                    st.session_state["rollback_repreview"] = pending
                    st.session_state["controls_flash_error"] = fmt.sentence(str(exc))
                    st.rerun()
                except syncer.SyncError as exc:
                    st.error(fmt.sentence(str(exc)))
                else:
                    st.session_state.pop("rollback_pending", None)
                    st.session_state["controls_flash"] = f"Rolled back: current {res.previous or 'nothing'} → {res.to}."
                    st.rerun()
            if c2.button("Cancel", key="rollback_cancel"):
                st.session_state.pop("rollback_pending", None)
                st.rerun()

# --- repair ----------------------------------------------------------------------------------------------
st.subheader("Repair")
if served.problem:
    st.error(fmt.sentence(served.problem), icon=":material/build:")
st.caption(
    "Re-points a broken `current` at the newest intact snapshot, sweeps left-over staging folders and "
    "restores read-only permissions (what `syncer repair` does). Safe to run at any time; it changes "
    "nothing while a sync runs."
)
if st.button("Repair the volume", key="repair", icon=":material/build:", type="primary" if served.problem else "secondary"):
    try:
        res = syncer.admin.request_repair(cfg, st.context.headers)
    except syncer.SyncError as exc:
        st.error(fmt.sentence(str(exc)))
    else:
        if res.skipped:
            text = fmt.sentence(res.skipped) + "."
        elif res.actions:
            text = "Repaired: " + "; ".join(res.actions) + f". Current is {res.current}."
        else:
            text = f"Nothing to repair; current is {res.current}."
        st.session_state["controls_flash"] = text
        st.rerun()
