"""The `failover-operator` role: declared by the dr stack, enough for the switch and no more.

Two halves:
- under Pulumi mocks: what the stacks declare (one role and its policy in dr, none in
  primary), and that the policy allows exactly `contract.OPERATOR_ACTIONS`, scoped;
- against moto in server mode with IAM enforcement on: the switch's boto3 calls, made through
  `failover.cloud.AwsCloud` with the credentials of that role (assumed through STS), pass with
  the policy, and with any one action taken out exactly the call that needs it is denied and
  reported in one line naming that action. The search restore's actions (es:ESHttp*,
  iam:PassRole) are signed HTTP requests to an OpenSearch domain endpoint, which moto does
  not serve: they are covered by the policy-content tests only.

What moto 5.2.5 enforces, and how the lab copes with what it does not (each premise is itself
asserted by `test_moto_enforces_actions_not_resources`):
- moto authorizes RDS, CloudWatch and ElastiCache requests against the resource "*"
  (`moto/core/responses.py`: only iam, sts and sqs define `_determine_resource`), and
  matches each statement's Resource pattern against that literal "*": a scoped ARN never
  matches, so moto would deny every call. The lab therefore installs the policy with each
  Resource widened to "*". Resource scoping is checked by the policy-content tests and by
  `test_resource_patterns_match_the_switchs_resources`, not by moto;
- moto names an action after the request's SigV4 signing name (`moto/iam/access_control.py`:
  `f"{self._service}:{action}"`), which is `monitoring` for CloudWatch: the lab grants
  `monitoring:GetMetricStatistics` where the policy says `cloudwatch:GetMetricStatistics`;
- moto has no ElastiCache Global Datastore API, but it authorizes a request before it looks
  for the handler: an allowed request is answered 500 (not implemented), a denied one 403.
  Both directions are therefore asserted against moto. `failover_cache` starts with a
  `describe_cache` that moto cannot answer; the lab answers that one read locally so the
  FailoverGlobalReplicationGroup request itself reaches moto.
"""

from __future__ import annotations

import ast
import itertools
import json
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import botocore.parsers
import botocore.session
import pytest

from components.contract import (
    OPERATOR_ACTIONS,
    OPERATOR_ROLE_NAME,
    ROLES,
    STACK_REGIONS,
    Output,
)
from components.operator import (
    OperatorScope,
    account_of,
    operator_policy_document,
    resource_patterns,
    trust_policy_document,
)
from components.platform import db_identifier
from failover.cloud import (
    AwsCloud,
    CacheDatastore,
    CloudError,
    DbInstance,
    PermissionDenied,
    _explain,
)
from failover.lab import procs
from failover.lab.motoserver import moto_env
from failover.programeval import Evaluation
from tests.conftest import PROJECT_DIR, Evaluator, state_config

ROLE = "aws:iam/role:Role"
POLICY = "aws:iam/policy:Policy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
MOTO_ACCOUNT = "123456789012"  # moto's default account


def ev(evaluated: Evaluator, stack: str, active: str) -> Evaluation:
    return evaluated(stack, state_config(stack, active))


def named(e: Evaluation, type_: str, name: str) -> list[Any]:
    return [r for r in e.of_type(type_) if r.inputs.get("name") == name]


def operator_attachments(e: Evaluation) -> list[Any]:
    return [r for r in e.of_type(ATTACHMENT) if r.inputs.get("role") == OPERATOR_ROLE_NAME]


def allowed_actions(document: Mapping[str, Any]) -> list[str]:
    return [a for s in document["Statement"] for a in s["Action"]]


def resources_of(statement: Mapping[str, Any]) -> list[str]:
    resource = statement["Resource"]
    return [resource] if isinstance(resource, str) else list(resource)


def project_scope(account_id: str = "*") -> OperatorScope:
    """The scope the dr stack declares (components/platform.py), for any account."""
    return OperatorScope(
        databases={STACK_REGIONS[r]: db_identifier(r, 1) for r in ROLES},
        global_datastore_suffix="llm-marketplace",
        search_domains={STACK_REGIONS[r]: f"llm-mkt-{r}" for r in ROLES},
        snapshot_role_prefixes=tuple(f"{r}-search-snapshot-role-" for r in ROLES),
        account_id=account_id,
    )


