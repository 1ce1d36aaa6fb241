"""Snowflake as a source, on Snowpark (``[source] kind = "snowflake"``).

* **Connection**: see :mod:`syncer.sources.snowflake_connect` (SPCS token file, then a named connection,
  then explicit config). A session that expires (or was closed) is re-opened once, transparently,
  for the next schema/count/profile/stream call.
* **Schema, count and profile** are Snowpark DataFrame operations (``df.schema``, ``df.count()``,
  ``df.agg(...)``), so the same code runs on a real account and in Snowpark's local testing mode.
  The profile uses :func:`syncer.validate.profile.plan_for` and :func:`~syncer.validate.profile.build_profile`, so it
  is compared value for value with what the export wrote.
* **Data** streams with bounded memory. On a real account: the connector's ``fetch_arrow_batches``
  with ``force_microsecond_precision`` (Snowpark's ``to_arrow_batches`` cannot pass that flag),
  re-sliced to ``batch_rows`` and cast to the one target schema (:mod:`syncer.sources.snowflake_types`);
  when the result is not in Arrow format, rows via ``fetchmany``. In local testing,
  ``to_arrow_batches`` yields rows, which are gathered into exact Arrow batches.
* **Bad rows**: a value that cannot be represented exactly raises :class:`~syncer._exceptions.BadRowsError`
  naming table, column and value; the source reads by key ranges (``key_bounds``, ``split_key``,
  ``stream_range``), so the export can isolate such rows into quarantine within ``max_bad_rows``
  or fail the table. Nothing is rounded or dropped silently.
* **Errors**: Snowpark's and the connector's are wrapped once, in :meth:`SnowflakeSource._wrap`: an
  object that does not exist (SQL error 2003) is :class:`~syncer._exceptions.SourceNotFoundError`, a
  dropped connection, a timeout or an expired session :class:`~syncer._exceptions.TransientSourceError`
  (retried), anything else :class:`~syncer._exceptions.SourceError`; a session that cannot be opened is
  :class:`~syncer._exceptions.SourceUnavailableError`.
* **Consistency**: the server clock is read once per run (at the first table's
  :meth:`SnowflakeSource.pinned`, kept as :attr:`~syncer.sources.base.Source.run_moment`), and every
  query of every table runs ``AT(TIMESTAMP => that moment)`` (Time Travel), so the tables of a
  snapshot are one cut; the moment is recorded in the manifest. Query tables (``query = "select ..."``),
  views and tables without Time Travel cannot be pinned and say so per table (``pinned: false``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import operator
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
from snowflake.snowpark import functions as F

from syncer._exceptions import (
    BadRowsError,
    SourceError,
    SourceNotFoundError,
    SourceUnavailableError,
    SyncError,
    TransientSourceError,
)
from syncer._log import scrub
from syncer.config import SourceConfig, TableConfig
from syncer.sources.base import Exclusion, KeyRange, RowFilter, Source, quote_ident
from syncer.sources.snowflake_connect import ConnectionPlan, connection_plan, factory_injected, session_factory
from syncer.sources.snowflake_types import (
    aggregates,
    arrow_schema,
    fit_batch,
    precision_guard_sql,
    py_value,
    range_sql,
    rows_in_batches,
    rows_to_batch,
    sf_table_name,
    stat_value,
    time_travel_clause,
)
from syncer.sources.snowflake_unload import SnowflakeEngine
from syncer.validate.profile import build_profile, plan_for

__all__ = ["SnowflakeSource", "describe_config"]

log = logging.getLogger("syncer")

# Snowpark client error codes: 1402 "session has expired", 1404 "session has been closed".
_SESSION_GONE = {"1402", "1404"}
# Snowflake SQL error codes: 390112 session expired, 390114 authentication token expired.
_TOKEN_EXPIRED = {390112, 390114}
# Snowflake SQL error 2003: "Object ... does not exist or not authorized"; 707: Time Travel data not available.
_NOT_FOUND, _NO_TIME_TRAVEL = 2003, 707


def describe_config(cfg: SourceConfig, plan: ConnectionPlan | None = None) -> dict[str, Any]:
    """What the manifest records about a Snowflake source: method and non-secret parameters."""
    out: dict[str, Any] = {"kind": "snowflake"}
    if plan is None and not factory_injected():
        try:
            plan = connection_plan(cfg)
        except SourceError as exc:
            out["connection_error"] = str(exc)
    if plan is not None:
        out.update(plan.describe())
    else:
        out.setdefault("method", "injected session factory")
        for key in ("role", "warehouse", "database", "schema"):
            if getattr(cfg, key):
                out[key] = getattr(cfg, key)
    return out


class SnowflakeSource(SnowflakeEngine, Source):  # type: ignore[override]  # supports_unload is a property here
    kind = "snowflake"

    def __init__(self, cfg: SourceConfig) -> None:
        self.cfg = cfg
        self._factory, self._plan = session_factory(cfg)
        self._as_of: dt.datetime | None = None
        self._session = self._open()

    # --- session ------------------------------------------------------------------------------

    def _open(self) -> Any:
        try:
            return self._factory()
        except SyncError:
            raise
        except Exception as exc:  # an injected factory's failure, wrapped like a connect failure
            raise SourceUnavailableError(
                f"cannot open a Snowflake session: {scrub(_first_line(exc))}; check the [source] connection settings"
            ) from None

    def _reopen(self) -> None:
        with contextlib.suppress(Exception):
            self._session.close()
        self._session = self._open()

    @property
    def local_testing(self) -> bool:
        """True for a Snowpark local-testing session (no SQL text, no connector, no Time Travel)."""
        # Snowpark has no public flag for this; its mock connection class is the reliable sign.
        from snowflake.snowpark.mock._connection import MockServerConnection

        return isinstance(getattr(self._session, "_conn", None), MockServerConnection)

    def _run(self, table: TableConfig, what: str, fn: Callable[[Any], Any]) -> Any:
        """``fn(session)``; re-open an expired session once; wrap Snowflake's errors once."""
        for attempt in (1, 2):
            try:
                return fn(self._session)
            except SyncError:
                raise
            except Exception as exc:  # Snowpark/connector errors are wrapped here, once
                if attempt == 1 and _session_gone(exc):
                    log.warning(
                        "Snowflake session expired or closed during %s of table %s; opening a new one",
                        what,
                        table.name,
                        extra={"table": table.name, "step": what},
                    )
                    self._reopen()
                    continue
                raise self._wrap(exc, table, what) from exc
        raise AssertionError("unreachable")

    def _wrap(self, exc: BaseException, table: TableConfig, what: str) -> SourceError:
        msg = scrub(_first_line(exc))
        if isinstance(exc, NotImplementedError) and table.query is not None:
            return SourceError(
                f"table {table.name!r} is a query; Snowpark local testing cannot run SQL text ({msg}); "
                "it runs on a real Snowflake account"
            )
        if _sql_code(exc) == _NOT_FOUND or "does not exist or not authorized" in msg:
            if table.query is not None:
                return SourceNotFoundError(f"table {table.name!r}: the query names an object Snowflake cannot find: {msg}")
            where = ".".join(p for p in (self._current("database"), self._current("schema")) if p)
            return SourceNotFoundError(
                f"source table {table.source!r} ({sf_table_name(table.source or '')}) not found in Snowflake"
                f"{' under ' + where if where else ''}, or the role may not read it: {msg}; "
                f"check [[tables]] {table.name!r} and the grants (setup.sql)"
            )
        # A dropped connection, or a session that expired mid-stream: the export retries the table,
        # and the next call re-opens the session.
        cls = TransientSourceError if _transient(exc) or _session_gone(exc) else SourceError
        return cls(f"table {table.name!r}: Snowflake {what} failed: {msg}")

    def _current(self, what: str) -> str | None:
        with contextlib.suppress(Exception):
            val = getattr(self._session, f"get_current_{what}")()
            return str(val).strip('"') if val else None
        return None

    def describe(self) -> dict[str, Any]:
        from snowflake.snowpark.version import VERSION

        out = describe_config(self.cfg, self._plan)
        out["local_testing"] = self.local_testing
        out["snowpark_version"] = ".".join(str(p) for p in VERSION if p is not None)
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._session.close()

    # --- the pinned moment ----------------------------------------------------------------------

    @contextlib.contextmanager
    def pinned(self, table: TableConfig) -> Iterator[dict[str, Any]]:
        if self.run_moment is None:
            # Once per run: every table reads AT this moment, so the snapshot is one cut.
            self.run_moment = self._run(table, "pin", _server_now)
        now = self.run_moment
        info: dict[str, Any] = {"as_of": now.isoformat().replace("+00:00", "Z"), "pinned": False}
        self._as_of = None
        if table.query is not None:
            info.update(
                isolation="none",
                reason="Time Travel pins tables, not query text: count, profile and data are read one after another",
            )
        else:
            self._as_of = now
            refused = self._run(table, "pin", lambda s: self._probe_time_travel(s, table))
            if refused is not None:
                self._as_of = None
                info.update(isolation="none", reason=f"Time Travel is not available for this table: {refused}")
                log.warning(
                    "table %s: Time Travel not available (%s); reading without a pinned moment",
                    table.name,
                    refused,
                    extra={"table": table.name, "step": "pin"},
                )
            elif self.local_testing:
                info.update(isolation="none", reason="Snowpark local testing ignores Time Travel (nothing writes concurrently)")
            else:
                info.update(isolation="time_travel", pinned=True, clause=time_travel_clause(now))
        try:
            yield info
        finally:
            self._as_of = None

    def _probe_time_travel(self, session: Any, table: TableConfig) -> str | None:
        try:
            self._frame(session, table).limit(1).collect()
        except Exception as exc:
            # A missing object, a dropped connection or an expired session are what they are; any
            # other refusal of AT(...) -- no Time Travel data (707), a view, an external table --
            # means the table cannot be pinned: it is read unpinned and says so (a table that is
            # broken otherwise fails on that read, with its own message).
            if _sql_code(exc) == _NOT_FOUND or _transient(exc) or _session_gone(exc):
                raise
            return scrub(_first_line(exc))
        return None

    def _frame(self, session: Any, table: TableConfig, where: RowFilter | None = None) -> Any:
        if table.query is not None:
            df = session.sql(table.query)
        elif self._as_of is not None:
            name = sf_table_name(table.source or "")
            df = session.table(name, time_travel_mode="at", timestamp=_stamp(self._as_of), timestamp_type="TZ")
        else:
            df = session.table(sf_table_name(table.source or ""))
        cond = _condition(table, where)
        if cond is None:
            return df
        df = df.filter(cond)
        if self.local_testing:
            # Snowpark local testing (1.56) keeps the pandas index through a filter and misaligns
            # the rows of computed columns (IFF, COALESCE) after it; materialising the filtered rows
            # gives them a fresh index. A real account filters in SQL and needs nothing of the kind.
            df = df.cache_result()
        return df

    # --- the Source interface ---------------------------------------------------------------------

    def schema(self, table: TableConfig) -> pa.Schema:
        struct = self._run(table, "schema", lambda s: self._frame(s, table).schema)
        return arrow_schema(table, struct)

    def count(self, table: TableConfig, where: RowFilter | None = None) -> int:
        return int(self._run(table, "count", lambda s: self._frame(s, table, where).count()))

    def profile(self, table: TableConfig, schema: pa.Schema, where: RowFilter | None = None) -> dict[str, Any]:
        if not self.local_testing and where is None:
            self._guard_precision(table, schema)
        plans = [plan_for(f) for f in schema]
        exprs = [F.count(F.lit(1))]
        for plan, field in zip(plans, schema, strict=True):
            exprs += aggregates(plan, field)
        aliased = [e.alias(f"A{i}") for i, e in enumerate(exprs)]
        row = self._run(table, "profile", lambda s: self._frame(s, table, where).agg(*aliased).collect()[0])
        values = iter(row)
        rows = int(next(values))
        raw = []
        for plan, field in zip(plans, schema, strict=True):
            st: dict[str, Any] = {"nulls": int(next(values) or 0)}
            if plan.minmax:
                st["min"], st["max"] = stat_value(next(values), field, plan), stat_value(next(values), field, plan)
            if plan.total:
                st["sum"] = stat_value(next(values), field, plan)
            if plan.floating:
                st["nans"] = int(next(values) or 0)
            raw.append(st)
        return build_profile(rows, plans, raw)

    def _guard_precision(self, table: TableConfig, schema: pa.Schema) -> None:
        sql = precision_guard_sql(table, schema, self._as_of)
        if sql is None:
            return
        row = self._run(table, "precision check", lambda s: s.sql(sql).collect()[0])
        temporal = [f for f in schema if pa.types.is_time(f.type) or pa.types.is_timestamp(f.type)]
        for field, example in zip(temporal, row, strict=True):
            if example is not None:
                raise BadRowsError(
                    f"table {table.name!r}: column {field.name!r}: value {example!r} has sub-microsecond digits, "
                    f"which {field.type} cannot hold; nothing was rounded. Truncate it in a query "
                    f"(e.g. DATE_TRUNC('microsecond', {quote_ident(field.name)})) or exclude the column"
                )

    def stream(self, table: TableConfig, schema: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]:
        if self.local_testing:
            yield from self._stream_snowpark(table, schema, batch_rows, None)
        else:
            yield from self._stream_connector(table, schema, batch_rows, None)

    # --- reading by key ranges (the export isolates unreadable rows with these) --------------------

    supports_key_ranges = True

    def key_bounds(self, table: TableConfig, key: str) -> tuple[Any, Any]:
        c = F.col(quote_ident(key))
        row = self._run(table, "key bounds", lambda s: self._frame(s, table).agg(F.min(c), F.max(c)).collect()[0])
        return py_value(row[0]), py_value(row[1])

    def split_key(self, table: TableConfig, rng: KeyRange) -> Any:
        c = F.col(quote_ident(rng.key))

        def split(session: Any) -> Any:
            keys = self._frame(session, table, rng).select(c).distinct()
            n = int(keys.count())
            if n <= 1:
                return None
            return py_value(keys.sort(c).limit(1, offset=n // 2).collect()[0][0])

        return self._run(table, "key split", split)

    def stream_range(self, table: TableConfig, schema: pa.Schema, batch_rows: int, rng: KeyRange) -> Iterator[pa.RecordBatch]:
        if self.local_testing:
            return self._stream_snowpark(table, schema, batch_rows, rng)
        return self._stream_connector(table, schema, batch_rows, rng)

    def _stream_connector(
        self, table: TableConfig, schema: pa.Schema, batch_rows: int, where: RowFilter | None
    ) -> Iterator[pa.RecordBatch]:
        from snowflake.connector.errors import NotSupportedError

        # "?" placeholders in a row filter: Snowpark connects with paramstyle = qmark.
        sql, params = range_sql(table, schema, self._as_of, where)
        cursor = self._run(table, "stream", lambda s: s.connection.cursor().execute(sql, params or None))
        try:
            try:
                chunks = cursor.fetch_arrow_batches(force_microsecond_precision=True)
            except NotSupportedError:
                # The result is not in Arrow format (e.g. PYTHON_CONNECTOR_QUERY_RESULT_FORMAT = JSON).
                log.info("table %s: result not in Arrow format; reading rows", table.name, extra={"table": table.name})
                yield from rows_in_batches(table.name, schema, _fetch_rows(cursor, batch_rows), batch_rows)
                return
            for chunk in chunks:
                for rb in chunk.to_batches(max_chunksize=batch_rows):
                    yield fit_batch(table.name, schema, rb)
        except SyncError:
            raise
        except Exception as exc:  # wrapped once, here
            raise self._wrap(exc, table, "stream") from exc
        finally:
            with contextlib.suppress(Exception):
                cursor.close()

    def _stream_snowpark(
        self, table: TableConfig, schema: pa.Schema, batch_rows: int, where: RowFilter | None
    ) -> Iterator[pa.RecordBatch]:
        cols = [F.col(quote_ident(f.name)) for f in schema]
        items = self._run(table, "stream", lambda s: iter(self._frame(s, table, where).select(cols).to_arrow_batches()))
        pending: list[Any] = []
        try:
            for item in items:
                if isinstance(item, pa.Table):
                    # Arrow from Snowpark: flush gathered rows first, keep the order.
                    yield from rows_in_batches(table.name, schema, pending, batch_rows)
                    pending = []
                    for rb in item.to_batches(max_chunksize=batch_rows):
                        yield fit_batch(table.name, schema, rb)
                    continue
                # Local testing hands out Row objects from to_arrow_batches.
                pending.append(item)
                if len(pending) >= batch_rows:
                    yield rows_to_batch(table.name, schema, pending)
                    pending = []
            if pending:
                yield rows_to_batch(table.name, schema, pending)
        except SyncError:
            raise
        except Exception as exc:  # wrapped once, here
            raise self._wrap(exc, table, "stream") from exc


# --- helpers ---------------------------------------------------------------------------------------


def _condition(table: TableConfig, where: RowFilter | None) -> Any:
    """A row filter of the export as a Snowpark Column (so it runs in local testing too)."""
    if where is None:
        return None
    if isinstance(where, KeyRange):
        c = F.col(quote_ident(where.key))
        if where.lo is None:
            return c.is_null()
        upper = c < F.lit(where.hi) if where.open_hi else c <= F.lit(where.hi)
        return (c >= F.lit(where.lo)) & upper
    if isinstance(where, Exclusion):
        cols = [F.col(quote_ident(k)) for k in where.keys]
        parts = [c.is_null() for c in cols]
        if where.values and len(cols) == 1:
            parts.append(cols[0].isin([v[0] for v in where.values]))
        else:
            for v in where.values:
                parts.append(functools.reduce(operator.and_, [c == F.lit(x) for c, x in zip(cols, v, strict=True)]))
        return ~functools.reduce(operator.or_, parts)
    raise SourceError(f"table {table.name!r}: the Snowflake source cannot apply a {type(where).__name__} row filter")


def _transient(exc: BaseException) -> bool:
    """A dropped connection or a timeout (worth retrying), as opposed to a wrong query."""
    from snowflake.connector.errors import OperationalError

    root = getattr(exc, "conn_error", None) or exc
    return isinstance(root, OperationalError | TimeoutError | ConnectionError)


def _server_now(session: Any) -> dt.datetime:
    """The server's clock, aware, in UTC (the pinned moment comes from Snowflake, not this host)."""
    now = py_value(session.range(1).select(F.current_timestamp().alias("NOW")).collect()[0][0])
    if now.tzinfo is None:
        now = now.astimezone()  # local testing: a naive local time
    return now.astimezone(dt.UTC)


def _stamp(as_of: dt.datetime) -> str:
    return as_of.astimezone(dt.UTC).isoformat(sep=" ")


def _fetch_rows(cursor: Any, batch_rows: int) -> Iterator[Any]:
    while True:
        rows = cursor.fetchmany(batch_rows)
        if not rows:
            return
        yield from rows


def _sql_code(exc: BaseException) -> int | None:
    for attr in ("sql_error_code", "errno"):
        code = getattr(exc, attr, None)
        if isinstance(code, int):
            return code
    return None


def _session_gone(exc: BaseException) -> bool:
    if str(getattr(exc, "error_code", "")) in _SESSION_GONE or _sql_code(exc) in _TOKEN_EXPIRED:
        return True
    from snowflake.connector.network import ReauthenticationRequest

    if isinstance(exc, ReauthenticationRequest):
        return True
    text = str(exc).lower()
    return "session has expired" in text or "authentication token has expired" in text


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
