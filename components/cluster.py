"""EKS control plane, managed node group, IRSA, and a Kubernetes provider for it."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.iam import service_assume_role_policy

# Root CA thumbprint of the EKS OIDC issuers (same in every commercial region).
EKS_OIDC_THUMBPRINT = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280"


@dataclass(frozen=True)
class ClusterArgs:
    cluster_name: str
    region: str
    version: str
    private_subnet_ids: list[pulumi.Output[str]]
    public_subnet_ids: list[pulumi.Output[str]]
    node_instance_type: str
    node_count: int
    provider: aws.Provider


def kubeconfig(cluster_name: str, endpoint: str, ca_data: str, region: str) -> str:
    """A kubeconfig that authenticates with `aws eks get-token` for this region."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": cluster_name,
                    "cluster": {"server": endpoint, "certificate-authority-data": ca_data},
                }
            ],
            "contexts": [
                {"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}
            ],
            "current-context": cluster_name,
            "users": [
                {
                    "name": cluster_name,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": [
                                "eks", "get-token", "--cluster-name", cluster_name,
                                "--region", region,
                            ],
                        }
                    },
                }
            ],
        }
    )  # fmt: skip


class Cluster(pulumi.ComponentResource):
    cluster: aws.eks.Cluster
    node_security_group_id: pulumi.Output[str]
    k8s_provider: k8s.Provider

    def __init__(
        self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("llm:platform:Cluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        cluster_role = aws.iam.Role(
            f"{name}-control-plane-role",
            assume_role_policy=service_assume_role_policy("eks.amazonaws.com"),
            opts=child,
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-control-plane-policy",
            role=cluster_role.name,
            policy_arn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",
            opts=child,
        )
        self.cluster = aws.eks.Cluster(
            f"{name}-eks",
            name=args.cluster_name,
            version=args.version,
            role_arn=cluster_role.arn,
            vpc_config={
                "subnet_ids": [*args.private_subnet_ids, *args.public_subnet_ids],
                "endpoint_private_access": True,
                "endpoint_public_access": True,
            },
            access_config={"authentication_mode": "API_AND_CONFIG_MAP"},
            opts=child,
        )
        node_role = aws.iam.Role(
            f"{name}-node-role",
            assume_role_policy=service_assume_role_policy("ec2.amazonaws.com"),
            opts=child,
        )
        for short, arn in (
            ("worker", "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy"),
            ("cni", "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"),
            ("ecr", "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"),
        ):
            aws.iam.RolePolicyAttachment(
                f"{name}-node-{short}-policy", role=node_role.name, policy_arn=arn, opts=child
            )
        aws.eks.NodeGroup(
            f"{name}-nodes",
            cluster_name=self.cluster.name,
            node_role_arn=node_role.arn,
            subnet_ids=args.private_subnet_ids,
            instance_types=[args.node_instance_type],
            scaling_config={
                "desired_size": args.node_count,
                "min_size": args.node_count,
                "max_size": args.node_count * 2,
            },
            opts=child,
        )
        issuer = self.cluster.identities.apply(lambda ids: ids[0].oidcs[0].issuer or "")  # type: ignore[index]
        aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=issuer,
            client_id_lists=["sts.amazonaws.com"],
            thumbprint_lists=[EKS_OIDC_THUMBPRINT],
            opts=child,
        )
        self.node_security_group_id = self.cluster.vpc_config.cluster_security_group_id
        config = pulumi.Output.all(
            self.cluster.name, self.cluster.endpoint, self.cluster.certificate_authority.data
        ).apply(lambda a: kubeconfig(a[0], a[1], a[2] or "", args.region))
        self.k8s_provider = k8s.Provider(
            f"{name}-k8s", kubeconfig=config, opts=pulumi.ResourceOptions(parent=self)
        )
        self.register_outputs({"cluster_name": self.cluster.name})