# -- under mocks ---------------------------------------------------------------------------


@pytest.mark.parametrize("active", ["primary", "dr"])
def test_dr_declares_one_operator_role_with_its_policy(evaluated: Evaluator, active: str) -> None:
    e = ev(evaluated, "dr", active)
    (role,) = named(e, ROLE, OPERATOR_ROLE_NAME)
    (policy,) = named(e, POLICY, OPERATOR_ROLE_NAME)
    (attachment,) = operator_attachments(e)
    assert {role.provider, policy.provider, attachment.provider} == {"dr-aws"}
    assert attachment.inputs == {
        "role": OPERATOR_ROLE_NAME,
        "policyArn": "<dr-operator-policy.arn>",
    }
    (component,) = e.of_type("llm:platform:FailoverOperator")
    assert {role.parent, policy.parent, attachment.parent} == {component.urn}
    assert e.outputs[Output.OPERATOR_ROLE_ARN] == "<dr-operator-role.arn>"


@pytest.mark.parametrize("active", ["primary", "dr"])
def test_primary_declares_no_operator_role(evaluated: Evaluator, active: str) -> None:
    e = ev(evaluated, "primary", active)
    assert named(e, ROLE, OPERATOR_ROLE_NAME) == []
    assert named(e, POLICY, OPERATOR_ROLE_NAME) == []
    assert operator_attachments(e) == [] and e.of_type("llm:platform:FailoverOperator") == []
    assert Output.OPERATOR_ROLE_ARN not in e.outputs


def declared_policy(evaluated: Evaluator) -> dict[str, Any]:
    (policy,) = named(ev(evaluated, "dr", "primary"), POLICY, OPERATOR_ROLE_NAME)
    document: dict[str, Any] = json.loads(policy.inputs["policy"])
    return document


def test_policy_allows_exactly_the_switch_actions_scoped(evaluated: Evaluator) -> None:
    document = declared_policy(evaluated)
    actions = allowed_actions(document)
    assert sorted(actions) == sorted(OPERATOR_ACTIONS), "the policy gained or lost an action"
    assert len(actions) == len(set(actions))
    assert not [a for a in actions if "*" in a or "?" in a], "wildcard actions"
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        # No NotAction/NotResource; a Condition only narrows.
        assert set(statement) - {"Condition"} == {"Sid", "Effect", "Action", "Resource"}
        kinds = {OPERATOR_ACTIONS[a] for a in statement["Action"]}
        resources = resources_of(statement)
        if kinds == {"*"}:
            # AWS has no resource-level permissions for these: "*" is the only valid Resource.
            assert resources == ["*"] and statement["Action"] == ["cloudwatch:GetMetricStatistics"]
            continue
        (kind,) = kinds
        assert "*" not in resources
        service, resource_type = kind.split(":")
        # A named resource (the datastore id may start with AWS's prefix), never a bare "*".
        shape = re.compile(rf"arn:aws:{service}:[a-z0-9-]*:\*:{resource_type}[:/](\*-)?[a-z]")
        for arn in resources:
            assert shape.match(arn), arn
    (pass_role,) = [s for s in document["Statement"] if "iam:PassRole" in s["Action"]]
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "es.amazonaws.com"}}


def test_policy_resources_are_the_project_resources(evaluated: Evaluator) -> None:
    statements = {s["Sid"]: s for s in declared_policy(evaluated)["Statement"]}
    assert statements["ProjectDatabases"]["Resource"] == [
        "arn:aws:rds:us-east-1:*:db:llm-marketplace-primary-db",
        "arn:aws:rds:us-east-1:*:db:llm-marketplace-primary-db-g*",
        "arn:aws:rds:us-west-2:*:db:llm-marketplace-dr-db",
        "arn:aws:rds:us-west-2:*:db:llm-marketplace-dr-db-g*",
    ]
    # The datastore id is AWS's 5-letter prefix + "-" + the suffix the owner stack declares.
    (grg,) = ev(evaluated, "primary", "primary").of_type(
        "aws:elasticache/globalReplicationGroup:GlobalReplicationGroup"
    )
    suffix = grg.inputs["globalReplicationGroupIdSuffix"]
    assert statements["ProjectCacheGlobalDatastore"]["Resource"] == [
        f"arn:aws:elasticache::*:globalreplicationgroup:*-{suffix}"
    ]
    # The domains and snapshot roles each stack declares (the switch restores on its target).
    domains, snapshot_roles = [], []
    for role in ROLES:
        e = ev(evaluated, role, "primary")
        (domain,) = e.of_type("aws:opensearch/domain:Domain")
        domains.append(f"arn:aws:es:{STACK_REGIONS[role]}:*:domain/{domain.inputs['domainName']}/*")
        # Auto-named: the logical name, "-", and a random suffix.
        (snapshot_role,) = [r for r in e.of_type(ROLE) if r.name.endswith("-snapshot-role")]
        assert "name" not in snapshot_role.inputs
        snapshot_roles.append(f"arn:aws:iam::*:role/{snapshot_role.name}-*")
    assert statements["ProjectSearchDomains"]["Resource"] == domains
    assert statements["PassSnapshotRolesToOpenSearch"]["Resource"] == snapshot_roles


