"""``syncer`` command line: a thin edge over the syncer.

Library errors become one line on stderr and the exit code of their class (see README "Exit
codes"). Anything else (a bug, an error that escaped the exception tree) is caught last: one line
naming it, exit 1, and its traceback only with ``-v``. Nothing ever prints a traceback unasked.
"""

from __future__ import annotations

import contextlib
import faulthandler
import functools
import json
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any

import click

import syncer
from syncer import Config, RunReport, SyncError, configure_logging, load_config

__all__ = ["main"]

# Arrow's allocator for syncer's own processes (the CLI, and the admin app via its launchers).
#
# Arrow allocates from mimalloc by default, which keeps pages freed by one thread for that thread. A
# sync allocates on several (reader, profiler, one Parquet encoder per part): at 5M rows the system
# allocator peaked about 50 MB lower (215 vs 265 MB). Only the choice made before pyarrow loads
# counts (``ARROW_DEFAULT_MEMORY_POOL``; switching the pool later measured no gain), so the CLI
# sets it here, before any command loads pyarrow, and ``make run`` and the SPCS image set it for the app.
# An operator's own ``ARROW_DEFAULT_MEMORY_POOL`` wins; library users who call ``syncer.sync`` from
# their own process keep their allocator.
if "pyarrow" not in sys.modules:
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")


def _fail(message: str, code: int) -> None:
    try:
        click.secho(f"error: {message}", fg="red", err=True)
    except (OSError, ValueError):  # stderr failing: never a traceback of its own, nor another code
        with contextlib.suppress(OSError):  # nowhere left to say it: the exit code tells
            os.write(2, f"error: {message}\n".encode(errors="replace"))
    sys.exit(code)


def _verbose() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().params.get("verbose"))


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The one place where exceptions turn into an exit code: one line each, a traceback only with ``-v``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            _fail("interrupted; the published snapshot is unchanged", 130)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise  # click's own: usage errors and exits keep click's handling
        except Exception as exc:  # a SyncError's one line; else the last resort: a bug, or an error that escaped the tree
            if _verbose():
                traceback.print_exc()
            if isinstance(exc, SyncError):
                _fail(str(exc), exc.exit_code)
            what = "an unexpected error: what is published stays complete, `syncer verify` checks it; re-run with -v for the traceback"
            _fail(f"{_describe(exc)} ({what})", 1)

    return wrapper


