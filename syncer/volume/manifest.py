"""The manifest and the records that cross rooms: typed, frozen, with one JSON form each.

``manifest.json`` is the contract with every reader of the volume, in any language; its JSON Schema
is ``docs/manifest.schema.json`` (a test validates every manifest the engine writes against it).
Every manifest written since format 2 says ``"format_version"``; a manifest without it is format 1
(the first release) and reads the same way: format 2 only added the field.

Records here:

* :class:`Check` — one validation result (``name``, ``ok``, ``severity``, ``detail``).
* :class:`Part`, :class:`Column` — a part file of a parted table; one column of the schema contract.
* :class:`ManifestEntry` — one table of a snapshot (file, rows, bytes, sha256, schema, checks, ...).
* :class:`Manifest` — the snapshot: id, times, source, tables.
* :class:`Consistency`, :class:`CutDifference` — whether the snapshot's tables are one cut of the
  source (all read at the run's moment) or mixed, and which tables differ by how much.

Each is a frozen dataclass with ``to_json()`` / ``from_json()``; keys this version does not know are
kept in ``extra`` and written back, so a round trip never loses what a newer writer added. For code
written against the dict-shaped reports of the first release, records also answer ``record["key"]``,
``record.get("key")`` and ``"key" in record`` with the JSON form's values (read-only).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

__all__ = [
    "FORMAT_VERSION",
    "Check",
    "Column",
    "Consistency",
    "CutDifference",
    "Manifest",
    "ManifestEntry",
    "Part",
    "Record",
    "finite",
    "manifest_text",
    "strict_dumps",
]

#: the manifest format this version writes (1: the first release, without the field)
FORMAT_VERSION = 2


@functools.cache
def _shape(cls: type) -> tuple[frozenset[str], tuple[str, ...]]:
    """A record class's field names and its required ones, asked of ``dataclasses`` once per class
    (a manifest of 200 tables converts ~3,600 records)."""
    fields = dataclasses.fields(cls)
    required = tuple(f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
    return frozenset(f.name for f in fields), required


class Record:
    """JSON round trip and read-only key access for the frozen dataclasses below."""

    #: fields left out of the JSON form while they hold None (optional keys)
    _optional: ClassVar[frozenset[str]] = frozenset()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is None and f.name in self._optional:
                continue
            out[f.name] = _json(value)
        out.update(getattr(self, "extra", {}) or {})
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        """The record of a JSON object; ValueError naming the key when the object or a required key is missing."""
        if not isinstance(data, Mapping):
            raise ValueError(f"expected an object, found {type(data).__name__} {data!r:.40}")
        names, required = _shape(cls)  # type: ignore[arg-type]  # a class is hashable
        missing = [name for name in required if name not in data]
        if missing:
            raise ValueError(f"missing required key(s) {', '.join(map(repr, missing))}")
        known = {k: v for k, v in data.items() if k in names and k != "extra"}
        # a key a newer writer calls "extra" is kept too (it is not this field)
        extra = {k: v for k, v in data.items() if k not in names or k == "extra"}
        if "extra" in names:
            known["extra"] = extra
        return cls(**cls._convert(known))

    @classmethod
    def _convert(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Turn nested JSON values into records (overridden where a field holds records)."""
        return values

    # -- read-only key access (the first release's dict-shaped reports) ----------------------------------

    def __getitem__(self, key: str) -> Any:
        data = self.to_json()
        if key in data:
            return data[key]
        if key in {f.name for f in dataclasses.fields(self)}:  # type: ignore[arg-type]
            return None  # an optional field left out of the JSON form
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_json().get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.to_json()

    def keys(self) -> Iterator[str]:
        return iter(self.to_json())