def test_the_lab_renders_the_programs_policy(evaluated: Evaluator) -> None:
    """The moto tests render `project_scope`: it is what the dr stack declares."""
    assert operator_policy_document(project_scope()) == declared_policy(evaluated)


def test_trust_policy_is_the_accounts_principals_with_mfa(evaluated: Evaluator) -> None:
    (role,) = named(ev(evaluated, "dr", "primary"), ROLE, OPERATOR_ROLE_NAME)
    (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert statement["Action"] == "sts:AssumeRole" and statement["Effect"] == "Allow"
    # Offline, the account is the placeholder of the ARN it is read from.
    assert statement["Principal"] == {"AWS": "arn:aws:iam::<dr-operator-policy.arn>:root"}
    assert statement["Condition"] == {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
    assert role.inputs["maxSessionDuration"] == 3600


def test_trust_policy_documents() -> None:
    root = trust_policy_document(
        partition="aws", account_id=account_of("arn:aws:iam::111122223333:policy/failover-operator")
    )
    (statement,) = root["Statement"]
    assert statement["Principal"] == {"AWS": "arn:aws:iam::111122223333:root"}
    assert statement["Condition"] == {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
    named_ = trust_policy_document(
        partition="aws",
        account_id="111122223333",
        trusted_principals=(
            "arn:aws:iam::111122223333:role/sre",
            "arn:aws:iam::111122223333:role/ci",
        ),
    )
    (statement,) = named_["Statement"]
    assert statement["Principal"] == {
        "AWS": ["arn:aws:iam::111122223333:role/ci", "arn:aws:iam::111122223333:role/sre"]
    }
    assert "Condition" not in statement


def _calls(module: str, name: str) -> list[ast.Call]:
    tree = ast.parse((PROJECT_DIR / "failover" / f"{module}.py").read_text())
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id == name)
            or (isinstance(node.func, ast.Attribute) and node.func.attr == name)
        )
    ]


def boto3_actions() -> set[str]:
    """The IAM actions failover/cloud.py names for its boto3 calls (`_explain(err, action)`)."""
    return {
        c.args[1].value
        for c in _calls("cloud", "_explain")
        if isinstance(c.args[1], ast.Constant) and isinstance(c.args[1].value, str)
    }


def search_actions() -> set[str]:
    """failover/search.py's signed requests: es:ESHttp<Method>, and iam:PassRole if it
    registers a repository with a role (OpenSearch checks that the signer may pass it)."""
    methods = {
        c.args[0].value
        for c in _calls("search", "request")
        if c.args and isinstance(c.args[0], ast.Constant) and isinstance(c.args[0].value, str)
    }
    tree = ast.parse((PROJECT_DIR / "failover" / "search.py").read_text())
    passes_role = any(
        isinstance(n, ast.Dict)
        and any(isinstance(k, ast.Constant) and k.value == "role_arn" for k in n.keys)
        for n in ast.walk(tree)
    )
    return {f"es:ESHttp{m.title()}" for m in methods} | ({"iam:PassRole"} if passes_role else set())


def test_contract_names_every_aws_action_of_the_switch() -> None:
    """OPERATOR_ACTIONS is what the switch's code calls: no more, no less."""
    assert boto3_actions() == {a for a in OPERATOR_ACTIONS if not a.startswith(("es:", "iam:"))}
    assert search_actions() == {a for a in OPERATOR_ACTIONS if a.startswith(("es:", "iam:"))}