def _describe(exc: BaseException) -> str:
    """An unexpected error in one line: its type and first line, and the file it names, if any."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in text:
        text = f"{text} ({exc.filename})"
    # where in the engine it escaped (an OSError often names no file): the innermost frame of ours
    ours = [f for f in traceback.extract_tb(exc.__traceback__) if f"{os.sep}syncer{os.sep}" in f.filename]
    at = f" at {ours[-1].filename.rsplit(f'{os.sep}syncer{os.sep}', 1)[-1]}:{ours[-1].lineno} in {ours[-1].name}" if ours else ""
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__) + at


def _config(ctx: click.Context) -> Config:
    return load_config(ctx.obj["config_path"])


def _emit_json(data: Any) -> None:
    # records print as their JSON form (the manifest's, the run report's; nan/inf already null); anything
    # else as text. Strict JSON: a NaN here would be a bug to see, not a file other parsers choke on.
    click.echo(json.dumps(data, indent=2, allow_nan=False, default=lambda o: o.to_json() if hasattr(o, "to_json") else str(o)))


def _stderr_is_tty() -> bool:
    """Progress bars draw on a terminal: ours, or the supervisor's (whose child's stderr is a pipe)."""
    return sys.stderr.isatty() or os.environ.get("SYNCER_STDERR_TTY") == "1"  # syncer._child.ENV_TTY


def _user() -> str | None:
    return os.environ.get("SYNCER_USER") or os.environ.get("USER")


class _Progress:
    """On a terminal: one bar per table and, for several tables, a total bar weighted by rows with
    an ETA (expected rows: the last published counts, replaced by the source's as each table
    starts). A table's bar says "validating" once its rows are in, and the total waits at
    "publishing" until the run has published; silent when stderr is not a terminal."""

    def __init__(self, expected: dict[str, int] | None = None) -> None:
        self.enabled = _stderr_is_tty()
        self.bar: Any = None
        self.total: Any = None
        self.expected = dict(expected or {})
        self.finished = 0

    def _overall(self, tqdm: Any) -> None:
        if self.total is None and len(self.expected) > 1:
            self.total = tqdm(
                total=sum(self.expected.values()), desc=f"{'all tables':<16}", unit=" rows", unit_scale=True, file=sys.stderr
            )

    def __call__(self, ev: dict[str, Any]) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        self._overall(tqdm)
        kind = ev["event"]
        if kind == "table_start":
            if self.total is not None and ev.get("total") is not None:
                self.expected[ev["table"]] = int(ev["total"])
                self.total.total = sum(self.expected.values())
            self.bar = tqdm(
                total=ev["total"], desc=f"{ev['table']:<16}", unit=" rows", unit_scale=True, leave=True, file=sys.stderr
            )
        elif kind == "rows" and self.bar is not None:
            self.bar.update(ev["done"] - self.bar.n)
            if self.total is not None:
                self.total.update(self.finished + ev["done"] - self.total.n)
            if ev.get("total") and ev["done"] >= ev["total"]:
                self.bar.set_postfix_str("validating…")
        elif kind == "table_done" and self.bar is not None:
            self.bar.set_postfix_str("ok" if ev["ok"] else "FAILED")
            self.bar.close()
            self.bar = None
            self.finished += self.expected.get(ev["table"], 0)
            if self.total is not None:
                self.total.update(self.finished - self.total.n)
                if self.finished >= (self.total.total or 0):
                    self.total.set_postfix_str("publishing…")

    def close(self) -> None:
        if self.total is not None:
            self.total.set_postfix_str("done")
            self.total.close()
            self.total = None


def _expected_rows(cfg: Config, names: list[str] | None) -> dict[str, int]:
    """Rows each table to sync is expected to have: its count in the current snapshot (0 if none)."""
    wanted = names or [t.name for t in cfg.tables]
    try:
        current = next((s for s in syncer.snapshots(cfg) if s.current), None)
    except (SyncError, OSError):  # only a hint for the bar: the sync itself reports what is wrong
        current = None
    rows = {n: int(t["rows"]) for n, t in current.tables.items()} if current else {}
    return {n: rows.get(n, 0) for n in wanted}


class _DemoProgress:
    """``syncer demo``: one bar over every row of the demo warehouse, naming the table being filled."""

    def __init__(self) -> None:
        self.enabled = _stderr_is_tty()
        self.bar: Any = None

    def __call__(self, table: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, desc="demo warehouse", unit=" rows", unit_scale=True, file=sys.stderr)
        self.bar.set_postfix_str(table)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Config file (default: $SYNCER_CONFIG or ./sync.toml).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every step.")
@click.version_option(package_name="volume-data-sync")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """Volume Data Sync: export warehouse tables to validated, atomic snapshots on a volume."""
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path
    configure_logging("INFO" if verbose else "WARNING")
    # A hung command is diagnosable: `kill -USR1 <pid>` prints where each thread is on stderr, and it goes on.
    faulthandler.register(signal.SIGUSR1, file=2, all_threads=True)


@main.command()
@click.option("--rows", type=int, default=None, help="Rows in the enrollments table (default 200,000).")
@click.option("--orphans", type=int, default=0, help="Enrollments whose participant does not exist (to see references fail).")
@click.pass_context
@handle_errors
def demo(ctx: click.Context, rows: int | None, orphans: int) -> None:
    """Create or refresh the embedded DuckDB demo warehouse."""
    cfg = _config(ctx)
    if cfg.source.kind != "duckdb" or cfg.source.path is None:
        raise SyncError('the demo warehouse is a DuckDB file; this config\'s [source] is not kind = "duckdb"')
    bar = _DemoProgress()
    try:
        counts = syncer.build_demo(cfg.source.path, *(() if rows is None else (rows,)), orphans=orphans, progress=bar)
    finally:
        bar.close()
    click.echo(f"demo warehouse {cfg.source.path}: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
    if orphans:
        click.echo(f"{orphans:,} enrollment(s) reference a participant that does not exist (orphans)")


@main.command()
@click.argument("tables", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the run report as JSON.")
@click.option("--accept-schema-change", is_flag=True, help="Accept a changed schema as the new contract.")
@click.option("--force", is_flag=True, help="Export every table, even those the source confirms unchanged.")
@click.option("--trigger", type=click.Choice(["cli", "manual", "schedule", "startup"]), default="cli", hidden=True)
@click.pass_context
@handle_errors
def sync(
    ctx: click.Context, tables: tuple[str, ...], as_json: bool, accept_schema_change: bool, force: bool, trigger: str
) -> None:
    """Export -> validate -> publish (only TABLES if given; the others are carried over)."""
    cfg = _config(ctx)
    bar = _Progress(_expected_rows(cfg, list(tables) or None))
    try:
        report = syncer.sync(
            cfg,
            list(tables) or None,
            trigger=trigger,
            user=_user(),
            progress=bar,
            accept_schema_change=accept_schema_change,
            force=force,
            exit_when_stuck=True,  # a sync stuck past its watchdog where no Python runs ends this command
        )
    finally:
        bar.close()
    if as_json:
        _emit_json(report)
    else:
        _print_run(report, cfg)
    if report["status"] != "ok":
        sys.exit(1)


#: the status column of the run summary: (text, colour); padded before colouring, so it lines up
_MARKS = {
    "fresh": ("ok", "green"),
    "quarantined": ("ok", "green"),
    "unchanged": ("unchanged", "green"),
    "carried_over": ("CARRIED_OVER", "yellow"),
}


def _published_rows(cfg: Config | None, snapshot_id: str | None) -> dict[str, int]:
    """Rows per table in the snapshot a run published (what apps read, not what the source sent)."""
    if cfg is None or not snapshot_id:
        return {}
    snap = next((s for s in syncer.snapshots(cfg) if s.id == snapshot_id), None)
    return {n: int(t["rows"]) for n, t in snap.tables.items()} if snap else {}


def _print_run(run: RunReport | dict[str, Any], cfg: Config | None = None) -> None:
    report = run.to_json() if isinstance(run, RunReport) else run  # once: each key of a record converts all of it
    published = (
        _published_rows(cfg, report.get("snapshot_id")) if any(t["status"] == "carried_over" for t in report["tables"]) else {}
    )
    for t in report["tables"]:
        text, colour = _MARKS.get(t["status"], (t["status"].upper(), "red"))
        mark = click.style(f"{text:<12}", fg=colour)
        # A carried-over table serves its previous rows: show those, not the failed attempt's.
        rows = published.get(t["table"], t["rows"]) if t["status"] == "carried_over" else t["rows"]
        rate = f"{t['rows_per_s']:,.0f} rows/s" if t.get("rows_per_s") and t["ok"] else ""
        extra = f"  {t['quarantined']:,} row(s) quarantined" if t.get("quarantined") else ""
        size = f"{t['bytes'] / 1048576:>9.1f} MiB" if t["ok"] else " " * 13
        click.echo(f"  {t['table']:<18} {mark} {rows:>12,} rows  {size}  {rate}{extra}".rstrip())
        if not t["ok"]:
            for c in t["checks"]:
                if not c["ok"]:
                    click.echo(f"      {c['name']}: {c['detail']}")
    if report.get("snapshot_id"):
        click.echo(f"published snapshot {report['snapshot_id']} ({report['status']}) in {report['duration_s']:.1f}s")
    if report.get("error"):
        click.secho(report["error"], fg="yellow", err=True)
    for w in report.get("warnings") or []:  # bookkeeping after publishing (retention, run history)
        click.secho(f"warning: {w}", fg="yellow", err=True)
    if not report["budget"]["ok"]:
        click.secho(f"warning: {report['budget']['detail']}", fg="yellow", err=True)


@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def startup(ctx: click.Context, as_json: bool) -> None:
    """Repair, then sync unless the data is fresher than the skip window."""
    cfg = _config(ctx)
    _quiet_repair_log()
    res = syncer.startup(cfg, user=_user(), progress=_Progress())
    if as_json:
        _emit_json(res)
    else:
        for a in res["repair"]["actions"]:
            click.echo(f"repair: {a}")
        click.echo(f"startup: {res['action']}" + (f" ({res['reason']})" if res.get("reason") else ""))
        if res.get("run"):
            _print_run(res["run"], cfg)
        click.echo(f"serving snapshot {res['snapshot_id']}" if res["servable"] else "no data can be served yet")
    if not res["servable"]:
        sys.exit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help='Print the status as JSON (errors too: {"error": ...}).')
@click.pass_context
@handle_errors
def status(ctx: click.Context, as_json: bool) -> None:
    """Current snapshot; per table: status, rows, age, freshness and failed checks; last and next run."""
    try:
        st = syncer.status(_config(ctx))
    except SyncError as exc:
        if not as_json:
            raise
        # A script that asked for JSON gets JSON, a config error included (and the error's exit code).
        _emit_json({"error": str(exc), "exit_code": exc.exit_code})
        sys.exit(exc.exit_code)
    if as_json:
        _emit_json(st)
        return
    snap = st["snapshot"]
    click.echo(f"snapshot  {snap['id']} (created {snap['created_at']})" if snap else "snapshot  none")
    click.echo(f"{'table':<18} {'status':<13} {'rows':>12}  {'age':>8}  {'fresh?':<6}  checks")
    for t in st["tables"]:
        age = f"{t['age_seconds'] / 3600:.1f} h" if t["age_seconds"] is not None else "-"
        rows = f"{t['rows']:,}" if t["rows"] is not None else "-"
        fresh = click.style(f"{'stale':<6}", fg="red") if t["stale"] else click.style(f"{'fresh':<6}", fg="green")
        failed = t.get("checks_failed") or ()
        checks = click.style("FAILED: " + ", ".join(failed), fg="red") if failed else ("ok" if t["rows"] is not None else "-")
        click.echo(f"{t['name']:<18} {t['status']:<13} {rows:>12}  {age:>8}  {fresh}  {checks}")
    if snap:
        click.echo(f"cut       {syncer.cut_summary(st.consistency)}")
    last = st["last_run"]
    if last:
        click.echo(f"last run  {last['id']} {last['status']} ({last['trigger']}, {last.get('duration_s') or 0:.1f}s)")
    click.echo(f"next run  {st['next_run']}")
    for w in st["warnings"]:
        click.secho(f"warning: {w}", fg="yellow")


@main.command("snapshots")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def snapshots_cmd(ctx: click.Context, as_json: bool) -> None:
    """Retained snapshots, oldest first."""
    snaps = syncer.snapshots(_config(ctx))
    if as_json:
        _emit_json(snaps)
        return
    for s in snaps:
        flag = "*" if s["current"] else " "
        state = "ok" if s["ok"] else "BROKEN: " + "; ".join(s["problems"])
        click.echo(f"{flag} {s['id']}  {s['created_at'] or '-':<32} {len(s['tables'])} tables {s['rows']:>12,} rows  {state}")


@main.command()
@click.argument("snapshot_id", required=False)
@click.pass_context
@handle_errors
def rollback(ctx: click.Context, snapshot_id: str | None) -> None:
    """Point current at SNAPSHOT_ID (default: the previous snapshot)."""
    res = syncer.rollback(_config(ctx), snapshot_id, user=_user())
    click.echo(f"current: {res['from']} -> {res['to']}")


@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def verify(ctx: click.Context, as_json: bool) -> None:
    """Re-check the current snapshot's files against its manifest (sha256, size, permissions)."""
    res = syncer.verify(_config(ctx))
    if as_json:
        _emit_json(res)
    else:
        if res["ok"]:
            click.echo(f"snapshot {res['snapshot']}: {len(res['tables'])} tables verified")
        for p in res["problems"]:
            click.secho(f"mismatch: {p}", fg="red", err=True)
    if not res["ok"]:
        sys.exit(1)


