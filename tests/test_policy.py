"""The DR policy pack: its checks over what the program declares, each broken on purpose,
through the pure functions and through the pulumi_policy wrappers the pack is built from."""

from __future__ import annotations

import copy
import runpy
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pulumi_policy
import pytest
import yaml
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UNKNOWN_BOOLEAN_VALUE, UNKNOWN_STRING_VALUE, unknown_checking_proxy

from failover.programeval import DeclaredResource, Evaluation
from policy import dr_policies as dp
from policy.dr_policies import Resource, Violation
from tests.conftest import Evaluator, state_config

POLICY_DIR = Path(__file__).resolve().parent.parent / "policy"
COMBOS = [(s, a) for s in ("primary", "dr") for a in ("primary", "dr")]
EAST_KEY = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
WEST_KEY = "arn:aws:kms:us-west-2:111122223333:key/5678efgh-12ab-34cd-56ef-1234567890ab"
EAST_DB = "arn:aws:rds:us-east-1:111122223333:db:llm-marketplace-primary-db"

Change = Callable[[dict[str, Any]], None]


# --- helpers ---------------------------------------------------------------------------------


def baseline(evaluated: Evaluator) -> Evaluation:
    """dr while primary is active: a replica database and the DNS names, so every rule bites."""
    return evaluated("dr", state_config("dr", "primary"))


def _walk(inputs: dict[str, Any], path: str) -> tuple[Any, str | int]:
    *parents, last = path.split(".")
    node: Any = inputs
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    return node, int(last) if last.isdigit() else last


def setting(path: str, value: Any) -> Change:
    def change(inputs: dict[str, Any]) -> None:
        node, key = _walk(inputs, path)
        node[key] = value

    return change


def deleting(path: str) -> Change:
    def change(inputs: dict[str, Any]) -> None:
        node, key = _walk(inputs, path)
        del node[key]

    return change


def edited(e: Evaluation, name: str, change: Change) -> list[DeclaredResource]:
    assert name in {r.name for r in e.resources.values()}, name
    out = []
    for r in e.resources.values():
        inputs = copy.deepcopy(r.inputs)
        if r.name == name:
            change(inputs)
        out.append(replace(r, inputs=inputs))
    return out


def dropped(e: Evaluation, name: str) -> list[DeclaredResource]:
    assert name in {r.name for r in e.resources.values()}, name
    return [r for r in e.resources.values() if r.name != name]


OPTS = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def _provider(r: Resource) -> PolicyProviderResource | None:
    if not r.provider:
        return None
    props = {"region": r.provider_region} if r.provider_region else {}
    return PolicyProviderResource("pulumi:providers:aws", props, r.provider, r.provider)


def _proxied(props: Any) -> Any:
    return unknown_checking_proxy(copy.deepcopy(dict(props)))


def run_pack(resources: Iterable[Resource]) -> list[tuple[str, str]]:
    """Every policy of the pack, as the engine calls it, over engine-shaped arguments."""
    items = list(resources)
    stack = {
        r.urn: PolicyResource(
            r.type, _proxied(r.props), r.urn, r.name, OPTS, _provider(r), None, [], {}
        )
        for r in items
    }
    for r in items:
        stack[r.urn].property_dependencies.update(
            {
                k: [stack[u] for u in sorted(urns) if u in stack]
                for k, urns in r.dependencies.items()
            }
        )
    reported: list[tuple[str, str]] = []
    for policy in dp.build_policies():

        def report(message: str, urn: str | None = None, *, name: str = policy.name) -> None:
            reported.append((name, message))

        if isinstance(policy, ResourceValidationPolicy):
            for r in items:
                args = ResourceValidationArgs(
                    r.type, _proxied(r.props), r.urn, r.name, OPTS, _provider(r)
                )
                assert policy.validate(args, report) is None
        else:
            assert isinstance(policy, StackValidationPolicy)
            assert policy.validate(StackValidationArgs(list(stack.values())), report) is None
    return reported


