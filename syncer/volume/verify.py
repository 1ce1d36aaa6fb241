"""Do a snapshot's files match its manifest? Presence, size, sha256, nothing unlisted.

These read the manifest as JSON, as written, not the typed record: a tampered entry (a file name
with a slash, a malformed list of parts) is reported as such instead of being trusted.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["check_files", "check_files_by_table", "is_plain_file_name", "unexpected_files"]

MANIFEST = "manifest.json"


def check_files(folder: Path, manifest: dict[str, Any], *, deep: bool = False) -> list[str]:
    """Problems with the files a manifest (as JSON) lists: missing, unreadable, wrong size, wrong sha256."""
    return [p for ps in check_files_by_table(folder, manifest, deep=deep).values() for p in ps]


def check_files_by_table(folder: Path, manifest: dict[str, Any], *, deep: bool = False) -> dict[str, list[str]]:
    """:func:`check_files`, by table (tables without a problem are left out)."""
    out: dict[str, list[str]] = {}
    for name, t in manifest.get("tables", {}).items():
        problems = _table_file_problems(folder, name, t if isinstance(t, dict) else {}, deep)
        if problems:
            out[name] = problems
    return out


def _table_file_problems(folder: Path, name: str, t: dict[str, Any], deep: bool) -> list[str]:
    from syncer.formats import parts_digest

    file_name = str(t.get("file", ""))
    if not is_plain_file_name(file_name):
        # A tampered manifest must not make a reader open something outside the snapshot.
        return [f"table {name!r}: file name {file_name!r} is not a plain file name inside the snapshot"]
    parts = t.get("parts")
    if parts is None:
        return _check_file(name, folder / file_name, t.get("bytes"), t.get("sha256"), deep)
    # A table written in parts: a folder of files, each listed with its size and sha256.
    sub = folder / file_name
    if sub.is_symlink() or not sub.is_dir():
        return [f"table {name!r}: {file_name}/ is missing or not a folder"]
    if not isinstance(parts, list) or not all(isinstance(p, dict) and is_plain_file_name(str(p.get("name", ""))) for p in parts):
        return [f"table {name!r}: the manifest's list of parts is malformed"]
    if parts_digest(parts) != t.get("sha256") or sum(int(p.get("bytes") or 0) for p in parts) != t.get("bytes"):
        return [f"table {name!r}: the manifest's parts do not add up to its size and sha256 (modified)"]
    return [problem for p in parts for problem in _check_file(name, sub / str(p["name"]), p.get("bytes"), p.get("sha256"), deep)]


def _check_file(name: str, f: Path, size: Any, sha256: Any, deep: bool) -> list[str]:
    try:
        if f.is_symlink():
            return [f"table {name!r}: {f.name} is a symbolic link, not the published file (replaced)"]
        st = f.stat()
    except FileNotFoundError:
        return [f"table {name!r}: file {f.name} is missing"]
    except OSError as exc:
        return [f"table {name!r}: cannot stat {f.name}: {exc.strerror} (run `syncer repair`)"]
    if st.st_size != size:
        return [f"table {name!r}: {f.name} is {st.st_size} bytes, manifest says {size} (truncated or replaced)"]
    if not os.access(f, os.R_OK):
        return [f"table {name!r}: {f.name} is not readable"]
    if deep:
        from syncer.formats import sha256_file

        try:
            digest = sha256_file(f)
        except OSError as exc:
            return [f"table {name!r}: cannot read {f.name}: {exc.strerror}"]
        if digest != sha256:
            return [f"table {name!r}: sha256 of {f.name} is {digest[:12]}…, manifest says {str(sha256)[:12]}… (modified)"]
    return []


def is_plain_file_name(name: str) -> bool:
    """A single path component: no separators, no NUL, not empty, not ``.`` or ``..``."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in ("/", "\\", "\x00"))


def unexpected_files(folder: Path, manifest: dict[str, Any]) -> list[str]:
    """Entries of a snapshot folder that its manifest does not list (something was added after publishing)."""
    tables = manifest.get("tables", {}).values()
    listed = {MANIFEST, *(str(t.get("file", "")) for t in tables)}
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        return [f"cannot list {folder.name}/: {exc.strerror}"]
    out = [f"{folder.name}/{n} is not listed in the manifest (added after publishing?)" for n in names if n not in listed]
    for t in tables:
        parts = t.get("parts")
        sub = folder / str(t.get("file", ""))
        if not isinstance(parts, list) or sub.is_symlink() or not sub.is_dir():
            continue
        known = {str(p.get("name")) for p in parts if isinstance(p, dict)}
        try:
            inside = sorted(os.listdir(sub))
        except OSError as exc:
            out.append(f"cannot list {folder.name}/{sub.name}/: {exc.strerror}")
            continue
        out += [
            f"{folder.name}/{sub.name}/{n} is not listed in the manifest (added after publishing?)"
            for n in inside
            if n not in known
        ]
    return out
