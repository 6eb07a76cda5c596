"""OpenSearch domain per region, and the S3 bucket its snapshots go to.

The primary-role stack replicates its snapshot bucket into the DR region's bucket, so that
the runbook's Phase 2 restore has data to restore from when us-east-1 is gone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.iam import service_assume_role_policy


@dataclass(frozen=True)
class SearchArgs:
    domain_name: str
    bucket_name: str
    vpc_id: pulumi.Input[str]
    subnet_ids: list[pulumi.Output[str]]
    allowed_security_group_id: pulumi.Input[str]
    instance_type: str
    engine_version: str
    # ARN of the bucket in the other region to replicate snapshots into, or None.
    replicate_to_bucket_arn: str | None
    provider: aws.Provider


def _snapshot_role_policy(bucket_arn: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [bucket_arn]},
                {
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                    "Resource": [f"{bucket_arn}/*"],
                },
            ],
        }
    )


def _replication_policy(source_arn: str, dest_arn: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["s3:GetReplicationConfiguration", "s3:ListBucket"],
                    "Resource": [source_arn],
                },
                {
                    "Effect": "Allow",
                    "Action": ["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl"],
                    "Resource": [f"{source_arn}/*"],
                },
                {
                    "Effect": "Allow",
                    "Action": ["s3:ReplicateObject", "s3:ReplicateDelete"],
                    "Resource": [f"{dest_arn}/*"],
                },
            ],
        }
    )


class Search(pulumi.ComponentResource):
    domain: aws.opensearch.Domain
    bucket: aws.s3.Bucket
    snapshot_role: aws.iam.Role

    def __init__(
        self, name: str, args: SearchArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("llm:platform:Search", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        self.bucket = aws.s3.Bucket(f"{name}-snapshots", bucket=args.bucket_name, opts=child)
        versioning = aws.s3.BucketVersioning(
            f"{name}-snapshots-versioning",
            bucket=self.bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-snapshots-encryption",
            bucket=self.bucket.id,
            # SSE-S3, not SSE-KMS: S3 replicates KMS-encrypted objects only with a replica key
            # in the destination region, which the primary stack cannot name before dr exists.
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            opts=child,
        )
        aws.s3.BucketPublicAccessBlock(
            f"{name}-snapshots-private",
            bucket=self.bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        bucket_arn = f"arn:aws:s3:::{args.bucket_name}"
        self.snapshot_role = aws.iam.Role(
            f"{name}-snapshot-role",
            assume_role_policy=service_assume_role_policy("es.amazonaws.com"),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-snapshot-policy",
            role=self.snapshot_role.id,
            policy=_snapshot_role_policy(bucket_arn),
            opts=child,
        )
        if args.replicate_to_bucket_arn is not None:
            replication_role = aws.iam.Role(
                f"{name}-replication-role",
                assume_role_policy=service_assume_role_policy("s3.amazonaws.com"),
                opts=child,
            )
            aws.iam.RolePolicy(
                f"{name}-replication-policy",
                role=replication_role.id,
                policy=_replication_policy(bucket_arn, args.replicate_to_bucket_arn),
                opts=child,
            )
            aws.s3.BucketReplicationConfig(
                f"{name}-snapshots-replication",
                bucket=self.bucket.id,
                role=replication_role.arn,
                rules=[
                    {
                        "id": "snapshots-to-dr",
                        "status": "Enabled",
                        "destination": {"bucket": args.replicate_to_bucket_arn},
                    }
                ],
                opts=pulumi.ResourceOptions.merge(
                    child, pulumi.ResourceOptions(depends_on=[versioning])
                ),
            )
        security_group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            vpc_id=args.vpc_id,
            description="OpenSearch HTTPS from the EKS nodes only",
            ingress=[
                {
                    "protocol": "tcp",
                    "from_port": 443,
                    "to_port": 443,
                    "security_groups": [args.allowed_security_group_id],
                }
            ],
            egress=[],
            opts=child,
        )
        self.domain = aws.opensearch.Domain(
            f"{name}-domain",
            domain_name=args.domain_name,
            engine_version=args.engine_version,
            cluster_config={
                "instance_type": args.instance_type,
                "instance_count": 3,
                "zone_awareness_enabled": True,
                "zone_awareness_config": {"availability_zone_count": 3},
            },
            ebs_options={"ebs_enabled": True, "volume_size": 100, "volume_type": "gp3"},
            encrypt_at_rest={"enabled": True},
            node_to_node_encryption={"enabled": True},
            domain_endpoint_options={
                "enforce_https": True,
                "tls_security_policy": "Policy-Min-TLS-1-2-2019-07",
            },
            vpc_options={
                "subnet_ids": args.subnet_ids,
                "security_group_ids": [security_group.id],
            },
            opts=child,
        )
        self.register_outputs(
            {"domain_name": self.domain.domain_name, "endpoint": self.domain.endpoint}
        )