def pairs(violations: Iterable[Violation]) -> list[tuple[str, str]]:
    return sorted((v.policy, v.message) for v in violations)


def assert_found(resources: list[Resource], expected: list[Violation]) -> None:
    """The pure checks and the pack's wrappers both report exactly `expected`."""
    assert pairs(dp.all_violations(resources)) == pairs(expected)
    assert sorted(run_pack(resources)) == pairs(expected)


# --- the program passes every policy ---------------------------------------------------------


@pytest.mark.parametrize(("stack", "active"), COMBOS)
def test_every_policy_passes_over_the_declared_resources(
    evaluated: Evaluator, stack: str, active: str
) -> None:
    e = evaluated(stack, state_config(stack, active))
    resources = dp.from_declared(e.resources.values())
    assert dp.all_violations(resources) == []
    assert run_pack(resources) == []
    # The checks had something to check in every stack.
    types = {r.type for r in resources}
    assert {dp.RDS_INSTANCE, dp.KMS_KEY, dp.CACHE_GROUP, dp.SEARCH_DOMAIN, dp.DEPLOYMENT} <= types
    assert dp.PDB in types and types & dp.BUCKET_TYPES and types & dp.BUCKET_SSE_TYPES
    assert (dp.DNS_RECORD in types) == (stack == "dr")


def test_declared_resources_carry_provider_region_and_references(evaluated: Evaluator) -> None:
    resources = {r.name: r for r in dp.from_declared(baseline(evaluated).resources.values())}
    db, key = resources["dr-database-instance"], resources["dr-database-kms"]
    assert (db.provider, db.provider_region) == ("dr-aws", "us-west-2")
    assert db.dependencies["kmsKeyId"] == {key.urn}
    assert "replicateSourceDb" not in db.dependencies  # the peer stack's output, not ours
    sse = resources["dr-search-snapshots-encryption"]
    assert sse.dependencies["bucket"] == {resources["dr-search-snapshots"].urn}


# --- each policy, broken on purpose ----------------------------------------------------------

DB = "dr-database-instance"
CACHE = "dr-cache-group"
DOMAIN = "dr-search-domain"


def V(policy: str, message: str) -> Violation:
    return Violation(policy, message)


