"""The admin app's view of a snapshot's consistency and declared references.

Pages call :func:`show_consistency` (Freshness) and :func:`show_references` (Validation), one line
each; the rows they draw come from :func:`cut_rows` and :func:`reference_rows`, plain records that
tests read without Streamlit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from syncer.config import Config
from syncer.volume.consistency import REASON_TEXT, cut_summary, offset_text
from syncer.volume.layout import Volume
from syncer.volume.manifest import Check, Consistency, Manifest, Record

__all__ = ["CutRow", "ReferenceRow", "cut_rows", "reference_rows", "show_consistency", "show_references"]


@dataclass(frozen=True)
class CutRow(Record):
    """One table of a snapshot: the moment its data describes, and why it differs (if it does)."""

    table: str
    as_of: str | None
    differs: str
    offset: str
    detail: str


@dataclass(frozen=True)
class ReferenceRow(Record):
    """One declared reference's verdict in a snapshot."""

    table: str
    reference: str
    result: str
    severity: str
    orphans: int | None
    sample: str
    target: str
    detail: str


def cut_rows(c: Consistency | None) -> list[CutRow]:
    if c is None:
        return []
    differ = {d.table: d for d in c.differ}
    rows = []
    for name, as_of in c.tables.items():
        d = differ.get(name)
        rows.append(
            CutRow(
                table=name,
                as_of=as_of,
                differs=REASON_TEXT.get(d.reason, d.reason) if d else "-",
                offset=offset_text(d.offset_seconds) if d else "same moment",
                detail=d.detail if d else "",
            )
        )
    return rows


def reference_rows(manifest: Manifest) -> list[ReferenceRow]:
    """Every ``references:`` check of the snapshot (a carried-over table's failed attempt too)."""
    rows = []
    for name, entry in manifest.tables.items():
        for c, attempt in [(c, False) for c in entry.checks] + [(c, True) for c in entry.failed_checks or ()]:
            if c.name.startswith("references:"):
                rows.append(_reference_row(name, c, attempt))
    return rows


def _reference_row(table: str, c: Check, attempt: bool) -> ReferenceRow:
    ref: dict[str, Any] = c.extra.get("reference") or {}
    target: dict[str, Any] = c.extra.get("target") or {}
    label = f"{','.join(ref.get('columns', []))} -> {ref.get('table', '?')}.{','.join(ref.get('target_columns', []))}"
    sample = "; ".join(", ".join(repr(v) for v in key) for key in c.extra.get("sample") or [])
    return ReferenceRow(
        table=table,
        reference=label + (" (last attempt)" if attempt else ""),
        result="FAIL" if attempt or not c.ok else "pass",
        severity=c.severity,
        orphans=c.extra.get("orphans"),
        sample=sample,
        target=f"{target.get('table', '?')}: {target.get('state', '?')} (run {target.get('exported_in') or '?'})",
        detail=c.detail,
    )


def show_consistency(cfg: Config) -> None:
    """The Freshness page's section: whether the served snapshot is one cut or mixed, each table's moment."""
    import streamlit as st

    manifest = Volume(cfg.root).current_manifest()
    if manifest is None:
        return
    c = manifest.consistency
    st.subheader("Consistency")
    text = cut_summary(c)
    if c is not None and c.consistent:
        st.success(text, icon=":material/check_circle:")
    else:
        st.info(text, icon=":material/call_split:")  # information, not a fault: a per-table sync mixes by design
    rows = cut_rows(c)
    if rows:
        st.dataframe([r.to_json() for r in rows], hide_index=True, key="consistency_table")


def show_references(manifest: Manifest) -> None:
    """The Validation page's section: each declared reference, its orphans and a sample of their keys."""
    import streamlit as st

    st.subheader("References")
    rows = reference_rows(manifest)
    if not rows:
        st.caption("No references are declared for the tables of this snapshot ([[tables]] references).")
        return
    bad = [r for r in rows if r.result == "FAIL"]
    if bad:
        st.error(f"{len(bad)} reference check(s) found orphans: " + ", ".join(f"{r.table}.{r.reference}" for r in bad))
    st.dataframe([r.to_json() for r in rows], hide_index=True, key="references_table")
