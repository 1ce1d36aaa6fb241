"""The sync: export, validate and publish, under the volume lock.

One run: sweep leftovers of an interrupted run, export each requested table into ``staging/<id>/``
(export validates it), hard-link the tables not requested from the previous snapshot, carry over the
previous file of any table that failed, write the manifest last, publish (rename + atomic
``current`` swap), apply retention, and record everything in the run history. A failure at any
point leaves ``current`` as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncer import _clock as clock
from syncer._child import report
from syncer._clock import iso
from syncer._exceptions import HistoryCorruptError, HistoryError, PublishError, SourceError, VolumeError, WriteError
from syncer.alerts import after_run
from syncer.config import Config
from syncer.engine.outcomes import budget_check, carried_over, prune_quarantine, table_result
from syncer.engine.preload import preload
from syncer.engine.stops import describe_source, volume_error
from syncer.engine.watchdog import Watchdog, timeout_error
from syncer.export.table import TableOutcome, export_table
from syncer.export.unchanged import confirm_unchanged, marker_for, with_marker
from syncer.sources import open_source
from syncer.validate.checks import check
from syncer.validate.references import check_references, with_reference_checks
from syncer.volume.consistency import snapshot_cut
from syncer.volume.files import carry_over, os_reason
from syncer.volume.history import History
from syncer.volume.layout import Volume, remove_tree
from syncer.volume.lock import volume_lock
from syncer.volume.manifest import FORMAT_VERSION, Manifest, ManifestEntry, RunReport, TableResult

__all__ = ["TRIGGERS", "Progress", "sync"]

log = logging.getLogger("syncer")

Progress = Callable[[dict[str, Any]], None]
TRIGGERS = ("startup", "schedule", "manual", "cli")


def sync(
    cfg: Config,
    tables: Sequence[str] | None = None,
    *,
    trigger: str = "cli",
    user: str | None = None,
    progress: Progress | None = None,
    accept_schema_change: bool = False,
    force: bool = False,
    exit_when_stuck: bool = False,
) -> RunReport:
    """Export, validate and publish; returns the run report (status ``ok``, ``partial`` or ``failed``).

    A table the source confirms unchanged since the published snapshot is not re-exported (its files
    are hard-linked, its entry ``unchanged``); ``force=True`` exports every requested table. A run
    past ``[export] watchdog_seconds`` is stopped (:mod:`syncer.engine.watchdog`); ``exit_when_stuck``
    (the CLI's) lets the watchdog end the process when the run is stuck where no Python runs.

    Raises :class:`LockHeldError` when another writer is busy and :class:`ConfigError` for unknown
    tables; every table-level failure is reported in the result instead, with the old data kept.
    """
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger must be one of {TRIGGERS}")
    selected = [cfg.table(n).name for n in tables] if tables else [t.name for t in cfg.tables]
    vol = Volume(cfg.root)
    vol.ensure()
    started = clock.utcnow()
    run_id = vol.unused_snapshot_id(started)  # never one the volume holds already (two runs in one second)
    info = {"trigger": trigger, "user": user, "started_at": iso(started), "run_id": run_id}
    preload(cfg)  # every import before the lock: a fault or a hang on the disk then never hits the import machinery
    dog = Watchdog(run_id, cfg.watchdog_seconds, cfg.time_budget_seconds, exit_when_stuck=exit_when_stuck)
    with volume_lock(vol.lock_path, info), timeout_error(dog), dog:
        run = _Run(cfg, vol, History(vol.db_path), run_id, started, selected, trigger, user, progress, accept_schema_change)
        run.force, run.dog = force, dog
        try:
            return run.execute()
        except OSError as exc:  # the one choke point for what no step wrapped: what failed, where, what to do
            raise volume_error(exc, run.run_id, run.vol, run.snapshot_id) from exc


@dataclass
class _Run:
    """One sync run's state, step by step."""

    cfg: Config
    vol: Volume
    hist: History
    run_id: str
    started: Any
    selected: list[str]
    trigger: str
    user: str | None
    progress: Progress | None
    accept_schema_change: bool
    t0: float = field(default_factory=time.perf_counter)
    steps: dict[str, float] = field(default_factory=dict)
    outcomes: dict[str, TableOutcome] = field(default_factory=dict)
    prev_id: str | None = None
    prev: Manifest | None = None
    source_desc: dict[str, Any] = field(default_factory=dict)
    snapshot_id: str | None = None
    #: what went wrong after the snapshot was published (it stays published)
    warnings: list[str] = field(default_factory=list)
    #: the run's one moment: every table of this run is read as of it (from the source)
    moment: Any = None
    #: the run history failed (warned once): the run goes on without it (it is a record, not a gate)
    history_lost: bool = False
    history_writes_off: bool = False
    #: the run's row as it started (recorded again at the end if the start could not be)
    start_record: dict[str, Any] = field(default_factory=dict)
    #: export every requested table, even those the source confirms unchanged
    force: bool = False
    #: stops a run past [export] watchdog_seconds; told where the run is, for its one line
    dog: Watchdog | None = None

    @property
    def staging(self) -> Path:
        return self.vol.staging / self.run_id

    @property
    def spill(self) -> Path:
        return self.vol.staging / f".spill-{self.run_id}"

    def execute(self) -> RunReport:
        self._begin()
        try:
            self._make_staging()
            self._previous()
            self._export_all()
            kept_checks = self._check_references()
            t_pub = time.perf_counter()
            entries, results = self._assemble()
            entries = with_reference_checks(entries, kept_checks)
            failed = [n for n, o in self.outcomes.items() if not o.ok]
            if len(failed) == len(self.outcomes):
                why = "; ".join(f"{n}: {self.outcomes[n].error}" for n in failed)
                status, error, removed = (
                    "failed",
                    f"no table was exported successfully; the published snapshot is unchanged: {why}",
                    None,
                )
            else:
                removed = self._publish(entries, t_pub)
                status, error = ("partial" if failed else "ok"), None
                if failed:
                    why = "; ".join(f"{n}: {self.outcomes[n].error}" for n in failed)
                    error = f"{len(failed)} table(s) failed and kept their previous data: {why}"
        except BaseException as exc:
            self._record_crash(exc)
            raise
        finally:
            if self.spill.exists():
                shutil.rmtree(self.spill, ignore_errors=True)
        return self._finish(status, error, results, removed)

    # --- the steps ---------------------------------------------------------------------------------

    def _history(self, what: str, write: Callable[[], object]) -> bool:
        """Write to the run history; a failure is one warning line (the first), never a failed run.

        A broken file is given up on; any other failure (a full disk, an I/O error) may pass, so the
        later writes still try: the outcome that lands is the truth, whatever came before it."""
        if self.history_writes_off:
            return False
        try:
            write()
            return True
        except HistoryCorruptError as exc:
            self._history_warn(what, exc)
            self.history_writes_off = True
        except HistoryError as exc:
            self._history_warn(what, exc)
        return False

    def _history_warn(self, what: str, exc: HistoryError) -> None:
        if not self.history_lost:
            self.history_lost = True
            self._warn(f"the run history could not record run {self.run_id} ({what}); the run goes on without it: {exc}")

    def _at(self, step: str, table: str = "") -> None:
        if self.dog is not None:
            self.dog.at(step, table)
        report({"event": "step", "step": step, "table": table, "run_id": self.run_id, "root": str(self.vol.root)})

    def _emit(self, event: dict[str, Any]) -> None:
        """The progress callback the export gets: the watchdog's check at each event, then the caller's."""
        if self.dog is not None:
            self.dog.check()
        report(event)  # to the supervisor (the admin app's progress), when one runs this process
        if self.progress is not None:
            self.progress(event)

    def _begin(self) -> None:
        self._at("sweep and run history")
        with self.hist.held():  # the start's writes on one history connection
            self._begin_recorded()

    def _begin_recorded(self) -> None:
        why = "the process running it stopped before it finished (killed or crashed)"
        self._history("how earlier runs ended", lambda: self.hist.abort_running(why, iso(clock.utcnow()), self.vol.current))
        swept = self.vol.sweep()
        if swept:
            log.info(
                "swept leftovers of an interrupted run: %s", ", ".join(swept), extra={"run_id": self.run_id, "step": "sweep"}
            )
        me = {"id": self.run_id, "trigger": self.trigger, "user": self.user, "host": socket.gethostname()}
        self.start_record = {**me, "pid": os.getpid(), "tables_requested": self.selected, "started_at": iso(self.started)}
        self._history("the start", functools.partial(self.hist.start_run, self.start_record))
        if self.trigger == "manual":
            at, who = iso(self.started), self.user
            event = functools.partial(self.hist.event, "manual_sync", at, user=who, run_id=self.run_id, tables=self.selected)
            self._history("the manual sync", event)

    def _make_staging(self) -> None:
        try:
            self.staging.mkdir(parents=True)
        except OSError as exc:
            raise WriteError(
                f"cannot create the staging folder {self.staging}: {os_reason(exc)}; nothing was exported, "
                "the current snapshot is unchanged"
            ) from exc

    def _previous(self) -> None:
        """The snapshot to carry over from and hold schema drift against: current, else the newest intact."""
        self.prev_id, self.prev = self.vol.current_id(), self.vol.current_manifest()
        if self.prev is None and self.prev_id is not None:
            best = self.vol.newest_intact()
            if best is not None:
                log.warning("current (%s) is broken; using snapshot %s as the previous data", self.prev_id, best.id)
                self.prev_id, self.prev = best.id, best.manifest

    def _export_all(self) -> None:
        t_exp = time.perf_counter()
        prev_tables = self.prev.tables if self.prev else {}
        self._at("open the warehouse")  # where native code (duckdb.connect) aborts under I/O faults
        try:
            source = open_source(self.cfg.source)
        except SourceError as exc:
            for name in self.selected:
                self.outcomes[name] = TableOutcome(name, ok=False, error=str(exc), checks=[check("export", False, str(exc))])
        else:
            with source:
                self.source_desc = source.describe()
                # Every marker before any table is read: a change after its marker is then in the data
                # (and a later marker), never in the marker only (see syncer.export.unchanged).
                markers = {n: marker_for(source, self.cfg.table(n), self.cfg) for n in self.selected}
                prev_dir = self.vol.snapshot_dir(self.prev_id) if self.prev and self.prev_id else None
                kept = {n: self._kept(source, n, markers[n], prev_tables.get(n), prev_dir) for n in self.selected}
                # the tables to export, told first: the source may ask for what they share at once
                source.plan([self.cfg.table(n) for n in self.selected if kept[n] is None])
                for name in self.selected:
                    out = kept[name] or self._export_one(source, name, markers[name], prev_tables.get(name))
                    self.moment = self.moment or source.run_moment
                    self.outcomes[name] = out
                    log.info(
                        "table %s: %s, %s rows in %.2fs",
                        name,
                        "ok" if out.ok else "FAILED",
                        f"{out.rows:,}",
                        out.timings.get("total_s", 0.0),
                        extra={"run_id": self.run_id, "table": name, "step": "export"},
                    )
        self.steps["export_validate_s"] = time.perf_counter() - t_exp

    def _kept(
        self, source: Any, name: str, marker: dict[str, Any] | None, old: ManifestEntry | None, prev_dir: Path | None
    ) -> TableOutcome | None:
        """The previous files of a table the source confirms unchanged (unless forced), else None."""
        self._at("export", name)
        return None if self.force else confirm_unchanged(source, self.cfg.table(name), marker, old, prev_dir, self.staging)

    def _export_one(self, source: Any, name: str, marker: dict[str, Any] | None, old: ManifestEntry | None) -> TableOutcome:
        """Export a table the source did not confirm unchanged."""
        table = self.cfg.table(name)
        self._at("export", name)
        out = export_table(
            source,
            table,
            self.cfg,
            self.staging,
            old,
            accept_schema_change=self.accept_schema_change,
            progress=self._emit,
            spill_dir=self.spill,
            quarantine_dir=self.vol.quarantine / self.run_id,
        )
        return with_marker(out, marker)

    def _check_references(self) -> dict[str, Any]:
        """Declared references, in the files about to be published (fails ``error`` ones' tables)."""
        t0 = time.perf_counter()
        self._at("reference checks")
        prev_dir = self.vol.snapshot_dir(self.prev_id) if self.prev and self.prev_id else None
        kept = check_references(self.cfg, self.outcomes, self.staging, self.prev, prev_dir, self.spill)
        self.steps["references_s"] = time.perf_counter() - t0
        return kept

    def _assemble(self) -> tuple[dict[str, ManifestEntry], list[TableResult]]:
        """The new snapshot's tables (exported, hard-linked or carried over) and a result per exported table."""
        prev_tables = self.prev.tables if self.prev else {}
        prev_dir = self.vol.snapshot_dir(self.prev_id) if self.prev and self.prev_id else None
        entries: dict[str, ManifestEntry] = {}
        results: list[TableResult] = []
        for t in self.cfg.tables:
            out, old = self.outcomes.get(t.name), prev_tables.get(t.name)
            if out is not None and out.ok and out.entry is not None:
                entries[t.name] = out.entry
                status = out.entry.status
            elif old is not None and prev_dir is not None:
                carry_over(prev_dir / old.file, self.staging / old.file)
                entries[t.name] = old if out is None else carried_over(old, out)
                status = entries[t.name].status
            else:
                status = "failed" if out is not None else "missing"
            if out is not None:
                results.append(table_result(out, status if out.ok or status == "carried_over" else "failed"))
        return entries, results

    def _publish(self, entries: dict[str, ManifestEntry], t_pub: float) -> tuple[str, ...]:
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            id=self.run_id,
            created_at=iso(clock.utcnow()),
            previous=self.prev_id if self.prev else None,
            run={"trigger": self.trigger, "user": self.user, "tables_requested": self.selected},
            source=self.source_desc or describe_source(self.cfg),
            sla_hours=self.cfg.sla_hours,
            tables=entries,
            run_checks=(budget_check(self.cfg, time.perf_counter() - self.t0),),
            consistency=snapshot_cut(entries, self.moment, self.run_id),
        )
        self._at("publish")
        self.vol.write_manifest(self.staging, manifest)
        self._critical(True)  # a watchdog stop waits for the swap: `current` and the run's record agree
        try:
            self.vol.publish(self.run_id)
        except PublishError as exc:
            if self.vol.current_id() != self.run_id:
                raise
            # `current` moved (a step after the swap failed, e.g. its fsync): what is served is the truth
            self._warn(f"snapshot {self.run_id} is published and current, but a step after the swap failed: {exc}")
        finally:
            self._critical(False, published=self.vol.current_id() == self.run_id)  # checked again at retention
        self.snapshot_id = self.run_id
        self._at("retention")
        self.steps["publish_s"] = time.perf_counter() - t_pub
        # Published: from here on nothing may turn the run into a failure; what goes wrong is a warning.
        t_ret = time.perf_counter()
        removed: list[str] = []
        try:
            removed = self.vol.retention(self.cfg.retain)
            prune_quarantine(self.vol)
        except VolumeError as exc:
            self._warn(f"retention did not finish (snapshot {self.run_id} is published and current): {exc}")
        self.steps["retention_s"] = time.perf_counter() - t_ret
        return tuple(removed)

    def _critical(self, on: bool, published: bool = False) -> None:
        if self.dog is not None:
            self.dog.critical, self.dog.published = on, published

    def _warn(self, message: str) -> None:
        # The report carries it (the CLI prints it as its one warning line); the log says it once more
        # at INFO, so a terminal at the CLI's WARNING level does not show it twice.
        self.warnings.append(message)
        log.info("warning: %s", message, extra={"run_id": self.run_id, "step": "run"})

    def _record_crash(self, exc: BaseException) -> None:
        """Nothing was published (or the swap already happened and only bookkeeping failed): either
        way ``current`` names a complete snapshot. Record it; the caller re-raises."""
        with contextlib.suppress(Exception):
            if self.snapshot_id is None and self.vol.current_id() == self.run_id:
                self.snapshot_id = self.run_id  # stopped just after the swap: it is served, say so
            if self.snapshot_id is None:
                remove_tree(self.staging)
                if self.vol.current_id() != self.run_id and self.vol.snapshot_dir(self.run_id).exists():
                    remove_tree(self.vol.snapshot_dir(self.run_id))  # moved into snapshots/, never served
            if self.history_writes_off:
                return
            failed = any(not o.ok for o in self.outcomes.values())
            # published before the crash: the history says what is served, and that the run did not end well
            status = "failed" if self.snapshot_id is None else ("partial" if failed else "ok")
            self.hist.start_run(self.start_record, exists_ok=True)
            self.hist.finish_run(
                self.run_id,
                status=status,
                error=f"{type(exc).__name__}: {exc}",
                finished_at=iso(clock.utcnow()),
                duration_s=time.perf_counter() - self.t0,
                snapshot_id=self.snapshot_id,
                steps=self.steps,
            )

    def _finish(self, status: str, error: str | None, results: list[TableResult], removed: tuple[str, ...] | None) -> RunReport:
        duration = time.perf_counter() - self.t0
        ok = [o for o in self.outcomes.values() if o.ok]
        report = RunReport(
            run_id=self.run_id,
            status=status,
            trigger=self.trigger,
            user=self.user,
            snapshot_id=self.snapshot_id,
            tables=tuple(results),
            error=error,
            retention_removed=removed,
            duration_s=duration,
            steps=self.steps,
            budget=budget_check(self.cfg, duration),
            rows=sum(o.rows for o in ok),
            bytes=sum(o.bytes for o in ok),
            warnings=tuple(self.warnings),
        )
        if status == "failed":
            remove_tree(self.staging)
        # The snapshot (if any) is published; only the bookkeeping can be lost. Say so, do not fail: a
        # row left `running` is closed with the truth (published or not) by the next run or `repair`.
        if not self.history_writes_off:
            self._history("the outcome", lambda: self._record(report, results))
        report = dataclasses.replace(report, warnings=tuple(self.warnings))
        log.info("run %s %s in %.2fs", self.run_id, status, duration, extra={"run_id": self.run_id, "step": "run"})
        after_run(self.cfg, report)  # state changes alert once; never raises, never waits on a channel
        return report

    def _record(self, report: RunReport, results: list[TableResult]) -> None:
        if self.history_writes_off:
            return
        # One transaction: the run's row (if its start did not make it), every table, the final status.
        self.hist.record_outcome(
            self.start_record,
            [(tr.to_json(), [c.to_json() for c in tr.checks]) for tr in results],
            [report.budget.to_json()] if report.budget else [],
            status=report.status,
            error=report.error,
            finished_at=iso(clock.utcnow()),
            duration_s=report.duration_s,
            snapshot_id=self.snapshot_id,
            rows=report.rows,
            bytes=report.bytes,
            steps=self.steps,
        )