BROKEN: list[tuple[str, str, Change, list[Violation]]] = [
    (
        "rds-storage-encrypted",
        DB,
        setting("storageEncrypted", False),
        [
            V(
                "rds-storage-encrypted",
                f"RDS instance {DB}: storageEncrypted must be true, got false",
            )
        ],
    ),
    (
        "rds-deletion-protection",
        DB,
        setting("deletionProtection", False),
        [
            V(
                "rds-deletion-protection",
                f"RDS instance {DB}: deletionProtection must be true, got false",
            )
        ],
    ),
    (
        "rds-backup-retention",
        DB,
        setting("backupRetentionPeriod", 1),
        [
            V(
                "rds-backup-retention",
                f"RDS instance {DB}: backupRetentionPeriod must be at least 7 days, got 1",
            )
        ],
    ),
    (
        "rds-backup-retention-unset",
        DB,
        deleting("backupRetentionPeriod"),
        [
            V(
                "rds-backup-retention",
                f"RDS instance {DB}: backupRetentionPeriod must be at least 7 days, got unset",
            )
        ],
    ),
    (
        "rds-not-publicly-accessible",
        DB,
        setting("publiclyAccessible", True),
        [
            V(
                "rds-not-publicly-accessible",
                f"RDS instance {DB}: publiclyAccessible must be false, got true",
            )
        ],
    ),
    (
        "rds-multi-az",
        DB,
        deleting("multiAz"),
        [V("rds-multi-az", f"RDS instance {DB}: multiAz must be true, got unset")],
    ),
    (
        "rds-replica-kms-unset",
        DB,
        deleting("kmsKeyId"),
        [
            V(
                "rds-replica-kms-own-region",
                f"RDS replica {DB}: kmsKeyId is unset; a cross-region replica must be encrypted "
                "with a KMS key of its own region (us-west-2)",
            )
        ],
    ),
    (
        "rds-replica-kms-other-region",
        DB,
        setting("kmsKeyId", EAST_KEY),
        [
            V(
                "rds-replica-kms-own-region",
                f"RDS replica {DB}: kmsKeyId {EAST_KEY} is a key of us-east-1, but the replica "
                "is in us-west-2; use a KMS key of the replica's own region",
            ),
            V(
                "rds-replica-kms-key-in-stack",
                f"RDS replica {DB}: kmsKeyId {EAST_KEY} is not a KMS key declared in this "
                "stack; a cross-region replica needs a key of its own region, managed beside it",
            ),
        ],
    ),
    (
        "elasticache-encryption-at-rest",
        CACHE,
        setting("atRestEncryptionEnabled", False),
        [
            V(
                "elasticache-encryption-at-rest",
                f"ElastiCache replication group {CACHE}: atRestEncryptionEnabled must be true, "
                "got false",
            )
        ],
    ),
    (
        "elasticache-encryption-in-transit",
        CACHE,
        deleting("transitEncryptionEnabled"),
        [
            V(
                "elasticache-encryption-in-transit",
                f"ElastiCache replication group {CACHE}: transitEncryptionEnabled must be true, "
                "got unset",
            )
        ],
    ),
    (
        "opensearch-encryption-at-rest",
        DOMAIN,
        setting("encryptAtRest.enabled", False),
        [
            V(
                "opensearch-encryption-at-rest",
                f"OpenSearch domain {DOMAIN}: encryptAtRest.enabled must be true, got false",
            )
        ],
    ),
    (
        "opensearch-node-to-node",
        DOMAIN,
        setting("nodeToNodeEncryption.enabled", False),
        [
            V(
                "opensearch-encryption-in-transit",
                f"OpenSearch domain {DOMAIN}: nodeToNodeEncryption.enabled must be true, got false",
            )
        ],
    ),
    (
        "opensearch-enforce-https",
        DOMAIN,
        deleting("domainEndpointOptions.enforceHttps"),
        [
            V(
                "opensearch-encryption-in-transit",
                f"OpenSearch domain {DOMAIN}: domainEndpointOptions.enforceHttps must be true, "
                "got unset",
            )
        ],
    ),
    (
        "route53-ttl-max-60",
        "dr-dns-db",
        setting("ttl", 3600),
        [
            V(
                "route53-ttl-max-60",
                "Route53 record dr-dns-db (db.llm-marketplace.com): ttl must be at most 60 "
                "seconds, got 3600",
            )
        ],
    ),
    (
        "route53-ttl-api",
        "dr-dns-api-primary-slot",
        setting("ttl", 300),
        [
            V(
                "route53-ttl-max-60",
                "Route53 record dr-dns-api-primary-slot (api.llm-marketplace.com): ttl must be "
                "at most 60 seconds, got 300",
            )
        ],
    ),
    (
        "route53-failover-health-check-primary",
        "dr-dns-api-primary-slot",
        deleting("healthCheckId"),
        [
            V(
                "route53-failover-health-check",
                "Route53 failover record dr-dns-api-primary-slot (api.llm-marketplace.com, "
                "PRIMARY): healthCheckId is required, so Route53 moves traffic off a dead "
                "region by itself",
            )
        ],
    ),
    (
        "route53-failover-health-check-secondary",
        "dr-dns-api-secondary-slot",
        setting("healthCheckId", ""),
        [
            V(
                "route53-failover-health-check",
                "Route53 failover record dr-dns-api-secondary-slot (api.llm-marketplace.com, "
                "SECONDARY): healthCheckId is required, so Route53 moves traffic off a dead "
                "region by itself",
            )
        ],
    ),
    (
        "route53-failover-pair",
        "dr-dns-api-secondary-slot",
        setting("failoverRoutingPolicies", [{"type": "PRIMARY"}]),
        [
            V(
                "route53-failover-pair",
                "Route53 name api.llm-marketplace.com: failover routing needs exactly one "
                "PRIMARY and one SECONDARY record, got PRIMARY, PRIMARY "
                "(dr-dns-api-primary-slot, dr-dns-api-secondary-slot)",
            )
        ],
    ),
    (
        "k8s-deployment-readiness-probe",
        "dr-workloads-admin-service",
        deleting("spec.template.spec.containers.0.readinessProbe"),
        [
            V(
                "k8s-deployment-probes",
                "Deployment dr-workloads-admin-service: container admin-service has no "
                "readinessProbe",
            )
        ],
    ),
    (
        "k8s-deployment-liveness-probe",
        "dr-workloads-publishing-service",
        deleting("spec.template.spec.containers.0.livenessProbe"),
        [
            V(
                "k8s-deployment-probes",
                "Deployment dr-workloads-publishing-service: container publishing-service has "
                "no livenessProbe",
            )
        ],
    ),
    (
        "k8s-deployment-pdb-selector",
        "dr-workloads-admin-service-pdb",
        setting("spec.selector.matchLabels.app", "admin"),
        [
            V(
                "k8s-deployment-pdb",
                "Deployment dr-workloads-admin-service: no PodDisruptionBudget in namespace "
                "llm-marketplace selects its pods (app=admin-service,tier=api)",
            )
        ],
    ),
    (
        "k8s-deployment-pdb-namespace",
        "dr-workloads-admin-service-pdb",
        setting("metadata.namespace", "default"),
        [
            V(
                "k8s-deployment-pdb",
                "Deployment dr-workloads-admin-service: no PodDisruptionBudget in namespace "
                "llm-marketplace selects its pods (app=admin-service,tier=api)",
            )
        ],
    ),
    (
        "s3-bucket-encryption-elsewhere",
        "dr-search-snapshots-encryption",
        setting("bucket", "some-other-bucket"),
        [
            V(
                "s3-bucket-encryption",
                "S3 bucket dr-search-snapshots: no BucketServerSideEncryptionConfiguration in "
                "this stack points at it",
            )
        ],
    ),
]


