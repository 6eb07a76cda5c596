"""The switch's bindings to the lab: what stands in for RDS, ElastiCache, Route53 and Pulumi.

- LabCloud: promotion is `pg_promote()` on the lab replica; the cache Global Datastore
  failover is a Redis role change. Counts real promotions so a drill can prove "once".
- LabEngine: stack outputs point at the lab's processes; `up` of the DNS owner evaluates the
  real program under Pulumi mocks for the stack's current config (failover.programeval) and
  applies the Route53 records it declares to moto's Route53, so the drill exercises the
  program's own DNS logic. A stack whose region is "down" fails its `up`.
- LabResolver / LabHealth: resolve the shared names through moto's Route53.
"""

from __future__ import annotations

import http.server
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from components.contract import DNS_TTL, PROJECT, ROLES, SERVICES, STACK_REGIONS, Output, Role
from failover import programeval, stackconfig
from failover.cloud import CacheDatastore, CloudError, DbInstance
from failover.engine import EventHandler, UpdateFailed, UpdateResult
from failover.lab.postgres import PgPair, PgServer
from failover.lab.redisproc import RedisPair, RedisServer

log = logging.getLogger(__name__)

LAB_DOMAIN = "lab.internal"
GLOBAL_ID = "lab-llm-marketplace-global"


def lab_host(kind: str, role: Role) -> str:
    return f"{kind}-{role}.{LAB_DOMAIN}"


@dataclass
class Timers:
    """Seconds spent waiting on the lab's databases, DNS and AWS stand-ins."""

    waited: float = 0.0

    def timed(self, call: Callable[[], Any]) -> Any:
        start = time.monotonic()
        try:
            return call()
        finally:
            self.waited += time.monotonic() - start


@dataclass
class Lab:
    """The running lab: which process plays which region."""

    project_dir: Path
    pg: PgPair
    cache: RedisPair
    moto_url: str
    zone_id: str
    zone_name: str
    password: str
    gateways: dict[Role, int]
    pg_by_role: dict[Role, PgServer] = field(default_factory=dict)
    redis_by_role: dict[Role, RedisServer] = field(default_factory=dict)
    down: set[Role] = field(default_factory=set)
    promotions: int = 0
    timers: Timers = field(default_factory=Timers)

    def route53(self) -> Any:
        return boto3.client(
            "route53",
            region_name="us-east-1",
            endpoint_url=self.moto_url,
            aws_access_key_id="lab",
            aws_secret_access_key="lab",
        )

    def host_port(self, host: str) -> tuple[str, int]:
        for role in ROLES:
            if host == lab_host("pg", role):
                return "127.0.0.1", self.pg_by_role[role].port
            if host == lab_host("gw", role):
                return "127.0.0.1", self.gateways[role]
        raise CloudError(f"lab: unknown host {host}")

    def cname(self, fqdn: str, set_id: str | None = None) -> str:
        sets = self.route53().list_resource_record_sets(HostedZoneId=self.zone_id)[
            "ResourceRecordSets"
        ]
        for rrset in sets:
            if (
                rrset["Name"].rstrip(".") == fqdn
                and rrset["Type"] == "CNAME"
                and (set_id is None or rrset.get("SetIdentifier") == set_id)
            ):
                return str(rrset["ResourceRecords"][0]["Value"]).rstrip(".")
        raise CloudError(f"lab Route53: no CNAME for {fqdn}")


class LabCloud:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    def _alive(self, role: Role) -> PgServer:
        server = self.lab.pg_by_role[role]
        if role in self.lab.down or not server.is_running():
            raise CloudError(f"lab: the {role} region's database API is unreachable")
        return server

    def describe_database(self, role: Role, identifier: str) -> DbInstance | None:
        server = self._alive(role)
        in_recovery = self.lab.timers.timed(lambda: self.lab.pg.is_in_recovery(server))
        source = f"{PROJECT}-primary-db" if role == "dr" else f"{PROJECT}-dr-db"
        return DbInstance(identifier, "available", source if in_recovery else None)

    def replica_lag_seconds(self, role: Role, identifier: str) -> float | None:
        writer_role: Role = "primary" if role == "dr" else "dr"
        writer, replica = self.lab.pg_by_role[writer_role], self._alive(role)
        if writer_role in self.lab.down or not writer.is_running():
            return None
        # Like CloudWatch ReplicaLag: how old the newest commit the replica has not replayed is.
        newest = writer.query_one("SELECT coalesce(max(seq), 0) FROM writes")
        replayed = replica.query_one("SELECT coalesce(max(seq), 0) FROM writes")
        if newest == replayed:
            return 0.0
        age = writer.query_one(
            f"SELECT EXTRACT(EPOCH FROM now() - min(written_at)) FROM writes WHERE seq > {int(replayed)}"
        )
        return float(age or 0.0)

    def promote_database(self, role: Role, identifier: str, timeout: float) -> None:
        server = self._alive(role)
        if not self.lab.pg.is_in_recovery(server):
            return
        self.lab.timers.timed(lambda: self.lab.pg.promote(server, timeout=int(timeout)))
        self.lab.promotions += 1

    def describe_cache(self, global_id: str) -> CacheDatastore | None:
        members: dict[str, str] = {}
        for role, server in self.lab.redis_by_role.items():
            if role in self.lab.down or not server.is_running():
                continue
            members[STACK_REGIONS[role]] = (
                "PRIMARY" if self.lab.cache.role(server) == "master" else "SECONDARY"
            )
        primary = next((r for r, m in members.items() if m == "PRIMARY"), None)
        return CacheDatastore(global_id, "available", primary, members)

    def failover_cache(self, global_id: str, to_role: Role, group_id: str, timeout: float) -> None:
        server = self.lab.redis_by_role[to_role]
        if self.lab.cache.role(server) == "master":
            return
        self.lab.timers.timed(lambda: self.lab.cache.failover_to(server, timeout=timeout))

    def search_needs_restore(self, role: Role, endpoint: str) -> bool:
        return False  # the lab has no OpenSearch: said in --help and the README

    def restore_search(
        self, role: Role, endpoint: str, bucket: str, role_arn: str, timeout: float
    ) -> None:
        raise CloudError("the lab has no OpenSearch")


