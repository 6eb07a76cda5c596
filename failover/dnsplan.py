"""Which DNS records the program declares, and what a change (or a flip) does to them.

Needs no credentials and no `pulumi` CLI: the program is evaluated under Pulumi mocks
(through `failover.programeval`) for each stack and each `active_region`, and every Route53
record (name, type, routing, targets, TTL, health check) and health check it declares is
listed. Values known only after deployment stay placeholders that name their source, e.g.
`<dr-workloads-gateway.lb_hostname>` or `<stack primary: db_address>`; nothing is invented.

    python -m failover.dnsplan                      list the records of the working tree
    python -m failover.dnsplan --base origin/main   what this checkout changes against REV
    python -m failover.dnsplan --flip               what flipping active_region changes

With --base or --flip and --output, the file is written only when a DNS record or health
check differs (no file = nothing to comment on); the exit status is 0 either way.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from components.contract import ROLES
from failover import stackconfig
from failover.preview_render import COMMENT_MARKER
from failover.programeval import Evaluation, EvaluationError, evaluate, evaluate_in_subprocess

log = logging.getLogger(__name__)

RECORD = "aws:route53/record:Record"
HEALTH_CHECK = "aws:route53/healthCheck:HealthCheck"
PROJECT_DIR = Path(__file__).resolve().parent.parent
NONE = "—"
PLACEHOLDER_NOTE = (
    "Evaluated offline under Pulumi mocks. Values in `<…>` exist only after deployment and "
    "name their source: `<resource.output>` in the same stack, `<stack S: output>` from stack S."
)

Value = str | int | bool | tuple[str, ...] | None
Kind = Literal["record", "health-check"]


class DnsPlanError(RuntimeError):
    """git or the evaluation failed; the message is one line for the operator."""


class Scenario(NamedTuple):
    stack: str
    active: str

    @property
    def overrides(self) -> dict[str, str]:
        # dr replicates from primary only while primary is active; a writer has it empty.
        replicate = "primary" if self.stack == "dr" and self.active == "primary" else ""
        return {"active_region": self.active, "replicate_from": replicate}

    def label(self) -> str:
        return f"stack {self.stack}, active_region {self.active}"


def scenarios(stacks: Sequence[str] = ROLES) -> list[Scenario]:
    return [Scenario(s, a) for s in stacks for a in ROLES]


@dataclass(frozen=True)
class DnsEntry:
    """One declared Route53 record or health check, as plain comparable fields."""

    kind: Kind
    key: str  # identity across revisions: name/type/set id, or the health check's resource
    fields: dict[str, Value]

    @property
    def title(self) -> str:
        return f"{'record' if self.kind == 'record' else 'health check'} {self.key}"


@dataclass(frozen=True)
class FieldChange:
    field: str
    before: Value
    after: Value


@dataclass(frozen=True)
class EntryChange:
    kind: Kind
    key: str
    changes: tuple[FieldChange, ...]

    @property
    def title(self) -> str:
        return f"{'record' if self.kind == 'record' else 'health check'} {self.key}"


@dataclass(frozen=True)
class PlanDiff:
    added: tuple[DnsEntry, ...] = ()
    removed: tuple[DnsEntry, ...] = ()
    changed: tuple[EntryChange, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def counts(self) -> str:
        parts = [(len(self.added), "added"), (len(self.removed), "removed")]
        parts.append((len(self.changed), "changed"))
        return ", ".join(f"{n} {what}" for n, what in parts if n) or "no change"


# --------------------------------------------------------------------------------------
# Extraction


def _num(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(_num(value))


def _first(value: Any) -> dict[str, Any]:
    return value[0] if isinstance(value, list) and value and isinstance(value[0], dict) else {}


def _routing(inputs: Mapping[str, Any]) -> str:
    parts: list[str] = []
    if policy := _first(inputs.get("failoverRoutingPolicies")):
        parts.append(f"failover {policy.get('type')}")
    if policy := _first(inputs.get("weightedRoutingPolicies")):
        parts.append(f"weighted {_num(policy.get('weight'))}")
    if policy := _first(inputs.get("latencyRoutingPolicies")):
        parts.append(f"latency {policy.get('region')}")
    if policy := _first(inputs.get("geolocationRoutingPolicies")):
        parts.append("geolocation " + ",".join(f"{k}={v}" for k, v in sorted(policy.items())))
    if policy := inputs.get("geoproximityRoutingPolicy") or {}:
        parts.append("geoproximity " + json.dumps(policy, sort_keys=True))
    if policy := inputs.get("cidrRoutingPolicy") or {}:
        parts.append(f"cidr {policy.get('collectionId')}/{policy.get('locationName')}")
    if inputs.get("multivalueAnswerRoutingPolicy"):
        parts.append("multivalue")
    return "; ".join(parts) or "simple"


def _targets(inputs: Mapping[str, Any]) -> tuple[str, ...]:
    aliases = [
        f"alias {a.get('name')} (zone {a.get('zoneId')}, "
        f"evaluate health {str(bool(a.get('evaluateTargetHealth'))).lower()})"
        for a in inputs.get("aliases") or []
    ]
    # Route53 answers with the set of values: their order is not a change.
    return tuple(sorted(str(_num(r)) for r in inputs.get("records") or [])) + tuple(aliases)


def _record(name: str, inputs: Mapping[str, Any]) -> DnsEntry:
    set_id = _text(inputs.get("setIdentifier"))
    fields: dict[str, Value] = {
        "name": _text(inputs.get("name")) or f"<{name}.name>",
        "type": _text(inputs.get("type")),
        "set_identifier": set_id,
        "routing": _routing(inputs),
        "targets": _targets(inputs),
        "ttl": _num(inputs.get("ttl")),
        "health_check_id": _text(inputs.get("healthCheckId")),
        "zone_id": _text(inputs.get("zoneId")),
        "resource": name,
    }
    key = f"{fields['name']} {fields['type']}" + (f" [{set_id}]" if set_id else "")
    return DnsEntry("record", key, fields)


def _health_check(name: str, inputs: Mapping[str, Any]) -> DnsEntry:
    fields: dict[str, Value] = {
        "type": _text(inputs.get("type")),
        "fqdn": _text(inputs.get("fqdn")),
        "ip_address": _text(inputs.get("ipAddress")),
        "port": _num(inputs.get("port")),
        "path": _text(inputs.get("resourcePath")),
        "search_string": _text(inputs.get("searchString")),
        "failure_threshold": _num(inputs.get("failureThreshold")),
        "request_interval": _num(inputs.get("requestInterval")),
        "disabled": inputs.get("disabled"),
        "inverted": inputs.get("invertHealthcheck"),
    }
    return DnsEntry("health-check", name, fields)


def dns_entries(evaluation: Evaluation) -> tuple[DnsEntry, ...]:
    """Every record and health check the evaluated program declares, sorted by key."""
    entries: dict[str, DnsEntry] = {}
    for res in evaluation.resources.values():
        if res.type == RECORD:
            entry = _record(res.name, res.inputs)
        elif res.type == HEALTH_CHECK:
            entry = _health_check(res.name, res.inputs)
        else:
            continue
        ident = f"{entry.kind}:{entry.key}"
        if ident in entries:  # two declarations of one record: keep both, visibly
            entry = DnsEntry(entry.kind, f"{entry.key} ({res.name})", entry.fields)
            ident = f"{entry.kind}:{entry.key}"
        entries[ident] = entry
    return tuple(entries[k] for k in sorted(entries))


def diff(before: Sequence[DnsEntry], after: Sequence[DnsEntry]) -> PlanDiff:
    old = {(e.kind, e.key): e for e in before}
    new = {(e.kind, e.key): e for e in after}
    changed: list[EntryChange] = []
    for ident in sorted(old.keys() & new.keys()):
        a, b = old[ident].fields, new[ident].fields
        fields = [f for f in {**a, **b} if a.get(f) != b.get(f)]
        if fields:
            changes = tuple(FieldChange(f, a.get(f), b.get(f)) for f in fields)
            changed.append(EntryChange(ident[0], ident[1], changes))
    return PlanDiff(
        added=tuple(new[k] for k in sorted(new.keys() - old.keys())),
        removed=tuple(old[k] for k in sorted(old.keys() - new.keys())),
        changed=tuple(changed),
    )


# --------------------------------------------------------------------------------------
# Evaluation (4 per revision) and the base checkout

Evaluator = Callable[[Path, str, Mapping[str, str]], Evaluation]
Plans = dict[Scenario, tuple[DnsEntry, ...]]
_WORKERS = max(1, min(4, os.cpu_count() or 1))


def _is_this_checkout(project_dir: Path) -> bool:
    """In-process evaluation sees this process's `components`; only right for its own tree."""
    import components

    loaded = Path(components.__file__ or "").resolve().parent
    return loaded == (project_dir / "components").resolve()


