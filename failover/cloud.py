"""The cloud actions of a switch: RDS promotion, the cache Global Datastore, OpenSearch.

`Cloud` is what the orchestration needs; `AwsCloud` does it with boto3 (tested against moto
in server mode and botocore's Stubber), and the drill binds the same protocol to its lab.
Every action is idempotent: asking to promote an already-promoted database is a no-op.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import boto3
import botocore.exceptions

from components.contract import STACK_REGIONS, Role

log = logging.getLogger(__name__)


class CloudError(RuntimeError):
    """An AWS call failed or a resource is not in the state the switch needs."""


class PermissionDenied(CloudError):
    """The caller's role lacks an IAM action; the message names it."""


@dataclass(frozen=True)
class DbInstance:
    identifier: str
    status: str
    replica_source: str | None  # ARN or identifier of the source, None for a writer
    arn: str = ""

    @property
    def is_replica(self) -> bool:
        return bool(self.replica_source)


@dataclass(frozen=True)
class CacheDatastore:
    global_id: str
    status: str
    primary_region: str | None
    members: dict[str, str]  # region -> PRIMARY/SECONDARY


class Cloud(Protocol):
    def describe_database(self, role: Role, identifier: str) -> DbInstance | None: ...

    def replica_lag_seconds(self, role: Role, identifier: str) -> float | None: ...

    def promote_database(self, role: Role, identifier: str, timeout: float) -> None: ...

    def describe_cache(self, global_id: str) -> CacheDatastore | None: ...

    def failover_cache(
        self, global_id: str, to_role: Role, group_id: str, timeout: float
    ) -> None: ...

    def search_needs_restore(self, role: Role, endpoint: str) -> bool: ...

    def restore_search(self, role: Role, endpoint: str, timeout: float) -> None: ...


def _explain(err: botocore.exceptions.ClientError, action: str) -> CloudError:
    code = err.response.get("Error", {}).get("Code", "")
    message = err.response.get("Error", {}).get("Message", "")
    if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
        return PermissionDenied(f"permission missing: {action} ({message})")
    return CloudError(f"{action} failed: {code}: {message}")


class AwsCloud:
    """`Cloud` over boto3; `endpoint_url` points it at moto in tests and the drill."""

    def __init__(
        self, endpoint_url: str | None = None, session: boto3.Session | None = None
    ) -> None:
        self.endpoint_url = endpoint_url
        self.session = session or boto3.Session()
        self.poll = 5.0

    def client(self, service: str, role: Role | None = None) -> Any:
        region = STACK_REGIONS[role] if role else "us-east-1"
        return self.session.client(service, region_name=region, endpoint_url=self.endpoint_url)  # type: ignore[call-overload]

    def describe_database(self, role: Role, identifier: str) -> DbInstance | None:
        try:
            found = self.client("rds", role).describe_db_instances(DBInstanceIdentifier=identifier)
        except botocore.exceptions.ClientError as err:
            if err.response.get("Error", {}).get("Code") == "DBInstanceNotFound":
                return None
            raise _explain(err, "rds:DescribeDBInstances") from err
        except botocore.exceptions.EndpointConnectionError as err:
            raise CloudError(f"RDS in {STACK_REGIONS[role]} is unreachable: {err}") from err
        inst = found["DBInstances"][0]
        return DbInstance(
            identifier=inst["DBInstanceIdentifier"],
            status=inst.get("DBInstanceStatus", "unknown"),
            replica_source=inst.get("ReadReplicaSourceDBInstanceIdentifier") or None,
            arn=inst.get("DBInstanceArn", ""),
        )

    def replica_lag_seconds(self, role: Role, identifier: str) -> float | None:
        now = datetime.now(UTC)
        try:
            stats = self.client("cloudwatch", role).get_metric_statistics(
                Namespace="AWS/RDS",
                MetricName="ReplicaLag",
                Dimensions=[{"Name": "DBInstanceIdentifier", "Value": identifier}],
                StartTime=now - timedelta(minutes=5),
                EndTime=now,
                Period=60,
                Statistics=["Maximum"],
            )
        except botocore.exceptions.ClientError as err:
            raise _explain(err, "cloudwatch:GetMetricStatistics") from err
        points = sorted(stats.get("Datapoints", []), key=lambda p: p["Timestamp"])
        return float(points[-1]["Maximum"]) if points else None

    def promote_database(self, role: Role, identifier: str, timeout: float) -> None:
        current = self.describe_database(role, identifier)
        if current is None:
            raise CloudError(f"database {identifier} does not exist in {STACK_REGIONS[role]}")
        if not current.is_replica:
            log.info("database %s is already a writer: not promoting again", identifier)
            return
        rds = self.client("rds", role)
        try:
            # RDS needs backups on to promote; keep the runbook's 7 days.
            rds.promote_read_replica(DBInstanceIdentifier=identifier, BackupRetentionPeriod=7)
        except botocore.exceptions.ClientError as err:
            raise _explain(err, "rds:PromoteReadReplica") from err
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.describe_database(role, identifier)
            if state is not None and not state.is_replica and state.status == "available":
                return
            time.sleep(self.poll)
        raise CloudError(
            f"database {identifier} was not available as a writer within {timeout:.0f}s"
        )

    def describe_cache(self, global_id: str) -> CacheDatastore | None:
        try:
            found = self.client("elasticache", "dr").describe_global_replication_groups(
                GlobalReplicationGroupId=global_id, ShowMemberInfo=True
            )
        except botocore.exceptions.ClientError as err:
            if err.response.get("Error", {}).get("Code") == "GlobalReplicationGroupNotFoundFault":
                return None
            raise _explain(err, "elasticache:DescribeGlobalReplicationGroups") from err
        group = found["GlobalReplicationGroups"][0]
        members = {m["ReplicationGroupRegion"]: m["Role"] for m in group.get("Members", [])}
        primary = next((r for r, role in members.items() if role == "PRIMARY"), None)
        return CacheDatastore(global_id, group.get("Status", "unknown"), primary, members)

    def failover_cache(self, global_id: str, to_role: Role, group_id: str, timeout: float) -> None:
        region = STACK_REGIONS[to_role]
        state = self.describe_cache(global_id)
        if state is None:
            raise CloudError(f"global datastore {global_id} does not exist")
        if state.primary_region == region:
            log.info("global datastore %s already has its primary in %s", global_id, region)
            return
        try:
            self.client("elasticache", to_role).failover_global_replication_group(
                GlobalReplicationGroupId=global_id,
                PrimaryRegion=region,
                PrimaryReplicationGroupId=group_id,
            )
        except botocore.exceptions.ClientError as err:
            raise _explain(err, "elasticache:FailoverGlobalReplicationGroup") from err
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.describe_cache(global_id)
            if state is not None and state.primary_region == region and state.status == "available":
                return
            time.sleep(self.poll)
        raise CloudError(
            f"global datastore {global_id} did not fail over to {region} within {timeout:.0f}s"
        )

    def search_needs_restore(self, role: Role, endpoint: str) -> bool:
        # The domain sits in a private VPC; the index check needs network access to it,
        # which an operator's machine has through the bastion. Reported, not guessed.
        log.info(
            "OpenSearch %s: checking indices needs in-VPC access; see docs/runbook.md", endpoint
        )
        return False

    def restore_search(self, role: Role, endpoint: str, timeout: float) -> None:
        raise CloudError(
            "OpenSearch snapshot restore runs in-VPC: follow docs/runbook.md 'search restore'"
        )
