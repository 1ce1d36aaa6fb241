"""Do a snapshot's files match its manifest? Presence, size, sha256, nothing unlisted -- and what
the files hold: rows, schema, parts (:func:`check_contents`).

The file checks read the manifest as JSON, as written, not the typed record: a tampered entry (a
file name with a slash, a malformed list of parts) is reported as such instead of being trusted.
The sha256 of a file says nothing about an edited manifest (``rows`` 99,999 for a 250-row file
hashes the same), so the contents are held against the files themselves: rows from the Parquet
footer or the Arrow IPC batches, lines of JSONL, lines of CSV (parsed when a quoted value holds a
line break); the schema stored in the file (or the CSV header) against the manifest's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syncer._digest import parts_digest, sha256_file

if TYPE_CHECKING:
    from syncer.volume.manifest import Manifest, ManifestEntry

__all__ = ["check_contents", "check_files", "check_files_by_table", "held_rows", "is_plain_file_name", "unexpected_files"]

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


# --- contents: rows, schema, parts ------------------------------------------------------------------

#: rows counted per file identity (path, inode, size, mtime): published files never change in place
_ROWS: dict[tuple[Any, ...], int] = {}


def held_rows(folder: Path, entry: ManifestEntry, *, exact: bool = False) -> int | None:
    """Rows the table's file (or parts) holds, or None when it cannot be read (the file checks say why).

    A CSV file whose lines match the manifest's count is taken at its word unless ``exact`` (verify):
    then it is parsed, since quoted line breaks could make an edited count match the lines."""
    import pyarrow as pa

    path = folder / entry.file
    try:
        files = [path / p.name for p in entry.parts] if entry.parts else [path]
        key = (exact, *((str(f), st.st_ino, st.st_size, st.st_mtime_ns) for f in files for st in (f.stat(),)))
        if key not in _ROWS:
            if len(_ROWS) > 1024:
                _ROWS.clear()
            _ROWS[key] = _count(entry, path, exact)
        return _ROWS[key]
    except (OSError, ValueError, ArithmeticError, pa.ArrowException):
        return None


def _count(entry: ManifestEntry, path: Path, exact: bool) -> int:
    from syncer.formats import count_rows, schema_from_b64

    if entry.format in ("jsonl", "csv"):
        lines = _lines(path)
        rows = lines - (1 if entry.format == "csv" else 0)  # the CSV header
        if entry.format == "jsonl" or (rows == entry.rows and not exact):
            return rows  # JSON escapes line breaks: one line, one row
        # A quoted CSV value may hold a line break: count records (RFC 4180), whatever the columns say.
        return _csv_records(path) - 1
    import pyarrow as pa

    return count_rows(entry.format, path, schema_from_b64(entry.arrow_schema) if entry.arrow_schema else pa.schema([]))


def _lines(path: Path) -> int:
    n, last = 0, b"\n"
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (0 if last == b"\n" else 1)


def check_contents(folder: Path, manifest: Manifest, skip: set[str] | frozenset[str] = frozenset()) -> dict[str, list[str]]:
    """What each table's files hold against what its manifest entry says, by table (``skip``: tables
    whose files already failed the file checks)."""
    out: dict[str, list[str]] = {}
    for name, entry in manifest.tables.items():
        if name in skip:
            continue
        problems = _row_problems(folder, name, entry) + _schema_problems(folder, name, entry)
        if problems:
            out[name] = problems
    return out


def _row_problems(folder: Path, name: str, entry: ManifestEntry) -> list[str]:
    held = held_rows(folder, entry, exact=True)
    if held is None:
        return [f"table {name!r}: {entry.file} cannot be read to count its rows (run `syncer repair`)"]
    out = []
    if held != entry.rows:
        out.append(f"table {name!r}: the manifest says {entry.rows:,} rows, {entry.file} holds {held:,} (edited?)")
    if entry.parts:
        listed = sum(p.rows for p in entry.parts)
        if listed != entry.rows:
            out.append(f"table {name!r}: its parts list {listed:,} rows in all, the manifest says {entry.rows:,}")
        for p in entry.parts:
            n = held_rows(folder / entry.file, _part_entry(entry, p.name), exact=True)
            if n is not None and n != p.rows:
                out.append(f"table {name!r}: part {p.name} holds {n:,} rows, the manifest says {p.rows:,}")
    return out


def _part_entry(entry: ManifestEntry, part: str) -> ManifestEntry:
    import dataclasses

    return dataclasses.replace(entry, file=part, parts=None)


def _schema_problems(folder: Path, name: str, entry: ManifestEntry) -> list[str]:
    import pyarrow as pa

    from syncer.formats import file_schema, schema_from_b64, stored_schema

    if not entry.arrow_schema:
        return []
    try:
        schema = schema_from_b64(entry.arrow_schema)
    except (ValueError, pa.ArrowException) as exc:
        return [f"table {name!r}: the manifest's arrow_schema cannot be read ({exc})"]
    out = []
    contract = [(c.name, c.type) for c in entry.schema]
    recorded = [(f.name, _type_name(f)) for f in schema]
    if contract and contract != recorded:
        out.append(f"table {name!r}: the manifest's schema {_cols(contract)} differs from its arrow_schema {_cols(recorded)}")
    path = folder / entry.file
    try:
        stored = file_schema(entry.format, path) if entry.format not in ("csv", "jsonl") else None
        header = _csv_header(path) if entry.format == "csv" else _jsonl_keys(path) if entry.format == "jsonl" else None
    except (OSError, ValueError, pa.ArrowException) as exc:
        return [*out, f"table {name!r}: cannot read the schema stored in {entry.file} ({exc})"]
    expected = stored_schema(entry.format, schema)
    if stored is not None and not stored.equals(expected, check_metadata=False):
        out.append(f"table {name!r}: {entry.file} stores the schema {_cols(stored)}, the manifest says {_cols(expected)}")
    if header is not None and header != schema.names:
        out.append(f"table {name!r}: {entry.file} has the columns {header}, the manifest says {schema.names}")
    return out


def _type_name(f: Any) -> str:
    # as the export records it (syncer.validate.checks.schema_contract): JSON columns say "json"
    return "json" if f.metadata and f.metadata.get(b"syncer.logical_type") == b"json" else str(f.type)


def _cols(schema: Any) -> str:
    pairs = [(f.name, str(f.type)) for f in schema] if not isinstance(schema, list) else schema
    text = ", ".join(f"{n} {t}" for n, t in pairs)
    return f"({text[:200]}{'...' if len(text) > 200 else ''})"


def _jsonl_keys(path: Path) -> list[str] | None:
    """The keys of the first line (every line has every column), None for an empty file."""
    import json

    with open(path, encoding="utf-8") as fh:
        first = fh.readline()
    data = json.loads(first) if first.strip() else None
    return list(data) if isinstance(data, dict) else None


def _csv_records(path: Path) -> int:
    import csv

    old = csv.field_size_limit(1 << 30)  # a value of 10 MB is legal
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return sum(1 for _ in csv.reader(fh))
    finally:
        csv.field_size_limit(old)


def _csv_header(path: Path) -> list[str]:
    import csv

    with open(path, encoding="utf-8", newline="") as fh:
        return next(csv.reader(fh), [])
