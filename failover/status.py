"""python -m failover.status: where each region stands, and what a switch left pending.

Per stack: active_region and replicate_from from the stack files, the DNS targets the
program declares for the current config (offline, under mocks), and every pending action
from the switch's journal. With --live, also the database each stack's outputs name, as
AWS sees it now: writer or replica (of what), status, and CloudWatch ReplicaLag (needs the
pulumi CLI and AWS credentials). Exit 0; 1 when the stacks disagree on active_region, the
declared and live database roles differ, or an action is pending; 3 without the pulumi CLI.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from components.contract import ROLES, Output
from failover import programeval, stackconfig
from failover.cloud import Cloud, CloudError
from failover.engine import Engine, EngineError, PulumiCliMissing
from failover.journal import Journal


def live_database(engine: Engine, cloud: Cloud, role: Any) -> dict[str, Any]:
    """The database this stack's outputs name, as AWS reports it now."""
    try:
        identifier = str(engine.outputs(role).get(Output.DB_IDENTIFIER, ""))
        db = cloud.describe_database(role, identifier)
        if db is None:
            return {"identifier": identifier, "error": "does not exist"}
        lag = cloud.replica_lag_seconds(role, identifier) if db.is_replica else None
    except (EngineError, CloudError) as err:
        return {"error": str(err)}
    return {
        "identifier": identifier,
        "status": db.status,
        "role": "replica" if db.is_replica else "writer",
        "replica_of": db.replica_source,
        "lag_seconds": lag,
    }


def collect(
    project_dir: Path,
    with_dns: bool = True,
    engine: Engine | None = None,
    cloud: Cloud | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {"stacks": {}, "pending": [], "unfinished_run": None}
    for role in ROLES:
        cfg = stackconfig.load(project_dir, role)
        entry: dict[str, Any] = {
            "active_region": cfg.get("active_region"),
            "replicate_from": cfg.get("replicate_from") or "",
            "database_role": "replica" if cfg.get("replicate_from") else "writer",
        }
        if with_dns:
            evaluation = programeval.evaluate(project_dir, role)
            entry["dns"] = {
                r.inputs["name"]
                + (
                    f" ({r.inputs['setIdentifier']})" if "setIdentifier" in r.inputs else ""
                ): r.inputs["records"]
                for r in evaluation.of_type("aws:route53/record:Record")
            }
        if engine is not None and cloud is not None:
            entry["live_database"] = live_database(engine, cloud, role)
        status["stacks"][role] = entry
    journal = Journal(project_dir)
    status["pending"] = [
        {"action": p["action"], "error": p.get("error")} for p in journal.pending()
    ]
    unfinished = journal.unfinished()
    if unfinished is not None:
        status["unfinished_run"] = {
            "run_id": unfinished.run_id,
            "target": unfinished.target,
            "done": sorted(unfinished.done),
        }
    actives = {s["active_region"] for s in status["stacks"].values()}
    status["agreed_active_region"] = actives.pop() if len(actives) == 1 else None
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m failover.status", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--project-dir", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--no-dns", action="store_true", help="skip the offline DNS evaluation")
    parser.add_argument("--live", action="store_true", help="also ask Pulumi and AWS (see above)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    return report(args.project_dir.resolve(), not args.no_dns, args.json, args.live)


def report(
    project_dir: Path,
    with_dns: bool,
    as_json: bool,
    live: bool,
    engine: Engine | None = None,
    cloud: Cloud | None = None,
) -> int:
    if live and (engine is None or cloud is None):
        from failover.cloud import AwsCloud
        from failover.engine import AutomationEngine

        try:
            engine = AutomationEngine(project_dir)
        except PulumiCliMissing as err:
            print(str(err), file=sys.stderr)
            return 3
        cloud = AwsCloud()
    try:
        status = collect(project_dir, with_dns=with_dns, engine=engine, cloud=cloud)
    except (stackconfig.StackConfigError, programeval.EvaluationError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(status, indent=2))
    else:
        for role, entry in status["stacks"].items():
            print(f"{role}: active_region={entry['active_region']} database={entry['database_role']}"
                  + (f" of {entry['replicate_from']}" if entry["replicate_from"] else ""))  # fmt: skip
            db = entry.get("live_database")
            if db is not None:
                if "error" in db:
                    print(f"  live database: {db['error']}")
                else:
                    lag = f", lag {db['lag_seconds']:.0f}s" if db["lag_seconds"] is not None else ""
                    of = f" of {db['replica_of']}" if db["replica_of"] else ""
                    print(
                        f"  live database {db['identifier']}: {db['role']}{of} ({db['status']}{lag})"
                    )
            for name, targets in entry.get("dns", {}).items():
                print(f"  {name} -> {', '.join(targets)}")
        if status["agreed_active_region"] is None:
            print("WARNING: the stacks disagree on active_region")
        if status["unfinished_run"]:
            print(
                f"UNFINISHED switch: {status['unfinished_run']} (run the same switch again to resume)"
            )
        for item in status["pending"]:
            print(f"PENDING: {item['action']}: {item['error']}")
    mismatched = [
        role
        for role, entry in status["stacks"].items()
        if entry.get("live_database", {}).get("role") not in (None, entry["database_role"])
    ]
    for role in mismatched:
        print(f"WARNING: {role}'s config declares a {status['stacks'][role]['database_role']}, AWS has a "
              f"{status['stacks'][role]['live_database']['role']}")  # fmt: skip
    problems = (
        status["agreed_active_region"] is None
        or status["pending"]
        or status["unfinished_run"]
        or mismatched
    )
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
