"""The program under Pulumi mocks: each stack x each active_region, and what a flip changes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.contract import (
    API_PRIMARY_SET_ID,
    API_SECONDARY_SET_ID,
    DNS_TTL,
    SERVICES,
    STACK_REGIONS,
    Output,
)
from failover.programeval import DeclaredResource, Evaluation, peer_placeholder
from tests.conftest import CANARY_PASSWORD, Evaluator, state_config

RECORD = "aws:route53/record:Record"
HEALTH = "aws:route53/healthCheck:HealthCheck"
DB = "aws:rds/instance:Instance"
COMBOS = [(s, a) for s in ("primary", "dr") for a in ("primary", "dr")]


def ev(evaluated: Evaluator, stack: str, active: str) -> Evaluation:
    return evaluated(stack, state_config(stack, active))


def database(e: Evaluation) -> DeclaredResource:
    (db,) = e.of_type(DB)
    return db


def records(e: Evaluation) -> dict[str, DeclaredResource]:
    return {r.name.split("-dns-", 1)[1]: r for r in e.of_type(RECORD)}


def own_endpoint(stack: str, resource: str, attr: str) -> str:
    return f"<{stack}-{resource}.{attr}>"


def endpoints(stack: str, of: str) -> dict[str, str]:
    """Where the owner stack `stack` finds role `of`'s endpoints: its resources or the peer."""
    if of == stack:
        return {
            "gateway": own_endpoint(stack, "workloads-gateway", "lb_hostname"),
            "db": own_endpoint(stack, "database-instance", "address"),
            "redis": own_endpoint(stack, "cache-group", "primary_endpoint_address"),
            "search": own_endpoint(stack, "search-domain", "endpoint"),
        }
    return {
        "gateway": peer_placeholder(of, Output.GATEWAY_HOSTNAME),
        "db": peer_placeholder(of, Output.DB_ADDRESS),
        "redis": peer_placeholder(of, Output.CACHE_ENDPOINT),
        "search": peer_placeholder(of, Output.SEARCH_ENDPOINT),
    }


@pytest.mark.parametrize(("stack", "active"), COMBOS)
def test_database_role_comes_from_replicate_from(
    evaluated: Evaluator, stack: str, active: str
) -> None:
    db = database(ev(evaluated, stack, active))
    if stack == "dr" and active == "primary":
        assert db.inputs["replicateSourceDb"] == peer_placeholder("primary", Output.DB_ARN)
        assert "username" not in db.inputs and "password" not in db.inputs
    else:
        assert "replicateSourceDb" not in db.inputs
        assert db.inputs["username"] == "postgres"
        assert "password" in db.secret_inputs


@pytest.mark.parametrize(("stack", "active"), COMBOS)
def test_database_protections(evaluated: Evaluator, stack: str, active: str) -> None:
    e = ev(evaluated, stack, active)
    db = database(e)
    assert db.protect
    assert db.inputs["deletionProtection"] is True
    assert db.inputs["backupRetentionPeriod"] >= 7
    assert db.inputs["multiAz"] is True
    assert db.inputs["publiclyAccessible"] is False
    assert db.inputs["storageEncrypted"] is True
    assert db.inputs["kmsKeyId"] == f"<{stack}-database-kms.arn>"
    # Replacement-forcing inputs inherited by a promoted replica are never diffed.
    assert {"dbName", "username"} <= set(db.ignore_changes)
    (sg,) = [
        r
        for r in e.of_type("aws:ec2/securityGroup:SecurityGroup")
        if r.name.endswith("database-sg")
    ]
    (rule,) = sg.inputs["ingress"]
    assert rule["securityGroups"] == [f"<{stack}-cluster-eks.node_sg>"]
    assert "cidrBlocks" not in rule


@pytest.mark.parametrize(("stack", "active"), COMBOS)
def test_every_region_bound_resource_uses_its_region_provider(
    evaluated: Evaluator, stack: str, active: str
) -> None:
    e = ev(evaluated, stack, active)
    (provider,) = [r for r in e.of_type("pulumi:providers:aws")]
    assert provider.inputs["region"] == STACK_REGIONS[stack]  # type: ignore[index]
    aws_resources = [r for r in e.resources.values() if r.custom and r.type.startswith("aws:")]
    assert aws_resources
    assert {r.provider for r in aws_resources} == {f"{stack}-aws"}
    k8s_resources = [
        r for r in e.resources.values() if r.type.startswith("kubernetes:") and r.custom
    ]
    assert {r.provider for r in k8s_resources} == {f"{stack}-cluster-k8s"}
    kms = [r for r in e.of_type("aws:kms/key:Key")]
    assert kms and all(k.provider == f"{stack}-aws" for k in kms)


