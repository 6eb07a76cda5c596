"""VPC per region: three AZs, public and private subnets, one NAT per AZ."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

AZ_SUFFIXES = ("a", "b", "c")


@dataclass(frozen=True)
class NetworkArgs:
    region: str
    cidr: str
    cluster_name: str
    provider: aws.Provider


class Network(pulumi.ComponentResource):
    vpc: aws.ec2.Vpc
    public_subnet_ids: list[pulumi.Output[str]]
    private_subnet_ids: list[pulumi.Output[str]]

    def __init__(
        self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("llm:platform:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        tags = {"Name": name, "llm-marketplace/region": args.region}
        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags=tags,
            opts=child,
        )
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=self.vpc.id, tags=tags, opts=child)
        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt",
            vpc_id=self.vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
            tags=tags,
            opts=child,
        )
        # /20 slices: 3 public then 3 private, leaving room to grow in the /16.
        blocks = list(ipaddress.ip_network(args.cidr).subnets(new_prefix=20))
        cluster_tag = f"kubernetes.io/cluster/{args.cluster_name}"
        self.public_subnet_ids = []
        self.private_subnet_ids = []
        for i, suffix in enumerate(AZ_SUFFIXES):
            az = f"{args.region}{suffix}"
            public = aws.ec2.Subnet(
                f"{name}-public-{suffix}",
                vpc_id=self.vpc.id,
                cidr_block=str(blocks[i]),
                availability_zone=az,
                map_public_ip_on_launch=True,
                tags={**tags, cluster_tag: "shared", "kubernetes.io/role/elb": "1"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{suffix}-rta",
                subnet_id=public.id,
                route_table_id=public_rt.id,
                opts=child,
            )
            eip = aws.ec2.Eip(f"{name}-nat-{suffix}-eip", domain="vpc", tags=tags, opts=child)
            nat = aws.ec2.NatGateway(
                f"{name}-nat-{suffix}",
                allocation_id=eip.id,
                subnet_id=public.id,
                tags=tags,
                opts=child,
            )
            private = aws.ec2.Subnet(
                f"{name}-private-{suffix}",
                vpc_id=self.vpc.id,
                cidr_block=str(blocks[3 + i]),
                availability_zone=az,
                tags={**tags, cluster_tag: "shared", "kubernetes.io/role/internal-elb": "1"},
                opts=child,
            )
            private_rt = aws.ec2.RouteTable(
                f"{name}-private-{suffix}-rt",
                vpc_id=self.vpc.id,
                routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}],
                tags=tags,
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{suffix}-rta",
                subnet_id=private.id,
                route_table_id=private_rt.id,
                opts=child,
            )
            self.public_subnet_ids.append(public.id)
            self.private_subnet_ids.append(private.id)
        self.register_outputs({"vpc_id": self.vpc.id})
