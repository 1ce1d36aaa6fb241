"""Streamlit helpers the pages share: the viewer's timezone, links to a run's or a table's page, banners.

The only module of :mod:`syncer.admin` that calls ``st.*`` besides the pages; the read models stay
free of Streamlit so tests call them directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

__all__ = [
    "REFRESH_S",
    "RUN_PAGE",
    "TABLE_PAGE",
    "run_link",
    "run_url",
    "show_banners",
    "table_link",
    "table_url",
    "viewer_tz",
]

RUN_PAGE = "pages/run.py"
TABLE_PAGE = "pages/table.py"
#: how often a page redraws itself while a sync runs
REFRESH_S = 2.0


def viewer_tz() -> str | None:
    """The browser's timezone (IANA name), None when unknown (then times are shown in UTC)."""
    try:
        return st.context.timezone
    except Exception:  # outside a browser session (bare mode)
        return None


def run_url(run_id: str) -> str:
    """The run page's address, relative to the app (a LinkColumn value)."""
    return f"run?id={run_id}"


def table_url(name: str) -> str:
    return f"table?name={name}"


def run_link(run_id: str, label: str | None = None, **kwargs: Any) -> None:
    st.page_link(RUN_PAGE, label=label or f"Run {run_id}", icon=":material/play_circle:", query_params={"id": run_id}, **kwargs)


def table_link(name: str, label: str | None = None, **kwargs: Any) -> None:
    st.page_link(TABLE_PAGE, label=label or name, icon=":material/table_chart:", query_params={"name": name}, **kwargs)


def show_banners(banners: Sequence[tuple[str, str]]) -> None:
    """Each (severity, text) once: errors red, the rest amber."""
    for severity, text in dict.fromkeys(banners):
        if severity == "error":
            st.error(text, icon=":material/error:")
        else:
            st.warning(text, icon=":material/warning:")