@pytest.mark.parametrize(("stack", "active"), COMBOS)
def test_only_the_owner_declares_dns_and_targets_follow_active_region(
    evaluated: Evaluator, stack: str, active: str
) -> None:
    e = ev(evaluated, stack, active)
    if stack != "dr":
        assert e.of_type(RECORD) == [] and e.of_type(HEALTH) == []
        return
    standby = "dr" if active == "primary" else "primary"
    recs = records(e)
    assert set(recs) == {API_PRIMARY_SET_ID, API_SECONDARY_SET_ID, "db", "redis", "search"}
    for label in ("db", "redis", "search"):
        assert recs[label].inputs["records"] == [endpoints(stack, active)[label]]
        assert recs[label].inputs["name"] == f"{label}.llm-marketplace.com"
    primary_slot, secondary_slot = recs[API_PRIMARY_SET_ID], recs[API_SECONDARY_SET_ID]
    assert primary_slot.inputs["failoverRoutingPolicies"] == [{"type": "PRIMARY"}]
    assert secondary_slot.inputs["failoverRoutingPolicies"] == [{"type": "SECONDARY"}]
    assert primary_slot.inputs["records"] == [endpoints(stack, active)["gateway"]]
    assert secondary_slot.inputs["records"] == [endpoints(stack, standby)["gateway"]]
    # Each api record is guarded by the health check of the region it points at.
    checks = {r.name: r for r in e.of_type(HEALTH)}
    assert primary_slot.inputs["healthCheckId"] == f"<dr-dns-{active}-gateway-health.id>"
    assert secondary_slot.inputs["healthCheckId"] == f"<dr-dns-{standby}-gateway-health.id>"
    assert (
        checks[f"dr-dns-{active}-gateway-health"].inputs["fqdn"]
        == endpoints(stack, active)["gateway"]
    )
    assert checks[f"dr-dns-{active}-gateway-health"].inputs["resourcePath"] == "/health"
    for rec in recs.values():
        assert rec.inputs["ttl"] == DNS_TTL == 60
        assert rec.inputs["type"] == "CNAME"


@pytest.mark.parametrize(("stack", "active"), COMBOS)
def test_replicas_and_read_only_follow_active_region(
    evaluated: Evaluator, stack: str, active: str
) -> None:
    e = ev(evaluated, stack, active)
    is_active = stack == active
    deployments = e.of_type("kubernetes:apps/v1:Deployment")
    assert sorted(d.inputs["metadata"]["name"] for d in deployments) == sorted(SERVICES)
    for d in deployments:
        assert d.inputs["spec"]["replicas"] == (3 if is_active else 1)
        container = d.inputs["spec"]["template"]["spec"]["containers"][0]
        assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": 3001}
        assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": 3001}
        assert container["resources"]["requests"]
    (config,) = e.of_type("kubernetes:core/v1:ConfigMap")
    assert config.inputs["data"]["READ_ONLY"] == ("false" if is_active else "true")
    assert config.inputs["data"]["REGION"] == STACK_REGIONS[stack]  # type: ignore[index]
    assert len(e.of_type("kubernetes:policy/v1:PodDisruptionBudget")) == len(SERVICES)
    (gateway,) = e.of_type("kubernetes:core/v1:Service")
    assert gateway.inputs["spec"]["type"] == "LoadBalancer"


def test_standby_warm_minimum_is_configurable(evaluated: Evaluator) -> None:
    e = evaluated("primary", {**state_config("primary", "dr"), "standby_replicas": "2"})
    assert {d.inputs["spec"]["replicas"] for d in e.of_type("kubernetes:apps/v1:Deployment")} == {2}


@pytest.mark.parametrize(("stack", "active"), COMBOS)
def test_no_secret_in_plain_outputs_or_plain_inputs(
    evaluated: Evaluator, stack: str, active: str
) -> None:
    e = ev(evaluated, stack, active)
    assert CANARY_PASSWORD not in json.dumps(e.outputs)
    assert CANARY_PASSWORD not in json.dumps(e.to_json())
    (secret,) = e.of_type("kubernetes:core/v1:Secret")
    assert any(p.startswith("stringData") for p in secret.secret_inputs)


def test_outputs_name_what_failover_needs(evaluated: Evaluator) -> None:
    e = ev(evaluated, "dr", "primary")
    names = {v for k, v in vars(Output).items() if not k.startswith("_") and isinstance(v, str)}
    missing = names - set(e.outputs) - {Output.OPERATOR_ROLE_ARN}
    assert not missing
    assert e.outputs[Output.DB_IDENTIFIER] == "llm-marketplace-dr-db"
    assert e.outputs[Output.DB_REPLICA_SOURCE] == peer_placeholder("primary", Output.DB_ARN)
    assert e.outputs[Output.HOSTED_ZONE_ID] == "Z0EXAMPLE0LLMMARKET"


@pytest.mark.parametrize("stack", ["primary", "dr"])
def test_global_datastore_survives_a_cache_failover(evaluated: Evaluator, stack: str) -> None:
    before, after = ev(evaluated, stack, "primary"), ev(evaluated, stack, "dr")
    grgs = before.of_type("aws:elasticache/globalReplicationGroup:GlobalReplicationGroup")
    (group,) = before.of_type("aws:elasticache/replicationGroup:ReplicationGroup")
    if stack == "primary":
        (grg,) = grgs
        # The provider replaces the datastore when the primary group id changes; the switch
        # moves the primary outside Pulumi, so the program must never diff that input.
        assert "primaryReplicationGroupId" in grg.ignore_changes
        assert grg.protect
        assert after.resources[grg.urn].inputs == grg.inputs
    else:
        assert grgs == []
        assert group.inputs["globalReplicationGroupId"] == peer_placeholder(
            "primary", Output.CACHE_GLOBAL_ID
        )
    assert after.resources[group.urn].inputs == group.inputs
    assert group.inputs["atRestEncryptionEnabled"] and group.inputs["transitEncryptionEnabled"]
    assert group.inputs["automaticFailoverEnabled"] and group.inputs["multiAzEnabled"]


