"""Names shared by the Pulumi program and the failover orchestrator.

The program exports outputs under these names and reads config under these keys;
`failover/` imports the same constants, so a rename cannot silently break the switch.
"""

from __future__ import annotations

from typing import Final, Literal

PROJECT: Final = "llm-marketplace"

Role = Literal["primary", "dr"]
ROLES: Final[tuple[Role, ...]] = ("primary", "dr")

STACK_REGIONS: Final[dict[Role, str]] = {"primary": "us-east-1", "dr": "us-west-2"}


def other_role(role: Role) -> Role:
    return "dr" if role == "primary" else "primary"


class ConfigKey:
    """Project config keys (namespace `llm-marketplace:` unless noted)."""

    AWS_REGION: Final = "aws:region"
    ROLE: Final = "role"
    ACTIVE_REGION: Final = "active_region"
    REPLICATE_FROM: Final = "replicate_from"
    DNS_OWNER: Final = "dns_owner"
    ZONE_NAME: Final = "zone_name"
    HOSTED_ZONE_ID: Final = "hosted_zone_id"
    STACK_REF_ORG: Final = "stack_ref_org"
    VPC_CIDR_PRIMARY: Final = "vpc_cidr_primary"
    VPC_CIDR_DR: Final = "vpc_cidr_dr"
    DB_PASSWORD: Final = "db_password"
    DB_USERNAME: Final = "db_username"
    DB_NAME: Final = "db_name"
    DB_INSTANCE_CLASS: Final = "db_instance_class"
    DB_ALLOCATED_STORAGE: Final = "db_allocated_storage"
    DB_ENGINE_VERSION: Final = "db_engine_version"
    DB_BACKUP_RETENTION_DAYS: Final = "db_backup_retention_days"
    DB_GENERATION: Final = "db_generation"
    SNAPSHOT_REPLICATION: Final = "snapshot_replication"
    CACHE_NODE_TYPE: Final = "cache_node_type"
    CACHE_GLOBAL_OWNER: Final = "cache_global_owner"
    SEARCH_INSTANCE_TYPE: Final = "search_instance_type"
    SEARCH_ENGINE_VERSION: Final = "search_engine_version"
    EKS_VERSION: Final = "eks_version"
    NODE_INSTANCE_TYPE: Final = "node_instance_type"
    NODE_COUNT: Final = "node_count"
    ACTIVE_REPLICAS: Final = "active_replicas"
    STANDBY_REPLICAS: Final = "standby_replicas"
    IMAGE_REGISTRY: Final = "image_registry"
    IMAGE_TAG: Final = "image_tag"


class Output:
    """Stack output names."""

    ROLE: Final = "role"
    REGION: Final = "region"
    ACTIVE_REGION: Final = "active_region"
    DB_IDENTIFIER: Final = "db_identifier"
    DB_ARN: Final = "db_arn"
    DB_ENDPOINT: Final = "db_endpoint"
    DB_ADDRESS: Final = "db_address"
    DB_PORT: Final = "db_port"
    DB_NAME: Final = "db_name"
    DB_REPLICA_SOURCE: Final = "db_replica_source"
    CACHE_GROUP_ID: Final = "cache_replication_group_id"
    CACHE_ENDPOINT: Final = "cache_primary_endpoint"
    CACHE_GLOBAL_ID: Final = "cache_global_datastore_id"
    SEARCH_DOMAIN: Final = "search_domain_name"
    SEARCH_ENDPOINT: Final = "search_endpoint"
    SNAPSHOT_BUCKET: Final = "search_snapshot_bucket"
    SNAPSHOT_ROLE_ARN: Final = "search_snapshot_role_arn"
    GATEWAY_HOSTNAME: Final = "gateway_hostname"
    CLUSTER_NAME: Final = "cluster_name"
    DNS_OWNER: Final = "dns_owner"
    HOSTED_ZONE_ID: Final = "hosted_zone_id"
    DNS_RECORDS: Final = "dns_records"
    OPERATOR_ROLE_ARN: Final = "failover_operator_role_arn"


# Service names and the shared DNS names, as the runbook uses them.
SERVICES: Final[tuple[str, ...]] = (
    "publishing-service",
    "discovery-service",
    "consumption-service",
    "admin-service",
)
APP_NAMESPACE: Final = "llm-marketplace"
APP_PORT: Final = 3001
HEALTH_PATH: Final = "/health"
DNS_TTL: Final = 60


class DnsName:
    """Labels under the zone of the shared names (api.<zone>, db.<zone>, ...)."""

    API: Final = "api"
    DB: Final = "db"
    REDIS: Final = "redis"
    SEARCH: Final = "search"


SHARED_CNAMES: Final[tuple[str, ...]] = (DnsName.DB, DnsName.REDIS, DnsName.SEARCH)

# Route53 failover set identifiers: the records keep their roles; a flip swaps targets.
API_PRIMARY_SET_ID: Final = "api-primary-slot"
API_SECONDARY_SET_ID: Final = "api-secondary-slot"

# The runbook's tables, counted before and after a switch.
RUNBOOK_TABLES: Final[tuple[str, ...]] = ("services", "users", "api_keys")

# The failover switch's AWS actions, each with the resource type AWS authorizes it against
# (Service Authorization Reference; "*": the action has no resource-level permissions): the
# boto3 calls of failover/cloud.py, and the SigV4-signed OpenSearch requests of
# failover/search.py (one es:ESHttp<Method> per HTTP method; registering the snapshot
# repository passes the snapshot role to OpenSearch). The dr stack's operator role is granted
# exactly these, scoped to the project's resources (components/operator.py).
OPERATOR_ROLE_NAME: Final = "failover-operator"
OPERATOR_ACTIONS: Final[dict[str, str]] = {
    "rds:DescribeDBInstances": "rds:db",
    "rds:PromoteReadReplica": "rds:db",
    "cloudwatch:GetMetricStatistics": "*",
    "elasticache:DescribeGlobalReplicationGroups": "elasticache:globalreplicationgroup",
    "elasticache:FailoverGlobalReplicationGroup": "elasticache:globalreplicationgroup",
    "es:ESHttpGet": "es:domain",
    "es:ESHttpPut": "es:domain",
    "es:ESHttpPost": "es:domain",
    "iam:PassRole": "iam:role",
}
