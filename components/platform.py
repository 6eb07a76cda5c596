"""One region of the platform, wired together with an explicit provider for that region."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import contract
from components.cache import Cache, CacheArgs
from components.cluster import Cluster, ClusterArgs
from components.contract import Output, Role
from components.database import Database, DatabaseArgs
from components.dns import Dns, DnsArgs, RegionEndpoints
from components.network import Network, NetworkArgs
from components.operator import FailoverOperator, FailoverOperatorArgs, OperatorScope
from components.search import Search, SearchArgs
from components.settings import Settings
from components.workloads import Workloads, WorkloadsArgs


def db_identifier(role: Role, generation: int) -> str:
    base = f"{contract.PROJECT}-{role}-db"
    return base if generation == 1 else f"{base}-g{generation}"


def snapshot_bucket_name(role: Role, settings: Settings) -> str:
    org = re.sub(r"[^a-z0-9-]", "-", settings.stack_ref_org.lower())
    return f"{contract.PROJECT}-search-snapshots-{contract.STACK_REGIONS[role]}-{org}"[:63]


@dataclass(frozen=True)
class RegionalPlatformArgs:
    settings: Settings


class RegionalPlatform(pulumi.ComponentResource):
    outputs: dict[str, pulumi.Input[object]]

    def __init__(
        self, name: str, args: RegionalPlatformArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("llm:platform:RegionalPlatform", name, None, opts)
        s = args.settings
        provider = aws.Provider(
            f"{name}-aws",
            region=s.region,
            default_tags={"tags": {"project": contract.PROJECT, "stack": s.stack}},
            opts=pulumi.ResourceOptions(parent=self),
        )
        child = pulumi.ResourceOptions(parent=self)
        needs_peer = (
            s.replicate_from is not None or s.is_dns_owner or s.cache_global_owner != s.role
        )
        peer = (
            pulumi.StackReference(f"{name}-peer", s.stack_ref(s.peer), opts=child)
            if needs_peer
            else None
        )
        cluster_name = f"{contract.PROJECT}-{s.role}"
        network = Network(
            f"{name}-network",
            NetworkArgs(
                region=s.region, cidr=s.vpc_cidr, cluster_name=cluster_name, provider=provider
            ),
            child,
        )
        cluster = Cluster(
            f"{name}-cluster",
            ClusterArgs(
                cluster_name=cluster_name,
                region=s.region,
                version=s.eks_version,
                private_subnet_ids=network.private_subnet_ids,
                public_subnet_ids=network.public_subnet_ids,
                node_instance_type=s.node_instance_type,
                node_count=s.node_count,
                provider=provider,
            ),
            child,
        )
        replica_source = (
            peer.require_output(Output.DB_ARN) if peer is not None and s.replicate_from else None
        )
        database = Database(
            f"{name}-database",
            DatabaseArgs(
                identifier=db_identifier(s.role, s.db_generation),
                region=s.region,
                vpc_id=network.vpc.id,
                subnet_ids=network.private_subnet_ids,
                allowed_security_group_id=cluster.node_security_group_id,
                instance_class=s.db_instance_class,
                allocated_storage=s.db_allocated_storage,
                engine_version=s.db_engine_version,
                backup_retention_days=s.db_backup_retention_days,
                db_name=s.db_name,
                username=s.db_username,
                password=s.db_password,
                replicate_source_arn=replica_source,
                provider=provider,
                generation=s.db_generation,
            ),
            child,
        )
        join_global = (
            peer.require_output(Output.CACHE_GLOBAL_ID)
            if peer is not None and s.cache_global_owner != s.role
            else None
        )
        cache = Cache(
            f"{name}-cache",
            CacheArgs(
                group_id=f"{contract.PROJECT}-{s.role}",
                vpc_id=network.vpc.id,
                subnet_ids=network.private_subnet_ids,
                allowed_security_group_id=cluster.node_security_group_id,
                node_type=s.cache_node_type,
                join_global_id=join_global,
                provider=provider,
            ),
            child,
        )
        replicate_snapshots = s.role == "primary" and s.snapshot_replication
        search = Search(
            f"{name}-search",
            SearchArgs(
                domain_name=f"llm-mkt-{s.role}",
                bucket_name=snapshot_bucket_name(s.role, s),
                vpc_id=network.vpc.id,
                subnet_ids=network.private_subnet_ids,
                allowed_security_group_id=cluster.node_security_group_id,
                instance_type=s.search_instance_type,
                engine_version=s.search_engine_version,
                replicate_to_bucket_arn=(
                    f"arn:aws:s3:::{snapshot_bucket_name(s.peer, s)}"
                    if replicate_snapshots
                    else None
                ),
                provider=provider,
            ),
            child,
        )
        workloads = Workloads(
            f"{name}-workloads",
            WorkloadsArgs(
                region=s.region,
                active=s.is_active,
                active_replicas=s.active_replicas,
                standby_replicas=s.standby_replicas,
                image_registry=s.image_registry,
                image_tag=s.image_tag,
                db_host=database.instance.address,
                db_port=database.instance.port,
                db_name=s.db_name,
                db_username=s.db_username,
                db_password=s.db_password,
                redis_host=cache.group.primary_endpoint_address,
                search_host=search.domain.endpoint,
                provider=cluster.k8s_provider,
            ),
            child,
        )
        own = RegionEndpoints(
            gateway=workloads.gateway_hostname,
            db=database.instance.address,
            redis=cache.group.primary_endpoint_address,
            search=search.domain.endpoint,
        )
        record_fqdns: dict[str, pulumi.Output[str]] = {}
        if s.is_dns_owner and peer is not None and s.hosted_zone_id is not None:
            theirs = RegionEndpoints(
                gateway=peer.require_output(Output.GATEWAY_HOSTNAME),
                db=peer.require_output(Output.DB_ADDRESS),
                redis=peer.require_output(Output.CACHE_ENDPOINT),
                search=peer.require_output(Output.SEARCH_ENDPOINT),
            )
            # Route53 is a global service: its API answers the same from any region, so the
            # owner's own regional provider is used on purpose; a flip then needs no API of
            # the region that failed.
            dns = Dns(
                f"{name}-dns",
                DnsArgs(
                    zone_id=s.hosted_zone_id,
                    zone_name=s.zone_name,
                    active=s.active_region,
                    endpoints={s.role: own, s.peer: theirs},
                    provider=provider,
                ),
                child,
            )
            record_fqdns = {label: rec.fqdn for label, rec in dns.records.items()}

        self.outputs = {
            Output.ROLE: s.role,
            Output.REGION: s.region,
            Output.ACTIVE_REGION: s.active_region,
            Output.DB_IDENTIFIER: database.instance.identifier,
            Output.DB_ARN: database.instance.arn,
            Output.DB_ENDPOINT: database.instance.endpoint,
            Output.DB_ADDRESS: database.instance.address,
            Output.DB_PORT: database.instance.port,
            Output.DB_NAME: s.db_name,
            Output.DB_REPLICA_SOURCE: replica_source if replica_source is not None else "",
            Output.CACHE_GROUP_ID: cache.group.id,
            Output.CACHE_ENDPOINT: cache.group.primary_endpoint_address,
            Output.CACHE_GLOBAL_ID: cache.global_datastore_id,
            Output.SEARCH_DOMAIN: search.domain.domain_name,
            Output.SEARCH_ENDPOINT: search.domain.endpoint,
            Output.SNAPSHOT_BUCKET: search.bucket.bucket,
            Output.SNAPSHOT_ROLE_ARN: search.snapshot_role.arn,
            Output.GATEWAY_HOSTNAME: workloads.gateway_hostname,
            Output.CLUSTER_NAME: cluster.cluster.name,
            Output.DNS_OWNER: s.dns_owner,
            Output.HOSTED_ZONE_ID: s.hosted_zone_id or "",
            Output.DNS_RECORDS: record_fqdns,
        }
        if s.role == "dr":
            # The role the switch runs as: one per account (IAM is global), declared by the
            # stack that survives a loss of the primary region.
            operator = FailoverOperator(
                f"{name}-operator",
                FailoverOperatorArgs(
                    scope=OperatorScope(
                        databases={
                            contract.STACK_REGIONS[r]: db_identifier(r, 1) for r in contract.ROLES
                        },
                        global_datastore_suffix=contract.PROJECT,
                        search_domains={
                            contract.STACK_REGIONS[r]: f"llm-mkt-{r}" for r in contract.ROLES
                        },
                        # Search(f"{role}-search").snapshot_role, as each stack names it.
                        snapshot_role_prefixes=tuple(
                            f"{r}-search-snapshot-role-" for r in contract.ROLES
                        ),
                    ),
                    provider=provider,
                ),
                child,
            )
            self.outputs[Output.OPERATOR_ROLE_ARN] = operator.role.arn
        self.register_outputs(self.outputs)