@pytest.mark.parametrize(
    ("name", "change", "expected"), [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN]
)
def test_a_broken_resource_is_reported_by_its_policy(
    evaluated: Evaluator, name: str, change: Change, expected: list[Violation]
) -> None:
    resources = dp.from_declared(edited(baseline(evaluated), name, change))
    assert_found(resources, expected)


def test_a_deleted_pdb_is_reported(evaluated: Evaluator) -> None:
    resources = dp.from_declared(dropped(baseline(evaluated), "dr-workloads-admin-service-pdb"))
    assert_found(
        resources,
        [
            V(
                "k8s-deployment-pdb",
                "Deployment dr-workloads-admin-service: no PodDisruptionBudget in namespace "
                "llm-marketplace selects its pods (app=admin-service,tier=api)",
            )
        ],
    )


def test_a_bucket_without_encryption_config_is_reported(evaluated: Evaluator) -> None:
    resources = dp.from_declared(dropped(baseline(evaluated), "dr-search-snapshots-encryption"))
    assert_found(
        resources,
        [
            V(
                "s3-bucket-encryption",
                "S3 bucket dr-search-snapshots: no BucketServerSideEncryptionConfiguration in "
                "this stack points at it",
            )
        ],
    )


def test_a_replica_key_from_another_provider_is_reported(evaluated: Evaluator) -> None:
    e = baseline(evaluated)
    own = e.named("dr-aws")
    other = replace(
        own,
        urn=own.urn.replace("::dr-aws", "::dr-east-aws"),
        name="dr-east-aws",
        inputs={**own.inputs, "region": "us-east-1"},
    )
    declared = [
        replace(r, provider="dr-east-aws") if r.name == "dr-database-kms" else r
        for r in e.resources.values()
    ]
    assert_found(
        dp.from_declared([*declared, other]),
        [
            V(
                "rds-replica-kms-key-in-stack",
                f"RDS replica {DB}: its KMS key dr-database-kms comes from provider dr-east-aws "
                "(us-east-1), not from the instance's own provider dr-aws (us-west-2)",
            )
        ],
    )


