"""The `failover-operator` IAM role: what `python -m failover.switch` runs as.

Its policy allows exactly `contract.OPERATOR_ACTIONS` (the switch's AWS calls), each on the
resource type AWS authorizes that action against:

- `rds:db`: the project's database instances, per region, by identifier: the generation-1
  name and its rebuilt generations (`-g2`, `-g3`, ...), never another application's database;
- `elasticache:globalreplicationgroup`: the project's Global Datastore. AWS names it
  `<5-letter prefix>-<suffix>`, and its ARN has no region;
- `es:domain`: the project's OpenSearch domains, per region (the search restore's signed
  HTTP requests: `domain/<name>/*`);
- `iam:role`: the search snapshot roles, and only to be passed to OpenSearch (registering
  the snapshot repository passes the role to the domain);
- `*`: `cloudwatch:GetMetricStatistics` has no resource-level permissions in AWS.

The account field of the resource ARNs is `*`: an identity policy reaches another account's
resources only where that account grants it too (RDS instances, Global Datastores and IAM
roles cannot; an OpenSearch domain's access policy would have to name this role). That keeps
the document free of invokes: the program is evaluated offline.

The trust policy either lets the stack's own account delegate the role to its principals, with
MFA required (the default), or names the principals that may assume it. The account's id is
read from the ARN of the policy this component creates first, not from an invoke.

The documents are built by pure functions, so tests can render them for any account.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.contract import OPERATOR_ACTIONS, OPERATOR_ROLE_NAME

POLICY_VERSION = "2012-10-17"

# One statement per resource type, named after what it covers.
STATEMENT_IDS: dict[str, str] = {
    "rds:db": "ProjectDatabases",
    "elasticache:globalreplicationgroup": "ProjectCacheGlobalDatastore",
    "es:domain": "ProjectSearchDomains",
    "iam:role": "PassSnapshotRolesToOpenSearch",
    "*": "NoResourceLevelPermissions",
}
# Conditions of a statement, by resource type.
STATEMENT_CONDITIONS: dict[str, dict[str, Any]] = {
    "iam:role": {"StringEquals": {"iam:PassedToService": "es.amazonaws.com"}},
}


@dataclass(frozen=True)
class OperatorScope:
    """The resources the switch acts on, as IAM resource patterns are built from them."""

    # region -> the database identifier of generation 1 there (`llm-marketplace-dr-db`);
    # later generations append `-g<N>` (components.platform.db_identifier).
    databases: Mapping[str, str]
    # The suffix the Global Datastore was created with; AWS prefixes it with 5 letters and "-".
    global_datastore_suffix: str
    # region -> the OpenSearch domain name there.
    search_domains: Mapping[str, str]
    # Name prefixes of the search snapshot roles (auto-named: the prefix + a random suffix).
    snapshot_role_prefixes: Sequence[str]
    partition: str = "aws"
    account_id: str = "*"


def resource_patterns(scope: OperatorScope, kind: str) -> list[str]:
    """The IAM `Resource` patterns of one resource type (a value of OPERATOR_ACTIONS)."""
    p, account = scope.partition, scope.account_id
    if kind == "rds:db":
        return [
            arn
            for region, base in sorted(scope.databases.items())
            for arn in (
                f"arn:{p}:rds:{region}:{account}:db:{base}",
                f"arn:{p}:rds:{region}:{account}:db:{base}-g*",
            )
        ]
    if kind == "elasticache:globalreplicationgroup":
        suffix = scope.global_datastore_suffix
        return [f"arn:{p}:elasticache::{account}:globalreplicationgroup:*-{suffix}"]
    if kind == "es:domain":
        return [
            f"arn:{p}:es:{region}:{account}:domain/{domain}/*"
            for region, domain in sorted(scope.search_domains.items())
        ]
    if kind == "iam:role":
        return [f"arn:{p}:iam::{account}:role/{prefix}*" for prefix in scope.snapshot_role_prefixes]
    if kind == "*":
        return ["*"]
    raise ValueError(f"no resource patterns for resource type {kind!r}")


def operator_policy_document(
    scope: OperatorScope, actions: Mapping[str, str] = OPERATOR_ACTIONS
) -> dict[str, Any]:
    """The role's permissions: `actions` (IAM action -> resource type), scoped per type."""
    unknown = sorted(set(actions.values()) - set(STATEMENT_IDS))
    if unknown:
        raise ValueError(f"unknown resource types in the operator's actions: {unknown}")
    statements: list[dict[str, Any]] = []
    for kind, sid in STATEMENT_IDS.items():
        granted = sorted(action for action, of in actions.items() if of == kind)
        if not granted:
            continue
        resources = resource_patterns(scope, kind)
        statement: dict[str, Any] = {
            "Sid": sid,
            "Effect": "Allow",
            "Action": granted,
            "Resource": resources if resources != ["*"] else "*",
        }
        if kind in STATEMENT_CONDITIONS:
            statement["Condition"] = STATEMENT_CONDITIONS[kind]
        statements.append(statement)
    return {"Version": POLICY_VERSION, "Statement": statements}


