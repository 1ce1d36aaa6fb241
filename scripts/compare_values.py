"""Cell comparison for the reader matrix: is what a reader gave the source value, exactly or converted?

``exact``: the same value in the same kind of Python value, once representation is set aside (a
pandas ``Timestamp`` and a ``datetime`` of the same instant and zone-awareness are equal; numpy
scalars are their Python values; NaN equals NaN; ``pd.NA``/``NaT``/``None`` are null). ``-0.0`` and
``0.0`` are NOT exact (the sign is part of an IEEE value); ``1`` and ``1.0`` are not exact either.

``converted``: the value survives but in another kind an app must convert back: a date as ISO text,
an integer as a float that holds it exactly, a DECIMAL as a float whose shortest text is the decimal,
bytes as base64 text, a null as NaN, ``-0.0`` as ``0.0``, JSON text re-spaced or parsed.

Anything else ``differs``: ``9007199254740993`` read as ``9007199254740992.0``, ``''`` read as null,
``'007'`` read as ``7``, a dropped time-zone offset.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import json
import math
import uuid
from typing import Any

EPOCH = dt.datetime(1970, 1, 1)


def _is_nullish(v: Any) -> bool:
    if v is None:
        return True
    name = type(v).__name__
    return name in ("NAType", "NaTType") or (name == "datetime64" and str(v) == "NaT")


def _is_nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _scalar(v: Any) -> Any:
    """numpy scalars and arrays as Python values (np.float64 is a float already)."""
    mod = type(v).__module__
    if mod == "numpy":
        if type(v).__name__ == "ndarray":
            return list(v)
        if type(v).__name__ in ("datetime64", "timedelta64"):
            import pandas as pd

            return pd.Timestamp(v) if type(v).__name__ == "datetime64" else pd.Timedelta(v)
        return v.item()
    return v


def _ns(v: dt.datetime) -> tuple[bool, int]:
    """(zone-aware?, nanoseconds since the epoch, UTC for aware values)."""
    if type(v).__name__ == "Timestamp":
        # Timestamp.value is in nanoseconds and overflows outside 1677-2262 for a coarser unit:
        # count in the Timestamp's own unit, then scale (exact, whatever the year)
        per = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[v.unit]
        return v.tzinfo is not None, int(v.asm8.view("i8")) * per
    aware = v.tzinfo is not None
    naive = v.astimezone(dt.UTC).replace(tzinfo=None) if aware else v
    return aware, (naive - EPOCH) // dt.timedelta(microseconds=1) * 1000


def canon(v: Any) -> Any:
    """A hashable form in which equal means exactly the same value (see the module docstring)."""
    v = _scalar(v)
    if _is_nullish(v):
        return None
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, int):
        return ("int", v)
    if isinstance(v, float):
        return ("float", "nan") if math.isnan(v) else ("float", v, math.copysign(1.0, v))
    if isinstance(v, decimal.Decimal):
        return ("dec", v)
    if isinstance(v, dt.datetime):
        return ("ts", *_ns(v))
    if isinstance(v, dt.date):
        return ("date", v.toordinal())
    if isinstance(v, dt.time):
        return ("time", v.replace(tzinfo=None).isoformat(), v.utcoffset())
    if isinstance(v, dt.timedelta):
        return ("dur", int(getattr(v, "value", v // dt.timedelta(microseconds=1) * 1000)))
    if type(v).__name__ == "MonthDayNano":
        return ("mdn", v.months, v.days, v.nanoseconds)
    if isinstance(v, bytes | bytearray | memoryview):
        return ("bytes", bytes(v))
    if isinstance(v, str):
        return ("str", v)
    if isinstance(v, uuid.UUID):
        return ("uuid", str(v))
    if isinstance(v, dict):
        return ("dict", tuple((k, canon(x)) for k, x in v.items()))
    if isinstance(v, list | tuple):
        return ("list", tuple(canon(x) for x in v))
    return ("other", type(v).__name__, repr(v))


def exact(expected: Any, got: Any) -> bool:
    return canon(expected) == canon(got)


def converted(expected: Any, got: Any) -> bool:
    """True when ``got`` is ``expected`` in another kind of value (exact values included)."""
    try:
        return exact(expected, got) or _loose(_scalar(expected), _scalar(got))
    except (ValueError, TypeError, OverflowError, ArithmeticError, binascii.Error):
        return False


def _loose(exp: Any, got: Any) -> bool:
    if exp is None:
        return _is_nullish(got) or _is_nan(got)
    if _is_nullish(got):
        return False
    if isinstance(got, str) and not isinstance(exp, str):
        return _from_text(exp, got)
    if isinstance(exp, bool):
        return not isinstance(got, float) and got in (0, 1) and bool(got) is exp
    if isinstance(exp, int):
        if isinstance(got, float):
            return got.is_integer() and int(got) == exp
        return isinstance(got, int | decimal.Decimal) and not isinstance(got, bool) and got == exp
    if isinstance(exp, float):
        if isinstance(got, int | float | decimal.Decimal) and not isinstance(got, bool):
            return (math.isnan(exp) and _is_nan(float(got))) or float(got) == exp
        return False
    if isinstance(exp, decimal.Decimal):
        if isinstance(got, float):
            return math.isfinite(got) and decimal.Decimal(repr(got)) == exp
        return isinstance(got, int | decimal.Decimal) and not isinstance(got, bool) and decimal.Decimal(got) == exp
    if isinstance(exp, dt.datetime):
        if isinstance(got, dt.datetime):
            a, b = _ns(exp)[1], _ns(got)[1]
            return a == b  # the same wall clock read as UTC, or the other way round
        return isinstance(got, dt.date) and exp.time() == dt.time(0) and exp.date() == got
    if isinstance(exp, dt.date):
        return isinstance(got, dt.datetime) and got.time() == dt.time(0) and got.date() == exp
    if isinstance(exp, dt.time):
        if isinstance(got, dt.timedelta) and exp.tzinfo is None:
            return dt.datetime.combine(dt.date(2000, 1, 1), exp) - dt.datetime(2000, 1, 1) == got
        return (
            isinstance(got, dt.time)
            and got.replace(tzinfo=None) == exp.replace(tzinfo=None)
            and got.utcoffset() == exp.utcoffset()
        )
    if type(exp).__name__ == "MonthDayNano":
        if isinstance(got, dict) and list(got) == ["months", "days", "nanoseconds"]:  # JSONL's spelling, as a struct
            return (got["months"], got["days"], got["nanoseconds"]) == (exp.months, exp.days, exp.nanoseconds)
        if type(got).__name__ == "DateOffset":  # pandas' own: the three parts, kept apart
            kw = got.kwds
            return set(kw) <= {"months", "days", "nanoseconds"} and (
                kw.get("months", 0),
                kw.get("days", 0),
                kw.get("nanoseconds", 0),
            ) == (exp.months, exp.days, exp.nanoseconds)
        if isinstance(got, dt.timedelta) and exp.months == 0:
            return canon(got) == ("dur", exp.days * 86_400 * 10**9 + exp.nanoseconds)
        if isinstance(got, int | float) and exp.months == 0 and exp.days == 0:
            return got * 10**9 == exp.nanoseconds
        return False
    if isinstance(exp, bytes):
        return isinstance(got, bytes | bytearray | memoryview) and bytes(got) == exp
    if isinstance(exp, uuid.UUID):
        return isinstance(got, bytes) and len(got) == 16 and uuid.UUID(bytes=got) == exp
    if isinstance(exp, str):
        if exp[:1] in ("{", "[", '"') and isinstance(got, dict | list):
            return converted(json.loads(exp), got)
        if exp[:1] in ("{", "[", '"') and isinstance(got, str) and got[:1] == exp[:1]:  # JSON text re-spaced
            return canon(json.loads(exp)) == canon(json.loads(got))
        return False
    if isinstance(exp, dict):
        return isinstance(got, dict) and list(got) == list(exp) and all(converted(exp[k], got[k]) for k in exp)
    if isinstance(exp, list):
        if isinstance(got, dict):  # a MAP as a dict
            got = list(got.items())
        if not isinstance(got, list | tuple) or len(got) != len(exp):
            return False
        return all(converted(a, _pair(b) if isinstance(a, tuple) else b) for a, b in zip(exp, got, strict=True))
    if isinstance(exp, tuple):  # a MAP entry
        got = _pair(got)
        return (
            isinstance(got, tuple | list) and len(got) == len(exp) and all(converted(a, b) for a, b in zip(exp, got, strict=True))
        )
    return False


def _pair(v: Any) -> Any:
    """A MAP entry as polars/DuckDB spell it ({'key': k, 'value': v}) as the (k, v) pair."""
    if isinstance(v, dict) and set(v) == {"key", "value"}:
        return (v["key"], v["value"])
    return v


def _from_text(exp: Any, got: str) -> bool:
    """``got`` is text: the source value written out (ISO dates, decimal digits, base64, JSON)."""
    if isinstance(exp, uuid.UUID):
        return got == str(exp)
    if isinstance(exp, bool):
        return got.lower() == str(exp).lower()
    if isinstance(exp, int):
        return got == str(exp)
    if isinstance(exp, float):
        return exact(float(got), exp) or float(got) == exp
    if isinstance(exp, decimal.Decimal):
        return decimal.Decimal(got) == exp
    if isinstance(exp, dt.datetime):
        return _loose(exp, _parse_datetime(got))
    if isinstance(exp, dt.date):
        return got[:10] == exp.isoformat() and got[10:] in ("", " 00:00:00", "T00:00:00")
    if isinstance(exp, dt.time):
        return _loose(exp, dt.time.fromisoformat(got))
    if isinstance(exp, bytes):
        return base64.b64decode(got, validate=True) == exp
    if isinstance(exp, list | dict):
        return converted(exp, json.loads(got))
    return False


def _parse_datetime(text: str) -> Any:
    try:
        import pandas as pd

        return pd.Timestamp(text)
    except (ValueError, OverflowError):
        return dt.datetime.fromisoformat(text.replace(" ", "T"))


def arrow_columns(table: Any) -> dict[str, list[Any]]:
    """A pyarrow Table as Python values per column; a time64[ns] column as its ISO text with the
    nanoseconds (``12:00:00.123456789``: a Python time stops at microseconds)."""
    return {
        name: _ns_text(col) if str(col.type) == "time64[ns]" else col.to_pylist()
        for name, col in zip(table.column_names, table.columns, strict=True)
    }


def frame_columns(df: Any) -> dict[str, list[Any]]:
    """A pandas DataFrame as Python values per column, Arrow-backed time64[ns] columns as ISO text."""
    out = {}
    for c in df.columns:
        pa_type = getattr(df[c].dtype, "pyarrow_dtype", None)
        out[str(c)] = _ns_text(df[c].array.__arrow_array__()) if str(pa_type) == "time64[ns]" else df[c].tolist()
    return out


def _ns_text(col: Any) -> list[Any]:
    import pyarrow as pa

    out = []
    for v in col.cast(pa.int64()).to_pylist():
        if v is None:
            out.append(None)
            continue
        seconds, ns = divmod(v, 10**9)
        out.append(f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" + (f".{ns:09d}" if ns else ""))
    return out


def show(v: Any, width: int = 48) -> str:
    """A short, one-line spelling of a value for a matrix cell."""
    v = _scalar(v)
    text = repr(v)
    if type(v).__name__ == "Timestamp":
        text = f"Timestamp({v.isoformat()})"
    text = text.replace("\n", "\\n").replace("\r", "\\r").replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"
