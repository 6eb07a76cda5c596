"""ElastiCache Redis, joined across regions in a Global Datastore.

The region named by `cache_global_owner` created the datastore and declares the
GlobalReplicationGroup; the other region's group joins as a secondary. A Global Datastore
failover (done by the switch) moves the primary outside Pulumi, so the program ignores
`primaryReplicationGroupId`: a changed value would otherwise force a replacement of the
whole datastore.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class CacheArgs:
    group_id: str
    vpc_id: pulumi.Input[str]
    subnet_ids: list[pulumi.Output[str]]
    allowed_security_group_id: pulumi.Input[str]
    node_type: str
    # None: this region creates and owns the global datastore.
    join_global_id: pulumi.Input[str] | None
    provider: aws.Provider


class Cache(pulumi.ComponentResource):
    group: aws.elasticache.ReplicationGroup
    global_datastore_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: CacheArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("llm:platform:Cache", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        subnets = aws.elasticache.SubnetGroup(
            f"{name}-subnets", subnet_ids=args.subnet_ids, opts=child
        )
        security_group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            vpc_id=args.vpc_id,
            description="Redis from the EKS nodes only",
            ingress=[
                {
                    "protocol": "tcp",
                    "from_port": 6379,
                    "to_port": 6379,
                    "security_groups": [args.allowed_security_group_id],
                }
            ],
            egress=[],
            opts=child,
        )
        owner = args.join_global_id is None
        self.group = aws.elasticache.ReplicationGroup(
            f"{name}-group",
            replication_group_id=args.group_id,
            description=f"LLM-Marketplace cache {args.group_id}",
            engine="redis" if owner else None,
            engine_version="7.1" if owner else None,
            node_type=args.node_type if owner else None,
            num_cache_clusters=2,
            automatic_failover_enabled=True,
            multi_az_enabled=True,
            at_rest_encryption_enabled=True,
            transit_encryption_enabled=True,
            subnet_group_name=subnets.name,
            security_group_ids=[security_group.id],
            global_replication_group_id=args.join_global_id,
            opts=child,
        )
        if owner:
            datastore = aws.elasticache.GlobalReplicationGroup(
                f"{name}-global",
                global_replication_group_id_suffix="llm-marketplace",
                primary_replication_group_id=self.group.id,
                global_replication_group_description="LLM-Marketplace cross-region cache",
                opts=pulumi.ResourceOptions.merge(
                    child,
                    pulumi.ResourceOptions(
                        ignore_changes=["primaryReplicationGroupId"], protect=True
                    ),
                ),
            )
            self.global_datastore_id = datastore.global_replication_group_id
        else:
            self.global_datastore_id = pulumi.Output.from_input(args.join_global_id).apply(str)
        self.register_outputs(
            {"group_id": self.group.id, "global_datastore_id": self.global_datastore_id}
        )
