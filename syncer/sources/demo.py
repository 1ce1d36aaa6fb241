"""The embedded demo warehouse: a realistic, deterministic DuckDB file to sync from.

:func:`build_demo` writes four tables that together cover every column type the engine handles
(integers, decimals, floats, booleans, strings, dates, timestamps, JSON)::

    participants    user registry (PII-like: emails, names, password hashes)   max(100, rows // 10)
    courses         content metadata, with a JSON ``metadata`` column          max(20, min(2000, rows // 400))
    enrollments     the fact table                                             rows
    daily_metrics   operational data, one row per day from 2024-01-01          max(30, min(1000, rows // 1000))

Everything is generated in DuckDB SQL from ``range()`` with integer arithmetic (a small
multiply/xor-shift hash of the row number and the seed), so the same ``rows`` and ``seed`` always
give the same table contents -- no ``random()``, no UUIDs, no wall clock.  Foreign keys
(``enrollments.participant_id`` / ``course_id``), ``completed_at`` vs ``status`` and
``updated_at >= created_at`` hold by construction -- unless ``orphans = N`` asks for N enrollments
whose participant does not exist (so the declared references of ``sync.toml`` can be seen failing).
The foreign keys are deliberately not declared:
in DuckDB they cost an extra index per column (5M rows: 2x the build time, 2.3x the file size) and
would forbid dropping/replacing the referenced tables.

The file is built next to its destination under a temporary name and moved over it with
:func:`os.replace`, so nobody ever opens a half-built warehouse and an existing one is replaced
whole.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from syncer._exceptions import ConfigError, SourceError
from syncer.sources import demo_words as words
from syncer.sources.demo_progress import DemoProgress, run_with_progress

__all__ = ["DEFAULT_ROWS", "DEMO_TABLES", "build_demo"]

DEFAULT_ROWS = 200_000
DEMO_TABLES = ("participants", "courses", "enrollments", "daily_metrics")

_DAY = 86_400
_BASE = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())  # first metrics day
_SIGNUP_LEAD_DAYS = 180  # participants start signing up this long before _BASE


def _sql_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _sql_structs(pairs: tuple[tuple[str, str], ...], a: str, b: str) -> str:
    items = ", ".join(
        "{{'{a}': '{x}', '{b}': '{y}'}}".format(a=a, b=b, x=x.replace("'", "''"), y=y.replace("'", "''")) for x, y in pairs
    )
    return "[" + items + "]"


def _pick(values: tuple, expr: str) -> str:
    """SQL picking an element of ``values`` (inlined list) by the non-negative integer ``expr``."""
    return f"{_sql_list(values)}[({expr}) % {len(values)} + 1]"


# --------------------------------------------------------------------------------------------------
# The SQL. Only integers (and SQL built from the name lists above) are put into the {placeholders},
# by the functions below; the text is otherwise what DuckDB runs.

_SETTINGS = ("SET threads = 2", "SET enable_progress_bar = false")

# rnd(i, k): a well-mixed 32-bit value for row i and stream k (multiply/xor-shift hash).
_MIX1 = """CREATE OR REPLACE TEMP MACRO _mix1(i, k) AS
    ((i % 4294967296) * 2654435761 + CAST(k AS BIGINT) * 1663525291 + {seed}) % 4294967296"""
_MIX2 = "CREATE OR REPLACE TEMP MACRO _mix2(x) AS (xor(x, x >> 15) * 73244475) % 4294967296"
_MIX3 = "CREATE OR REPLACE TEMP MACRO _mix3(x) AS (xor(x, x >> 13) * 40503) % 4294967296"
_RND = "CREATE OR REPLACE TEMP MACRO rnd(i, k) AS xor(_mix3(_mix2(_mix1(i, k))), _mix3(_mix2(_mix1(i, k))) >> 16)"
# Seconds since the epoch at which participant p signed up (ids grow with time).
_SIGNUP_SEC = """CREATE OR REPLACE TEMP MACRO signup_sec(p) AS
    {signup_start} + (p - 1) * {signup_span} // {n_participants} + rnd(p, 5) % {signup_slot}"""