def _evaluate_plan(
    evaluator: Evaluator, project_dir: Path, scenario: Scenario, side: str
) -> tuple[DnsEntry, ...]:
    if not stackconfig.stack_file(project_dir, scenario.stack).is_file():
        raise DnsPlanError(f"{stackconfig.stack_file(project_dir, scenario.stack)} does not exist")
    log.info("evaluating %s of %s (%s)", scenario.label(), side, project_dir)
    try:
        evaluation = evaluator(project_dir, scenario.stack, scenario.overrides)
    except (EvaluationError, stackconfig.StackConfigError) as err:
        message = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        message = message.removeprefix("error: ")
        raise DnsPlanError(f"{side}, {scenario.label()}: {message}") from err
    return dns_entries(evaluation)


def _submit_all(
    pool: ThreadPoolExecutor,
    project_dir: Path,
    cases: Sequence[Scenario],
    side: str,
    *,
    empty_if_missing: bool,
) -> dict[Scenario, Future[tuple[DnsEntry, ...]]]:
    """Evaluate in the pool (subprocesses), or here in order when this is our own checkout."""
    futures: dict[Scenario, Future[tuple[DnsEntry, ...]]] = {}
    in_process = _is_this_checkout(project_dir)
    for case in cases:
        if empty_if_missing and not stackconfig.stack_file(project_dir, case.stack).is_file():
            log.warning("%s has no stack %s: it declares no records there", project_dir, case.stack)
            futures[case] = Future()
            futures[case].set_result(())
        elif in_process:
            futures[case] = Future()
            futures[case].set_result(_evaluate_plan(evaluate, project_dir, case, side))
        else:
            futures[case] = pool.submit(
                _evaluate_plan, evaluate_in_subprocess, project_dir, case, side
            )
    return futures