def test_every_policy_has_a_broken_case() -> None:
    covered = {v.policy for *_, expected in BROKEN for v in expected}
    # The dedicated tests above: a deleted PDB, a deleted encryption config, a foreign key.
    covered |= {"k8s-deployment-pdb", "s3-bucket-encryption", "rds-replica-kms-key-in-stack"}
    assert covered == set(dp.POLICY_NAMES)


# --- the checks as the engine feeds them (preview values, by-value references) ----------------


def test_unknown_references_count_as_set_but_unknown_flags_do_not() -> None:
    record = {
        "name": "api.llm-marketplace.com",
        "ttl": 60.0,
        "failoverRoutingPolicies": [{"type": "PRIMARY"}],
        "healthCheckId": UNKNOWN_STRING_VALUE,
    }
    assert dp.check_resource(dp.DNS_RECORD, record, name="api") == []
    db = {
        "storageEncrypted": UNKNOWN_BOOLEAN_VALUE,
        "deletionProtection": True,
        "backupRetentionPeriod": 7.0,
        "multiAz": True,
    }
    assert dp.check_resource(dp.RDS_INSTANCE, db, name="db") == [
        V(
            "rds-storage-encrypted",
            "RDS instance db: storageEncrypted must be true, got a value unknown until apply",
        )
    ]
    # Through the pack: pulumi_policy's proxy raises on unknowns; the wrappers read around it.
    resources = [
        Resource(dp.DNS_RECORD, "api", record, urn="urn:api"),
        Resource(
            dp.DNS_RECORD,
            "api-2",
            {**record, "failoverRoutingPolicies": [{"type": "SECONDARY"}]},
            urn="urn:api-2",
        ),
        Resource(dp.RDS_INSTANCE, "db", db, urn="urn:db"),
    ]
    assert run_pack(resources) == [
        (
            "rds-storage-encrypted",
            "RDS instance db: storageEncrypted must be true, got a value unknown until apply",
        )
    ]


def test_alias_records_and_same_region_replicas_need_no_ttl_or_own_key() -> None:
    alias = {"name": "www.llm-marketplace.com", "aliases": [{"name": "lb", "zoneId": "Z1"}]}
    assert dp.check_resource(dp.DNS_RECORD, alias, name="www") == []
    same_region = {
        "replicateSourceDb": EAST_DB,
        "storageEncrypted": True,
        "deletionProtection": True,
        "backupRetentionPeriod": 7,
        "multiAz": True,
    }
    assert dp.check_resource(dp.RDS_INSTANCE, same_region, provider_region="us-east-1") == []
    assert [v.policy for v in dp.check_resource(dp.RDS_INSTANCE, same_region, name="r")] == [
        "rds-replica-kms-own-region"
    ]


def _replica_stack(key_provider: str, kms_key_id: str, depends: bool) -> list[Resource]:
    regions = {"urn:prov-west": "us-west-2", "urn:prov-east": "us-east-1"}
    key = Resource(
        dp.KMS_KEY,
        "replica-kms",
        {"arn": WEST_KEY, "keyId": WEST_KEY.rsplit("/", 1)[1]},
        urn="urn:kms",
        provider=key_provider,
        provider_region=regions[key_provider],
    )
    db = Resource(
        dp.RDS_INSTANCE,
        "replica",
        {
            "replicateSourceDb": EAST_DB,
            "kmsKeyId": kms_key_id,
            "storageEncrypted": True,
            "deletionProtection": True,
            "backupRetentionPeriod": 7,
            "multiAz": True,
        },
        urn="urn:db",
        provider="urn:prov-west",
        provider_region="us-west-2",
        dependencies={"kmsKeyId": frozenset({"urn:kms"})} if depends else {},
    )
    return [key, db]


