"""The serving order: ``served.jsonl``, an append-only log of every ``current`` swap.

Snapshot ids sort by the clock at the time of the sync, and the clock can jump: after it moved back,
the newest snapshot by id is not the one served last. So "previous", rollback and retention follow
the order in which snapshots were actually served, kept in this log at the volume root::

    {"id": "<snapshot id>", "at": "ISO-8601 UTC", "previous": "<id current named before> | null",
     "why": "sync | rollback | repair | seed", "user": "... | null", "trigger": "cli | schedule | ... | null"}

One JSON object per line, appended (``O_APPEND``) and fsynced by the writer (under the volume lock)
*before* ``current`` is swapped. The recovery rule, when the log and ``current`` disagree:

* ``current`` is the truth of what is served now; the log says what was served before.
* An entry counts as served unless the swap it announced never happened: the next entry's
  ``previous`` (what ``current`` really named when the next swap was prepared; for the last entry,
  what ``current`` names now) is still this entry's ``previous``.
* A ``previous`` the log does not end with (``current`` moved by a version without the log, or by
  hand) counts as served just before that entry; so does a ``current`` the log does not end with.
* A torn last line (a crash mid-append) is ignored.

A volume published by a version without the log falls back to the first release's rule (snapshots
by ``created_at``, then id); the first swap that writes the log seeds it with that order.

From the served sequence come two orders (:class:`ServingOrder`): ``chain``, what rollback walks
back (serving a snapshot already in the chain returns to it, so rolling back twice goes two steps
back, not back and forth), and ``recency``, every snapshot by when it was last served (retention
keeps the first ones).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SERVED_LOG", "ServedEntry", "ServedLog", "ServingOrder", "serving_order"]

SERVED_LOG = "served.jsonl"
#: readable by the apps' users (nothing secret), written by the writer only
LOG_MODE = 0o644


@dataclass(frozen=True)
class ServedEntry:
    id: str
    at: str
    previous: str | None = None
    why: str = "sync"
    user: str | None = None
    #: what started the writer (a sync's trigger: cli, schedule, startup, manual), when known
    trigger: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "previous": self.previous,
            "why": self.why,
            "user": self.user,
            "trigger": self.trigger,
        }

    @classmethod
    def parse(cls, line: str) -> ServedEntry | None:
        """The entry of one log line, or None for a line that is not one (torn by a crash, edited)."""
        try:
            data = json.loads(line)
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
            return None
        prev = data.get("previous")
        return cls(
            id=data["id"],
            at=str(data.get("at") or ""),
            previous=prev if isinstance(prev, str) and prev else None,
            why=str(data.get("why") or "sync"),
            user=data.get("user") if isinstance(data.get("user"), str) else None,
            trigger=data.get("trigger") if isinstance(data.get("trigger"), str) else None,
        )


@dataclass(frozen=True)
class ServingOrder:
    """What the served log says, reconciled with ``current``."""

    #: snapshots served, in order, each once per serving (the recovery rule applied)
    sequence: tuple[str, ...]
    #: what rollback walks back: the last element is ``current``
    chain: tuple[str, ...]
    #: every snapshot ever served, most recently served first (without a log: newest first)
    recency: tuple[str, ...]
    #: False when there is no log yet (the order comes from the snapshots' creation times)
    from_log: bool


class ServedLog:
    """The log file; the writer appends under the volume lock, anyone may read."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def exists(self) -> bool:
        """A usable log: a regular file of its own (a link, even to a file, is not: it could lead out of
        the volume; ``repair`` moves anything else in its place aside)."""
        return self.problem() is None and self.path.is_file()

    def problem(self) -> str | None:
        """Why the log's path cannot be the log (a folder, a link, a device in its place), or None."""
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            return f"{self.path} cannot be read ({exc.strerror})"
        if stat.S_ISLNK(st.st_mode):
            return f"{self.path} is a symbolic link to {os.readlink(self.path)!r}, not the volume's own log"
        if not stat.S_ISREG(st.st_mode):
            return f"{self.path} is not a file (a folder or another kind of entry took its place)"
        return None

    def entries(self) -> list[ServedEntry]:
        """Every readable entry, oldest first; [] when there is no log (or it cannot be read)."""
        if not self.exists():
            return []
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        return [e for e in (ServedEntry.parse(line) for line in text.splitlines() if line.strip()) if e is not None]

    def append(self, entries: Sequence[ServedEntry]) -> None:
        """Append ``entries`` durably (fsync, and the folder's entry when the file is new). Raises OSError."""
        problem = self.problem()
        if problem:  # never written through a link (it may lead out of the volume), never into a folder
            raise OSError(errno.EINVAL, f"{problem}; run `syncer repair` (moves it aside)")
        created = not self.path.exists()
        data = "".join(json.dumps(e.to_json(), allow_nan=False) + "\n" for e in entries)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, LOG_MODE)
        try:
            if not created and _ends_without_newline(fd):
                data = "\n" + data  # a torn last line stays alone on its line, ignored
            os.write(fd, data.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            with contextlib.suppress(OSError):
                os.chmod(self.path, LOG_MODE)
            dfd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)


def _ends_without_newline(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


def serving_order(entries: Sequence[ServedEntry] | None, current: str | None, fallback: Iterable[str] = ()) -> ServingOrder:
    """The served sequence under the recovery rule (module docstring), its chain and its recency.

    ``entries`` None means there is no log: ``fallback`` (the snapshots, oldest first) is the order,
    up to ``current``."""
    if entries is None:
        # the first release's rule: the snapshots by creation, "previous" the one created before current
        ids = list(fallback)
        upto = ids[: ids.index(current) + 1] if current in ids else ([*ids, current] if current else ids)
        order = _orders(upto, from_log=False)
        return ServingOrder(order.sequence, order.chain, tuple(dict.fromkeys([*reversed(ids), *order.recency])), False)
    seq: list[str] = []
    for i, e in enumerate(entries):
        if e.previous is not None and (not seq or seq[-1] != e.previous):
            seq.append(e.previous)  # current was moved outside the log before this swap
        # what `current` named when the next swap was prepared (or names now, after the last one)
        after = entries[i + 1].previous if i + 1 < len(entries) else current
        never_swapped = after == e.previous and e.previous != e.id
        if not never_swapped and (not seq or seq[-1] != e.id):
            seq.append(e.id)
    if current is not None and (not seq or seq[-1] != current):
        seq.append(current)
    return _orders(seq, from_log=True)


def _orders(seq: list[str], *, from_log: bool) -> ServingOrder:
    chain: list[str] = []
    for sid in seq:
        if sid in chain:
            del chain[chain.index(sid) + 1 :]  # served again: back to where it was
        else:
            chain.append(sid)
    recency = list(dict.fromkeys(reversed(seq)))
    return ServingOrder(tuple(seq), tuple(chain), tuple(recency), from_log)