def plan(project_dir: Path, stacks: Sequence[str] = ROLES) -> Plans:
    """The DNS entries of `project_dir` for each stack x active_region."""
    pool = ThreadPoolExecutor(max_workers=_WORKERS)
    try:
        cases = scenarios(stacks)
        futures = _submit_all(pool, project_dir, cases, "working tree", empty_if_missing=False)
        return {case: f.result() for case, f in futures.items()}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise DnsPlanError(f"git {args[0]}: {lines[-1] if lines else 'failed'}")
    return proc.stdout.strip()


def resolve_revision(project_dir: Path, rev: str) -> str:
    try:
        return _git(
            project_dir, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"
        )
    except DnsPlanError:
        raise DnsPlanError(f"unknown git revision {rev!r} in {project_dir}") from None


@contextlib.contextmanager
def checkout(project_dir: Path, rev: str) -> Iterator[Path]:
    """The project as of `rev`, in a detached temporary worktree that is always removed."""
    top = Path(_git(project_dir, "rev-parse", "--show-toplevel")).resolve()
    commit = resolve_revision(project_dir, rev)
    relative = project_dir.resolve().relative_to(top)
    with tempfile.TemporaryDirectory(prefix="dnsplan-") as tmp:
        tree = Path(tmp) / "base"
        try:
            _git(top, "worktree", "add", "--detach", "--quiet", str(tree), commit)
            log.info("checked out %s (%s) at %s", rev, commit[:12], tree)
            yield tree / relative
        finally:
            proc = subprocess.run(
                ["git", "worktree", "remove", "--force", str(tree)],
                cwd=top, capture_output=True, text=True, check=False,
            )  # fmt: skip
            if proc.returncode != 0 and tree.exists():
                log.warning("git worktree remove failed: %s", proc.stderr.strip())
            subprocess.run(["git", "worktree", "prune"], cwd=top, capture_output=True, check=False)


def _no_entries() -> tuple[DnsEntry, ...]:
    return ()