def test_an_unknown_resource_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown resource types"):
        operator_policy_document(project_scope(), {"rds:DeleteDBInstance": "rds:cluster"})


# -- IAM wildcard matching (a simulation of AWS's Resource matching, not moto) ---------------


def iam_match(pattern: str, arn: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, arn) is not None


def matches(kind: str, arn: str) -> bool:
    return any(iam_match(p, arn) for p in resource_patterns(project_scope(MOTO_ACCOUNT), kind))


# -- against moto with IAM enforcement -------------------------------------------------------

# moto 5.2.5's PromoteReadReplica keeps returning ReadReplicaSourceDBInstanceIdentifier; real
# RDS drops it, and AwsCloud.promote_database waits for that. The server runs with that fix.
_LAUNCHER = """
import sys
from moto.rds.models import RDSBackend

_promote = RDSBackend.promote_read_replica


def promote_read_replica(self, db_kwargs):
    database = _promote(self, db_kwargs)
    database.source_db_instance_identifier = None
    return database


RDSBackend.promote_read_replica = promote_read_replica
from moto.server import main

main(sys.argv[1:])
"""

# The calls that run before IAM enforcement starts: create the admin user, its key, its policy.
BOOTSTRAP_CALLS = 3
ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}
PRIMARY_DB = db_identifier("primary", 1)
DR_DB = db_identifier("dr", 1)
GLOBAL_ID = "ldgnf-llm-marketplace"


def session(key: str, secret: str, token: str | None = None) -> boto3.Session:
    """Explicit keys, no user config or credentials files, no retries (moto answers at once)."""
    core = botocore.session.Session(
        session_vars={
            "profile": (None, None, None, None),
            "config_file": (None, None, os.devnull, None),
            "credentials_file": (None, None, os.devnull, None),
        }
    )
    core.set_config_variable("max_attempts", 1)
    return boto3.Session(
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=token,
        region_name="us-east-1",
        botocore_session=core,
    )


def as_moto_enforces(document: Mapping[str, Any]) -> dict[str, Any]:
    """The policy as moto 5.2.5 can evaluate it: Resource "*", actions by signing name.

    Only those two rewrites (see the module docstring); no action is added or dropped.
    """
    models = botocore.session.get_session()

    def action(name: str) -> str:
        service, operation = name.split(":")
        return f"{models.get_service_model(service).signing_name}:{operation}"

    return {
        **document,
        "Statement": [
            {**s, "Action": [action(a) for a in s["Action"]], "Resource": "*"}
            for s in document["Statement"]
        ],
    }


class StubbedReadCloud(AwsCloud):
    """AwsCloud whose Global Datastore read is answered here: moto has no such API."""

    def describe_cache(self, global_id: str) -> CacheDatastore | None:
        return CacheDatastore(
            global_id, "available", "us-east-1", {"us-east-1": "PRIMARY", "us-west-2": "SECONDARY"}
        )


@dataclass
class OperatorLab:
    endpoint: str
    admin: boto3.Session
    operator: boto3.Session
    generations: Iterator[int]
    policy_arn: str | None = None

    def client(self, service: str, region: str = "us-east-1") -> Any:
        return self.admin.client(service, region_name=region, endpoint_url=self.endpoint)  # type: ignore[call-overload]

    def grant(self, document: Mapping[str, Any]) -> None:
        """Make `document` the role's only policy (a managed policy, as the program attaches)."""
        iam = self.client("iam")
        if self.policy_arn is not None:
            iam.detach_role_policy(RoleName=OPERATOR_ROLE_NAME, PolicyArn=self.policy_arn)
            iam.delete_policy(PolicyArn=self.policy_arn)
        self.policy_arn = iam.create_policy(
            PolicyName=OPERATOR_ROLE_NAME, PolicyDocument=json.dumps(document)
        )["Policy"]["Arn"]
        iam.attach_role_policy(RoleName=OPERATOR_ROLE_NAME, PolicyArn=self.policy_arn)

    def replica(self) -> str:
        """A new generation of the dr database: a cross-region read replica of the writer."""
        identifier = db_identifier("dr", next(self.generations))
        writer = self.client("rds").describe_db_instances(DBInstanceIdentifier=PRIMARY_DB)
        self.client("rds", "us-west-2").create_db_instance_read_replica(
            DBInstanceIdentifier=identifier,
            SourceDBInstanceIdentifier=writer["DBInstances"][0]["DBInstanceArn"],
            DBInstanceClass="db.r6g.large",
        )
        return identifier

    def cloud(self, cls: type[AwsCloud] = AwsCloud) -> AwsCloud:
        cloud = cls(endpoint_url=self.endpoint, session=self.operator)
        cloud.poll = 0.02
        return cloud


