"""A snapshot's consistency: one cut of the source, or mixed (computed from its manifest entries).

A snapshot is one consistent cut when every table in it was read, pinned, at the run's moment.
It is mixed when a table was carried over (its export failed and the previous data is kept), was
not re-exported (a per-table ``sync TABLE``: the other tables keep an earlier run's files), or was
read without a pinned moment (a query table, a view or a table without Time Travel, Snowpark local
testing). Each such table is listed with its moment and its offset from the snapshot's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from syncer._clock import iso, parse_iso
from syncer.volume.manifest import Consistency, CutDifference, ManifestEntry

__all__ = ["REASON_TEXT", "cut_summary", "entry_moment", "entry_pinned", "offset_text", "snapshot_cut"]


def entry_moment(entry: ManifestEntry) -> str | None:
    """The moment a table's data describes (its pinned ``as_of``; None when not recorded)."""
    as_of = (entry.consistency or {}).get("as_of")
    return str(as_of) if as_of else None


def entry_pinned(entry: ManifestEntry) -> bool:
    """Whether the table was read at one pinned moment (older manifests: from its isolation)."""
    c = entry.consistency or {}
    if "pinned" in c:
        return bool(c["pinned"])
    return c.get("isolation") not in (None, "none")


def snapshot_cut(entries: Mapping[str, ManifestEntry], moment: dt.datetime | None, run_id: str) -> Consistency:
    """The consistency of a snapshot of ``entries`` published by run ``run_id`` read at ``moment``."""
    differ: list[CutDifference] = []
    for name, e in entries.items():
        d = _difference(name, e, moment, run_id)
        if d is not None:
            differ.append(d)
    return Consistency(
        cut="mixed" if differ else "consistent",
        as_of=iso(moment) if moment is not None else None,
        tables={name: entry_moment(e) for name, e in entries.items()},
        differ=tuple(differ),
    )


def _difference(name: str, e: ManifestEntry, moment: dt.datetime | None, run_id: str) -> CutDifference | None:
    as_of = entry_moment(e)
    offset = None
    if as_of is not None and moment is not None:
        offset = round((parse_iso(as_of) - moment).total_seconds(), 3)
    if e.carried_over:
        why = f"its export failed, so the data of run {e.exported_in or '?'} is kept"
        return CutDifference(name, "carried_over", as_of, offset, f"{why}: {e.error or 'see its checks'}")
    # an unchanged table was confirmed at this run's moment: its files are older, its data is this cut
    if e.exported_in is not None and e.exported_in != run_id and e.status != "unchanged":
        return CutDifference(
            name, "earlier_run", as_of, offset, f"not re-exported by this run; its files are from run {e.exported_in}"
        )
    if as_of is None:
        return CutDifference(name, "not_recorded", None, None, "the moment it was read is not recorded")
    if not entry_pinned(e):
        reason = (e.consistency or {}).get("reason") or "read without a pinned moment"
        return CutDifference(name, "unpinned", as_of, offset, str(reason))
    if offset:
        return CutDifference(name, "other_moment", as_of, offset, "read at a different moment than the run's")
    return None


REASON_TEXT = {
    "carried_over": "carried over",
    "earlier_run": "from an earlier run",
    "unpinned": "unpinned",
    "not_recorded": "moment not recorded",
    "other_moment": "another moment",
}


def offset_text(seconds: float | None) -> str:
    """``"1.5 s older"``, ``"3.2 h older"``, ``"same moment"`` or ``""`` (unknown)."""
    if seconds is None:
        return ""
    if seconds == 0:
        return "same moment"
    size = abs(seconds)
    amount = f"{size:.1f} s" if size < 120 else f"{size / 60:.1f} min" if size < 7200 else f"{size / 3600:.1f} h"
    return f"{amount} {'older' if seconds < 0 else 'newer'}"


def cut_summary(c: Consistency | None) -> str:
    """One line: one consistent cut, or mixed and which tables differ by how much."""
    if c is None:
        return "not recorded (this snapshot was written before consistency was recorded)"
    if c.consistent:
        return f"one consistent cut: every table as of {c.as_of}"
    parts = []
    for d in c.differ:
        off = offset_text(d.offset_seconds)
        parts.append(f"{d.table} {REASON_TEXT.get(d.reason, d.reason)}{f' ({off})' if off else ''}")
    return f"mixed: {len(c.differ)} table(s) not at {c.as_of}: {', '.join(parts)}"