def compare(project_dir: Path, rev: str, stacks: Sequence[str] = ROLES) -> dict[Scenario, PlanDiff]:
    """DNS differences of the working tree against revision `rev`, per stack x active_region."""
    cases = scenarios(stacks)
    with checkout(project_dir, rev) as base_dir:
        pool = ThreadPoolExecutor(max_workers=_WORKERS)
        try:
            if (base_dir / "Pulumi.yaml").is_file():
                base = _submit_all(pool, base_dir, cases, f"base {rev}", empty_if_missing=True)
            else:
                log.warning("%s has no Pulumi program at %s: every record is new", rev, base_dir)
                base = {c: pool.submit(_no_entries) for c in cases}
            head = _submit_all(pool, project_dir, cases, "working tree", empty_if_missing=False)
            return {c: diff(base[c].result(), head[c].result()) for c in cases}
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def flip(plans: Plans) -> dict[Scenario, PlanDiff]:
    """Per stack, what moving active_region from primary to dr changes (keyed by the dr side)."""
    stacks = sorted({c.stack for c in plans}, key=ROLES.index)
    return {
        Scenario(s, "dr"): diff(plans[Scenario(s, "primary")], plans[Scenario(s, "dr")])
        for s in stacks
    }


# --------------------------------------------------------------------------------------
# Rendering


def show(value: Value) -> str:
    if value is None or value == ():
        return NONE
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ", ".join(value)
    return str(value)


def _code(value: Value) -> str:
    text = show(value)
    if text == NONE:
        return text
    fence = "``" if "`" in text else "`"
    return f"{fence}{text}{fence}".replace("|", "\\|")


def describe(entry: DnsEntry) -> str:
    f = entry.fields
    if entry.kind == "health-check":
        where = f["fqdn"] or f["ip_address"]
        return f"{show(f['type'])} {show(where)}:{show(f['port'])}{show(f['path'])}".replace(
            NONE, ""
        )
    extra = [f"TTL {show(f['ttl'])}", f"routing {show(f['routing'])}"]
    if f["health_check_id"]:
        extra.append(f"health check {show(f['health_check_id'])}")
    return f"{show(f['type'])} -> {show(f['targets'])} ({', '.join(extra)})"


def _scenario_title(case: Scenario, mode: str) -> str:
    return f"{case.stack}: flip active_region primary -> dr" if mode == "flip" else case.label()


def render_text(diffs: Mapping[Scenario, PlanDiff], against: str, mode: str = "base") -> str:
    title = "DNS plan of an active_region flip (primary -> dr)" if mode == "flip" else ""
    lines = [title or f"DNS plan against {against}"]
    for case, d in diffs.items():
        lines.append(f"{_scenario_title(case, mode)}: {d.counts()}")
        for entry in d.added:
            lines.append(f"  + {entry.title}")
            lines += [
                f"      {k}: {show(v)}" for k, v in entry.fields.items() if v not in (None, ())
            ]
        for entry in d.removed:
            lines.append(f"  - {entry.title}")
            lines += [
                f"      {k}: {show(v)}" for k, v in entry.fields.items() if v not in (None, ())
            ]
        for change in d.changed:
            lines.append(f"  ~ {change.title}")
            lines += [
                f"      {c.field}: {show(c.before)} -> {show(c.after)}" for c in change.changes
            ]
    return "\n".join(lines) + "\n"


def render_markdown(diffs: Mapping[Scenario, PlanDiff], against: str, mode: str = "base") -> str:
    total = sum(len(d.added) + len(d.removed) + len(d.changed) for d in diffs.values())
    counted = f"{total} DNS {'change' if total == 1 else 'changes'}"
    title = (
        f"### DNS plan of an active_region flip (primary -> dr): {counted}"
        if mode == "flip"
        else f"### DNS plan: {counted} against {_code(against)}"
    )
    lines = [COMMENT_MARKER, title, "", PLACEHOLDER_NOTE]
    unchanged = [_scenario_title(c, mode) for c, d in diffs.items() if d.empty]
    for case, d in diffs.items():
        if d.empty:
            continue
        lines += ["", f"#### {_scenario_title(case, mode)}: {d.counts()}", ""]
        lines += ["| Change | DNS object | Field | Before | After |", "|---|---|---|---|---|"]
        for entry in d.added:
            lines.append(f"| added | {_code(entry.title)} | | {NONE} | {_code(describe(entry))} |")
        for entry in d.removed:
            lines.append(
                f"| removed | {_code(entry.title)} | | {_code(describe(entry))} | {NONE} |"
            )
        for change in d.changed:
            for c in change.changes:
                lines.append(
                    f"| changed | {_code(change.title)} | {c.field} "
                    f"| {_code(c.before)} | {_code(c.after)} |"
                )
    if unchanged:
        lines += ["", "No DNS change: " + "; ".join(unchanged) + "."]
    return "\n".join(lines) + "\n"