@main.command()
@click.pass_context
@handle_errors
def repair(ctx: click.Context) -> None:
    """Fix current, sweep staging, reset permissions."""
    cfg = _config(ctx)
    _quiet_repair_log()
    res = syncer.repair(cfg, user=_user())
    if res.get("skipped"):
        click.echo(res["skipped"])
    for a in res["actions"]:
        click.echo(a)
    if not res["actions"] and not res.get("skipped"):
        click.echo(f"nothing to repair; current is {res['current']}")


def _quiet_repair_log() -> None:
    """The repair's log lines are what this command prints itself: without -v, say each once."""
    if not _verbose():
        logging.getLogger("syncer").setLevel(logging.ERROR)


@main.command()
@click.pass_context
@handle_errors
def schedule(ctx: click.Context) -> None:
    """Run the daily scheduler in the foreground (no UI) until SIGTERM or Ctrl-C."""
    cfg = _config(ctx)
    # The scheduled runs' results are the point of this command: log them even without -v.
    if not ctx.find_root().params.get("verbose"):
        configure_logging("INFO")

    def started(next_run: str | None) -> None:
        click.echo(f"scheduler running: cron {cfg.cron!r} ({cfg.timezone}); next run {next_run}; stop with Ctrl-C or SIGTERM")

    syncer.run_scheduler(cfg, on_start=started)
    click.echo("scheduler stopped")
