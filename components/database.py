"""RDS PostgreSQL: a writer, or a cross-region read replica of the other stack's writer.

The role comes from the stack's own `replicate_from`, never from `active_region`: the failed
region's database must never be converted in place. After a promotion the switch clears
`replicate_from`, and this component then declares a writer with the same identifier, key,
subnet group and parameter group, so the promoted instance is updated, not replaced.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class DatabaseArgs:
    identifier: str
    region: str
    vpc_id: pulumi.Input[str]
    subnet_ids: list[pulumi.Output[str]]
    allowed_security_group_id: pulumi.Input[str]
    instance_class: str
    allocated_storage: int
    engine_version: str
    backup_retention_days: int
    db_name: str
    username: str
    password: pulumi.Input[str]
    # ARN of the other region's writer when this database is a read replica, else None.
    replicate_source_arn: pulumi.Input[str] | None
    provider: aws.Provider
    # Bumped to build a new instance beside the old one (failback rebuilds the old primary).
    generation: int = 1


class Database(pulumi.ComponentResource):
    instance: aws.rds.Instance
    kms_key: aws.kms.Key

    def __init__(
        self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("llm:platform:Database", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        # A cross-region replica must be encrypted with a key of its own region.
        self.kms_key = aws.kms.Key(
            f"{name}-kms",
            description=f"RDS storage key for {args.identifier} ({args.region})",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(protect=True)),
        )
        subnet_group = aws.rds.SubnetGroup(
            f"{name}-subnets", subnet_ids=args.subnet_ids, opts=child
        )
        params = aws.rds.ParameterGroup(
            f"{name}-params",
            family=f"postgres{args.engine_version.split('.')[0]}",
            parameters=[
                {"name": "rds.force_ssl", "value": "1"},
                {"name": "log_min_duration_statement", "value": "1000"},
            ],
            opts=child,
        )
        security_group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            vpc_id=args.vpc_id,
            description="PostgreSQL from the EKS nodes only",
            ingress=[
                {
                    "protocol": "tcp",
                    "from_port": 5432,
                    "to_port": 5432,
                    "security_groups": [args.allowed_security_group_id],
                }
            ],
            egress=[],
            opts=child,
        )
        is_replica = args.replicate_source_arn is not None
        # A new generation is a new resource, never an in-place conversion. The old one is
        # protected, and retained in AWS if it is ever removed from the program.
        instance_name = (
            f"{name}-instance" if args.generation == 1 else f"{name}-instance-g{args.generation}"
        )
        self.instance = aws.rds.Instance(
            instance_name,
            identifier=args.identifier,
            engine="postgres",
            engine_version=args.engine_version,
            instance_class=args.instance_class,
            allocated_storage=args.allocated_storage,
            storage_type="gp3",
            storage_encrypted=True,
            kms_key_id=self.kms_key.arn,
            db_subnet_group_name=subnet_group.name,
            parameter_group_name=params.name,
            vpc_security_group_ids=[security_group.id],
            multi_az=True,
            publicly_accessible=False,
            deletion_protection=True,
            backup_retention_period=args.backup_retention_days,
            copy_tags_to_snapshot=True,
            skip_final_snapshot=False,
            final_snapshot_identifier=f"{args.identifier}-final",
            performance_insights_enabled=True,
            performance_insights_kms_key_id=self.kms_key.arn,
            # A replica inherits the database, user and password from its source.
            replicate_source_db=args.replicate_source_arn,
            db_name=None if is_replica else args.db_name,
            username=None if is_replica else args.username,
            password=None if is_replica else args.password,
            opts=pulumi.ResourceOptions.merge(
                child,
                pulumi.ResourceOptions(
                    protect=True,
                    retain_on_delete=True,
                    # Both force a replacement in the provider. A promoted replica inherited
                    # them from its source, so declaring them on the new writer must never
                    # replace the only database that has the data.
                    ignore_changes=["dbName", "username"],
                ),
            ),
        )
        self.register_outputs(
            {
                "identifier": self.instance.identifier,
                "arn": self.instance.arn,
                "address": self.instance.address,
            }
        )