def render_json(diffs: Mapping[Scenario, PlanDiff], against: str, mode: str = "base") -> str:
    doc = {
        "marker": COMMENT_MARKER,
        "mode": mode,
        "against": against,
        "changed": any(not d.empty for d in diffs.values()),
        "scenarios": [
            {
                "stack": c.stack,
                "active_region": "primary -> dr" if mode == "flip" else c.active,
                **asdict(d),
            }
            for c, d in diffs.items()
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def render_listing(plans: Plans, fmt: str) -> str:
    if fmt == "json":
        doc = {
            "marker": COMMENT_MARKER,
            "scenarios": [
                {"stack": c.stack, "active_region": c.active, "entries": [asdict(e) for e in es]}
                for c, es in plans.items()
            ],
        }
        return json.dumps(doc, indent=2) + "\n"
    md = fmt == "markdown"
    lines = (
        [COMMENT_MARKER, "### DNS records declared by the program", "", PLACEHOLDER_NOTE]
        if md
        else []
    )
    for case, entries in plans.items():
        records = sum(1 for e in entries if e.kind == "record")
        head = f"{case.label()}: {records} records, {len(entries) - records} health checks"
        lines += ["", f"#### {head}", ""] if md else [head]
        if md and entries:
            lines += ["| DNS object | Definition |", "|---|---|"]
        for entry in entries:
            lines.append(
                f"| {_code(entry.title)} | {_code(describe(entry))} |"
                if md
                else f"  {entry.title}: {describe(entry)}"
            )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------
# CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m failover.dnsplan",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit status: 0 done (with or without DNS changes), 1 git or evaluation "
        "failed, 2 usage error",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--base", metavar="REV", help="compare against this git revision")
    mode.add_argument("--flip", action="store_true", help="compare active_region primary vs dr")
    parser.add_argument(
        "--stack", choices=ROLES, action="append", help="only this stack (repeatable)"
    )
    parser.add_argument("--format", choices=["text", "markdown", "json"], default="text")
    parser.add_argument("--output", type=Path, metavar="FILE", help="write here, not to stdout")
    parser.add_argument("--project-dir", type=Path, default=PROJECT_DIR)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    return parser


def _render_diff(diffs: Mapping[Scenario, PlanDiff], against: str, mode: str, fmt: str) -> str:
    render = {"text": render_text, "markdown": render_markdown, "json": render_json}[fmt]
    return render(diffs, against, mode)


def run(args: argparse.Namespace) -> int:
    project_dir = args.project_dir.resolve()
    if not (project_dir / "Pulumi.yaml").is_file():
        raise DnsPlanError(f"{project_dir} is not a Pulumi project (no Pulumi.yaml)")
    stacks = [s for s in ROLES if s in (args.stack or ROLES)]
    if args.base is None and not args.flip:
        report = render_listing(plan(project_dir, stacks), args.format)
        return _emit(report, args.output, always=True)
    if args.flip:
        diffs, against = flip(plan(project_dir, stacks)), "active_region primary"
    else:
        diffs, against = compare(project_dir, args.base, stacks), args.base
    differs = any(not d.empty for d in diffs.values())
    report = _render_diff(diffs, against, "flip" if args.flip else "base", args.format)
    code = _emit(report, args.output, always=False, differs=differs)
    if args.output is not None:
        changes = sum(len(d.added) + len(d.removed) + len(d.changed) for d in diffs.values())
        print(
            f"{changes} DNS changes against {against}; wrote {args.output}"
            if differs
            else f"no DNS record differs from {against}; {args.output} not written"
        )
    return code


def _emit(report: str, output: Path | None, *, always: bool, differs: bool = True) -> int:
    if output is None:
        sys.stdout.write(report)
    elif always or differs:
        output.write_text(report, encoding="utf-8")
    elif output.exists():
        # A stale report from an earlier run would read as a current change.
        log.warning("removing stale %s: no DNS record differs", output)
        output.unlink()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="dnsplan: %(message)s",
        stream=sys.stderr,
    )
    try:
        return run(args)
    except (DnsPlanError, EvaluationError, stackconfig.StackConfigError, OSError) as err:
        lines = str(err).strip().splitlines() or [type(err).__name__]
        print(f"dnsplan: error: {lines[0]}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