def _answers(url: str, proc: procs.ManagedProcess, log_file: Path) -> bool:
    if not proc.is_running():
        raise procs.LabError(f"moto exited during start-up: {procs.tail(log_file)}")
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
            f"{url}/moto-api/", timeout=1
        ):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorLab]:
    work = tmp_path_factory.mktemp("moto-iam")
    port = procs.free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**moto_env(), "INITIAL_NO_AUTH_ACTION_COUNT": str(BOOTSTRAP_CALLS)}
    log_file = work / "moto.log"
    proc = procs.start(
        [sys.executable, "-c", _LAUNCHER, "-H", "127.0.0.1", "-p", str(port)],
        name="moto_server_iam",
        log_file=log_file,
        env=env,
        cwd=work,
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NO_PROXY", "127.0.0.1")
        try:
            procs.wait_until(lambda: _answers(url, proc, log_file), 60, f"moto on {url}")
            bootstrap = session("testing", "testing").client("iam", endpoint_url=url)
            bootstrap.create_user(UserName="admin")
            key = bootstrap.create_access_key(UserName="admin")["AccessKey"]
            bootstrap.put_user_policy(
                UserName="admin", PolicyName="admin", PolicyDocument=json.dumps(ADMIN_POLICY)
            )
            # From here on every request is authenticated and authorized.
            admin = session(key["AccessKeyId"], key["SecretAccessKey"])
            iam = admin.client("iam", endpoint_url=url)
            admin_arn = iam.get_user(UserName="admin")["User"]["Arn"]
            # moto compares trust principals literally (no `:root` delegation, no MFA context),
            # so the lab names the admin user: the builder's other branch.
            trust = trust_policy_document(
                partition="aws", account_id=MOTO_ACCOUNT, trusted_principals=(admin_arn,)
            )
            iam.create_role(RoleName=OPERATOR_ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust))
            rds = admin.client("rds", region_name="us-east-1", endpoint_url=url)
            rds.create_db_instance(
                DBInstanceIdentifier=PRIMARY_DB,
                Engine="postgres",
                DBInstanceClass="db.r6g.large",
                AllocatedStorage=100,
                MasterUsername="postgres",
                MasterUserPassword="lab-password-0",
                BackupRetentionPeriod=7,
            )
            sts = admin.client("sts", endpoint_url=url)
            creds = sts.assume_role(
                RoleArn=f"arn:aws:iam::{MOTO_ACCOUNT}:role/{OPERATOR_ROLE_NAME}",
                RoleSessionName="failover-switch",
            )["Credentials"]
            operator = session(
                creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]
            )
            lab = OperatorLab(url, admin, operator, itertools.count(1))
            assert lab.replica() == DR_DB
            yield lab
        finally:
            proc.stop()


def the_policy(actions: Mapping[str, str] = OPERATOR_ACTIONS) -> dict[str, Any]:
    """The program's policy document, rendered for moto's account, as moto can enforce it."""
    return as_moto_enforces(operator_policy_document(project_scope(MOTO_ACCOUNT), actions))


def outcome(call: Callable[[], object]) -> str | PermissionDenied:
    """The call's outcome: ok, authorized (moto passed IAM but lacks the API), or the denial."""
    try:
        call()
    except PermissionDenied as err:
        return err
    except botocore.parsers.ResponseParserError as err:
        # moto 5.2.5's answer to an authorized ElastiCache Global Datastore request.
        assert "500 Internal Server Error" in str(err), err
        return "authorized"
    return "ok"


