"""The DR invariants of the LLM-Marketplace platform, as pure checks.

Every check is a plain function over a `Resource` (type, name, props in the engine's
camelCase, its provider and region) or over a list of them, so the same code runs

- in the CrossGuard pack (`policy/__main__.py`, `pulumi preview --policy-pack policy`):
  `build_policies()` wraps each rule in a MANDATORY `ResourceValidationPolicy` or
  `StackValidationPolicy`, and `from_validation_args` / `from_policy_resources` turn the
  engine's arguments into `Resource`s;
- in the tests and the failover tooling, over what the program declares under Pulumi mocks
  (`from_declared` over `failover.programeval.DeclaredResource`s).

The topology checks (`topology_violations` and the functions it combines) need both stacks and
take their config or outputs as plain mappings; the failover switch runs them before a switch.

Values the engine cannot know before apply (preview of a create) arrive as `UNKNOWN`. A
reference that is unknown still counts as set (it is computed from another resource); a flag
or a number that must have a literal value does not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

from components.contract import PROJECT, ConfigKey, Output, Role

PACK_NAME = "llm-marketplace-dr"

# The runbook's TTL for the shared names: a flip must reach clients within a minute.
MAX_DNS_TTL = 60
# RDS promotes a replica only with automated backups on; the runbook keeps a week.
MIN_BACKUP_RETENTION_DAYS = 7

RDS_INSTANCE = "aws:rds/instance:Instance"
KMS_KEY = "aws:kms/key:Key"
CACHE_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
SEARCH_DOMAIN = "aws:opensearch/domain:Domain"
BUCKET_TYPES = frozenset({"aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"})
BUCKET_SSE_TYPES = frozenset(
    {
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
    }
)
DNS_RECORD = "aws:route53/record:Record"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"

# How an unknown value reads here: the same text `failover.programeval` uses under mocks.
UNKNOWN = "<unknown>"
# pulumi_policy's sentinels for values unknown during preview (pulumi_policy/proxy.py).
_ENGINE_UNKNOWNS = frozenset(
    {
        "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",
        "3eeb2bf0-c639-47a8-9e75-3b44932eb421",
        "04da6b54-80e4-46f7-96ec-b56ff0331ba9",
        "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",
        "030794c1-ac77-496b-92df-f27374a8bd58",
        "e48ece36-62e2-4504-bad9-02848725956a",
        "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",
    }
)

Severity = Literal["block", "warn"]


@dataclass(frozen=True)
class Violation:
    """One broken invariant. `block` stops a deployment or a switch; `warn` is reported."""

    policy: str
    message: str
    severity: Severity = "block"
    # The resource it is about, when there is one (not part of equality).
    urn: str = field(default="", compare=False)


@dataclass(frozen=True)
class Resource:
    """A resource as the checks see it, whoever declared it."""

    type: str
    name: str
    props: Mapping[str, Any]
    urn: str = ""
    # Identity of the resource's provider: its URN in the engine, its name under mocks.
    provider: str = ""
    provider_region: str | None = None
    # Property name -> URNs of the resources that property's value was computed from.
    dependencies: Mapping[str, frozenset[str]] = field(default_factory=dict)


# --- value helpers ---------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """Engine or mock values as plain dicts, lists and scalars; unknowns become `UNKNOWN`.

    pulumi_policy wraps props in proxies that raise on an unknown value; their raw target is
    read instead, so a check decides itself what an unknown means.
    """
    if type(value).__module__ == "pulumi_policy.secret" and hasattr(value, "value"):
        return plain(value.value)
    is_proxy = type(value).__module__ in ("pulumi_policy.proxy", "pulumi_policy.secret")
    if isinstance(value, Mapping):
        target = value["__target"] if is_proxy else value
        return {str(k): plain(v) for k, v in target.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        target = value["__target"] if is_proxy else value  # type: ignore[call-overload]
        return [plain(v) for v in target]
    if isinstance(value, str) and value in _ENGINE_UNKNOWNS:
        return UNKNOWN
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _get(props: Mapping[str, Any], path: str) -> Any:
    value: Any = props
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _show(value: Any) -> str:
    if value is None:
        return "unset"
    if value == UNKNOWN:
        return "a value unknown until apply"
    return json.dumps(value, sort_keys=True, default=str)


def _text(value: Any) -> str:
    """Like `_show`, but a known string reads as itself (names, ARNs)."""
    return value if isinstance(value, str) and value != UNKNOWN else _show(value)


def _is_set(value: Any) -> bool:
    """A reference is set when it has a value, known or still to be computed."""
    return value is not None and value not in ("", [], {})


_ARN = re.compile(r"^arn:[^:]+:(?P<service>[^:]+):(?P<region>[^:]*):")


def arn_region(value: Any) -> str | None:
    """The region segment of an ARN, or None when `value` is not a regional ARN."""
    match = _ARN.match(value) if isinstance(value, str) else None
    return match["region"] or None if match else None


def _provider_label(resource: Resource) -> str:
    name = resource.provider.split("::")[-1] if resource.provider else "the default provider"
    return f"{name} ({resource.provider_region})" if resource.provider_region else name


# --- resource rules --------------------------------------------------------------------------

ResourceCheck = Callable[[Resource], list[str]]


@dataclass(frozen=True)
class ResourceRule:
    name: str
    description: str
    types: frozenset[str]
    check: ResourceCheck


def _must_be_true(kind: str, path: str) -> ResourceCheck:
    def check(r: Resource) -> list[str]:
        value = _get(r.props, path)
        if value is True:
            return []
        return [f"{kind} {r.name}: {path} must be true, got {_show(value)}"]

    return check


def _all_true(kind: str, *paths: str) -> ResourceCheck:
    checks = [_must_be_true(kind, p) for p in paths]

    def check(r: Resource) -> list[str]:
        return [message for c in checks for message in c(r)]

    return check


def _rds_backup_retention(r: Resource) -> list[str]:
    value = r.props.get("backupRetentionPeriod")
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and value >= MIN_BACKUP_RETENTION_DAYS
    ):
        return []
    return [
        f"RDS instance {r.name}: backupRetentionPeriod must be at least "
        f"{MIN_BACKUP_RETENTION_DAYS} days, got {_show(value)}"
    ]


def _rds_not_public(r: Resource) -> list[str]:
    value = r.props.get("publiclyAccessible")
    # Unset is RDS's default: not publicly accessible.
    if value is None or value is False:
        return []
    return [f"RDS instance {r.name}: publiclyAccessible must be false, got {_show(value)}"]


def _rds_replica_kms_region(r: Resource) -> list[str]:
    source = r.props.get("replicateSourceDb")
    if not _is_set(source):
        return []
    region = r.provider_region
    if region is not None and arn_region(source) == region:
        return []  # a replica in its source's region may use the source's key
    key = r.props.get("kmsKeyId")
    if not _is_set(key):
        where = region or "the provider's region"
        return [
            f"RDS replica {r.name}: kmsKeyId is unset; a cross-region replica must be "
            f"encrypted with a KMS key of its own region ({where})"
        ]
    key_region = arn_region(key)
    if key_region is not None and region is not None and key_region != region:
        return [
            f"RDS replica {r.name}: kmsKeyId {key} is a key of {key_region}, but the replica "
            f"is in {region}; use a KMS key of the replica's own region"
        ]
    return []


def _route53_ttl(r: Resource) -> list[str]:
    if r.props.get("aliases"):
        return []  # alias records have no TTL of their own
    ttl = r.props.get("ttl")
    if isinstance(ttl, int | float) and not isinstance(ttl, bool) and ttl <= MAX_DNS_TTL:
        return []
    return [
        f"Route53 record {r.name} ({_text(r.props.get('name'))}): ttl must be at most "
        f"{MAX_DNS_TTL} seconds, got {_show(ttl)}"
    ]


def _failover_type(props: Mapping[str, Any]) -> str | None:
    policies = props.get("failoverRoutingPolicies")
    if not isinstance(policies, list) or not policies:
        return None
    first = policies[0]
    kind = first.get("type") if isinstance(first, Mapping) else None
    return str(kind) if kind is not None else UNKNOWN


def _route53_failover_health_check(r: Resource) -> list[str]:
    kind = _failover_type(r.props)
    if kind is None or _is_set(r.props.get("healthCheckId")):
        return []
    return [
        f"Route53 failover record {r.name} ({_text(r.props.get('name'))}, {kind}): "
        "healthCheckId is required, so Route53 moves traffic off a dead region by itself"
    ]


def _deployment_probes(r: Resource) -> list[str]:
    containers = _get(r.props, "spec.template.spec.containers")
    if not isinstance(containers, list):
        return [f"Deployment {r.name}: spec.template.spec.containers is {_show(containers)}"]
    messages = []
    for index, container in enumerate(containers):
        c = container if isinstance(container, Mapping) else {}
        label = c.get("name") or f"#{index}"
        for probe in ("livenessProbe", "readinessProbe"):
            if not _is_set(c.get(probe)):
                messages.append(f"Deployment {r.name}: container {label} has no {probe}")
    return messages


RESOURCE_RULES: tuple[ResourceRule, ...] = (
    ResourceRule(
        "rds-storage-encrypted",
        "RDS instances encrypt their storage at rest (storageEncrypted).",
        frozenset({RDS_INSTANCE}),
        _must_be_true("RDS instance", "storageEncrypted"),
    ),
    ResourceRule(
        "rds-deletion-protection",
        "RDS instances have deletionProtection on: the database with the data is never deleted.",
        frozenset({RDS_INSTANCE}),
        _must_be_true("RDS instance", "deletionProtection"),
    ),
    ResourceRule(
        "rds-backup-retention",
        f"RDS instances keep automated backups for at least {MIN_BACKUP_RETENTION_DAYS} days "
        "(a replica cannot be promoted without them).",
        frozenset({RDS_INSTANCE}),
        _rds_backup_retention,
    ),
    ResourceRule(
        "rds-not-publicly-accessible",
        "RDS instances are never publicly accessible.",
        frozenset({RDS_INSTANCE}),
        _rds_not_public,
    ),
    ResourceRule(
        "rds-multi-az",
        "RDS instances are Multi-AZ (multiAz).",
        frozenset({RDS_INSTANCE}),
        _must_be_true("RDS instance", "multiAz"),
    ),
    ResourceRule(
        "rds-replica-kms-own-region",
        "A cross-region RDS replica (replicateSourceDb) is encrypted with a KMS key of its "
        "own region (kmsKeyId set; a key ARN's region is the provider's region).",
        frozenset({RDS_INSTANCE}),
        _rds_replica_kms_region,
    ),
    ResourceRule(
        "elasticache-encryption-at-rest",
        "ElastiCache replication groups encrypt at rest (atRestEncryptionEnabled).",
        frozenset({CACHE_GROUP}),
        _must_be_true("ElastiCache replication group", "atRestEncryptionEnabled"),
    ),
    ResourceRule(
        "elasticache-encryption-in-transit",
        "ElastiCache replication groups encrypt in transit (transitEncryptionEnabled).",
        frozenset({CACHE_GROUP}),
        _must_be_true("ElastiCache replication group", "transitEncryptionEnabled"),
    ),
    ResourceRule(
        "opensearch-encryption-at-rest",
        "OpenSearch domains encrypt at rest (encryptAtRest.enabled).",
        frozenset({SEARCH_DOMAIN}),
        _must_be_true("OpenSearch domain", "encryptAtRest.enabled"),
    ),
    ResourceRule(
        "opensearch-encryption-in-transit",
        "OpenSearch domains encrypt in transit (nodeToNodeEncryption.enabled and "
        "domainEndpointOptions.enforceHttps).",
        frozenset({SEARCH_DOMAIN}),
        _all_true(
            "OpenSearch domain",
            "nodeToNodeEncryption.enabled",
            "domainEndpointOptions.enforceHttps",
        ),
    ),
    ResourceRule(
        "route53-ttl-max-60",
        f"Route53 records have a TTL of at most {MAX_DNS_TTL} seconds, so a flip reaches "
        "clients within the runbook's minute.",
        frozenset({DNS_RECORD}),
        _route53_ttl,
    ),
    ResourceRule(
        "route53-failover-health-check",
        "Route53 failover records (failoverRoutingPolicies) carry a healthCheckId.",
        frozenset({DNS_RECORD}),
        _route53_failover_health_check,
    ),
    ResourceRule(
        "k8s-deployment-probes",
        "Every container of a Deployment has a livenessProbe and a readinessProbe.",
        frozenset({DEPLOYMENT}),
        _deployment_probes,
    ),
)


# --- stack rules -----------------------------------------------------------------------------


class Finding(NamedTuple):
    message: str
    urn: str = ""


StackCheck = Callable[[Sequence[Resource]], list[Finding]]


@dataclass(frozen=True)
class StackRule:
    name: str
    description: str
    check: StackCheck


def _refers_to(source: Resource, prop: str, target: Resource, ids: Iterable[str]) -> bool:
    """Whether `source.props[prop]` is `target`: by dependency, or by a known id value."""
    if target.urn and target.urn in source.dependencies.get(prop, frozenset()):
        return True
    value = source.props.get(prop)
    if not isinstance(value, str) or value in ("", UNKNOWN):
        return False
    return any(target.props.get(i) == value for i in ids)


def _s3_bucket_encryption(resources: Sequence[Resource]) -> list[Finding]:
    configs = [r for r in resources if r.type in BUCKET_SSE_TYPES]
    findings = []
    for bucket in (r for r in resources if r.type in BUCKET_TYPES):
        if not any(_refers_to(c, "bucket", bucket, ("id", "bucket")) for c in configs):
            findings.append(
                Finding(
                    f"S3 bucket {bucket.name}: no BucketServerSideEncryptionConfiguration "
                    "in this stack points at it",
                    bucket.urn,
                )
            )
    return findings


def _rds_replica_kms_in_stack(resources: Sequence[Resource]) -> list[Finding]:
    keys = [r for r in resources if r.type == KMS_KEY]
    findings = []
    for db in resources:
        if db.type != RDS_INSTANCE or not _is_set(db.props.get("replicateSourceDb")):
            continue
        if not _is_set(db.props.get("kmsKeyId")):
            continue  # rds-replica-kms-own-region reports a missing key
        matches = [k for k in keys if _refers_to(db, "kmsKeyId", k, ("arn", "id", "keyId"))]
        if not matches:
            findings.append(
                Finding(
                    f"RDS replica {db.name}: kmsKeyId {_text(db.props.get('kmsKeyId'))} is not a "
                    "KMS key declared in this stack; a cross-region replica needs a key of its "
                    "own region, managed beside it",
                    db.urn,
                )
            )
        findings.extend(
            Finding(
                f"RDS replica {db.name}: its KMS key {key.name} comes from provider "
                f"{_provider_label(key)}, not from the instance's own provider "
                f"{_provider_label(db)}",
                db.urn,
            )
            for key in matches
            if key.provider != db.provider
        )
    return findings


def _selects(selector: Any, labels: Mapping[str, Any]) -> bool:
    """Kubernetes label-selector semantics (policy/v1: an empty selector selects every pod)."""
    if not isinstance(selector, Mapping):
        return False
    match_labels = selector.get("matchLabels") or {}
    if not isinstance(match_labels, Mapping):
        return False
    if any(labels.get(k) != v for k, v in match_labels.items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op = expr.get("key"), expr.get("operator")
        values = expr.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }.get(op, False)
        if not ok:
            return False
    return True


def _namespace(r: Resource) -> str:
    return str(_get(r.props, "metadata.namespace") or "default")


def _deployment_pdb(resources: Sequence[Resource]) -> list[Finding]:
    pdbs = [r for r in resources if r.type == PDB]
    findings = []
    for dep in (r for r in resources if r.type == DEPLOYMENT):
        labels = _get(dep.props, "spec.template.metadata.labels")
        labels = labels if isinstance(labels, Mapping) else {}
        ns = _namespace(dep)
        if any(
            _namespace(p) == ns and _selects(_get(p.props, "spec.selector"), labels) for p in pdbs
        ):
            continue
        shown = ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "no labels"
        findings.append(
            Finding(
                f"Deployment {dep.name}: no PodDisruptionBudget in namespace {ns} selects its "
                f"pods ({shown})",
                dep.urn,
            )
        )
    return findings


def _route53_failover_pair(resources: Sequence[Resource]) -> list[Finding]:
    groups: dict[tuple[str, str], list[Resource]] = {}
    for r in resources:
        if r.type == DNS_RECORD and _failover_type(r.props) is not None:
            key = (str(r.props.get("zoneId")), str(r.props.get("name")))
            groups.setdefault(key, []).append(r)
    findings = []
    for (_, name), records in sorted(groups.items()):
        kinds = sorted(str(_failover_type(r.props)) for r in records)
        if kinds != ["PRIMARY", "SECONDARY"]:
            findings.append(
                Finding(
                    f"Route53 name {name}: failover routing needs exactly one PRIMARY and one "
                    f"SECONDARY record, got {', '.join(kinds)} "
                    f"({', '.join(sorted(r.name for r in records))})",
                    records[0].urn,
                )
            )
    return findings


STACK_RULES: tuple[StackRule, ...] = (
    StackRule(
        "s3-bucket-encryption",
        "Every S3 bucket has a BucketServerSideEncryptionConfiguration pointing at it.",
        _s3_bucket_encryption,
    ),
    StackRule(
        "rds-replica-kms-key-in-stack",
        "A cross-region RDS replica's kmsKeyId is a KMS key of this stack, managed by the "
        "instance's own (regional) provider.",
        _rds_replica_kms_in_stack,
    ),
    StackRule(
        "k8s-deployment-pdb",
        "Every Deployment has a PodDisruptionBudget in its namespace that selects its pods.",
        _deployment_pdb,
    ),
    StackRule(
        "route53-failover-pair",
        "A failover-routed name has exactly one PRIMARY and one SECONDARY record.",
        _route53_failover_pair,
    ),
)

POLICY_NAMES: tuple[str, ...] = tuple(r.name for r in RESOURCE_RULES) + tuple(
    r.name for r in STACK_RULES
)


# --- running the rules -----------------------------------------------------------------------


def resource_violations(resource: Resource) -> list[Violation]:
    return [
        Violation(rule.name, message, urn=resource.urn)
        for rule in RESOURCE_RULES
        if resource.type in rule.types
        for message in rule.check(resource)
    ]


def check_resource(
    type_: str,
    props: Mapping[str, Any],
    *,
    name: str = "",
    provider_region: str | None = None,
) -> list[Violation]:
    """Every resource rule over one resource's (type, props)."""
    resource = Resource(type_, name, plain(props), provider_region=provider_region)
    return resource_violations(resource)


