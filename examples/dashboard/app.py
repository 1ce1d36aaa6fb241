"""An end-user app over the published demo tables: which courses people take, and finish, by country.

It is what our users' apps look like: it reads the mounted volume through ``syncer.read_table``
and nothing else of ours (no engine, no warehouse driver, no credentials), tells its own users when
the data is older than the freshness SLA, and says so plainly when nothing is published yet.

    SYNCER_ROOT=var/data streamlit run examples/dashboard/app.py --server.port 8502
    (or: make run-example)
"""

from __future__ import annotations

import warnings

import pandas as pd
import streamlit as st

from syncer import NoSnapshotError, QuarantinedRowsWarning, StaleDataWarning, SyncError, read_table

st.set_page_config(page_title="Course dashboard", page_icon=":material/school:", layout="wide")
st.title("Course dashboard")


def load() -> tuple[pd.DataFrame, list[str], list[str]]:
    """Enrollments joined with their participant's country and their course; the warnings the reader gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        enrollments = read_table("enrollments", columns=["enrollment_id", "participant_id", "course_id", "status"])
        participants = read_table("participants", columns=["participant_id", "country"])
        courses = read_table("courses", columns=["course_id", "title", "category"])
    stale = sorted({str(w.message) for w in caught if issubclass(w.category, StaleDataWarning)})
    partial = sorted({str(w.message) for w in caught if issubclass(w.category, QuarantinedRowsWarning)})
    joined = enrollments.merge(participants, on="participant_id", how="left").merge(courses, on="course_id", how="left")
    return joined, stale, partial


try:
    df, stale, partial = load()
except NoSnapshotError:
    st.info(
        "No data has been published yet, so there is nothing to show. The first export runs when the "
        "data service starts; try again in a few minutes."
    )
    st.stop()
except SyncError as exc:
    st.error(f"The data cannot be read right now: {exc}")
    st.stop()

for message in stale:
    st.warning(f"This data may be out of date: {message}", icon=":material/history:")
for message in partial:
    st.caption(message)

df["completed"] = df["status"] == "completed"
left, middle, right = st.columns(3)
left.metric("Enrollments", f"{len(df):,}")
middle.metric("Participants", f"{df['participant_id'].nunique():,}")
right.metric("Completion rate", f"{df['completed'].mean():.0%}" if len(df) else "–")

by_category = (
    df.groupby("category", dropna=False)
    .agg(enrollments=("enrollment_id", "count"), completed=("completed", "sum"))
    .sort_values("enrollments", ascending=False)
)
st.subheader("Enrollments by course category")
st.bar_chart(by_category, y=["enrollments", "completed"], stack=False)

st.subheader("Most taken courses")
top = (
    df.groupby(["title", "category"], dropna=False)
    .agg(enrollments=("enrollment_id", "count"), countries=("country", "nunique"), completion=("completed", "mean"))
    .sort_values("enrollments", ascending=False)
    .head(10)
    .reset_index()
)
st.dataframe(
    top,
    hide_index=True,
    width="stretch",
    column_config={"completion": st.column_config.ProgressColumn("completion", format="percent", min_value=0, max_value=1)},
)
