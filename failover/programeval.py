"""Evaluate the Pulumi program under mocks for one stack and config, with no CLI and no cloud.

This is the one place that runs the program offline: the tests, `failover.dnsplan` and the
drill all call it, so each sees exactly what the program would declare. Values that only
exist after deployment come back as readable placeholders such as
`<dr-database-instance.address>` (which resource's which output), never invented hostnames.

Run as a module it evaluates another checkout of the program (another git revision) in a
fresh process and prints JSON, so two revisions never share imported modules.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import hashlib
import json
import runpy
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from components.contract import PROJECT, Output, Role, other_role
from failover import stackconfig

SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
SIG_KEY = "4dabf18193072939515e22adb298388d"
RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
DEFAULT_SECRET = "evaluation-placeholder-secret"


class EvaluationError(RuntimeError):
    """The program failed under mocks (bad config, or a bug in the program)."""


@dataclass(frozen=True)
class DeclaredResource:
    urn: str
    type: str
    name: str
    parent: str
    provider: str
    custom: bool
    protect: bool
    retain_on_delete: bool
    ignore_changes: tuple[str, ...]
    inputs: dict[str, Any]
    secret_inputs: tuple[str, ...]


@dataclass
class Evaluation:
    stack: str
    config: dict[str, str]
    resources: dict[str, DeclaredResource] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)

    def of_type(self, type_: str) -> list[DeclaredResource]:
        return [r for r in self.resources.values() if r.type == type_]

    def named(self, name: str) -> DeclaredResource:
        for resource in self.resources.values():
            if resource.name == name:
                return resource
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "config": self.config,
            "resources": {k: asdict(v) for k, v in self.resources.items()},
            "outputs": self.outputs,
            "secret_outputs": sorted(self.secret_outputs),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Evaluation:
        resources = {
            urn: DeclaredResource(
                **{
                    **value,
                    "ignore_changes": tuple(value["ignore_changes"]),
                    "secret_inputs": tuple(value["secret_inputs"]),
                }
            )
            for urn, value in data["resources"].items()
        }
        return cls(
            stack=data["stack"],
            config=dict(data["config"]),
            resources=resources,
            outputs=dict(data["outputs"]),
            secret_outputs=set(data["secret_outputs"]),
        )


def placeholder(resource: str, attribute: str) -> str:
    return f"<{resource}.{attribute}>"


def peer_placeholder(stack: str, output: str) -> str:
    return f"<stack {stack}: {output}>"


def _secret_mask(value: Any) -> str:
    digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]
    return f"[secret:{digest}]"


def normalize(value: Any, secret_paths: list[str], path: str = "") -> Any:
    """Raw protobuf JSON to plain values; secrets become a digest, never the value."""
    if isinstance(value, dict):
        sig = value.get(SIG_KEY)
        if sig == SECRET_SIG:
            secret_paths.append(path)
            return _secret_mask(value.get("value"))
        if sig == RESOURCE_SIG:
            return str(value.get("urn", ""))
        return {
            k: normalize(v, secret_paths, f"{path}.{k}" if path else k) for k, v in value.items()
        }
    if isinstance(value, list):
        return [normalize(v, secret_paths, f"{path}[{i}]") for i, v in enumerate(value)]
    if value == UNKNOWN:
        return "<unknown>"
    return value


def _computed_state(type_: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Outputs the cloud would compute, as placeholders naming the resource and output."""

    def p(attr: str) -> str:
        return placeholder(name, attr)

    state: dict[str, Any] = {"arn": inputs.get("arn", p("arn"))}
    if type_ == "aws:rds/instance:Instance":
        state.update(address=p("address"), endpoint=p("endpoint"), port=5432)
    elif type_ == "aws:elasticache/replicationGroup:ReplicationGroup":
        state.update(primaryEndpointAddress=p("primary_endpoint_address"))
    elif type_ == "aws:elasticache/globalReplicationGroup:GlobalReplicationGroup":
        state.update(globalReplicationGroupId=p("global_replication_group_id"))
    elif type_ == "aws:opensearch/domain:Domain":
        state.update(endpoint=p("endpoint"))
    elif type_ == "aws:eks/cluster:Cluster":
        state.update(
            endpoint=p("endpoint"),
            certificateAuthority={"data": p("certificate_authority")},
            identities=[{"oidcs": [{"issuer": p("oidc_issuer")}]}],
            vpcConfig={**inputs.get("vpcConfig", {}), "clusterSecurityGroupId": p("node_sg")},
        )
    elif type_ == "kubernetes:core/v1:Service":
        state.update(status={"loadBalancer": {"ingress": [{"hostname": p("lb_hostname")}]}})
    elif type_ == "aws:route53/record:Record":
        state.update(fqdn=inputs.get("name", p("fqdn")))
    elif type_ == "aws:s3/bucket:Bucket":
        state.update(bucket=inputs.get("bucket", p("bucket")))
    elif type_ in ("aws:iam/role:Role", "aws:rds/subnetGroup:SubnetGroup"):
        state.update(name=inputs.get("name", p("name")))
    return {**inputs, **state}