def stack_violations(resources: Sequence[Resource]) -> list[Violation]:
    return [
        Violation(rule.name, finding.message, urn=finding.urn)
        for rule in STACK_RULES
        for finding in rule.check(resources)
    ]


def all_violations(resources: Sequence[Resource]) -> list[Violation]:
    """Every resource rule over each resource, then every stack rule over all of them."""
    found = [v for r in resources for v in resource_violations(r)]
    return found + stack_violations(resources)


# --- adapters --------------------------------------------------------------------------------


class Declared(Protocol):
    """What `failover.programeval.DeclaredResource` offers."""

    @property
    def urn(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def inputs(self) -> dict[str, Any]: ...


# programeval's placeholder for resource `name`'s output `attr`: `<name.attr>`.
_PLACEHOLDER = re.compile(r"<([^<>.\s:]+)\.[A-Za-z_]+>")


def _placeholder_names(value: Any) -> set[str]:
    if isinstance(value, str):
        return set(_PLACEHOLDER.findall(value))
    if isinstance(value, Mapping):
        return {n for v in value.values() for n in _placeholder_names(v)}
    if isinstance(value, list):
        return {n for v in value for n in _placeholder_names(v)}
    return set()


def from_declared(resources: Iterable[Declared]) -> list[Resource]:
    """Resources the program declares under mocks; dependencies come from placeholders."""
    items = list(resources)
    urns = {r.name: r.urn for r in items}
    regions: dict[str, str] = {}
    for r in items:
        region = r.inputs.get("region")
        if r.type.startswith("pulumi:providers:") and isinstance(region, str):
            regions[r.name] = region
    out = []
    for r in items:
        props = plain(r.inputs)
        deps = {
            key: frozenset(urns[n] for n in _placeholder_names(value) if n in urns)
            for key, value in props.items()
        }
        out.append(
            Resource(
                type=r.type,
                name=r.name,
                props=props,
                urn=r.urn,
                provider=r.provider,
                provider_region=regions.get(r.provider),
                dependencies={k: v for k, v in deps.items() if v},
            )
        )
    return out


def _provider_region(provider: Any) -> str | None:
    if provider is None:
        return None
    region = plain(provider.props).get("region")
    return region if isinstance(region, str) and region != UNKNOWN else None


def from_validation_args(args: Any) -> Resource:
    """A `pulumi_policy.ResourceValidationArgs` (inputs of one resource)."""
    provider = args.provider
    return Resource(
        type=args.resource_type,
        name=args.name,
        props=plain(args.props),
        urn=args.urn,
        provider=provider.urn if provider is not None else "",
        provider_region=_provider_region(provider),
    )


def from_policy_resources(resources: Iterable[Any]) -> list[Resource]:
    """`pulumi_policy.PolicyResource`s of a `StackValidationArgs` (outputs, dependencies)."""
    return [
        Resource(
            type=r.resource_type,
            name=r.name,
            props=plain(r.props),
            urn=r.urn,
            provider=r.provider.urn if r.provider is not None else "",
            provider_region=_provider_region(r.provider),
            dependencies={
                key: frozenset(d.urn for d in deps)
                for key, deps in (r.property_dependencies or {}).items()
            },
        )
        for r in resources
    ]


def build_policies() -> list[Any]:
    """The pack's policies: every rule, MANDATORY. Importing pulumi_policy starts nothing."""
    from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy

    def resource_validator(rule: ResourceRule) -> Callable[[Any, Any], None]:
        def validate(args: Any, report_violation: Any) -> None:
            resource = from_validation_args(args)
            if resource.type in rule.types:
                for message in rule.check(resource):
                    report_violation(message, None)

        return validate

    def stack_validator(rule: StackRule) -> Callable[[Any, Any], None]:
        def validate(args: Any, report_violation: Any) -> None:
            for finding in rule.check(from_policy_resources(args.resources)):
                report_violation(finding.message, finding.urn or None)

        return validate

    policies: list[Any] = [
        ResourceValidationPolicy(
            name=rule.name,
            description=rule.description,
            validate=resource_validator(rule),
            enforcement_level=EnforcementLevel.MANDATORY,
        )
        for rule in RESOURCE_RULES
    ]
    policies += [
        StackValidationPolicy(
            name=rule.name,
            description=rule.description,
            validate=stack_validator(rule),
            enforcement_level=EnforcementLevel.MANDATORY,
        )
        for rule in STACK_RULES
    ]
    return policies


# --- topology: both stacks -------------------------------------------------------------------

StackState = Mapping[str, Any]
"""One stack's config and/or outputs: `role`, `active_region`, and the database's source as
`replicate_from` (config; wins when present: it is what the next `up` declares) or
`db_replica_source` (outputs). Keys may carry the project namespace (`llm-marketplace:role`)."""

TOPOLOGY_STACK_ROLE = "stack-role"
TOPOLOGY_ACTIVE_REGION = "active-region-agreement"
TOPOLOGY_ACTIVE_WRITER = "active-region-writer"
TOPOLOGY_STANDBY_WRITER = "standby-writer-rebuild"
TOPOLOGY_NAMES: tuple[str, ...] = (
    TOPOLOGY_STACK_ROLE,
    TOPOLOGY_ACTIVE_REGION,
    TOPOLOGY_ACTIVE_WRITER,
    TOPOLOGY_STANDBY_WRITER,
)


def _state_value(state: StackState, key: str) -> Any:
    if key in state:
        return state[key]
    return state.get(f"{PROJECT}:{key}")


def _has_key(state: StackState, key: str) -> bool:
    return key in state or f"{PROJECT}:{key}" in state


def replica_source(state: StackState) -> str:
    """What the stack's database replicates from; empty for a writer."""
    if _has_key(state, ConfigKey.REPLICATE_FROM):
        return str(_state_value(state, ConfigKey.REPLICATE_FROM) or "")
    return str(state.get(Output.DB_REPLICA_SOURCE) or "")


def _as_role(value: Any) -> Role | None:
    if value == "primary":
        return "primary"
    if value == "dr":
        return "dr"
    return None


def stack_role_violations(primary: StackState, dr: StackState) -> list[Violation]:
    """Each state is the stack it is passed as (when it names its role at all)."""
    found = []
    for slot, state in (("primary", primary), ("dr", dr)):
        role = _state_value(state, ConfigKey.ROLE)
        if role is not None and role != slot:
            found.append(
                Violation(
                    TOPOLOGY_STACK_ROLE,
                    f"the state passed as stack {slot} says role={_show(role)}: the stacks are "
                    "swapped or mislabelled",
                )
            )
    return found


def active_region_violations(primary: StackState, dr: StackState) -> list[Violation]:
    """Both stacks name a valid active_region, and the same one."""
    values = {"primary": _state_value(primary, ConfigKey.ACTIVE_REGION)}
    values["dr"] = _state_value(dr, ConfigKey.ACTIVE_REGION)
    found = [
        Violation(
            TOPOLOGY_ACTIVE_REGION,
            f'stack {slot}: active_region is {_show(value)}; expected "primary" or "dr"',
        )
        for slot, value in values.items()
        if _as_role(value) is None
    ]
    if not found and values["primary"] != values["dr"]:
        found.append(
            Violation(
                TOPOLOGY_ACTIVE_REGION,
                f"the stacks disagree on active_region: primary says {_show(values['primary'])}, "
                f"dr says {_show(values['dr'])}; set the same value in both before any switch",
            )
        )
    return found


def writer_violations(
    primary: StackState, dr: StackState, *, switch_to: Role | None = None
) -> list[Violation]:
    """The active region's database is the writer; a standby writer must be rebuilt first.

    A standby whose database is a writer is the old primary after a failover: it holds stale
    data and is never converted in place. It is a warning, and blocks a switch toward it
    (`switch_to` is that region: a failback before the rebuild).
    """
    active = _as_role(_state_value(primary, ConfigKey.ACTIVE_REGION))
    if active is None:
        return []
    states = {"primary": primary, "dr": dr}
    standby: Role = "dr" if active == "primary" else "primary"
    found = []
    source = replica_source(states[active])
    if source:
        found.append(
            Violation(
                TOPOLOGY_ACTIVE_WRITER,
                f"the active region {active} runs a read replica (of {source}): the active "
                f"region's database must be the writer; promote it and clear replicate_from "
                f"on {active}",
            )
        )
    elif not replica_source(states[standby]):
        message = (
            f"the standby region {standby}'s database is a writer, not a replica of {active}: "
            f"it is the old primary and must be rebuilt as a new replica of {active} (bump "
            f"db_generation, set replicate_from={active} on {standby}) before any failback"
        )
        if switch_to == standby:
            found.append(
                Violation(
                    TOPOLOGY_STANDBY_WRITER,
                    f"{message}; the switch to {standby} is refused until then",
                    "block",
                )
            )
        else:
            found.append(Violation(TOPOLOGY_STANDBY_WRITER, message, "warn"))
    return found


def topology_violations(
    primary: StackState, dr: StackState, *, switch_to: Role | None = None
) -> list[Violation]:
    """Every two-stack check; run before a switch with `switch_to` the requested region."""
    found = stack_role_violations(primary, dr) + active_region_violations(primary, dr)
    if found:
        return found  # without one agreed active region the writer checks mean nothing
    return writer_violations(primary, dr, switch_to=switch_to)


def blocking(violations: Iterable[Violation]) -> list[Violation]:
    return [v for v in violations if v.severity == "block"]
