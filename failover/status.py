"""python -m failover.status: where each region stands, and what a switch left pending.

Per stack: active_region and replicate_from from the stack files, the database's role (and
lag when it is a replica) from AWS, the DNS targets the program declares for the current
config (offline, under mocks), and every pending action from the switch's journal.
Exit 0; 1 when the stacks disagree on active_region or an action is pending.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from components.contract import ROLES
from failover import programeval, stackconfig
from failover.journal import Journal


def collect(project_dir: Path, with_dns: bool = True) -> dict[str, Any]:
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
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        status = collect(args.project_dir.resolve(), with_dns=not args.no_dns)
    except (stackconfig.StackConfigError, programeval.EvaluationError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        for role, entry in status["stacks"].items():
            print(f"{role}: active_region={entry['active_region']} database={entry['database_role']}"
                  + (f" of {entry['replicate_from']}" if entry["replicate_from"] else ""))  # fmt: skip
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
    problems = (
        status["agreed_active_region"] is None or status["pending"] or status["unfinished_run"]
    )
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
