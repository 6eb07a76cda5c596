"""The cloud actions of a switch: RDS promotion, the cache Global Datastore, OpenSearch.

`Cloud` is what the orchestration needs; `AwsCloud` does it with boto3 (tested against moto
in server mode and botocore's Stubber), and the drill binds the same protocol to its lab.
Every action is idempotent: asking to promote an already-promoted database is a no-op.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import boto3
import botocore.exceptions

from components.contract import STACK_REGIONS, Role
from failover.search import SearchClient, SearchError, restore_latest

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

    def restore_search(
        self, role: Role, endpoint: str, bucket: str, role_arn: str, timeout: float
    ) -> None: ...


_DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")


def _error_of(err: botocore.exceptions.ClientError) -> tuple[str, str]:
    """The error's code and its message on one line.

    When botocore cannot parse an error body in the protocol it expects (an XML error for a
    CBOR client, say), the code is the bare HTTP status and the message the raw body; the
    code and message are then read from the body.
    """
    error = err.response.get("Error", {})
    code, message = str(error.get("Code", "")), str(error.get("Message", ""))
    if code.isdigit():
        inner_code = re.search(r"<Code>([^<]+)</Code>", message)
        inner_message = re.search(r"<Message>([^<]*)</Message>", message)
        code = inner_code.group(1) if inner_code else code
        message = inner_message.group(1) if inner_message else message
    return code, " ".join(message.split())


def _explain(err: botocore.exceptions.ClientError, action: str, resource: str) -> CloudError:
    """One line: the IAM action (and what it was asked on) when access was denied."""
    code, message = _error_of(err)
    if code in _DENIED:
        return PermissionDenied(f"permission missing: {action} on {resource} ({message})")
    return CloudError(f"{action} failed: {code}: {message}")


def _on(resource: str, role: Role) -> str:
    return f"{resource} in {STACK_REGIONS[role]}"


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
            raise _explain(err, "rds:DescribeDBInstances", _on(identifier, role)) from err
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
            raise _explain(
                err, "cloudwatch:GetMetricStatistics", f"ReplicaLag of {_on(identifier, role)}"
            ) from err
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
            raise _explain(err, "rds:PromoteReadReplica", _on(identifier, role)) from err
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
            raise _explain(
                err, "elasticache:DescribeGlobalReplicationGroups", _on(global_id, "dr")
            ) from err
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
            raise _explain(
                err, "elasticache:FailoverGlobalReplicationGroup", _on(global_id, to_role)
            ) from err
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.describe_cache(global_id)
            if state is not None and state.primary_region == region and state.status == "available":
                return
            time.sleep(self.poll)
        raise CloudError(
            f"global datastore {global_id} did not fail over to {region} within {timeout:.0f}s"
        )

    def _search(self, role: Role, endpoint: str) -> SearchClient:
        credentials = self.session.get_credentials()
        url = endpoint if "://" in endpoint else f"https://{endpoint}"
        return SearchClient(url, STACK_REGIONS[role], credentials)

    def search_needs_restore(self, role: Role, endpoint: str) -> bool:
        """True when the domain has no user index: runbook Phase 2 must restore."""
        try:
            return not self._search(role, endpoint).user_indices()
        except SearchError as err:
            raise CloudError(f"OpenSearch {endpoint}: {err}") from err

    def restore_search(
        self, role: Role, endpoint: str, bucket: str, role_arn: str, timeout: float
    ) -> None:
        try:
            snapshot = restore_latest(
                self._search(role, endpoint), bucket, role_arn, timeout, self.poll
            )
        except SearchError as err:
            raise CloudError(f"OpenSearch restore on {endpoint}: {err}") from err
        log.info("restored snapshot %s on %s", snapshot, endpoint)