def lab_outputs(lab: Lab, role: Role) -> dict[str, Any]:
    cfg = stackconfig.load(lab.project_dir, role)
    server = lab.pg_by_role[role]
    return {
        Output.ROLE: role,
        Output.REGION: STACK_REGIONS[role],
        Output.ACTIVE_REGION: cfg.get("active_region"),
        Output.DB_IDENTIFIER: f"{PROJECT}-{role}-db",
        Output.DB_ARN: f"arn:aws:rds:{STACK_REGIONS[role]}:000000000000:db:{PROJECT}-{role}-db",
        Output.DB_ADDRESS: "127.0.0.1",
        Output.DB_ENDPOINT: f"127.0.0.1:{server.port}",
        Output.DB_PORT: server.port,
        Output.DB_NAME: server.dbname,
        Output.DB_REPLICA_SOURCE: cfg.get("replicate_from") or "",
        Output.CACHE_GROUP_ID: f"{PROJECT}-{role}",
        Output.CACHE_ENDPOINT: lab_host("redis", role),
        Output.CACHE_GLOBAL_ID: GLOBAL_ID,
        Output.SEARCH_ENDPOINT: lab_host("search", role),
        Output.SNAPSHOT_BUCKET: f"{PROJECT}-search-snapshots-lab-{role}",
        Output.SNAPSHOT_ROLE_ARN: f"arn:aws:iam::000000000000:role/{PROJECT}-{role}-snapshot",
        Output.GATEWAY_HOSTNAME: lab_host("gw", role),
        Output.CLUSTER_NAME: f"{PROJECT}-{role}",
        Output.DNS_OWNER: cfg.get("dns_owner") or "dr",
        Output.HOSTED_ZONE_ID: lab.zone_id,
        Output.DNS_RECORDS: {
            "db": f"db.{lab.zone_name}",
            "redis": f"redis.{lab.zone_name}",
            "search": f"search.{lab.zone_name}",
            "api": f"api.{lab.zone_name}",
        },
    }


def placeholder_map(lab: Lab, health_ids: dict[Role, str]) -> dict[str, str]:
    """Program placeholders -> lab values (own resources and the peer stack's outputs)."""
    out: dict[str, str] = {}
    for role in ROLES:
        values = {
            ("database-instance", "address", Output.DB_ADDRESS): lab_host("pg", role),
            ("cache-group", "primary_endpoint_address", Output.CACHE_ENDPOINT): lab_host(
                "redis", role
            ),
            ("search-domain", "endpoint", Output.SEARCH_ENDPOINT): lab_host("search", role),
            ("workloads-gateway", "lb_hostname", Output.GATEWAY_HOSTNAME): lab_host("gw", role),
        }
        for (resource, attr, output), value in values.items():
            out[programeval.placeholder(f"{role}-{resource}", attr)] = value
            out[programeval.peer_placeholder(role, output)] = value
        out[programeval.placeholder(f"dr-dns-{role}-gateway-health", "id")] = health_ids[role]
        out[programeval.placeholder(f"primary-dns-{role}-gateway-health", "id")] = health_ids[role]
    return out