def test_replica_key_is_matched_by_value_or_by_dependency_as_in_the_engine() -> None:
    # After apply: the instance's kmsKeyId output is the key's ARN.
    assert run_pack(_replica_stack("urn:prov-west", WEST_KEY, depends=False)) == []
    # Preview of a create: the ARN is unknown, the property dependency names the key.
    assert run_pack(_replica_stack("urn:prov-west", UNKNOWN_STRING_VALUE, depends=True)) == []
    expected = (
        "rds-replica-kms-key-in-stack",
        "RDS replica replica: its KMS key replica-kms comes from provider urn:prov-east "
        "(us-east-1), not from the instance's own provider urn:prov-west (us-west-2)",
    )
    assert run_pack(_replica_stack("urn:prov-east", WEST_KEY, depends=False)) == [expected]
    assert run_pack(_replica_stack("urn:prov-east", UNKNOWN_STRING_VALUE, depends=True)) == [
        expected
    ]


def test_pdb_selectors_follow_kubernetes_semantics() -> None:
    labels = {"app": "api", "tier": "web"}
    deployment = Resource(
        dp.DEPLOYMENT,
        "api",
        {
            "metadata": {"namespace": "ns"},
            "spec": {
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [{"name": "c", "livenessProbe": {}, "readinessProbe": {}}]
                    },
                }
            },
        },
    )

    def covered(selector: dict[str, Any]) -> bool:
        pdb = Resource(
            dp.PDB, "pdb", {"metadata": {"namespace": "ns"}, "spec": {"selector": selector}}
        )
        return dp.stack_violations([deployment, pdb]) == []

    assert covered({})  # policy/v1: an empty selector selects every pod of the namespace
    assert covered({"matchExpressions": [{"key": "app", "operator": "In", "values": ["api"]}]})
    assert covered({"matchExpressions": [{"key": "tier", "operator": "Exists"}]})
    assert not covered(
        {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["api"]}]}
    )
    assert not covered({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]})
    assert not covered({"matchLabels": {"app": "api", "zone": "a"}})


# --- topology: both stacks -------------------------------------------------------------------

REBUILD = (
    "the standby region primary's database is a writer, not a replica of dr: it is the old "
    "primary and must be rebuilt as a new replica of dr (bump db_generation, set "
    "replicate_from=dr on primary) before any failback"
)


def outputs(evaluated: Evaluator, active: str) -> tuple[dict[str, Any], dict[str, Any]]:
    p = evaluated("primary", state_config("primary", active)).outputs
    d = evaluated("dr", state_config("dr", active)).outputs
    return p, d


def test_topology_of_the_steady_state_is_clean(evaluated: Evaluator) -> None:
    primary, dr = outputs(evaluated, "primary")
    assert dp.topology_violations(primary, dr) == []
    assert dp.topology_violations(primary, dr, switch_to="dr") == []


def test_after_a_failover_the_old_primary_needs_a_rebuild(evaluated: Evaluator) -> None:
    primary, dr = outputs(evaluated, "dr")
    warn = Violation("standby-writer-rebuild", REBUILD, "warn")
    assert dp.topology_violations(primary, dr) == [warn]
    assert [v.severity for v in dp.topology_violations(primary, dr)] == ["warn"]
    assert dp.blocking(dp.topology_violations(primary, dr, switch_to="dr")) == []
    # A failback toward the stale writer is refused.
    blocked = dp.topology_violations(primary, dr, switch_to="primary")
    assert blocked == [
        Violation(
            "standby-writer-rebuild",
            f"{REBUILD}; the switch to primary is refused until then",
            "block",
        )
    ]
    assert [v.severity for v in blocked] == ["block"]
    assert dp.blocking(blocked) == blocked


