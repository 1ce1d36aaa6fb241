"""The typed readers of config values every section uses: one message style for every wrong value
("<label> must be ..., got ..."), unknown keys with the closest known one."""

from __future__ import annotations

from typing import Any

from syncer._exceptions import ConfigError
from syncer.config.model import suggest

__all__ = ["check_keys", "get", "nonempty_str", "number", "positive_int", "positive_number", "str_list"]


def nonempty_str(d: dict[str, Any], key: str, label: str) -> str | None:
    val = get(d, key, str, None, label)
    if val is not None and (not val.strip() or any(ord(ch) < 32 for ch in val)):
        raise ConfigError(f"{label} must be a non-empty name without control characters")
    return val


def check_keys(d: dict[str, Any], known: set[str], where: str, prefix: str) -> None:
    for key in d:
        if key not in known:
            raise ConfigError(f"{where}: {prefix}unknown key {key!r}{suggest(key, sorted(known))}")


def get(d: dict[str, Any], key: str, typ: type, default: Any, label: str) -> Any:
    if key not in d:
        return default
    val = d[key]
    if (typ is bool and not isinstance(val, bool)) or (typ is not bool and not isinstance(val, typ)):
        raise ConfigError(f"{label} must be {typ.__name__}, got {val!r}")
    return val


def number(d: dict[str, Any], key: str, default: float, label: str) -> float:
    val = d.get(key, default)
    if isinstance(val, bool) or not isinstance(val, int | float):
        raise ConfigError(f"{label} must be a number, got {val!r}")
    return float(val)


def positive_number(d: dict[str, Any], key: str, default: float, label: str) -> float:
    val = number(d, key, default, label)
    if val <= 0:
        raise ConfigError(f"{label} must be greater than 0, got {val:g}")
    return val


def positive_int(d: dict[str, Any], key: str, default: int, label: str) -> int:
    val = d.get(key, default)
    if isinstance(val, bool) or not isinstance(val, int) or val <= 0:
        raise ConfigError(f"{label} must be a positive integer, got {val!r}")
    return val


def str_list(d: dict[str, Any], key: str, label: str) -> tuple[str, ...]:
    val = d.get(key, [])
    if isinstance(val, str):
        val = [val]
    if not isinstance(val, list) or not all(isinstance(v, str) and v for v in val):
        raise ConfigError(f"{label} must be a list of non-empty strings, got {val!r}")
    return tuple(val)