def finite(value: Any) -> Any:
    """``value`` with every nan/inf float (at any depth) replaced by None: JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, tuple | list):
        return [finite(v) for v in value]
    if isinstance(value, Mapping):
        return {k: finite(v) for k, v in value.items()}
    return value


def manifest_text(data: Mapping[str, Any]) -> str:
    """``manifest.json``'s text: strict JSON, a line per top-level key and a line per table. Each line
    is the C encoder's (``indent=`` takes Python's: 60 ms of a 200-table manifest's 70). The encoder
    refuses a nan/inf float (``allow_nan=False``); only then is the whole manifest walked for them
    (:func:`finite`, ~0.1 s of Python for 200 tables), so the text is the same either way."""
    try:
        return _manifest_lines(data)
    except (ValueError, TypeError):  # a nan/inf somewhere, or a tuple/Mapping the encoder does not take
        return _manifest_lines(finite(data))


def _manifest_lines(data: Mapping[str, Any]) -> str:
    if not data:
        return "{}"
    lines = []
    for key, value in data.items():
        if key == "tables" and isinstance(value, dict) and value:
            rows = ",\n".join(f"    {json.dumps(n)}: {json.dumps(e, allow_nan=False)}" for n, e in value.items())
            lines.append(f"  {json.dumps(key)}: {{\n{rows}\n  }}")
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value, allow_nan=False)}")
    return "{\n" + ",\n".join(lines) + "\n}"


def strict_dumps(value: Any, **kwargs: Any) -> str:
    """JSON every parser reads: never ``NaN``/``Infinity`` (``allow_nan=False``; such floats are written as null).

    Every JSON file or column the engine writes goes through here: the manifest, the lock record, the
    run history's JSON columns and audit entries, the CLI's reports."""
    return json.dumps(finite(value), allow_nan=False, **kwargs)


def _json(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # strict JSON (see strict_dumps)
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, tuple | list):
        return [_json(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _json(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Check(Record):
    """One check's verdict. ``severity`` ``error`` fails the table; ``warning`` is only reported."""

    name: str
    ok: bool
    detail: str
    severity: str = "error"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_json(self) -> dict[str, Any]:  # the key order of the first release
        return {"name": self.name, "ok": self.ok, "severity": self.severity, "detail": self.detail, **self.extra}

    @property
    def failed(self) -> bool:
        """A failed check that fails its table (warnings never do)."""
        return not self.ok and self.severity == "error"


@dataclass(frozen=True)
class Part(Record):
    """One part file of a table written in parts (``<table>/part-NNNNN.parquet``)."""

    name: str
    rows: int
    bytes: int
    sha256: str
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Column(Record):
    """One column of a table's schema contract (nullability is recorded, not enforced)."""

    name: str
    type: str
    nullable: bool = True
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class ManifestEntry(Record):
    """One table of a snapshot, as the manifest records it."""

    file: str
    format: str
    rows: int
    bytes: int
    sha256: str
    exported_at: str
    status: str = "fresh"
    schema: tuple[Column, ...] = ()
    parts: tuple[Part, ...] | None = None
    arrow_schema: str | None = None
    #: how a text format (csv, jsonl) spells values: quoting, the NULL marker, encodings
    dialect: dict[str, Any] | None = None
    primary_key: tuple[str, ...] = ()
    exported_in: str | None = None
    source_rows: int | None = None
    source: dict[str, Any] | None = None
    consistency: dict[str, Any] | None = None
    checks: tuple[Check, ...] = ()
    profile: dict[str, Any] | None = None
    quarantine: dict[str, Any] | None = None
    #: set on a table carried over after its export failed
    error: str | None = None
    failed_at: str | None = None
    failed_checks: tuple[Check, ...] | None = None
    failed_quarantine: dict[str, Any] | None = None
    #: what the source said about the table at this export (``source``: its change marker,
    #: ``config``: the table's config fingerprint); None when the source cannot confirm it (a query, a view)
    change_marker: dict[str, Any] | None = None
    #: status ``unchanged``: when a later run confirmed the source had not changed (its age counts from here)
    confirmed_at: str | None = None
    #: "engine" when the warehouse wrote the files itself (absent: streamed through the container)
    export: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    _optional: ClassVar[frozenset[str]] = frozenset(
        {
            "change_marker",
            "confirmed_at",
            "export",
            "parts",
            "arrow_schema",
            "dialect",
            "exported_in",
            "source_rows",
            "source",
            "consistency",
            "profile",
            "quarantine",
            "error",
            "failed_at",
            "failed_checks",
            "failed_quarantine",
        }
    )

    @classmethod
    def _convert(cls, values: dict[str, Any]) -> dict[str, Any]:
        v = dict(values)
        v["schema"] = tuple(Column.from_json(c) for c in v.get("schema") or ())
        v["checks"] = tuple(Check.from_json(c) for c in v.get("checks") or ())
        if v.get("parts") is not None:
            v["parts"] = tuple(Part.from_json(p) for p in v["parts"])
        if v.get("failed_checks") is not None:
            v["failed_checks"] = tuple(Check.from_json(c) for c in v["failed_checks"])
        v["primary_key"] = tuple(v.get("primary_key") or ())
        return v

    @property
    def carried_over(self) -> bool:
        return self.status == "carried_over"

    @property
    def fresh_as_of(self) -> str:
        """When the data was last known to match the source: the export, or the later confirmation
        that the source had not changed (status ``unchanged``). Ages and the SLA count from here."""
        return self.confirmed_at or self.exported_at

    @property
    def files(self) -> tuple[str, ...]:
        """The paths of its files relative to the snapshot folder (one, or each part)."""
        if self.parts:
            return tuple(f"{self.file}/{p.name}" for p in self.parts)
        return (self.file,)