def changed(before: Evaluation, after: Evaluation) -> dict[str, set[str]]:
    """Resource name -> the input keys that differ."""
    assert set(before.resources) == set(after.resources), "a flip must not create or delete"
    out: dict[str, set[str]] = {}
    for urn, old in before.resources.items():
        new = after.resources[urn]
        keys = {
            k for k in set(old.inputs) | set(new.inputs) if old.inputs.get(k) != new.inputs.get(k)
        }
        assert old.type == new.type and old.provider == new.provider
        if keys:
            out[old.name] = keys
    return out


def flip(evaluated: Evaluator, stack: str) -> tuple[Evaluation, Evaluation]:
    before = evaluated(stack, state_config(stack, "primary"))
    # Exactly the switch's change: active_region everywhere, replicate_from cleared on dr.
    overrides: dict[str, Any] = dict(state_config(stack, "primary"))
    overrides["active_region"] = "dr"
    if stack == "dr":
        overrides["replicate_from"] = ""
    return before, evaluated(stack, overrides)


APP_CHANGES = {f"{{s}}-workloads-{svc}": {"spec"} for svc in SERVICES} | {
    "{s}-workloads-app-config": {"data"}
}


def test_flip_changes_only_scale_and_read_only_on_primary(evaluated: Evaluator) -> None:
    diff = changed(*flip(evaluated, "primary"))
    assert diff == {k.format(s="primary"): v for k, v in APP_CHANGES.items()}


def test_flip_on_dr_moves_dns_promotes_its_database_and_nothing_else(evaluated: Evaluator) -> None:
    before, after = flip(evaluated, "dr")
    diff = changed(before, after)
    expected = {k.format(s="dr"): v for k, v in APP_CHANGES.items()} | {
        "dr-dns-api-primary-slot": {"records", "healthCheckId"},
        "dr-dns-api-secondary-slot": {"records", "healthCheckId"},
        "dr-dns-db": {"records"},
        "dr-dns-redis": {"records"},
        "dr-dns-search": {"records"},
        "dr-database-instance": {"replicateSourceDb", "dbName", "username", "password"},
    }
    assert diff == expected
    old_db, new_db = database(before), database(after)
    for key in ("identifier", "kmsKeyId", "engine", "dbSubnetGroupName", "storageEncrypted"):
        assert old_db.inputs[key] == new_db.inputs[key]
    # Only data of the ConfigMap's READ_ONLY flag moves; endpoints stay local to the region.
    (cm_before,) = before.of_type("kubernetes:core/v1:ConfigMap")
    (cm_after,) = after.of_type("kubernetes:core/v1:ConfigMap")
    assert {
        k
        for k in cm_before.inputs["data"]
        if cm_before.inputs["data"][k] != cm_after.inputs["data"][k]
    } == {"READ_ONLY"}


def test_failback_rebuild_is_a_new_instance_and_the_old_writer_is_kept(
    evaluated: Evaluator,
) -> None:
    after_failover = evaluated("primary", state_config("primary", "dr"))
    rebuilt = evaluated(
        "primary", {**state_config("primary", "dr"), "replicate_from": "dr", "db_generation": "2"}
    )
    old, new = database(after_failover), database(rebuilt)
    assert old.urn != new.urn and old.urn not in rebuilt.resources
    assert new.inputs["identifier"] == "llm-marketplace-primary-db-g2"
    assert new.inputs["replicateSourceDb"] == peer_placeholder("dr", Output.DB_ARN)
    # Removing the old writer from the program never deletes it: protected and retained.
    assert old.protect and old.retain_on_delete
    assert new.inputs["kmsKeyId"] == old.inputs["kmsKeyId"] == "<primary-database-kms.arn>"


@pytest.mark.parametrize("active", ["primary", "dr"])
def test_search_snapshots_replicate_from_primary_into_the_dr_bucket(
    evaluated: Evaluator, active: str
) -> None:
    primary, dr = ev(evaluated, "primary", active), ev(evaluated, "dr", active)
    (rule_set,) = primary.of_type("aws:s3/bucketReplicationConfig:BucketReplicationConfig")
    (rule,) = rule_set.inputs["rules"]
    assert rule["status"] == "Enabled"
    assert (
        rule["destination"]["bucket"]
        == "arn:aws:s3:::llm-marketplace-search-snapshots-us-west-2-organization"
    )
    assert dr.of_type("aws:s3/bucketReplicationConfig:BucketReplicationConfig") == []
    for e in (primary, dr):
        (enc,) = e.of_type(
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
        )
        # Replication of SSE-KMS objects would need a replica key rule this program does not declare.
        assert (
            enc.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
        )
