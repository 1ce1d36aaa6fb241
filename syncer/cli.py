"""``syncer`` command line: a thin edge over the syncer.

Library errors become one line on stderr and the exit code of their class (see README "Exit
codes"). Anything else (a bug, an error that escaped the exception tree) is caught last: one line
naming it, exit 1, and its traceback only with ``-v``. Nothing ever prints a traceback unasked.
"""

from __future__ import annotations

import functools
import json
import os
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
    click.secho(f"error: {message}", fg="red", err=True)
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
        except SyncError as exc:
            if _verbose():
                traceback.print_exc()
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted; the published snapshot is unchanged", 130)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise  # click's own: usage errors and exits keep click's handling
        except Exception as exc:  # the last resort: a bug, or an error that escaped the tree
            if _verbose():
                traceback.print_exc()
            _fail(
                f"{_describe(exc)} (an unexpected error: what is published stays complete, `syncer verify` checks it; "
                "re-run with -v for the traceback)",
                1,
            )

    return wrapper


def _describe(exc: BaseException) -> str:
    """An unexpected error in one line: its type and first line, and the file it names, if any."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in text:
        text = f"{text} ({exc.filename})"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _config(ctx: click.Context) -> Config:
    return load_config(ctx.obj["config_path"])


def _emit_json(data: Any) -> None:
    # records print as their JSON form (the manifest's, the run report's); anything else as text
    click.echo(json.dumps(data, indent=2, default=lambda o: o.to_json() if hasattr(o, "to_json") else str(o)))


def _user() -> str | None:
    return os.environ.get("SYNCER_USER") or os.environ.get("USER")


class _Progress:
    """A tqdm bar per table on a terminal; silent otherwise."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.bar: Any = None

    def __call__(self, ev: dict[str, Any]) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if ev["event"] == "table_start":
            self.bar = tqdm(
                total=ev["total"], desc=f"{ev['table']:<16}", unit=" rows", unit_scale=True, leave=True, file=sys.stderr
            )
        elif ev["event"] == "rows" and self.bar is not None:
            self.bar.update(ev["done"] - self.bar.n)
        elif ev["event"] == "table_done" and self.bar is not None:
            self.bar.set_postfix_str("ok" if ev["ok"] else "FAILED")
            self.bar.close()
            self.bar = None


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
    counts = syncer.build_demo(cfg.source.path, *(() if rows is None else (rows,)), orphans=orphans)
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
    report = syncer.sync(
        cfg,
        list(tables) or None,
        trigger=trigger,
        user=_user(),
        progress=_Progress(),
        accept_schema_change=accept_schema_change,
        force=force,
    )
    if as_json:
        _emit_json(report)
    else:
        _print_run(report)
    if report["status"] != "ok":
        sys.exit(1)


def _print_run(report: RunReport) -> None:
    for t in report["tables"]:
        ok = "unchanged" if t["status"] == "unchanged" else "ok"
        mark = click.style(ok, fg="green") if t["ok"] else click.style(t["status"].upper(), fg="red")
        rate = f"{t['rows_per_s']:,.0f} rows/s" if t.get("rows_per_s") else ""
        click.echo(f"  {t['table']:<18} {mark:<8} {t['rows']:>12,} rows  {t['bytes'] / 1048576:>9.1f} MiB  {rate}")
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
    res = syncer.startup(cfg, user=_user(), progress=_Progress())
    if as_json:
        _emit_json(res)
    else:
        for a in res["repair"]["actions"]:
            click.echo(f"repair: {a}")
        click.echo(f"startup: {res['action']}" + (f" ({res['reason']})" if res.get("reason") else ""))
        if res.get("run"):
            _print_run(res["run"])
        click.echo(f"serving snapshot {res['snapshot_id']}" if res["servable"] else "no data can be served yet")
    if not res["servable"]:
        sys.exit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def status(ctx: click.Context, as_json: bool) -> None:
    """Current snapshot, per-table freshness and checks, last and next run."""
    st = syncer.status(_config(ctx))
    if as_json:
        _emit_json(st)
        return
    snap = st["snapshot"]
    click.echo(f"snapshot  {snap['id']} (created {snap['created_at']})" if snap else "snapshot  none")
    click.echo(f"{'table':<18} {'status':<13} {'rows':>12}  {'age':>8}  fresh?")
    for t in st["tables"]:
        age = f"{t['age_seconds'] / 3600:.1f} h" if t["age_seconds"] is not None else "-"
        rows = f"{t['rows']:,}" if t["rows"] is not None else "-"
        fresh = click.style("stale", fg="red") if t["stale"] else click.style("fresh", fg="green")
        click.echo(f"{t['name']:<18} {t['status']:<13} {rows:>12}  {age:>8}  {fresh}")
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
    res = syncer.repair(_config(ctx), user=_user())
    if res.get("skipped"):
        click.echo(res["skipped"])
    for a in res["actions"]:
        click.echo(a)
    if not res["actions"] and not res.get("skipped"):
        click.echo(f"nothing to repair; current is {res['current']}")


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


if __name__ == "__main__":  # pragma: no cover
    main()