# Each call of the switch and the actions it needs. failover_cache also needs
# DescribeGlobalReplicationGroups in AWS (its describe_cache); the lab answers that read.
NEEDS: dict[str, frozenset[str]] = {
    "describe_database": frozenset({"rds:DescribeDBInstances"}),
    "replica_lag_seconds": frozenset({"cloudwatch:GetMetricStatistics"}),
    "promote_database": frozenset({"rds:DescribeDBInstances", "rds:PromoteReadReplica"}),
    "describe_cache": frozenset({"elasticache:DescribeGlobalReplicationGroups"}),
    "failover_cache": frozenset({"elasticache:FailoverGlobalReplicationGroup"}),
}


def switch_calls(lab: OperatorLab) -> dict[str, Callable[[], object]]:
    cloud, stubbed = lab.cloud(), lab.cloud(StubbedReadCloud)
    replica = lab.replica()  # promote_database promotes: each run gets a fresh replica
    return {
        "describe_database": lambda: cloud.describe_database("dr", DR_DB),
        "replica_lag_seconds": lambda: cloud.replica_lag_seconds("dr", DR_DB),
        "promote_database": lambda: cloud.promote_database("dr", replica, timeout=10),
        "describe_cache": lambda: cloud.describe_cache(GLOBAL_ID),
        "failover_cache": lambda: stubbed.failover_cache(
            GLOBAL_ID, "dr", "llm-marketplace-dr", timeout=1
        ),
    }


def test_every_boto3_action_has_a_call_that_needs_it() -> None:
    assert frozenset().union(*NEEDS.values()) == boto3_actions()


def test_the_operator_role_runs_every_call_of_the_switch(lab: OperatorLab) -> None:
    lab.grant(the_policy())
    lab.client("cloudwatch", "us-west-2").put_metric_data(
        Namespace="AWS/RDS",
        MetricData=[
            {
                "MetricName": "ReplicaLag",
                "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": DR_DB}],
                # A minute old: moto truncates EndTime to the second and excludes it.
                "Timestamp": datetime.now(UTC) - timedelta(minutes=1),
                "Value": 4.0,
            }
        ],
    )
    cloud = lab.cloud()
    replica = lab.replica()
    before = cloud.describe_database("dr", replica)
    assert before is not None and before.is_replica
    writer = cloud.describe_database("primary", PRIMARY_DB)
    assert isinstance(writer, DbInstance) and not writer.is_replica
    assert cloud.replica_lag_seconds("dr", DR_DB) == 4.0
    cloud.promote_database("dr", replica, timeout=10)
    after = cloud.describe_database("dr", replica)
    assert after is not None and not after.is_replica and after.status == "available"
    calls = switch_calls(lab)
    assert {name: outcome(call) for name, call in calls.items()} == {
        "describe_database": "ok",
        "replica_lag_seconds": "ok",
        "promote_database": "ok",
        "describe_cache": "authorized",
        "failover_cache": "authorized",
    }


@pytest.mark.parametrize("missing", sorted(boto3_actions()))
def test_without_one_action_only_its_call_is_denied_and_named(
    lab: OperatorLab, missing: str
) -> None:
    lab.grant(the_policy({a: k for a, k in OPERATOR_ACTIONS.items() if a != missing}))
    results = {name: outcome(call) for name, call in switch_calls(lab).items()}
    for name, result in results.items():
        if missing not in NEEDS[name]:
            assert not isinstance(result, PermissionDenied), (name, str(result))
            continue
        assert isinstance(result, PermissionDenied), (name, result)
        line = str(result)
        assert "\n" not in line
        assert line.startswith(f"permission missing: {missing} on "), line
        assert [a for a in OPERATOR_ACTIONS if a in line] == [missing], line


def test_moto_enforces_actions_not_resources(lab: OperatorLab) -> None:
    """The premises of `as_moto_enforces`: if this fails, moto changed; revisit the lab."""
    cloud = lab.cloud()
    lab.grant(operator_policy_document(project_scope(MOTO_ACCOUNT)))  # scoped, unchanged
    denied = outcome(lambda: cloud.describe_database("dr", DR_DB))
    assert isinstance(denied, PermissionDenied)  # moto matches Resource patterns against "*"
    scoped = operator_policy_document(project_scope(MOTO_ACCOUNT))
    lab.grant({**scoped, "Statement": [{**s, "Resource": "*"} for s in scoped["Statement"]]})
    assert outcome(lambda: cloud.describe_database("dr", DR_DB)) == "ok"
    # ...and names the CloudWatch action after its signing name.
    denied = outcome(lambda: cloud.replica_lag_seconds("dr", DR_DB))
    assert isinstance(denied, PermissionDenied)
    assert "monitoring:GetMetricStatistics" in str(denied)
    assert str(denied).startswith("permission missing: cloudwatch:GetMetricStatistics on ")