def test_rebuilt_old_primary_allows_the_failback() -> None:
    primary = {"role": "primary", "active_region": "dr", "replicate_from": "dr"}
    dr = {"role": "dr", "active_region": "dr", "replicate_from": ""}
    assert dp.topology_violations(primary, dr, switch_to="primary") == []


def test_stacks_must_agree_on_active_region() -> None:
    primary = {"role": "primary", "active_region": "primary", "replicate_from": ""}
    dr = {"role": "dr", "active_region": "dr", "replicate_from": "primary"}
    assert dp.topology_violations(primary, dr) == [
        Violation(
            "active-region-agreement",
            'the stacks disagree on active_region: primary says "primary", dr says "dr"; '
            "set the same value in both before any switch",
        )
    ]
    assert dp.active_region_violations(primary, {**dr, "active_region": "primary"}) == []


def test_active_region_must_be_set_in_both_stacks() -> None:
    primary = {"llm-marketplace:role": "primary", "llm-marketplace:active_region": "primary"}
    dr = {"llm-marketplace:role": "dr", "llm-marketplace:active_region": "us-west-2"}
    assert dp.topology_violations(primary, dr) == [
        Violation(
            "active-region-agreement",
            'stack dr: active_region is "us-west-2"; expected "primary" or "dr"',
        )
    ]
    assert dp.topology_violations(primary, {"role": "dr"}) == [
        Violation(
            "active-region-agreement",
            'stack dr: active_region is unset; expected "primary" or "dr"',
        )
    ]


def test_the_active_regions_database_must_be_the_writer() -> None:
    # Config form (namespaced keys, as in Pulumi.<stack>.yaml).
    primary = {
        "llm-marketplace:role": "primary",
        "llm-marketplace:active_region": "dr",
        "llm-marketplace:replicate_from": "",
    }
    dr = {
        "llm-marketplace:role": "dr",
        "llm-marketplace:active_region": "dr",
        "llm-marketplace:replicate_from": "primary",
    }
    assert dp.topology_violations(primary, dr, switch_to="dr") == [
        Violation(
            "active-region-writer",
            "the active region dr runs a read replica (of primary): the active region's "
            "database must be the writer; promote it and clear replicate_from on dr",
        )
    ]
    # Outputs form: the replica's source is its writer's ARN.
    outs = {"role": "dr", "active_region": "dr", "db_replica_source": EAST_DB}
    assert dp.writer_violations({"active_region": "dr", "db_replica_source": ""}, outs) == [
        Violation(
            "active-region-writer",
            f"the active region dr runs a read replica (of {EAST_DB}): the active region's "
            "database must be the writer; promote it and clear replicate_from on dr",
        )
    ]


def test_config_wins_over_outputs_for_the_database_role() -> None:
    # Mid-switch: replicate_from cleared on the promoted side, its `up` still pending.
    state = {
        "role": "dr",
        "active_region": "dr",
        "replicate_from": "",
        "db_replica_source": EAST_DB,
    }
    assert dp.replica_source(state) == ""
    assert dp.replica_source({"db_replica_source": EAST_DB}) == EAST_DB
    primary = {"role": "primary", "active_region": "dr", "replicate_from": "dr"}
    assert dp.topology_violations(primary, state) == []


def test_swapped_stacks_are_refused() -> None:
    primary = {"role": "dr", "active_region": "primary", "replicate_from": "primary"}
    dr = {"role": "primary", "active_region": "primary", "replicate_from": ""}
    assert dp.topology_violations(primary, dr) == [
        Violation(
            "stack-role",
            'the state passed as stack primary says role="dr": the stacks are swapped or '
            "mislabelled",
        ),
        Violation(
            "stack-role",
            'the state passed as stack dr says role="primary": the stacks are swapped or '
            "mislabelled",
        ),
    ]


# --- the pack --------------------------------------------------------------------------------


