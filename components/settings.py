"""The only module that reads stack config.

Everything is validated before any resource is declared; an error names the key, the bad
value and what is allowed, so a typo in a stack file fails `pulumi preview` at once instead
of half-way through an outage.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

import pulumi

from components.contract import PROJECT, STACK_REGIONS, ConfigKey, Role, other_role

KNOWN_REGIONS = frozenset(
    {
        "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1",
        "eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "eu-north-1",
        "ap-southeast-1", "ap-southeast-2", "ap-northeast-1", "ap-northeast-2",
        "ap-south-1", "sa-east-1",
    }
)  # fmt: skip


class ConfigError(ValueError):
    """A stack config value is missing or not allowed."""

    def __init__(self, key: str, value: object, allowed: str) -> None:
        self.key = key
        self.value = value
        self.allowed = allowed
        super().__init__(f"config {key}={value!r} is not allowed: {allowed}")


@dataclass(frozen=True)
class Settings:
    stack: str
    role: Role
    region: str
    active_region: Role
    replicate_from: Role | None
    dns_owner: Role
    zone_name: str
    hosted_zone_id: str | None
    stack_ref_org: str
    vpc_cidr: str
    peer_vpc_cidr: str
    db_username: str
    db_password: pulumi.Output[str]
    db_name: str
    db_instance_class: str
    db_allocated_storage: int
    db_engine_version: str
    db_backup_retention_days: int
    db_generation: int
    snapshot_replication: bool
    cache_node_type: str
    cache_global_owner: Role
    search_instance_type: str
    search_engine_version: str
    eks_version: str
    node_instance_type: str
    node_count: int
    active_replicas: int
    standby_replicas: int
    image_registry: str
    image_tag: str

    @property
    def is_active(self) -> bool:
        return self.role == self.active_region

    @property
    def is_dns_owner(self) -> bool:
        return self.role == self.dns_owner

    @property
    def peer(self) -> Role:
        return other_role(self.role)

    def stack_ref(self, role: Role) -> str:
        return f"{self.stack_ref_org}/{PROJECT}/{role}"


def _role(key: str, value: str | None) -> Role:
    if value == "primary":
        return "primary"
    if value == "dr":
        return "dr"
    raise ConfigError(key, value, "one of 'primary', 'dr'")


def _bool(key: str, value: str | None, *, default: bool) -> bool:
    if value is None or value == "":
        return default
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ConfigError(key, value, "true or false")


def _positive(key: str, value: int, minimum: int = 1) -> int:
    if value < minimum:
        raise ConfigError(key, value, f"an integer >= {minimum}")
    return value


def _network(key: str, value: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as err:
        raise ConfigError(key, value, f"an IPv4 CIDR block such as 10.10.0.0/16 ({err})") from err
    if not isinstance(net, ipaddress.IPv4Network) or not 16 <= net.prefixlen <= 20:
        raise ConfigError(key, value, "an IPv4 CIDR block between /16 and /20")
    return net


def load(config: pulumi.Config | None = None, stack: str | None = None) -> Settings:
    """Read and validate this stack's config."""
    cfg = config or pulumi.Config()
    stack_name = stack or pulumi.get_stack()
    aws_cfg = pulumi.Config("aws")
    return validate(
        stack=stack_name,
        get=cfg.get,
        region=aws_cfg.get("region"),
        db_password=cfg.get_secret(ConfigKey.DB_PASSWORD),
    )