def test_resource_patterns_match_the_switchs_resources(lab: OperatorLab) -> None:
    """What moto cannot check: the scoped patterns cover the ARNs AWS gives these resources."""
    generation = lab.replica()
    arns = {
        i["DBInstanceIdentifier"]: i["DBInstanceArn"]
        for region in ("us-east-1", "us-west-2")
        for i in lab.client("rds", region).describe_db_instances()["DBInstances"]
    }
    assert {PRIMARY_DB, DR_DB, generation} <= set(arns)
    assert all(matches("rds:db", arn) for arn in arns.values()), arns
    for other in (
        f"arn:aws:rds:us-west-2:{MOTO_ACCOUNT}:db:billing-db",
        f"arn:aws:rds:us-west-2:{MOTO_ACCOUNT}:db:llm-marketplace-dr-db-replica",
        f"arn:aws:rds:eu-west-1:{MOTO_ACCOUNT}:db:llm-marketplace-dr-db",
        f"arn:aws:rds:us-west-2:{MOTO_ACCOUNT}:db:llm-marketplace-primary-db",
        f"arn:aws:rds:us-west-2:{MOTO_ACCOUNT}:cluster:llm-marketplace-dr-db",
    ):
        assert not matches("rds:db", other), other
    domain = f"arn:aws:es:us-west-2:{MOTO_ACCOUNT}:domain/llm-mkt-dr/_snapshot/s3_backup"
    assert matches("es:domain", domain)
    assert not matches("es:domain", domain.replace("llm-mkt-dr", "llm-mkt-dr-old"))
    assert not matches("es:domain", domain.replace("us-west-2", "us-east-1"))
    role = f"arn:aws:iam::{MOTO_ACCOUNT}:role/dr-search-snapshot-role-1a2b3c4"
    assert matches("iam:role", role)
    assert not matches("iam:role", f"arn:aws:iam::{MOTO_ACCOUNT}:role/{OPERATOR_ROLE_NAME}")
    assert not matches("iam:role", f"arn:aws:iam::{MOTO_ACCOUNT}:role/dr-search-replication-role-1")
    grg = "arn:aws:elasticache::{}:globalreplicationgroup:{}"
    assert matches("elasticache:globalreplicationgroup", grg.format(MOTO_ACCOUNT, GLOBAL_ID))
    assert not matches(
        "elasticache:globalreplicationgroup", grg.format(MOTO_ACCOUNT, "ldgnf-other")
    )
    assert not matches(
        "elasticache:globalreplicationgroup",
        f"arn:aws:elasticache:us-west-2:{MOTO_ACCOUNT}:replicationgroup:llm-marketplace-dr",
    )


def test_a_denial_is_one_line_even_when_botocore_cannot_parse_it() -> None:
    """CloudWatch's client speaks CBOR; an XML AccessDenied body still reads as a denial."""
    body = (
        '<?xml version="1.0"?>\n<ErrorResponse><Errors><Error><Code>AccessDenied</Code>'
        "<Message>User: x is not\n authorized</Message></Error></Errors></ErrorResponse>"
    )
    err = botocore.exceptions.ClientError(
        {"Error": {"Code": "403", "Message": body}}, "GetMetricStatistics"
    )
    explained = _explain(err, "cloudwatch:GetMetricStatistics", "ReplicaLag of db in us-west-2")
    assert isinstance(explained, PermissionDenied)
    assert str(explained) == (
        "permission missing: cloudwatch:GetMetricStatistics on ReplicaLag of db in us-west-2"
        " (User: x is not authorized)"
    )
    other = botocore.exceptions.ClientError(
        {"Error": {"Code": "Throttling", "Message": "slow\ndown"}}, "DescribeDBInstances"
    )
    explained = _explain(other, "rds:DescribeDBInstances", "db in us-west-2")
    assert type(explained) is CloudError
    assert str(explained) == "rds:DescribeDBInstances failed: Throttling: slow down"