def test_the_pack_is_built_from_every_policy_all_mandatory() -> None:
    policies = dp.build_policies()
    assert [p.name for p in policies] == list(dp.POLICY_NAMES)
    assert len(set(dp.POLICY_NAMES)) == len(dp.POLICY_NAMES) == 17
    assert all(p.enforcement_level == EnforcementLevel.MANDATORY for p in policies)
    resource_rules = {r.name for r in dp.RESOURCE_RULES}
    for p in policies:
        kind = ResourceValidationPolicy if p.name in resource_rules else StackValidationPolicy
        assert isinstance(p, kind), p.name
        assert p.description


def test_main_builds_the_pack(monkeypatch: pytest.MonkeyPatch) -> None:
    # A real PolicyPack serves the engine over gRPC forever; record its arguments instead.
    built: list[dict[str, Any]] = []
    monkeypatch.setattr(pulumi_policy, "PolicyPack", lambda **kwargs: built.append(kwargs))
    runpy.run_path(str(POLICY_DIR), run_name="__main__")
    (pack,) = built
    assert pack["name"] == "llm-marketplace-dr" == dp.PACK_NAME
    assert pack["enforcement_level"] == EnforcementLevel.MANDATORY
    assert [p.name for p in pack["policies"]] == list(dp.POLICY_NAMES)
    assert all(p.enforcement_level == EnforcementLevel.MANDATORY for p in pack["policies"])


def test_policy_project_file_runs_python_in_the_project_environment() -> None:
    project = yaml.safe_load((POLICY_DIR / "PulumiPolicy.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    venv = POLICY_DIR / project["runtime"]["options"]["virtualenv"]
    assert (venv / "bin" / "python").exists()


def test_the_pack_serves_the_engine_protocol() -> None:
    """Start the pack as the CLI does (`python -m pulumi.policy <engine> <dir>`), then analyze."""
    import grpc  # type: ignore[import-untyped]
    from google.protobuf import empty_pb2, struct_pb2  # type: ignore[import-untyped]
    from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

    def struct(values: dict[str, Any]) -> struct_pb2.Struct:
        out = struct_pb2.Struct()
        out.update(values)
        return out

    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", str(POLICY_DIR)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tempfile.gettempdir(),
    )
    try:
        assert proc.stdout is not None
        port = proc.stdout.readline().decode().strip()
        assert port.isdigit(), proc.stderr.read().decode() if proc.stderr else port
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = analyzer_pb2_grpc.AnalyzerStub(channel)
            info = stub.GetAnalyzerInfo(empty_pb2.Empty())
            assert info.name == dp.PACK_NAME
            assert [p.name for p in info.policies] == list(dp.POLICY_NAMES)
            request = analyzer_pb2.AnalyzeRequest(
                type=dp.RDS_INSTANCE,
                name="db",
                urn="urn:pulumi:dr::llm-marketplace::aws:rds/instance:Instance::db",
                properties=struct(
                    {
                        "storageEncrypted": False,
                        "deletionProtection": True,
                        "backupRetentionPeriod": 7,
                        "multiAz": True,
                        "replicateSourceDb": EAST_DB,
                        # Preview of a create: the key's ARN is not known yet.
                        "kmsKeyId": UNKNOWN_STRING_VALUE,
                    }
                ),
                provider=analyzer_pb2.AnalyzerProviderResource(
                    type="pulumi:providers:aws",
                    name="dr-aws",
                    urn="urn:pulumi:dr::llm-marketplace::pulumi:providers:aws::dr-aws",
                    properties=struct({"region": "us-west-2"}),
                ),
            )
            diagnostics = stub.Analyze(request).diagnostics
        assert [(d.policyName, d.message.splitlines()[-1]) for d in diagnostics] == [
            ("rds-storage-encrypted", "RDS instance db: storageEncrypted must be true, got false")
        ]
        assert diagnostics[0].enforcementLevel == analyzer_pb2.MANDATORY
    finally:
        proc.kill()
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