@dataclass(frozen=True)
class CutDifference(Record):
    """A table of a snapshot that is not at the snapshot's moment, and why."""

    table: str
    #: carried_over (its export failed: the previous data), earlier_run (not re-exported: a
    #: per-table sync), unpinned (read without a pinned moment), not_recorded (an older manifest)
    reason: str
    as_of: str | None = None
    #: the table's moment minus the snapshot's, in seconds (negative: older); None when unknown
    offset_seconds: float | None = None
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Consistency(Record):
    """Whether a snapshot is one consistent cut (``cut`` = ``consistent``: every table read at
    ``as_of``, pinned) or ``mixed`` (``differ`` lists the tables that are not)."""

    cut: str
    as_of: str | None
    #: each table's moment (its ``consistency.as_of``; None when not recorded)
    tables: dict[str, str | None] = field(default_factory=dict)
    differ: tuple[CutDifference, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def _convert(cls, values: dict[str, Any]) -> dict[str, Any]:
        v = dict(values)
        v["differ"] = tuple(CutDifference.from_json(d) for d in v.get("differ") or ())
        return v

    @property
    def consistent(self) -> bool:
        return self.cut == "consistent"


@dataclass(frozen=True)
class Manifest(Record):
    """A snapshot: what ``manifest.json`` holds."""

    id: str
    created_at: str
    tables: dict[str, ManifestEntry]
    source: dict[str, Any] = field(default_factory=dict)
    previous: str | None = None
    run: dict[str, Any] = field(default_factory=dict)
    sla_hours: float | None = None
    run_checks: tuple[Check, ...] = ()
    format_version: int = 1
    #: one cut or mixed (absent in manifests written before it was recorded)
    consistency: Consistency | None = None
    #: set by the reader's ``current_snapshot``: True when the newest intact snapshot is served
    #: because ``current`` is broken (never written to disk)
    fallback: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    _optional: ClassVar[frozenset[str]] = frozenset({"sla_hours", "fallback", "consistency"})

    @classmethod
    def _convert(cls, values: dict[str, Any]) -> dict[str, Any]:
        v = dict(values)
        tables = v.get("tables")
        if not isinstance(tables, Mapping):
            raise ValueError("'tables' must be an object of table entries")
        v["tables"] = {name: _entry(name, t) for name, t in tables.items()}
        v["run_checks"] = tuple(Check.from_json(c) for c in v.get("run_checks") or ())
        v["format_version"] = int(v.get("format_version", 1))
        if v.get("consistency") is not None:
            v["consistency"] = Consistency.from_json(v["consistency"])
        return v

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        # format_version first: a reader in another language checks it before anything else
        return {"format_version": data.pop("format_version"), **data}


def _entry(name: str, data: Any) -> ManifestEntry:
    try:
        return ManifestEntry.from_json(data)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise ValueError(f"table {name!r}: {exc}") from exc


@dataclass(frozen=True)
class TableResult(Record):
    """What a sync did with one table it was asked to export (the run history keeps one per table)."""

    table: str
    #: fresh | quarantined | unchanged (published; unchanged: confirmed, not re-exported), carried_over (failed, old data kept), failed (nothing to keep)
    status: str
    ok: bool
    rows: int = 0
    bytes: int = 0
    error: str | None = None
    checks: tuple[Check, ...] = ()
    export_s: float | None = None
    validate_s: float | None = None
    total_s: float | None = None
    rows_per_s: float | None = None
    attempts: tuple[dict[str, Any], ...] = ()
    quarantined: int = 0
    quarantine: dict[str, Any] | None = None


@dataclass(frozen=True)
class RunReport(Record):
    """The result of one sync run: ``status`` ok, partial (some tables kept their old data) or failed."""

    run_id: str
    status: str
    trigger: str
    user: str | None = None
    snapshot_id: str | None = None
    tables: tuple[TableResult, ...] = ()
    error: str | None = None
    retention_removed: tuple[str, ...] | None = None
    duration_s: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)
    budget: Check | None = None
    rows: int = 0
    bytes: int = 0
    #: what went wrong after the snapshot was published (retention, the run history): it stays published
    warnings: tuple[str, ...] = ()

    _optional: ClassVar[frozenset[str]] = frozenset({"error", "retention_removed"})

    def table(self, name: str) -> TableResult | None:
        return next((t for t in self.tables if t.table == name), None)