class LabEngine:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.calls: list[tuple[str, str]] = []
        self.health_ids: dict[Role, str] = {}

    def outputs(self, stack: str) -> dict[str, Any]:
        role = _role(stack)
        return lab_outputs(self.lab, role)

    def refresh(self, stack: str, on_event: EventHandler | None = None) -> UpdateResult:
        self.calls.append(("refresh", stack))
        self._reachable(stack)
        return UpdateResult(stack, "refresh", "succeeded", {})

    def up(self, stack: str, on_event: EventHandler | None = None) -> UpdateResult:
        self.calls.append(("up", stack))
        self._reachable(stack)
        role = _role(stack)
        changes = 0
        if stackconfig.load(self.lab.project_dir, role).get("dns_owner") in (None, role):
            changes = self.lab.timers.timed(lambda: self.apply_dns(role))
        return UpdateResult(stack, "up", "succeeded", {"update": changes})

    def preview(
        self, stack: str, on_event: EventHandler | None = None, work_dir: Path | None = None
    ) -> UpdateResult:
        raise UpdateFailed("the lab has no engine preview; use python -m failover.dnsplan")

    def _reachable(self, stack: str) -> None:
        if _role(stack) in self.lab.down:
            raise UpdateFailed(f"lab: the {stack} region is down")

    def ensure_health_checks(self) -> None:
        r53 = self.lab.route53()
        for role in ROLES:
            if role not in self.health_ids:
                created = r53.create_health_check(
                    CallerReference=f"lab-{role}-{time.time_ns()}",
                    HealthCheckConfig={
                        "Type": "HTTP",
                        "FullyQualifiedDomainName": lab_host("gw", role),
                        "Port": 80,
                        "ResourcePath": "/health",
                    },
                )
                self.health_ids[role] = created["HealthCheck"]["Id"]

    def apply_dns(self, role: Role) -> int:
        """Apply the Route53 records the program declares for this stack's config."""
        self.ensure_health_checks()
        evaluation = programeval.evaluate(
            self.lab.project_dir, role, {"db_password": self.lab.password}
        )
        mapping = placeholder_map(self.lab, self.health_ids)
        changes = []
        for rec in evaluation.of_type("aws:route53/record:Record"):
            inputs = rec.inputs
            rrset: dict[str, Any] = {
                "Name": inputs["name"],
                "Type": inputs["type"],
                "TTL": int(inputs.get("ttl", DNS_TTL)),
                "ResourceRecords": [{"Value": mapping.get(v, v)} for v in inputs["records"]],
            }
            if "setIdentifier" in inputs:
                rrset["SetIdentifier"] = inputs["setIdentifier"]
                rrset["Failover"] = inputs["failoverRoutingPolicies"][0]["type"]
            if "healthCheckId" in inputs:
                rrset["HealthCheckId"] = mapping.get(
                    inputs["healthCheckId"], inputs["healthCheckId"]
                )
            unresolved = [
                v["Value"] for v in rrset["ResourceRecords"] if v["Value"].startswith("<")
            ]
            if unresolved:
                raise UpdateFailed(f"lab: no lab value for {unresolved} in record {inputs['name']}")
            changes.append({"Action": "UPSERT", "ResourceRecordSet": rrset})
        if changes:
            self.lab.route53().change_resource_record_sets(
                HostedZoneId=self.lab.zone_id, ChangeBatch={"Changes": changes}
            )
        return len(changes)


def _role(stack: str) -> Role:
    if stack == "primary":
        return "primary"
    if stack == "dr":
        return "dr"
    raise UpdateFailed(f"unknown stack {stack}")


class LabResolver:
    def __init__(self, lab: Lab, timed: bool = True) -> None:
        self.lab = lab
        self.timed = timed

    def resolve(self, fqdn: str, default_port: int) -> tuple[str, int]:
        if not self.timed:
            return self.lab.host_port(self.lab.cname(fqdn))
        target = self.lab.timers.timed(lambda: self.lab.cname(fqdn))
        return self.lab.host_port(target)


class LabHealth:
    """GET /<svc>/health on the gateway the api name's PRIMARY record points at."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    def check(self, api_fqdn: str, service: str) -> tuple[bool, str]:
        import urllib.error
        import urllib.request

        from components.contract import API_PRIMARY_SET_ID

        target = self.lab.cname(api_fqdn, API_PRIMARY_SET_ID)
        host, port = self.lab.host_port(target)
        url = f"http://{host}:{port}/{service.removesuffix('-service')}/health"
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                return resp.status == 200, f"{service} via {api_fqdn} -> {target}: {resp.status}"
        except (urllib.error.URLError, OSError) as err:
            return False, f"{service} via {api_fqdn} -> {target}: {err}"


class _HealthHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        known = {f"/{s.removesuffix('-service')}/health" for s in SERVICES}
        self.send_response(200 if self.path in known else 404)
        self.end_headers()
        self.wfile.write(b'{"status":"ok"}')

    def log_message(self, format: str, *args: Any) -> None:
        return


def start_gateway() -> tuple[http.server.ThreadingHTTPServer, int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HealthHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, int(server.server_address[1])