def _run(
    project_dir: Path,
    stack: str,
    config: dict[str, str],
    secret_keys: set[str],
    peer_outputs: Mapping[str, Any],
) -> Evaluation:
    import pulumi
    from google.protobuf import json_format  # type: ignore[import-untyped]
    from pulumi.runtime import mocks as pmocks
    from pulumi.runtime import settings as psettings
    from pulumi.runtime.stack import run_pulumi_func

    evaluation = Evaluation(
        stack=stack,
        config={k: _secret_mask(v) if k in secret_keys else v for k, v in config.items()},
    )

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(
            self, args: pulumi.runtime.MockResourceArgs
        ) -> tuple[str | None, dict[str, Any]]:
            if args.typ == "pulumi:pulumi:StackReference":
                return args.name, {"name": args.inputs.get("name"), "outputs": dict(peer_outputs)}
            resource_id = args.inputs.get("identifier") or args.inputs.get("replicationGroupId")
            return (
                str(resource_id or placeholder(args.name, "id")),
                _computed_state(args.typ, args.name, dict(args.inputs)),
            )

        def call(
            self, args: pulumi.runtime.MockCallArgs
        ) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
            raise EvaluationError(
                f"the program called {args.token}; offline evaluation allows no invokes"
            )

    class RecordingMonitor(pmocks.MockMonitor):
        def RegisterResource(self, request: Any) -> Any:
            response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
            if request.type != "pulumi:pulumi:Stack":
                raw = json_format.MessageToDict(request.object)
                secrets: list[str] = []
                inputs = normalize(raw, secrets)
                evaluation.resources[response.urn] = DeclaredResource(
                    urn=response.urn,
                    type=request.type,
                    name=request.name,
                    parent=request.parent,
                    provider=request.provider.split("::")[-2] if request.provider else "",
                    custom=bool(request.custom),
                    protect=bool(request.protect),
                    retain_on_delete=bool(request.retainOnDelete),
                    ignore_changes=tuple(request.ignoreChanges),
                    inputs=inputs,
                    secret_inputs=tuple(secrets),
                )
            return response

    pmocks.set_mocks(
        Mocks(), project=PROJECT, stack=stack, preview=False, monitor=RecordingMonitor(Mocks())
    )
    pulumi.runtime.set_all_config(config, sorted(secret_keys))

    async def program() -> None:
        sys_path = list(sys.path)
        sys.path.insert(0, str(project_dir))
        try:
            runpy.run_path(str(project_dir / "__main__.py"), run_name="__pulumi_program__")
        finally:
            sys.path[:] = sys_path
        root = psettings.get_root_resource()
        exported: dict[str, Any] = getattr(root, "outputs", {})
        for key, value in exported.items():
            out = pulumi.Output.from_input(value)
            resolved = await out.future()
            if await out.is_secret():
                evaluation.secret_outputs.add(key)
                resolved = _secret_mask(resolved)
            evaluation.outputs[key] = resolved

    pmocks._sync_await(run_pulumi_func(program))  # type: ignore[attr-defined]
    return evaluation


def default_peer_outputs(stack: str) -> dict[str, Any]:
    peer = other_role(_role(stack))
    names = [v for k, v in vars(Output).items() if not k.startswith("_") and isinstance(v, str)]
    return {name: peer_placeholder(peer, name) for name in names}


def _role(stack: str) -> Role:
    if stack not in ("primary", "dr"):
        raise EvaluationError(f"unknown stack {stack!r}: expected primary or dr")
    return "primary" if stack == "primary" else "dr"


def effective_config(
    project_dir: Path, stack: str, overrides: Mapping[str, str] | None = None
) -> tuple[dict[str, str], set[str]]:
    loaded = stackconfig.load(project_dir, stack)
    values = dict(loaded.values)
    for key in loaded.secret_keys:
        # Encrypted or unset secrets cannot be read offline; a marked placeholder stands in.
        values.setdefault(key, DEFAULT_SECRET)
    for key, value in (overrides or {}).items():
        values[stackconfig.full_key(key)] = value
    return values, set(loaded.secret_keys)


def evaluate(
    project_dir: Path,
    stack: str,
    overrides: Mapping[str, str] | None = None,
    peer_outputs: Mapping[str, Any] | None = None,
) -> Evaluation:
    """Evaluate the program in `project_dir` for `stack` in this process."""
    config, secret_keys = effective_config(project_dir, stack, overrides)
    peers = peer_outputs if peer_outputs is not None else default_peer_outputs(stack)
    context = contextvars.Context()
    previous_loop = _current_loop()
    try:
        return context.run(_run, project_dir.resolve(), stack, config, secret_keys, peers)
    except EvaluationError:
        raise
    except Exception as err:
        raise EvaluationError(f"evaluating stack {stack!r} failed: {err}") from err
    finally:
        asyncio.set_event_loop(previous_loop)


def _current_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        return None


def evaluate_in_subprocess(
    project_dir: Path, stack: str, overrides: Mapping[str, str] | None = None
) -> Evaluation:
    """Evaluate another checkout of the program in a fresh interpreter."""
    here = Path(__file__).resolve().parent.parent
    cmd = [
        sys.executable,
        "-m",
        "failover.programeval",
        "--project-dir",
        str(project_dir),
        "--stack",
        stack,
    ]
    for key, value in (overrides or {}).items():
        cmd += ["--set", f"{key}={value}"]
    proc = subprocess.run(cmd, cwd=here, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise EvaluationError(
            proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"
        )
    return Evaluation.from_json(json.loads(proc.stdout))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--project-dir", type=Path, required=True)
    parser.add_argument("--stack", required=True, choices=["primary", "dr"])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.set)
    project_dir = args.project_dir.resolve()
    # The other checkout's `components` package must win over this one's.
    # contract.py included: a PR that changes DNS_TTL must be evaluated with each side's own.
    for name in [m for m in sys.modules if m == "components" or m.startswith("components.")]:
        del sys.modules[name]
    sys.path.insert(0, str(project_dir))
    try:
        evaluation = evaluate(project_dir, args.stack, overrides)
    except (EvaluationError, stackconfig.StackConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    json.dump(evaluation.to_json(), sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
