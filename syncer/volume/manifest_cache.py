"""Parsed manifests kept per process, keyed by the manifest file's identity, else by its text.

A reader resolves ``current`` and inspects its manifest on every ``read_table``; parsing and
converting the manifest of 200 tables cost ~63 ms a call (JSON 8 ms, the records 55 ms), and reading
its text back ~1 ms, most of a small table's read. A manifest is published once and never rewritten
(a new snapshot is a new file, written to a temporary name and renamed), so the file's identity --
device, inode, size, modification and change times, from one ``lstat`` -- names its text. A file
whose times are within :data:`SETTLE_NS` of the moment it is cached could still be edited in the
same clock tick without any of them changing (the coarse file-system clock); it is keyed by its text
only, read every time (well under a millisecond), so an edit is never answered from the cache,
whatever its timestamps say. The records are frozen dataclasses and the JSON is read-only: shared.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from syncer.volume.manifest import Manifest
from syncer.volume.verify import MANIFEST

__all__ = ["Entry", "load", "load_entry"]

#: manifests kept (the snapshots a volume retains, with room)
SIZE = 32
#: a manifest changed less than this before it is cached is keyed by its text only (racy timestamps)
SETTLE_NS = 2_000_000_000


class Entry:
    """One parsed manifest: its JSON, its records and, once asked for, the reader's list of files."""

    __slots__ = ("files", "manifest", "raw")

    def __init__(self, raw: dict[str, Any], manifest: Manifest) -> None:
        self.raw = raw
        self.manifest = manifest
        #: ``syncer.reader``'s (path, size) list of the snapshot's files, made on first use
        self.files: Any = None


_by_text: OrderedDict[str, Entry] = OrderedDict()
_by_stat: OrderedDict[tuple[Any, ...], Entry] = OrderedDict()
_lock = threading.Lock()


def load(
    snapshot_dir: Path,
    read_json: Callable[[Path, str | None], dict[str, Any]],
    convert: Callable[[Path, dict[str, Any]], Manifest],
) -> tuple[dict[str, Any], Manifest]:
    """The manifest of ``snapshot_dir`` as JSON (read-only: shared) and as records; ``read_json``
    and ``convert`` raise what a manifest that cannot be used deserves."""
    entry = load_entry(snapshot_dir, read_json, convert)
    return entry.raw, entry.manifest


def load_entry(
    snapshot_dir: Path,
    read_json: Callable[[Path, str | None], dict[str, Any]],
    convert: Callable[[Path, dict[str, Any]], Manifest],
) -> Entry:
    """:func:`load`'s manifest as the cache holds it (with room for the reader's list of files)."""
    path = os.path.join(snapshot_dir, MANIFEST)
    try:
        st = os.lstat(path)
    except OSError:
        st = None  # read_json says why
    key = None
    if st is not None and stat.S_ISREG(st.st_mode):
        key = (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        with _lock:
            hit = _by_stat.get(key)
            if hit is not None:
                _by_stat.move_to_end(key)
                return hit
    try:
        text = None if st is None or stat.S_ISLNK(st.st_mode) else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = None
    got = _by_text.get(text) if text is not None else None
    if got is None:
        raw = read_json(snapshot_dir, text)
        got = Entry(raw, convert(snapshot_dir, raw))
    if text is None:
        return got
    settled = key is not None and time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > SETTLE_NS  # type: ignore[union-attr]
    with _lock:
        _remember(_by_text, text, got)
        if settled:
            _remember(_by_stat, key, got)
    return got


def _remember(cache: OrderedDict[Any, Entry], key: Any, entry: Entry) -> None:
    cache[key] = entry
    cache.move_to_end(key)
    while len(cache) > SIZE:
        cache.popitem(last=False)


def clear() -> None:
    """Forget every manifest (tests)."""
    with _lock:
        _by_text.clear()
        _by_stat.clear()
