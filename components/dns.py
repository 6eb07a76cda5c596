"""The shared DNS names, declared by exactly one owner stack.

api.<zone> uses Route53 failover routing with a health check per region, so traffic leaves a
dead region before anyone runs a command. A flip swaps the *targets* of the PRIMARY and
SECONDARY records, never their roles: Route53 rejects two PRIMARY records for one name, and a
role swap would need a delete-then-create window with no answer at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.contract import (
    API_PRIMARY_SET_ID,
    API_SECONDARY_SET_ID,
    DNS_TTL,
    HEALTH_PATH,
    SHARED_CNAMES,
    DnsName,
    Role,
    other_role,
)


@dataclass(frozen=True)
class RegionEndpoints:
    gateway: pulumi.Input[str]
    db: pulumi.Input[str]
    redis: pulumi.Input[str]
    search: pulumi.Input[str]

    def for_label(self, label: str) -> pulumi.Input[str]:
        return {DnsName.DB: self.db, DnsName.REDIS: self.redis, DnsName.SEARCH: self.search}[label]


@dataclass(frozen=True)
class DnsArgs:
    zone_id: str
    zone_name: str
    active: Role
    endpoints: dict[Role, RegionEndpoints]
    provider: aws.Provider


class Dns(pulumi.ComponentResource):
    records: dict[str, aws.route53.Record]

    def __init__(
        self, name: str, args: DnsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("llm:platform:Dns", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        active, standby = args.active, other_role(args.active)
        health = {
            role: aws.route53.HealthCheck(
                f"{name}-{role}-gateway-health",
                fqdn=args.endpoints[role].gateway,
                port=80,
                type="HTTP",
                resource_path=HEALTH_PATH,
                failure_threshold=3,
                request_interval=10,
                tags={"Name": f"llm-marketplace-{role}-gateway"},
                opts=child,
            )
            for role in (active, standby)
        }
        api = f"{DnsName.API}.{args.zone_name}"
        self.records = {}
        for set_id, failover_type, role in (
            (API_PRIMARY_SET_ID, "PRIMARY", active),
            (API_SECONDARY_SET_ID, "SECONDARY", standby),
        ):
            self.records[set_id] = aws.route53.Record(
                f"{name}-{set_id}",
                zone_id=args.zone_id,
                name=api,
                type="CNAME",
                ttl=DNS_TTL,
                set_identifier=set_id,
                failover_routing_policies=[{"type": failover_type}],
                health_check_id=health[role].id,
                records=[args.endpoints[role].gateway],
                opts=child,
            )
        for label in SHARED_CNAMES:
            self.records[label] = aws.route53.Record(
                f"{name}-{label}",
                zone_id=args.zone_id,
                name=f"{label}.{args.zone_name}",
                type="CNAME",
                ttl=DNS_TTL,
                records=[args.endpoints[active].for_label(label)],
                opts=child,
            )
        self.register_outputs({"records": {k: r.fqdn for k, r in self.records.items()}})