_CREATE_PARTICIPANTS = """CREATE TABLE participants (
    participant_id BIGINT PRIMARY KEY,
    email VARCHAR NOT NULL,
    first_name VARCHAR,
    last_name VARCHAR,
    country VARCHAR,
    created_at TIMESTAMP,
    updated_at TIMESTAMP,
    is_active BOOLEAN,
    password_hash VARCHAR
)"""
_INSERT_PARTICIPANTS = """INSERT INTO participants
SELECT
    i AS participant_id,
    first_name || '.' || last_name || CAST(i AS VARCHAR) || '@' || domain AS email,
    upper(first_name[1]) || first_name[2:] AS first_name,
    upper(last_name[1]) || last_name[2:] AS last_name,
    country,
    {created_at} AS created_at,
    {updated_at}
        AS updated_at,
    rnd(i, 8) % 100 < 87 AS is_active,
    'pbkdf2_sha256$600000$' || substr(md5('salt-{seed}-' || CAST(i AS VARCHAR)), 1, 22) || '$'
        || to_base64(unhex(sha256('pw-{seed}-' || CAST(i AS VARCHAR)))) AS password_hash
FROM (
    SELECT
        i,
        {pick_first_name} AS first_name,
        {pick_last_name} AS last_name,
        {pick_domain} AS domain,
        {pick_country} AS country,
        signup_sec(i) AS created
    FROM range(1, {stop}) AS t(i)
)"""

_CREATE_COURSES = """CREATE TABLE courses (
    course_id INTEGER PRIMARY KEY,
    title VARCHAR NOT NULL,
    category VARCHAR,
    level VARCHAR,
    published_at TIMESTAMP,
    duration_hours DOUBLE,
    price DECIMAL(8,2),
    metadata JSON
)"""
_INSERT_COURSES = """INSERT INTO courses
SELECT
    CAST(i AS INTEGER) AS course_id,
    prefix.p || ' ' || topic.t
        || CASE WHEN edition > 0 THEN ' (Edition ' || CAST(edition + 1 AS VARCHAR) || ')' ELSE '' END
        AS title,
    topic.c AS category,
    prefix.l AS level,
    {published_at} AS published_at,
    CAST(rnd(i, 12) % 79 + 2 AS DOUBLE) / 2 AS duration_hours,
    CASE WHEN rnd(i, 13) % 10 = 0 THEN CAST(0 AS DECIMAL(8,2))
         ELSE CAST((rnd(i, 14) % 19 + 2) * 1000 - 1 AS DECIMAL(8,0)) / 100 END::DECIMAL(8,2) AS price,
    json_object(
        'tags', [lower(topic.c), prefix.l,
                 trim(lower(regexp_replace(topic.t, '[^A-Za-z0-9]+', '-', 'g')), '-')],
        'language', {pick_language},
        'instructor', (upper(fn[1]) || fn[2:] || ' ' || upper(ln[1]) || ln[2:]),
        'version', CAST(rnd(i, 18) % 5 + 1 AS INTEGER)
    ) AS metadata
FROM (
    SELECT
        i,
        {topics}[(i - 1) % {n_topics} + 1] AS topic,
        {prefixes}[(i - 1) // {n_topics} % {n_prefixes} + 1] AS prefix,
        (i - 1) // {n_titles} AS edition,
        {pick_first_name} AS fn,
        {pick_last_name} AS ln
    FROM range(1, {stop}) AS t(i)
)"""