def trust_policy_document(
    *, partition: str, account_id: str, trusted_principals: Sequence[str] = ()
) -> dict[str, Any]:
    """Who may assume the role.

    With no `trusted_principals`: the account itself (`:root`), so the account's own IAM
    policies decide which principals may assume it, and only with MFA. Otherwise exactly those
    principal ARNs; they are typically roles (SSO, CI) whose sessions carry no MFA context, so
    the MFA condition is not applied to them.
    """
    statement: dict[str, Any] = {"Effect": "Allow", "Action": "sts:AssumeRole"}
    if trusted_principals:
        statement.update(Sid="NamedOperators", Principal={"AWS": sorted(trusted_principals)})
    else:
        statement.update(
            Sid="AccountPrincipalsWithMfa",
            Principal={"AWS": f"arn:{partition}:iam::{account_id}:root"},
            Condition={"Bool": {"aws:MultiFactorAuthPresent": "true"}},
        )
    return {"Version": POLICY_VERSION, "Statement": [statement]}


def account_of(arn: str) -> str:
    """The account field of an ARN (`arn:partition:service:region:account:resource`).

    An offline evaluation has a placeholder instead of an ARN; it is passed through, so the
    declared trust policy still says where the account comes from.
    """
    parts = arn.split(":", 5)
    return parts[4] if len(parts) == 6 and parts[0] == "arn" and parts[4] else arn


@dataclass(frozen=True)
class FailoverOperatorArgs:
    scope: OperatorScope
    provider: aws.Provider
    # Principal ARNs that may assume the role; empty: the account's principals, with MFA.
    trusted_principals: tuple[str, ...] = ()
    role_name: str = OPERATOR_ROLE_NAME
    max_session_seconds: int = 3600


class FailoverOperator(pulumi.ComponentResource):
    role: aws.iam.Role
    policy: aws.iam.Policy

    def __init__(
        self, name: str, args: FailoverOperatorArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("llm:platform:FailoverOperator", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        self.policy = aws.iam.Policy(
            f"{name}-policy",
            name=args.role_name,
            description="The AWS actions of python -m failover.switch, on this project only",
            policy=json.dumps(operator_policy_document(args.scope)),
            opts=child,
        )
        partition, principals = args.scope.partition, args.trusted_principals
        trust = self.policy.arn.apply(
            lambda arn: json.dumps(
                trust_policy_document(
                    partition=partition,
                    account_id=account_of(arn),
                    trusted_principals=principals,
                )
            )
        )
        self.role = aws.iam.Role(
            f"{name}-role",
            name=args.role_name,
            description="Runs the failover switch (RDS promotion, cache Global Datastore failover)",
            assume_role_policy=trust,
            max_session_duration=args.max_session_seconds,
            opts=child,
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-policy-attachment",
            role=self.role.name,
            policy_arn=self.policy.arn,
            opts=child,
        )
        self.register_outputs({"role_arn": self.role.arn, "policy_arn": self.policy.arn})
