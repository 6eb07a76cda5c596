"""python -m failover.switch --active {primary,dr}: fail over, or fail back, the platform.

Replaces DB-F-002, CR-F-001 and the failover script of the old runbook. Phases:

  1. preflight  read both stacks (never creating one); refuse unless the target database is
                an available replica of the current writer, its lag is under --max-lag, the
                cache Global Datastore can fail over, and the current writer is reachable
                (planned) or really unreachable (unplanned: never make a second writer).
  2. fence      planned only: make the writer read-only, wait until the replica has replayed
                its last WAL position (zero data loss); on timeout, unfence and stop.
  3. promote    promote the replica (irreversible: asks first unless --yes), fail the cache
                Global Datastore over; both idempotent.
  4. flip       write active_region (and clear replicate_from on the promoted side) into the
                stack files, then refresh and `up` the target, the DNS owner, and the old side
                last (best effort: recorded as pending when its region is down).
  5. validate   pg_is_in_recovery() is false by direct endpoint and by DNS name, a write and
                read-back, row counts against preflight, the cache primary, /health via api.
  6. report     phase durations against the runbook's targets, RPO, what is pending.

A crash anywhere is resumed by running the same command again. Only one switch runs at a
time. Exit codes:
  0 done, or nothing to do (target already active), or --dry-run
  2 bad command line
  3 environment: no pulumi CLI, or credentials missing
  4 refused by preflight (nothing changed)
  5 aborted by the user (nothing changed)
  6 a phase failed (the journal says which; run again to resume)
  7 validation failed (the switch happened; see which check)
  8 another switch is running (the lock names its holder)

With the target already active, the command retries what an earlier run left pending (the
old side's `up`). `--abandon` ends an unfinished run that has not promoted: it unfences the
old writer. Raising --max-lag needs --approved-by; both are journaled.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from components.contract import (
    SERVICES,
    STACK_REGIONS,
    ConfigKey,
    DnsName,
    Output,
    Role,
    other_role,
)
from failover import sql, stackconfig
from failover import topology as topo
from failover.cloud import Cloud, CloudError
from failover.engine import Engine, EngineError, PulumiCliMissing, StackMissing
from failover.journal import Journal, LockHeld, RunState, switch_lock
from failover.probes import HealthProbe, Resolver

log = logging.getLogger("failover.switch")

EXIT_OK, EXIT_USAGE, EXIT_ENV, EXIT_REFUSED, EXIT_ABORTED, EXIT_FAILED, EXIT_INVALID, EXIT_LOCKED = (
    0, 2, 3, 4, 5, 6, 7, 8,
)  # fmt: skip
DEFAULT_MAX_LAG = 300.0
PHASES = ("preflight", "fence", "promote", "flip", "validate", "report")
# The runbook's targets: database cross-region < 15 min, full region < 4 h.
TARGETS = {"database": 15 * 60.0, "total": 4 * 3600.0}


class Refused(Exception):
    """A precondition does not hold; nothing was changed."""


class Aborted(Exception):
    """The operator said no."""


class PhaseFailed(Exception):
    def __init__(self, phase: str, reason: str) -> None:
        self.phase = phase
        super().__init__(f"{phase} failed: {reason}")


class ValidationFailed(Exception):
    def __init__(self, failures: list[str]) -> None:
        self.failures = failures
        super().__init__("; ".join(failures))


class SimulatedCrash(BaseException):
    """Raised by the crash hook (drill and tests) to stop the switch like a kill would."""


@dataclass
class Options:
    active: Role
    mode: str = "planned"
    max_lag: float = DEFAULT_MAX_LAG
    dry_run: bool = False
    yes: bool = False
    approved_by: str | None = None
    json: bool = False
    project_dir: Path = Path(".")
    db_user: str = "postgres"
    promote_timeout: float = 1800.0
    fence_timeout: float = 120.0
    abandon: bool = False


@dataclass
class Bindings:
    """Everything the switch talks to; production and the drill bind these differently."""

    engine: Engine
    cloud: Cloud
    resolver: Resolver
    health: HealthProbe
    db_password: str
    confirm: Callable[[str], bool]
    crash_at: str | None = None
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    report_stream: TextIO = field(default_factory=lambda: sys.stdout)


@dataclass
class Report:
    run_id: str
    target: str
    mode: str
    approved_by: str | None
    phases: dict[str, float] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)
    counts_before: dict[str, int] = field(default_factory=dict)
    counts_after: dict[str, int] = field(default_factory=dict)
    lag_at_preflight: float | None = None
    pending: list[str] = field(default_factory=list)
    outcome: str = "running"

    def to_json(self) -> dict[str, Any]:
        database = sum(self.phases.get(p, 0.0) for p in ("fence", "promote"))
        total = sum(self.phases.values())
        return {
            "run_id": self.run_id,
            "target": self.target,
            "mode": self.mode,
            "approved_by": self.approved_by,
            "outcome": self.outcome,
            "phases_seconds": {k: round(v, 3) for k, v in self.phases.items()},
            "database_failover_seconds": round(database, 3),
            "database_target_seconds": TARGETS["database"],
            "total_seconds": round(total, 3),
            "total_target_seconds": TARGETS["total"],
            "within_targets": database < TARGETS["database"] and total < TARGETS["total"],
            "row_counts_before": self.counts_before,
            "row_counts_after": self.counts_after,
            "rows_missing_after_switch": self.rows_missing() if self.mode == "planned" else None,
            "row_count_change_since_preflight": self.row_change(),
            "replica_lag_at_preflight_seconds": self.lag_at_preflight,
            "checks": self.checks,
            "pending": self.pending,
        }

    def row_change(self) -> dict[str, int]:
        after = self.counts_after
        return {
            t: after.get(t, 0) - n for t, n in self.counts_before.items() if after.get(t, 0) != n
        }

    def rows_missing(self) -> dict[str, int]:
        return {t: -change for t, change in self.row_change().items()}

    def table(self) -> str:
        data = self.to_json()
        lines = [f"switch {self.run_id}: {self.mode} to {self.target} — {self.outcome}"]
        lines.append(f"{'phase':<10} {'seconds':>9}")
        for phase, seconds in data["phases_seconds"].items():
            lines.append(f"{phase:<10} {seconds:>9.2f}")
        lines.append(
            f"database failover {data['database_failover_seconds']:.1f}s (target < 15 min), "
            f"total {data['total_seconds']:.1f}s (target < 4 h)"
        )
        if self.mode == "planned":
            lines.append(f"rows missing after switch (RPO): {self.rows_missing() or 'none'}")
        else:
            lag = "unknown" if self.lag_at_preflight is None else f"{self.lag_at_preflight:.0f}s"
            lines.append(
                "RPO: not measurable from the databases (the old writer is unreachable); "
                f"replica lag at preflight: {lag}"
            )
            change = self.row_change() or "none"
            lines.append(f"row count change since preflight (counted on the replica): {change}")
        for check in self.checks:
            lines.append(f"  {check}")
        for item in self.pending:
            lines.append(f"PENDING: {item}")
        return "\n".join(lines)


class Switch:
    def __init__(self, opts: Options, bind: Bindings) -> None:
        self.opts = opts
        self.bind = bind
        self.journal = Journal(opts.project_dir)
        self.target: Role = opts.active
        self.old: Role = other_role(opts.active)
        self.state: RunState | None = None
        self.report: Report | None = None
        self.topology: topo.Topology | None = None

    # -- output -------------------------------------------------------------------------
    def say(self, message: str) -> None:
        print(message, file=self.bind.stream, flush=True)
        log.debug(message)

    # -- journal ------------------------------------------------------------------------
    def _done(self, step: str) -> bool:
        return self.state is not None and step in self.state.done

    def _step(self, step: str, action: Callable[[], dict[str, Any] | None]) -> None:
        """Run one journaled step unless a previous run already completed it."""
        assert self.state is not None
        if self._done(step):
            self.say(f"  {step}: already done by this run, skipped")
            return
        self.journal.write("step-start", run_id=self.state.run_id, step=step)
        try:
            data = action() or {}
        except Exception as err:
            self.journal.write("step-failed", run_id=self.state.run_id, step=step, error=str(err))
            raise
        self.state.done.add(step)
        self.state.data.update(data)
        self.journal.write("step-done", run_id=self.state.run_id, step=step, data=data)

    def _boundary(self, phase: str) -> None:
        if self.bind.crash_at == phase:
            self.bind.crash_at = None
            raise SimulatedCrash(phase)

    def _phase(self, name: str, body: Callable[[], None]) -> None:
        assert self.report is not None
        self.say(f"[{name}] start")
        start = time.monotonic()
        try:
            body()
        finally:
            self.report.phases[name] = self.report.phases.get(name, 0.0) + time.monotonic() - start
        self.say(f"[{name}] done in {self.report.phases[name]:.2f}s")
        self._boundary(name)

    # -- the run ------------------------------------------------------------------------
    def run(self) -> int:
        opts = self.opts
        try:
            with switch_lock(opts.project_dir, f"switch --active {opts.active} --mode {opts.mode}"):
                return self._run_locked()
        except LockHeld as err:
            self.say(f"refused: {err}")
            return EXIT_LOCKED

    def _run_locked(self) -> int:
        opts = self.opts
        unfinished = self.journal.unfinished()
        if unfinished is not None and unfinished.target != opts.active:
            self.say(
                f"refused: run {unfinished.run_id} toward {unfinished.target} is unfinished; "
                f"finish it first (python -m failover.switch --active {unfinished.target})"
            )
            return EXIT_REFUSED
        try:
            self.topology = topo.load(opts.project_dir, self.bind.engine)
        except StackMissing as err:
            self.say(f"refused: {err}")
            return EXIT_REFUSED
        except PulumiCliMissing as err:
            self.say(str(err))
            return EXIT_ENV
        except (EngineError, stackconfig.StackConfigError) as err:
            self.say(f"refused: cannot read the stacks: {err}")
            return EXIT_REFUSED
        self.show_topology("before")
        for item in self.journal.pending():
            self.say(
                f"PENDING from run {item.get('run_id')}: {item['action']}: {item.get('error')}"
            )
        if opts.abandon:
            return self._abandon(unfinished)
        if unfinished is None and self.topology.agreed_active == opts.active:
            return self._retry_pending()
        resuming = unfinished is not None
        self.state = unfinished or RunState(Journal.new_run_id(), opts.active, opts.mode)
        if resuming:
            opts.mode = self.state.mode
            self.say(
                f"resuming run {self.state.run_id} in its {self.state.mode} mode "
                f"({', '.join(sorted(self.state.done)) or 'nothing'} done)"
            )
        self.report = Report(self.state.run_id, opts.active, opts.mode, opts.approved_by)
        try:
            self._phase("preflight", self.preflight)
            if opts.dry_run:
                self.say(self.plan_text())
                self.say(self.dns_changes_text())
                self.report.outcome = "dry-run: nothing changed"
                self._emit_report()
                return EXIT_OK
            if not resuming:
                self.journal.write(
                    "run-start",
                    run_id=self.state.run_id,
                    target=opts.active,
                    mode=opts.mode,
                    approved_by=opts.approved_by,
                    max_lag=opts.max_lag,
                    data=self.state.data,
                )
            else:
                self.journal.write("run-resume", run_id=self.state.run_id)
            if opts.max_lag != DEFAULT_MAX_LAG:
                self.journal.write(
                    "override", run_id=self.state.run_id, what="max_lag", value=opts.max_lag,
                    approved_by=opts.approved_by,
                )  # fmt: skip
            self._confirm()
            if opts.mode == "planned":
                self._phase("fence", self.fence)
            self._phase("promote", self.promote)
            self._phase("flip", self.flip)
            self._phase("validate", self.validate)
        except Refused as err:
            self.say(f"refused: {err}")
            if self.state is not None and resuming:
                self.journal.write("run-refused", run_id=self.state.run_id, reason=str(err))
            return EXIT_REFUSED
        except Aborted as err:
            self.say(f"aborted: {err}; nothing was promoted")
            self._unfence_if_fenced()
            self.journal.write("run-end", run_id=self.state.run_id, outcome="aborted")
            return EXIT_ABORTED
        except PhaseFailed as err:
            self.say(f"FAILED: {err}. Fix the cause and run the same command again to resume.")
            self.journal.write(
                "phase-failed", run_id=self.state.run_id, phase=err.phase, error=str(err)
            )
            return EXIT_FAILED
        except ValidationFailed as err:
            self.report.outcome = "validation failed"
            for failure in err.failures:
                self.say(f"VALIDATION FAILED: {failure}")
            self.journal.write("validation-failed", run_id=self.state.run_id, failures=err.failures)
            self._emit_report()
            return EXIT_INVALID
        self.report.outcome = "switched"
        self.report.pending = [p["action"] for p in self.journal.pending()]
        self.journal.write(
            "run-end", run_id=self.state.run_id, outcome="switched", report=self.report.to_json()
        )
        self._phase("report", self._emit_report)
        return EXIT_OK

    def _retry_pending(self) -> int:
        """Nothing to switch; retry what an earlier switch left pending (an old side's up)."""
        pending = self.journal.pending()
        if not pending:
            self.say(f"{self.target} is already the active region: nothing to do")
            return EXIT_OK
        self.say(f"{self.target} is already the active region; an earlier switch left work pending")
        code = EXIT_OK
        for item in pending:
            action = str(item["action"])
            self.say(f"retrying pending {action} (left by run {item.get('run_id')})")
            try:
                if action == "search-restore":
                    self._restore_search_if_needed()
                elif action in ("up-primary", "up-dr"):
                    self._refresh_and_up("primary" if action == "up-primary" else "dr")
            except PhaseFailed as err:
                self.say(f"  still pending: {err}")
                code = EXIT_FAILED
        return code

    def _abandon(self, unfinished: RunState | None) -> int:
        if unfinished is None:
            self.say("refused: there is no unfinished run to abandon")
            return EXIT_REFUSED
        self.state = unfinished
        self.target = "dr" if unfinished.target == "dr" else "primary"
        self.old = other_role(self.target)
        if self._done("promote-database"):
            self.say(
                f"refused: run {unfinished.run_id} already promoted the {self.target} database; "
                "it cannot be abandoned: finish it with the same switch command"
            )
            return EXIT_REFUSED
        target = self.stack(self.target)
        try:
            db = self.bind.cloud.describe_database(self.target, target.db_identifier)
        except CloudError as err:
            self.say(f"refused: cannot tell whether {target.db_identifier} was promoted: {err}")
            return EXIT_REFUSED
        if db is not None and not db.is_replica:
            self.say(
                f"refused: {target.db_identifier} is already a writer (a promotion finished after "
                "the run stopped): finish the run with the same switch command"
            )
            return EXIT_REFUSED
        if self._done("fence"):
            try:
                sql.unfence(self.endpoint(self.old))
            except sql.SqlError as err:
                self.say(f"FAILED: could not unfence {self.stack(self.old).db_identifier}: {err}")
                return EXIT_FAILED
            self.say(f"{self.stack(self.old).db_identifier} takes writes again (unfenced)")
        self.journal.write("run-end", run_id=unfinished.run_id, outcome="abandoned")
        self.say(f"run {unfinished.run_id} abandoned; nothing was promoted")
        return EXIT_OK

    def _restore_search_if_needed(self) -> None:
        target = self.stack(self.target)
        endpoint = str(target.outputs.get(Output.SEARCH_ENDPOINT, ""))
        if not self._cloud_phase(
            "promote", lambda: self.bind.cloud.search_needs_restore(self.target, endpoint)
        ):
            return
        bucket = str(target.outputs.get(Output.SNAPSHOT_BUCKET, ""))
        role_arn = str(target.outputs.get(Output.SNAPSHOT_ROLE_ARN, ""))
        self.say(f"  {endpoint} has no indices: restoring the latest snapshot from {bucket} ...")
        self._cloud_phase(
            "promote",
            lambda: self.bind.cloud.restore_search(
                self.target, endpoint, bucket, role_arn, self.opts.promote_timeout
            ),
        )
        self.journal.write("pending-done", action="search-restore")

    def _check_topology(self) -> None:
        """The policy pack's two-stack checks (policy/dr_policies.py), before any change."""
        from policy.dr_policies import blocking, topology_violations

        assert self.topology is not None
        states = {
            role: {
                "role": role,
                "active_region": view.active_region,
                "replicate_from": view.replicate_from,
            }
            for role, view in self.topology.stacks.items()
        }
        found = topology_violations(states["primary"], states["dr"], switch_to=self.target)
        for violation in found:
            if violation.severity != "block":
                self.say(f"  warning: {violation.message}")
        blocked = blocking(found)
        if blocked:
            raise Refused("; ".join(v.message for v in blocked))

    # -- phases -------------------------------------------------------------------------
    def stack(self, role: Role) -> topo.StackView:
        assert self.topology is not None
        return self.topology.stacks[role]

    def endpoint(self, role: Role) -> sql.DbEndpoint:
        return self.stack(role).db_endpoint(self.opts.db_user, self.bind.db_password)

    def preflight(self) -> None:
        assert self.state is not None and self.report is not None
        target, old = self.stack(self.target), self.stack(self.old)
        for view in (target, old):
            if not view.db_identifier:
                raise Refused(
                    f"stack {view.role} has no {Output.DB_IDENTIFIER} output: was it deployed?"
                )
        if not self._done("write-config"):
            self._check_topology()
        db = self._cloud(
            lambda: self.bind.cloud.describe_database(self.target, target.db_identifier)
        )
        if db is None:
            raise Refused(f"database {target.db_identifier} does not exist in {target.region}")
        # A promotion this run started may have finished after the switch gave up waiting.
        promoted_already = self._done("promote-database") or (
            "promote-database" in self.state.started and not db.is_replica
        )
        if not promoted_already:
            if not db.is_replica:
                raise Refused(
                    f"{target.db_identifier} in {target.region} is not a read replica: only a replica "
                    "of the current writer can be promoted (a writer here means a failback needs the "
                    "old primary rebuilt as a new replica first; see docs/runbook.md)"
                )
            source = db.replica_source or ""
            # Same region: the identifier; cross-region: the ARN, which ends in ":db:<id>".
            # A substring test would take "<id>-g2" (another database) for "<id>".
            if source not in (old.db_identifier, old.outputs.get(Output.DB_ARN)) and not (
                source.startswith("arn:") and source.endswith(f":db:{old.db_identifier}")
            ):
                raise Refused(
                    f"{target.db_identifier} replicates from {source}, not from {old.db_identifier}"
                )
            if db.status != "available":
                raise Refused(f"{target.db_identifier} is {db.status!r}, not 'available'")
            self._check_lag(target)
        self._check_cache()
        writer_up = sql.reachable(self.endpoint(self.old))
        if self.opts.mode == "planned" and not writer_up and not self._done("fence"):
            raise Refused(
                f"planned mode needs the current writer {old.db_identifier} reachable; it is not. "
                "If its region is down, use --mode unplanned"
            )
        if self.opts.mode == "unplanned" and writer_up and not promoted_already:
            raise Refused(
                f"unplanned mode but the current writer {old.db_identifier} still answers: promoting "
                "now would create a second writer. Use --mode planned, or make sure it is down"
            )
        if "counts_before" not in self.state.data:
            source_ep = self.endpoint(self.old) if writer_up else self.endpoint(self.target)
            counts = self._sql(lambda: sql.row_counts(source_ep))
            self.state.data["counts_before"] = counts
        self.report.lag_at_preflight = self.state.data.get("lag_at_preflight")
        self.report.counts_before = dict(self.state.data["counts_before"])
        self.report.checks.append(f"preflight: row counts {self.report.counts_before}")
        self.say(f"  row counts before: {self.report.counts_before}")

    def _check_lag(self, target: topo.StackView) -> None:
        assert self.report is not None
        cw = self._cloud(
            lambda: self.bind.cloud.replica_lag_seconds(self.target, target.db_identifier)
        )
        own = self._sql(lambda: sql.replay_lag_seconds(self.endpoint(self.target)))
        lags = [x for x in (cw, own) if x is not None]
        assert self.state is not None
        self.state.data.setdefault("lag_at_preflight", max(lags) if lags else None)
        self.report.lag_at_preflight = self.state.data["lag_at_preflight"]
        if not lags:
            self.say("  WARNING: replica lag unknown (no CloudWatch data, replica not streaming)")
        shown = f"CloudWatch ReplicaLag {cw if cw is not None else 'n/a'}s, replica's own {own if own is not None else 'n/a'}s"
        self.say(f"  replica lag: {shown} (gate {self.opts.max_lag:.0f}s)")
        if lags and max(lags) > self.opts.max_lag:
            raise Refused(
                f"replica lag {max(lags):.0f}s is above --max-lag {self.opts.max_lag:.0f}s ({shown}). "
                "The runbook says: consult the data team; to accept the loss, raise --max-lag "
                "(recorded in the journal with --approved-by)"
            )
        self.report.checks.append(f"preflight: lag {shown}")

    def _check_cache(self) -> None:
        global_id = str(self.stack(self.target).outputs.get(Output.CACHE_GLOBAL_ID, ""))
        if not global_id:
            raise Refused("no cache Global Datastore id in the stack outputs")
        cache = self._cloud(lambda: self.bind.cloud.describe_cache(global_id))
        if cache is None:
            raise Refused(f"cache Global Datastore {global_id} does not exist")
        if cache.primary_region != STACK_REGIONS[self.target] and cache.status != "available":
            raise Refused(
                f"cache Global Datastore {global_id} is {cache.status!r}: cannot fail over now"
            )

    def fence(self) -> None:
        writer, replica = self.endpoint(self.old), self.endpoint(self.target)

        def do_fence() -> dict[str, Any]:
            self._sql(lambda: sql.fence(writer))
            try:
                lsn = sql.current_lsn(writer)
                self.say(f"  writer fenced (read-only) at WAL {lsn}; waiting for the replica")
                waited = sql.wait_replayed(replica, lsn, self.opts.fence_timeout)
                # Writes went on until the fence: count now, not at preflight, or a planned
                # switch under load reports rows "missing" that were never lost.
                counts = sql.row_counts(writer)
            except sql.SqlError as err:
                try:
                    sql.unfence(writer)
                except sql.SqlError as unfence_err:
                    raise PhaseFailed(
                        "fence",
                        f"{err}; unfencing failed too ({unfence_err}): the writer is STILL "
                        "READ-ONLY; run with --abandon to retry the unfence",
                    ) from err
                raise PhaseFailed(
                    "fence", f"{err}; the writer was unfenced, nothing else changed"
                ) from err
            self.say(f"  replica replayed {lsn} after {waited:.2f}s: zero data loss")
            assert self.report is not None
            self.report.counts_before = dict(counts)
            self.say(f"  row counts at the fence: {counts}")
            return {"fence_lsn": lsn, "counts_before": counts}

        self._step("fence", do_fence)

    def _confirm(self) -> None:
        """Ask before the first change: the fence stops writes, the promotion is final."""
        if self.opts.yes or self._done("promote-database") or self._done("fence"):
            return
        target = self.stack(self.target)
        fence = (
            f"stop writes on {self.stack(self.old).db_identifier}, then "
            if self.opts.mode == "planned"
            else ""
        )
        question = (
            f"{fence}promote {target.db_identifier} in {target.region} to be the writer? "
            "THIS CANNOT BE UNDONE"
        )
        if not self.bind.confirm(question[0].upper() + question[1:]):
            raise Aborted("the operator declined the promotion")

    def promote(self) -> None:
        target = self.stack(self.target)

        def promote_db() -> None:
            self.say(f"  promoting {target.db_identifier} ...")
            self._cloud_phase(
                "promote",
                lambda: self.bind.cloud.promote_database(
                    self.target, target.db_identifier, self.opts.promote_timeout
                ),
            )

        def failover_cache() -> None:
            global_id = str(target.outputs.get(Output.CACHE_GLOBAL_ID, ""))
            group = str(target.outputs.get(Output.CACHE_GROUP_ID, ""))
            self.say(f"  failing the cache Global Datastore over to {target.region} ...")
            self._cloud_phase(
                "promote",
                lambda: self.bind.cloud.failover_cache(
                    global_id, self.target, group, self.opts.promote_timeout
                ),
            )

        def search() -> None:
            # Best effort: a search outage must not hold the database failover hostage.
            try:
                self._restore_search_if_needed()
            except PhaseFailed as err:
                assert self.state is not None
                self.say(f"  {err}: recorded as pending; rerun the switch to retry it")
                self.journal.write(
                    "pending", run_id=self.state.run_id, action="search-restore", error=str(err)
                )

        def unfence_new_writer() -> None:
            # The fence is a database default, stored in the catalog, so it replicated to
            # the replica too: the promoted writer must have it reset or it refuses writes.
            self._cloud_phase(
                "promote", lambda: _sql_phase(lambda: sql.unfence(self.endpoint(self.target)))
            )
            self.say(f"  {target.db_identifier} accepts writes (read-only default reset)")

        self._step("promote-database", promote_db)
        if self.opts.mode == "planned":
            self._step("unfence-new-writer", unfence_new_writer)
        self._step("failover-cache", failover_cache)
        self._step("search-restore", search)

    def flip(self) -> None:
        def write_config() -> None:
            for role in (self.target, self.old):
                updates: dict[str, str] = {ConfigKey.ACTIVE_REGION: self.target}
                if role == self.target:
                    updates[ConfigKey.REPLICATE_FROM] = ""
                stackconfig.set_values(self.opts.project_dir, role, updates)
            self.say(
                f"  wrote active_region={self.target} to both stack files; cleared replicate_from on {self.target}"
            )

        self._step("write-config", write_config)
        assert self.topology is not None
        order: list[Role] = [self.target]
        if self.topology.dns_owner not in order:
            order.append(self.topology.dns_owner)
        for role in order:
            self._step(f"up-{role}", lambda role=role: self._refresh_and_up(role))  # type: ignore[misc]
        if self.old not in order:
            self._step(f"up-{self.old}", self._old_side)

    def _refresh_and_up(self, role: Role) -> None:
        self.say(f"  refresh + up of stack {role} ...")
        try:
            self.bind.engine.refresh(role, on_event=self._event)
            result = self.bind.engine.up(role, on_event=self._event)
        except EngineError as err:
            raise PhaseFailed("flip", f"stack {role}: {err}") from err
        self.say(f"  stack {role}: {result.summary} {result.changes}")
        # Any successful `up` of this stack (e.g. as the target of a failback) closes an `up`
        # an earlier run left pending, not only the old-side step that recorded it.
        if any(p["action"] == f"up-{role}" for p in self.journal.pending()):
            self.journal.write("pending-done", action=f"up-{role}")

    def _old_side(self) -> None:
        try:
            self._refresh_and_up(self.old)
        except PhaseFailed as err:
            assert self.state is not None
            action = f"up-{self.old}"
            self.say(
                f"  {err}: recorded as pending (its region may be down); rerun when it is back"
            )
            self.journal.write("pending", run_id=self.state.run_id, action=action, error=str(err))

    def validate(self) -> None:
        assert self.report is not None and self.state is not None and self.topology is not None
        failures: list[str] = []
        direct = self.endpoint(self.target)
        zone = self.topology.zone_name
        host, port = self.bind.resolver.resolve(f"{DnsName.DB}.{zone}", direct.port)
        by_name = sql.DbEndpoint(host, port, direct.dbname, direct.user, direct.password)
        for label, ep in (("direct endpoint", direct), (f"{DnsName.DB}.{zone}", by_name)):
            try:
                if sql.is_in_recovery(ep):
                    failures.append(f"{label}: pg_is_in_recovery() is true: not the writer")
                else:
                    self.report.checks.append(f"validate: {label}: pg_is_in_recovery() = false")
                sql.write_read_probe(ep, self.state.run_id)
                self.report.checks.append(f"validate: {label}: write and read-back ok")
            except sql.SqlError as err:
                failures.append(f"{label}: {err}")
        try:
            after = sql.row_counts(direct)
        except sql.SqlError as err:
            failures.append(f"row counts: {err}")
            after = {}
        self.report.counts_after = after
        missing = self.report.rows_missing()
        if missing and self.opts.mode == "planned":
            failures.append(f"row counts differ after a planned switch: {missing}")
        global_id = str(self.stack(self.target).outputs.get(Output.CACHE_GLOBAL_ID, ""))
        try:
            cache = self.bind.cloud.describe_cache(global_id)
        except CloudError as err:
            failures.append(f"cache: {err}")
            cache = None
        if cache is not None and cache.primary_region == STACK_REGIONS[self.target]:
            self.report.checks.append(f"validate: cache primary (master) in {cache.primary_region}")
        elif cache is not None:
            failures.append(
                f"cache: primary is in {cache.primary_region}, not {STACK_REGIONS[self.target]}"
            )
        api = f"{DnsName.API}.{zone}"
        for service in SERVICES:
            ok, detail = self.bind.health.check(api, service)
            (
                self.report.checks.append(f"validate: {detail}")
                if ok
                else failures.append(f"health: {detail}")
            )
        if failures:
            raise ValidationFailed(failures)

    # -- helpers ------------------------------------------------------------------------
    def _event(self, event: Any) -> None:
        pre = getattr(event, "resource_pre_event", None)
        if pre is not None and pre.metadata.op.value not in ("same", "read"):
            self.say(
                f"    {pre.metadata.op.value:<8} {pre.metadata.type} {pre.metadata.urn.split('::')[-1]}"
            )

    def _cloud(self, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except CloudError as err:
            raise Refused(str(err)) from err

    def _cloud_phase(self, phase: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except CloudError as err:
            raise PhaseFailed(phase, str(err)) from err

    def _sql(self, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except sql.SqlError as err:
            raise Refused(str(err)) from err

    def _unfence_if_fenced(self) -> None:
        if self._done("fence"):
            try:
                sql.unfence(self.endpoint(self.old))
                self.say("  the old writer was unfenced")
            except sql.SqlError as err:
                self.say(f"  could not unfence the old writer: {err}")

    def show_topology(self, when: str) -> None:
        assert self.topology is not None
        self.say(f"topology {when}:")
        for role, view in self.topology.stacks.items():
            source = view.outputs.get(Output.DB_REPLICA_SOURCE) or "-"
            self.say(
                f"  {role:<8} {view.region:<10} active_region={view.active_region} "
                f"replicate_from={view.replicate_from or '-'} db={view.db_identifier} source={source}"
            )

    def plan_text(self) -> str:
        lines = [f"plan ({self.opts.mode}) to make {self.target} active:"]
        if self.opts.mode == "planned":
            lines.append(
                f"  fence: make {self.stack(self.old).db_identifier} read-only, wait for zero lag"
            )
        lines += [
            f"  promote: {self.stack(self.target).db_identifier} in {self.stack(self.target).region}",
            f"  cache: Global Datastore primary -> {STACK_REGIONS[self.target]}",
            f"  config: active_region={self.target} in both stacks; replicate_from='' on {self.target}",
            f"  up: {self.target}, then the DNS owner, then {self.old} (best effort)",
            f"  DNS: api/db/redis/search move to {self.target}'s endpoints "
            f"(see python -m failover.dnsplan for the exact records)",
        ]
        return "\n".join(lines)

    def dns_changes_text(self) -> str:
        """The records the DNS owner's `up` would change, from the program under mocks."""
        from failover import dnsplan, programeval

        assert self.topology is not None
        owner = self.topology.dns_owner
        flipped: dict[str, str] = {ConfigKey.ACTIVE_REGION: self.target}
        if owner == self.target:
            flipped[ConfigKey.REPLICATE_FROM] = ""
        try:
            before = programeval.evaluate(self.opts.project_dir, owner)
            after = programeval.evaluate(self.opts.project_dir, owner, flipped)
        except (programeval.EvaluationError, stackconfig.StackConfigError) as err:
            return f"DNS changes: could not evaluate the program offline: {err}"
        changes = dnsplan.diff(dnsplan.dns_entries(before), dnsplan.dns_entries(after))
        lines = [f"DNS changes in stack {owner} ({changes.counts()}):"]
        for change in changes.changed:
            lines.append(f"  ~ {change.title}")
            lines += [
                f"      {c.field}: {dnsplan.show(c.before)} -> {dnsplan.show(c.after)}"
                for c in change.changes
            ]
        lines += [f"  + {e.title}" for e in changes.added]
        lines += [f"  - {e.title}" for e in changes.removed]
        return "\n".join(lines)

    def _emit_report(self) -> None:
        assert self.report is not None
        text = (
            json.dumps(self.report.to_json(), indent=2) if self.opts.json else self.report.table()
        )
        print(text, file=self.bind.report_stream, flush=True)


def _sql_phase(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except sql.SqlError as err:
        raise CloudError(str(err)) from err


def _tty_confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    answer = input(f"{question} (type 'yes' to continue): ")
    return answer.strip() == "yes"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m failover.switch",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--active", required=True, choices=["primary", "dr"], help="the region to make active"
    )
    parser.add_argument(
        "--mode", choices=["planned", "unplanned"], default="planned",
        help="planned: both regions up, fence then switch with zero loss (default); "
        "unplanned: the current writer's region is down",
    )  # fmt: skip
    parser.add_argument(
        "--max-lag", type=float, default=DEFAULT_MAX_LAG, metavar="SECONDS",
        help="refuse when replica lag exceeds this (default 300: the runbook's decision point); "
        "a raised value is recorded in the journal",
    )  # fmt: skip
    parser.add_argument(
        "--dry-run", action="store_true", help="run the checks, print the plan, change nothing"
    )
    parser.add_argument(
        "--yes", action="store_true", help="do not ask before the irreversible promotion"
    )
    parser.add_argument(
        "--approved-by", metavar="NAME",
        help="who approved this switch (recorded; required to raise --max-lag)",
    )  # fmt: skip
    parser.add_argument(
        "--abandon", action="store_true",
        help="end an unfinished run that has not promoted yet: unfence the old writer so it "
        "takes writes again, and record the run as abandoned",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the final report as JSON")
    parser.add_argument("--project-dir", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--db-user", default="postgres", help="database user for the SQL checks")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None, bindings: Bindings | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.max_lag != DEFAULT_MAX_LAG and not args.approved_by:
        parser.error("raising --max-lag accepts data loss: name the approver with --approved-by")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    opts = Options(
        active=args.active, mode=args.mode, max_lag=args.max_lag, dry_run=args.dry_run, yes=args.yes,
        approved_by=args.approved_by, json=args.json, project_dir=args.project_dir.resolve(), db_user=args.db_user,
        abandon=args.abandon,
    )  # fmt: skip
    if bindings is None:
        try:
            bindings = production_bindings(opts)
        except (PulumiCliMissing, MissingCredentials) as err:
            print(str(err), file=sys.stderr)
            return EXIT_ENV
    return Switch(opts, bindings).run()


class MissingCredentials(RuntimeError):
    pass


def production_bindings(opts: Options) -> Bindings:
    from failover.cloud import AwsCloud
    from failover.engine import AutomationEngine
    from failover.probes import HttpHealthProbe, SystemResolver

    engine = AutomationEngine(opts.project_dir)
    password = os.environ.get("FAILOVER_DB_PASSWORD")
    if not password:
        raise MissingCredentials(
            "FAILOVER_DB_PASSWORD is not set: export the database master password "
            "(e.g. from your secret manager) so the SQL checks can run"
        )
    return Bindings(
        engine=engine, cloud=AwsCloud(), resolver=SystemResolver(), health=HttpHealthProbe(),
        db_password=password, confirm=_tty_confirm,
    )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
