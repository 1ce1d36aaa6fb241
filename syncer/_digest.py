"""sha256 of a file and of a table's parts: what the writers record and ``status`` / ``verify``
check, in a module that loads nothing but :mod:`hashlib` (the formats load pyarrow)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["parts_digest", "sha256_file"]


def parts_digest(parts: Sequence[Any]) -> str:
    """One sha256 for a table written in parts: of its ``sha256sum``-style listing ("<sha256>  <name>\\n" per part)."""
    lines = []
    for p in parts:
        name, digest = (p["name"], p["sha256"]) if isinstance(p, dict) else (p.name, p.sha256)
        lines.append(f"{digest}  {name}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(4 << 20):
            h.update(chunk)
    return h.hexdigest()
