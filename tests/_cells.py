"""Cells as plain JSON values whichever reader produced them, to compare readers cell by cell.

``python -m tests._cells ENGINE PATH...`` reads Parquet files with fastparquet in a child process
and prints ``{"columns": [...], "rows": [[cell, ...], ...]}`` on stdout: a crash in fastparquet's
decoder (a SIGSEGV) then ends the child with an exit code the test asserts on, not the test run.
ENGINE is ``pandas`` (``pandas.read_parquet(path, engine="fastparquet")``) or ``fastparquet``
(``fastparquet.ParquetFile(path).to_pandas()``).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import sys
from typing import Any


def cell(value: Any) -> Any:
    """One JSON-able form per value: ints, floats (``"NaN"``), decimals as text, times as ISO text
    (UTC with ``Z`` when zoned, nanoseconds kept), None for every kind of null."""
    import numpy as np
    import pandas as pd

    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return "NaN" if math.isnan(value) else float(value)
    if isinstance(value, decimal.Decimal):
        return "0" if value == 0 else format(value.normalize(decimal.Context(prec=100)), "f")
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            return None
        value = pd.Timestamp(value)
    if isinstance(value, dt.datetime):  # pd.Timestamp too
        ts = pd.Timestamp(value)
        zone = ""
        if ts.tzinfo is not None:
            ts, zone = ts.tz_convert("UTC").tz_localize(None), "Z"
        return ts.isoformat() + zone
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def frame_rows(df: Any) -> dict[str, Any]:
    """A pandas DataFrame as columns and rows of cells (``itertuples`` would turn ns timestamps into
    datetimes; ``iloc`` per column keeps pandas' own values)."""
    columns = [str(c) for c in df.columns]
    data = [[cell(v) for v in df[c].array] for c in df.columns]
    return {"columns": columns, "rows": [list(r) for r in zip(*data, strict=True)]}


def main(engine: str, paths: list[str]) -> None:
    import pandas as pd

    frames = []
    for path in paths:
        if engine == "pandas":
            frames.append(pd.read_parquet(path, engine="fastparquet"))
        else:
            import fastparquet

            frames.append(fastparquet.ParquetFile(path).to_pandas())
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    dtypes = {str(c): str(t) for c, t in df.dtypes.items()}
    json.dump({**frame_rows(df), "dtypes": dtypes}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
