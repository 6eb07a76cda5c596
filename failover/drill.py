"""python -m failover.drill: rehearse a failover on this machine and measure RTO and RPO.

The lab, on loopback only, stands in for the two regions:
  - moto in server mode as the AWS API (Route53 with the program's records and health checks);
  - a PostgreSQL writer (primary) and a streaming replica (dr) built with pg_basebackup -R,
    with the runbook's tables seeded;
  - a Redis primary and replica (the cache Global Datastore);
  - a copy of the project's stack config in a temporary directory.
It runs the real failover.switch orchestration: promotion is pg_promote(), the cache
failover is a Redis role change, fencing acts on the lab writer, and the DNS change applies
the records that the real program declares (under Pulumi mocks) for the new config.

What it does not stand in for: EKS and the apps (a tiny HTTP server answers /health), RDS
and ElastiCache control planes and their timings, OpenSearch, real DNS propagation and
CloudWatch. Timings are this machine's, not AWS's.

While the switch runs, a write load commits numbered rows through db.<zone> (re-resolved
through the lab's Route53 on every reconnect). Reported: RPO (acknowledged commits missing
from the new writer; planned must be 0), RTO as clients saw it (the longest time without a
commit), split brain (commits the old writer acknowledged after the new writer's first),
each phase's duration, writes attempted/acknowledged/lost, and validation.

Exit codes: 0 all guarantees held; 1 a guarantee was violated (RPO in planned mode, split
brain, promotion not exactly once, validation); 4 the switch refused (see its output);
3 the lab could not start.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from components.contract import ROLES
from failover import stackconfig, switch
from failover.lab import procs
from failover.lab.bindings import Lab, LabCloud, LabEngine, LabHealth, LabResolver, start_gateway
from failover.lab.motoserver import MotoServer
from failover.lab.postgres import PgPair
from failover.lab.redisproc import RedisPair
from failover.lab.workload import Measurement, WriteLoad, measure

log = logging.getLogger("failover.drill")
PROJECT_DIR = Path(__file__).resolve().parent.parent
LAB_PASSWORD = "lab-only-password"  # a throwaway lab's password, never a real one
PROGRAM_FILES = ("Pulumi.yaml", "Pulumi.primary.yaml", "Pulumi.dr.yaml", "__main__.py")


@dataclass
class DrillResult:
    mode: str
    exit_code: int
    switch_exit: int
    reruns: int
    promotions: int
    rpo_lost: int
    rpo_lost_seqs: list[int]
    rto_seconds: float
    split_brain: list[int]
    attempted: int
    acknowledged: int
    failed: int
    expected_lost: int | None
    phases: dict[str, float]
    switch_seconds: float
    waited_seconds: float
    overhead_seconds: float
    violations: list[str]


def copy_project(dest: Path) -> Path:
    for name in PROGRAM_FILES:
        shutil.copy2(PROJECT_DIR / name, dest / name)
    shutil.copytree(
        PROJECT_DIR / "components",
        dest / "components",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return dest


def build_lab(base: Path, out: io.TextIOBase | Any) -> tuple[Lab, MotoServer]:
    (base / "project").mkdir()
    project = copy_project(base / "project")

    def say(message: str) -> None:
        print(message, file=out, flush=True)

    say("lab: starting moto (AWS API) ...")
    moto = MotoServer(base / "moto").start()
    say("lab: starting PostgreSQL writer + streaming replica ...")
    pg = PgPair(base / "pg", password=LAB_PASSWORD).start()
    say("lab: starting Redis primary + replica ...")
    cache = RedisPair(base / "redis", password=LAB_PASSWORD).start()
    gateways = {role: start_gateway()[1] for role in ROLES}
    lab = Lab(
        project, pg, cache, moto.endpoint_url, "", "llm-marketplace.com", LAB_PASSWORD, gateways
    )
    lab.pg_by_role = {"primary": pg.writer, "dr": pg.replica}
    lab.redis_by_role = {"primary": cache.primary, "dr": cache.replica}
    zone = lab.route53().create_hosted_zone(
        Name=lab.zone_name, CallerReference=f"lab-{time.time_ns()}"
    )
    lab.zone_id = zone["HostedZone"]["Id"].split("/")[-1]
    stackconfig.set_values(project, "dr", {"hosted_zone_id": lab.zone_id})
    say(
        "lab: evaluating the program under mocks and applying its DNS records to the lab Route53 ..."
    )
    LabEngine(lab).apply_dns("dr")
    return lab, moto


def run_switch(
    lab: Lab, mode: str, max_lag: float, crash_at: str | None, out: Any
) -> tuple[int, int, dict[str, float]]:
    reruns, code = 0, switch.EXIT_FAILED
    phases: dict[str, float] = {}
    engine = LabEngine(lab)
    engine.health_ids = dict(getattr(lab, "_health_ids", {}))
    for attempt in range(3):
        bindings = switch.Bindings(
            engine=engine, cloud=LabCloud(lab), resolver=LabResolver(lab), health=LabHealth(lab),
            db_password=lab.password, confirm=lambda _q: True, crash_at=crash_at if attempt == 0 else None,
            stream=out, report_stream=out,
        )  # fmt: skip
        opts = switch.Options(active="dr", mode=mode, max_lag=max_lag, yes=True, project_dir=lab.project_dir,
                              approved_by="drill", promote_timeout=60, fence_timeout=30)  # fmt: skip
        runner = switch.Switch(opts, bindings)
        try:
            code = runner.run()
        except switch.SimulatedCrash as crash:
            print(
                f"drill: switch killed at the end of phase {crash}; running it again",
                file=out,
                flush=True,
            )
            reruns += 1
            if runner.report:
                phases.update(runner.report.phases)
            continue
        if runner.report:
            for phase, seconds in runner.report.phases.items():
                phases[phase] = phases.get(phase, 0.0) + seconds
        break
    return code, reruns, phases


def drill(mode: str, rate: float, duration: float, crash_at: str | None, lag_seconds: float,
          max_lag: float, out: Any) -> DrillResult:  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="llm-drill-") as tmp:
        base = Path(tmp)
        lab, moto = build_lab(base, out)
        try:
            return _drill(lab, mode, rate, duration, crash_at, lag_seconds, max_lag, out)
        finally:
            lab.cache.stop()
            lab.pg.stop()
            moto.stop()


def _drill(lab: Lab, mode: str, rate: float, duration: float, crash_at: str | None,
           lag_seconds: float, max_lag: float, out: Any) -> DrillResult:  # fmt: skip
    resolver = LabResolver(lab, timed=False)  # the clients' lookups are not the switch's waits
    region_of = {("127.0.0.1", lab.pg_by_role[r].port): r for r in ROLES}
    load = WriteLoad(
        resolver,
        f"db.{lab.zone_name}",
        lab.pg.writer.dbname,
        "postgres",
        lab.password,
        rate,
        region_of,
    )
    load.start()
    warmup = max(1.0, duration / 2)
    expected_lost: int | None = None
    outage_start: float | None = None
    try:
        if lag_seconds > 0:
            lab.pg.pause_streaming()
            print(
                f"drill: replica streaming paused for {lag_seconds:.1f}s (injected lag)",
                file=out,
                flush=True,
            )
            time.sleep(lag_seconds)
        else:
            time.sleep(warmup)
        if mode == "unplanned":
            print(
                "drill: killing the primary region (PostgreSQL and Redis primary)",
                file=out,
                flush=True,
            )
            outage_start = time.monotonic()
            lab.pg_by_role["primary"].kill()
            lab.redis_by_role["primary"].kill()
            lab.down.add("primary")
            # Nothing reaches the replica after the kill; let it replay what it received,
            # then what it lacks is exactly what an unplanned switch must lose.
            time.sleep(0.5)
            replayed = int(
                lab.pg_by_role["dr"].query_one("SELECT coalesce(max(seq), 0) FROM writes")
            )
            acked_on_old = [
                a.seq
                for a in load.acks
                if a.server == ("127.0.0.1", lab.pg_by_role["primary"].port)
            ]
            expected_lost = len([s for s in acked_on_old if s > replayed])
        switch_start = time.monotonic()
        # Clients lose service at the kill in an unplanned drill, at the fence in a planned one.
        start = outage_start if outage_start is not None else switch_start
        waited_before = lab.timers.waited
        code, reruns, phases = run_switch(lab, mode, max_lag, crash_at, out)
        switch_seconds = time.monotonic() - switch_start
        waited = lab.timers.waited - waited_before + phases.get("fence", 0.0)
        time.sleep(max(1.0, duration / 2))
    finally:
        load.stop()
    end = time.monotonic()
    new_writer = ("127.0.0.1", lab.pg_by_role["dr"].port)
    with lab.pg_by_role["dr"].connect() as conn:
        present = {int(str(r[0])) for r in conn.execute("SELECT seq FROM writes").fetchall()}
    m: Measurement = measure(load, new_writer, present, (start, end))
    violations = []
    if code == switch.EXIT_OK:
        if mode == "planned" and m.rpo_lost:
            violations.append(f"planned switch lost {len(m.rpo_lost)} acknowledged commits")
        if expected_lost is not None and len(m.rpo_lost) != expected_lost:
            violations.append(
                f"lost {len(m.rpo_lost)} commits but the replica lagged by {expected_lost}"
            )
        if m.split_brain:
            violations.append(
                f"split brain: the old writer acknowledged {len(m.split_brain)} commits after the new writer's first"
            )
        if lab.promotions != 1:
            violations.append(f"the replica was promoted {lab.promotions} times, not once")
    elif code != switch.EXIT_REFUSED:
        violations.append(f"the switch exited {code}")
    old_writer = lab.pg_by_role["primary"]
    if (
        code == switch.EXIT_REFUSED
        and old_writer.is_running()
        and old_writer.query_one("SHOW default_transaction_read_only") != "off"
    ):
        violations.append("the switch refused but left the writer read-only")
    exit_code = 1 if violations else (4 if code == switch.EXIT_REFUSED else 0)
    return DrillResult(
        mode=mode, exit_code=exit_code, switch_exit=code, reruns=reruns, promotions=lab.promotions,
        rpo_lost=len(m.rpo_lost), rpo_lost_seqs=m.rpo_lost[:50], rto_seconds=round(m.rto_seconds, 3),
        split_brain=m.split_brain, attempted=m.attempted, acknowledged=m.acknowledged, failed=m.failed,
        expected_lost=expected_lost, phases={k: round(v, 3) for k, v in phases.items()},
        switch_seconds=round(switch_seconds, 3), waited_seconds=round(waited, 3),
        overhead_seconds=round(max(0.0, switch_seconds - waited), 3), violations=violations,
    )  # fmt: skip


def render(result: DrillResult) -> str:
    lines = [
        f"drill ({result.mode}): {'OK' if result.exit_code == 0 else 'REFUSED' if result.exit_code == 4 else 'VIOLATION'}",
        f"  switch exit {result.switch_exit}, reruns after crash {result.reruns}, promotions {result.promotions}",
        f"  RPO: {result.rpo_lost} acknowledged commits lost"
        + (
            f" (replica lag accounted for {result.expected_lost})"
            if result.expected_lost is not None
            else ""
        ),
        f"  RTO (clients): {result.rto_seconds:.2f}s without a successful commit",
        f"  split brain: {len(result.split_brain)} commits",
        f"  writes: {result.attempted} attempted, {result.acknowledged} acknowledged, {result.failed} failed",
        f"  switch: {result.switch_seconds:.2f}s, of which waiting on databases/DNS/AWS {result.waited_seconds:.2f}s, own overhead {result.overhead_seconds:.2f}s",
    ]
    lines += [f"  phase {k:<10} {v:8.2f}s" for k, v in result.phases.items()]
    lines += [f"  VIOLATION: {v}" for v in result.violations]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m failover.drill", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--mode", choices=["planned", "unplanned"], default="planned")
    parser.add_argument("--rate", type=float, default=50.0, help="writes per second (default 50)")
    parser.add_argument(
        "--duration", type=float, default=4.0, help="seconds of load around the switch (default 4)"
    )
    parser.add_argument("--crash-at", choices=[p for p in switch.PHASES if p != "report"],
                        help="kill the switch at the end of this phase, then run it again")  # fmt: skip
    parser.add_argument("--lag", type=float, default=0.0, metavar="SECONDS",
                        help="pause the replica's streaming this long before the switch (injected lag)")  # fmt: skip
    parser.add_argument(
        "--max-lag", type=float, default=switch.DEFAULT_MAX_LAG, help="the switch's lag gate"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    procs.install_signal_handlers()
    progress = sys.stderr
    try:
        result = drill(
            args.mode, args.rate, args.duration, args.crash_at, args.lag, args.max_lag, progress
        )
    except procs.LabError as err:
        print(f"drill: the lab could not start: {err}", file=sys.stderr)
        return 3
    finally:
        procs.stop_all()
    print(json.dumps(asdict(result), indent=2) if args.json else render(result))
    return result.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