# Early participants and popular (low-id) courses get more enrollments: min of two draws.
# Everyone enrolls between signing up and "now"; 45 % completed, 25 % in progress,
# 15 % enrolled (not started), 15 % dropped; the last two have no score (30 % NULL).
_CREATE_ENROLLMENTS = """CREATE TABLE enrollments (
    enrollment_id BIGINT PRIMARY KEY,
    participant_id BIGINT NOT NULL,
    course_id INTEGER NOT NULL,
    enrolled_at TIMESTAMP,
    completed_at TIMESTAMP,
    status VARCHAR,
    score DECIMAL(5,2),
    progress DOUBLE
)"""
_INSERT_ENROLLMENTS = """INSERT INTO enrollments
SELECT
    i AS enrollment_id,
    participant_id,
    CAST(course_id AS INTEGER) AS course_id,
    {enrolled_at} AS enrolled_at,
    CASE WHEN r_status < 45 THEN
        {completed_at}
    END AS completed_at,
    CASE WHEN r_status < 45 THEN 'completed'
         WHEN r_status < 70 THEN 'in_progress'
         WHEN r_status < 85 THEN 'enrolled'
         ELSE 'dropped' END AS status,
    CASE WHEN r_status < 45 THEN
             CAST(CAST(10000 - least(rnd(i, 25) % 6001, rnd(i, 26) % 6001) AS DOUBLE) / 100 AS DECIMAL(5,2))
         WHEN r_status < 70 THEN CAST(CAST(rnd(i, 25) % 10001 AS DOUBLE) / 100 AS DECIMAL(5,2))
    END AS score,
    CASE WHEN r_status < 45 THEN 1.0
         WHEN r_status < 70 THEN CAST(rnd(i, 27) % 99 + 1 AS DOUBLE) / 100
         WHEN r_status < 85 THEN 0.0
         ELSE CAST(rnd(i, 27) % 60 AS DOUBLE) / 100 END AS progress
FROM (
    SELECT
        *,
        signup + rnd(i, 23) % ({end} - signup) AS enrolled
    FROM (
        SELECT
            i,
            participant_id,
            course_id,
            r_status,
            signup_sec(participant_id) AS signup
        FROM (
            SELECT
                i,
                least(rnd(i, 19) % {n_participants}, rnd(i, 20) % {n_participants}) + 1
                    AS participant_id,
                least(rnd(i, 21) % {n_courses}, rnd(i, 22) % {n_courses}) + 1 AS course_id,
                rnd(i, 28) % 100 AS r_status
            FROM range(1, {stop}) AS t(i)
        )
    )
)"""

# Counts, revenue and scores are aggregated from enrollments (exact decimal sums, so the
# result does not depend on thread scheduling); latency and incidents are synthetic.
_CREATE_DAILY_METRICS = """CREATE TABLE daily_metrics (
    metric_date DATE PRIMARY KEY,
    active_participants INTEGER,
    new_enrollments INTEGER,
    completions INTEGER,
    avg_score DOUBLE,
    revenue DECIMAL(12,2),
    p95_latency_ms DOUBLE,
    had_incident BOOLEAN
)"""
_INSERT_DAILY_METRICS = """INSERT INTO daily_metrics
WITH
    days AS (
        SELECT d, CAST(DATE '2024-01-01' + CAST(d AS INTEGER) AS DATE) AS metric_date,
               rnd(d, 31) % 100 < 4 AS had_incident
        FROM range({n_days}) AS t(d)
    ),
    started AS (
        SELECT CAST(e.enrolled_at AS DATE) AS day, count(*) AS n, sum(c.price) AS revenue
        FROM enrollments e JOIN courses c USING (course_id)
        WHERE e.enrolled_at >= {first_day}
        GROUP BY ALL
    ),
    finished AS (
        SELECT CAST(completed_at AS DATE) AS day, count(*) AS n,
               sum(score) AS score_sum, count(score) AS score_n
        FROM enrollments
        WHERE completed_at >= {first_day}
        GROUP BY ALL
    ),
    active AS (
        SELECT day, count(DISTINCT participant_id) AS n
        FROM (
            SELECT participant_id, CAST(enrolled_at AS DATE) AS day FROM enrollments
            WHERE enrolled_at >= {first_day}
            UNION ALL
            SELECT participant_id, CAST(completed_at AS DATE) AS day FROM enrollments
            WHERE completed_at >= {first_day}
        )
        GROUP BY ALL
    )
SELECT
    days.metric_date,
    CAST(coalesce(active.n, 0) AS INTEGER) AS active_participants,
    CAST(coalesce(started.n, 0) AS INTEGER) AS new_enrollments,
    CAST(coalesce(finished.n, 0) AS INTEGER) AS completions,
    round(CAST(finished.score_sum AS DOUBLE) / nullif(finished.score_n, 0), 2) AS avg_score,
    CAST(coalesce(started.revenue, 0) AS DECIMAL(12,2)) AS revenue,
    round(
        140 + CAST(rnd(days.d, 32) % 6000 AS DOUBLE) / 100
        + CASE WHEN isodow(days.metric_date) <= 5 THEN 35 ELSE 0 END
        + CASE WHEN days.had_incident THEN 400 + CAST(rnd(days.d, 33) % 160000 AS DOUBLE) / 100
               ELSE 0 END,
        1) AS p95_latency_ms,
    days.had_incident
FROM days
LEFT JOIN started ON started.day = days.metric_date
LEFT JOIN finished ON finished.day = days.metric_date
LEFT JOIN active ON active.day = days.metric_date
ORDER BY days.metric_date"""