def validate(
    *,
    stack: str,
    get: Callable[[str], str | None],
    region: str | None,
    db_password: pulumi.Output[str] | None,
) -> Settings:
    role = _role(ConfigKey.ROLE, get(ConfigKey.ROLE))
    if stack != role:
        raise ConfigError(
            ConfigKey.ROLE, role, f"the stack's own name ({stack!r}): stack and role must agree"
        )
    if region is None or region not in KNOWN_REGIONS:
        raise ConfigError(
            ConfigKey.AWS_REGION, region, f"a known AWS region: {sorted(KNOWN_REGIONS)}"
        )
    if region != STACK_REGIONS[role]:
        raise ConfigError(
            ConfigKey.AWS_REGION, region, f"{STACK_REGIONS[role]!r} for the {role} stack"
        )

    replicate_raw = get(ConfigKey.REPLICATE_FROM) or ""
    replicate_from: Role | None = None
    if replicate_raw:
        replicate_from = _role(ConfigKey.REPLICATE_FROM, replicate_raw)
        if replicate_from == role:
            raise ConfigError(
                ConfigKey.REPLICATE_FROM,
                replicate_raw,
                f"empty (writer) or the other stack's name ({other_role(role)!r})",
            )

    if db_password is None:
        raise ConfigError(
            ConfigKey.DB_PASSWORD,
            None,
            "a secret: set it with `pulumi config set --secret db_password ...`",
        )

    def geti(key: str, default: int, minimum: int = 1) -> int:
        raw = get(key)
        if raw is None:
            return default
        try:
            return _positive(key, int(raw), minimum)
        except ValueError as err:
            if isinstance(err, ConfigError):
                raise
            raise ConfigError(key, raw, f"an integer >= {minimum}") from err

    cidrs = {
        "primary": (ConfigKey.VPC_CIDR_PRIMARY, get(ConfigKey.VPC_CIDR_PRIMARY) or "10.10.0.0/16"),
        "dr": (ConfigKey.VPC_CIDR_DR, get(ConfigKey.VPC_CIDR_DR) or "10.20.0.0/16"),
    }
    nets = {r: _network(k, v) for r, (k, v) in cidrs.items()}
    if nets["primary"].overlaps(nets["dr"]):
        raise ConfigError(
            ConfigKey.VPC_CIDR_DR,
            cidrs["dr"][1],
            f"a block that does not overlap {ConfigKey.VPC_CIDR_PRIMARY}={cidrs['primary'][1]!r}"
            " (the regions' VPCs must be routable to each other)",
        )

    db_generation = geti(ConfigKey.DB_GENERATION, 1)
    if role == "primary" and replicate_from is not None and db_generation == 1:
        raise ConfigError(
            ConfigKey.REPLICATE_FROM,
            replicate_raw,
            f"empty while {ConfigKey.DB_GENERATION}=1: the primary's first database was created as "
            f"the writer and is never converted in place; set {ConfigKey.DB_GENERATION}=2 to build a "
            "new replica beside it",
        )

    dns_owner = _role(ConfigKey.DNS_OWNER, get(ConfigKey.DNS_OWNER) or "dr")
    hosted_zone_id = get(ConfigKey.HOSTED_ZONE_ID) or None
    if role == dns_owner and hosted_zone_id is None:
        raise ConfigError(
            ConfigKey.HOSTED_ZONE_ID,
            None,
            "the Route53 hosted zone id (required in the DNS owner stack)",
        )

    return Settings(
        stack=stack,
        role=role,
        region=region,
        active_region=_role(ConfigKey.ACTIVE_REGION, get(ConfigKey.ACTIVE_REGION)),
        replicate_from=replicate_from,
        dns_owner=dns_owner,
        zone_name=get(ConfigKey.ZONE_NAME) or "llm-marketplace.com",
        hosted_zone_id=hosted_zone_id,
        stack_ref_org=get(ConfigKey.STACK_REF_ORG) or "organization",
        vpc_cidr=str(nets[role]),
        peer_vpc_cidr=str(nets[other_role(role)]),
        db_username=get(ConfigKey.DB_USERNAME) or "postgres",
        db_password=db_password,
        db_name=get(ConfigKey.DB_NAME) or "llm_marketplace",
        db_instance_class=get(ConfigKey.DB_INSTANCE_CLASS) or "db.r6g.large",
        db_allocated_storage=geti(ConfigKey.DB_ALLOCATED_STORAGE, 100, 20),
        db_engine_version=get(ConfigKey.DB_ENGINE_VERSION) or "15",
        db_backup_retention_days=geti(ConfigKey.DB_BACKUP_RETENTION_DAYS, 7, 7),
        db_generation=db_generation,
        snapshot_replication=_bool(
            ConfigKey.SNAPSHOT_REPLICATION, get(ConfigKey.SNAPSHOT_REPLICATION), default=True
        ),
        cache_node_type=get(ConfigKey.CACHE_NODE_TYPE) or "cache.r6g.large",
        cache_global_owner=_role(
            ConfigKey.CACHE_GLOBAL_OWNER, get(ConfigKey.CACHE_GLOBAL_OWNER) or "primary"
        ),
        search_instance_type=get(ConfigKey.SEARCH_INSTANCE_TYPE) or "r6g.large.search",
        search_engine_version=get(ConfigKey.SEARCH_ENGINE_VERSION) or "OpenSearch_2.13",
        eks_version=get(ConfigKey.EKS_VERSION) or "1.30",
        node_instance_type=get(ConfigKey.NODE_INSTANCE_TYPE) or "m6i.large",
        node_count=geti(ConfigKey.NODE_COUNT, 3),
        active_replicas=geti(ConfigKey.ACTIVE_REPLICAS, 3),
        standby_replicas=geti(ConfigKey.STANDBY_REPLICAS, 1),
        image_registry=get(ConfigKey.IMAGE_REGISTRY) or "ghcr.io/llm-marketplace",
        image_tag=get(ConfigKey.IMAGE_TAG) or "stable",
    )