def _validate(rows: object, seed: object) -> tuple[int, int]:
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise ConfigError(f"--rows must be a positive integer, got {rows!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"--seed must be an integer, got {seed!r}")
    return rows, seed % 4_294_967_296


@dataclass(frozen=True)
class _Shape:
    """The sizes and time span of a demo warehouse of ``rows`` enrollments."""

    rows: int
    seed: int
    n_participants: int
    n_courses: int
    n_days: int
    end: int  # the warehouse's "now": end of the last metrics day
    signup_start: int
    signup_span: int
    signup_slot: int

    @classmethod
    def of(cls, rows: int, seed: int) -> _Shape:
        n_participants = max(100, rows // 10)
        n_days = max(30, min(1000, rows // 1000))
        end = _BASE + n_days * _DAY
        signup_start = _BASE - _SIGNUP_LEAD_DAYS * _DAY
        signup_span = end - 2 * _DAY - signup_start  # everyone signed up at least 2 days before "now"
        return cls(
            rows=rows,
            seed=seed,
            n_participants=n_participants,
            n_courses=max(20, min(2000, rows // 400)),
            n_days=n_days,
            end=end,
            signup_start=signup_start,
            signup_span=signup_span,
            signup_slot=max(1, signup_span // n_participants),
        )


def _ts(seconds_expr: str) -> str:
    return f"make_timestamp(CAST(({seconds_expr}) AS BIGINT) * 1000000)"


def _macros(s: _Shape) -> list[str]:
    return [
        _MIX1.format(seed=s.seed),
        _MIX2,
        _MIX3,
        _RND,
        _SIGNUP_SEC.format(
            signup_start=s.signup_start, signup_span=s.signup_span, n_participants=s.n_participants, signup_slot=s.signup_slot
        ),
    ]


def _insert_participants(s: _Shape) -> str:
    return _INSERT_PARTICIPANTS.format(
        created_at=_ts("created"),
        updated_at=_ts(f"created + CASE WHEN rnd(i, 6) % 100 < 25 THEN 0 ELSE rnd(i, 7) % ({s.end} - created) END"),
        seed=s.seed,
        pick_first_name=_pick(words.FIRST_NAMES, "rnd(i, 1)"),
        pick_last_name=_pick(words.LAST_NAMES, "rnd(i, 2)"),
        pick_domain=_pick(words.EMAIL_DOMAINS, "rnd(i, 3)"),
        pick_country=_pick(words.COUNTRIES, "rnd(i, 4)"),
        stop=s.n_participants + 1,
    )


def _insert_courses(s: _Shape) -> str:
    return _INSERT_COURSES.format(
        published_at=_ts(f"{_BASE - 5 * 365 * _DAY} + rnd(i, 11) % {5 * 365 * _DAY + s.n_days * _DAY}"),
        pick_language=_pick(words.LANGUAGES, "rnd(i, 15)"),
        topics=_sql_structs(words.TOPICS, "t", "c"),
        n_topics=len(words.TOPICS),
        prefixes=_sql_structs(words.PREFIXES, "p", "l"),
        n_prefixes=len(words.PREFIXES),
        n_titles=len(words.TOPICS) * len(words.PREFIXES),
        pick_first_name=_pick(words.FIRST_NAMES, "rnd(i, 16)"),
        pick_last_name=_pick(words.LAST_NAMES, "rnd(i, 17)"),
        stop=s.n_courses + 1,
    )


def _insert_enrollments(s: _Shape) -> str:
    return _INSERT_ENROLLMENTS.format(
        enrolled_at=_ts("enrolled"),
        completed_at=_ts(f"enrolled + 600 + rnd(i, 24) % greatest(1, least({90 * _DAY}, {s.end} - enrolled - 600))"),
        end=s.end,
        n_participants=s.n_participants,
        n_courses=s.n_courses,
        stop=s.rows + 1,
    )


def _statements(rows: int, seed: int) -> list[str]:
    """The SQL that builds the demo warehouse (only integers are interpolated)."""
    s = _Shape.of(rows, seed)
    return [
        *_SETTINGS,
        *_macros(s),
        _CREATE_PARTICIPANTS,
        _insert_participants(s),
        _CREATE_COURSES,
        _insert_courses(s),
        _CREATE_ENROLLMENTS,
        _insert_enrollments(s),
        _CREATE_DAILY_METRICS,
        _INSERT_DAILY_METRICS.format(n_days=s.n_days, first_day=_ts(str(_BASE))),
        "CHECKPOINT",
    ]


def _weights(rows: int, seed: int) -> list[tuple[str, int]]:
    """Per statement of :func:`_statements`: the table it fills and its rows (``("", 0)`` for the others)."""
    s = _Shape.of(rows, seed)
    fills = {"participants": s.n_participants, "courses": s.n_courses, "enrollments": s.rows, "daily_metrics": s.n_days}
    return [
        next(((t, n) for t, n in fills.items() if q.startswith(f"INSERT INTO {t}")), ("", 0)) for q in _statements(rows, seed)
    ]


def _remove(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".wal")):
        p.unlink(missing_ok=True)


def _orphans_sql(rows: int, seed: int, orphans: object) -> str:
    """The last ``orphans`` enrollments, pointed at participant ids past the last participant."""
    if isinstance(orphans, bool) or not isinstance(orphans, int) or not 0 <= orphans <= rows:
        raise ConfigError(f"--orphans must be an integer from 0 to the number of rows ({rows:,}), got {orphans!r}")
    n = _Shape.of(rows, seed).n_participants
    return f"UPDATE enrollments SET participant_id = {n} + enrollment_id WHERE enrollment_id > {rows - orphans}"


def build_demo(
    path: str | os.PathLike,
    rows: int = DEFAULT_ROWS,
    *,
    seed: int = 14,
    orphans: int = 0,
    progress: DemoProgress | None = None,
) -> dict[str, int]:
    """Create/refresh the embedded demo DuckDB warehouse at `path`; return {table: row_count}.

    The warehouse is built under a temporary name in the same folder and moved onto ``path`` in
    one :func:`os.replace`, so a half-built file is never visible and an existing one is replaced
    whole.  The same ``rows`` and ``seed`` always give the same table contents.

    Raises :class:`ConfigError` for a bad ``rows``/``seed`` and :class:`SourceError` when DuckDB
    (or the file system) fails; the temporary file is removed in both cases. ``progress`` (the CLI's
    bar) is called with the table being filled, the rows filled so far and the rows in all.
    """
    rows, seed = _validate(rows, seed)
    orphan_sql = _orphans_sql(rows, seed, orphans)
    path = Path(os.fspath(path))
    try:
        import duckdb
    except ImportError as exc:  # pragma: no cover - duckdb is a hard dependency
        raise SourceError(f"could not build the demo warehouse at {path}: duckdb is not installed") from exc

    # pid + thread: two builds of the same path (other process or thread) never share a temp file.
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove(tmp)  # leftovers of a crashed build with a recycled pid
        con = duckdb.connect(str(tmp), config={"threads": 2})
        try:
            if progress is None:
                for statement in _statements(rows, seed):
                    con.execute(statement)
            else:
                run_with_progress(con, _statements(rows, seed), _weights(rows, seed), progress)
            if orphans:
                con.execute(orphan_sql)
                con.execute("CHECKPOINT")
            counts = {table: int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]) for table in DEMO_TABLES}
        finally:
            con.close()
        # A stale WAL of the old file would be replayed onto the new one: drop it first.
        stale_wal = path.with_name(path.name + ".wal")
        if stale_wal.exists():
            stale_wal.unlink()
        os.replace(tmp, path)
        _remove(tmp)  # only a (normally absent) .wal can be left
    except (duckdb.Error, OSError) as exc:
        _remove(tmp)
        raise SourceError(f"could not build the demo warehouse at {path}: {exc}") from exc
    except BaseException:
        _remove(tmp)
        raise
    return counts
