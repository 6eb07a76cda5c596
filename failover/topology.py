"""Both stacks as the switch sees them: config from the stack files, outputs from Pulumi."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.contract import ROLES, STACK_REGIONS, ConfigKey, Output, Role, other_role
from failover import stackconfig
from failover.engine import Engine
from failover.sql import DbEndpoint


@dataclass(frozen=True)
class StackView:
    role: Role
    active_region: str | None
    replicate_from: str
    outputs: dict[str, Any]

    @property
    def region(self) -> str:
        return STACK_REGIONS[self.role]

    @property
    def db_identifier(self) -> str:
        return str(self.outputs.get(Output.DB_IDENTIFIER, ""))

    def db_endpoint(self, user: str, password: str) -> DbEndpoint:
        return DbEndpoint(
            host=str(self.outputs.get(Output.DB_ADDRESS, "")),
            port=int(self.outputs.get(Output.DB_PORT, 5432)),
            dbname=str(self.outputs.get(Output.DB_NAME, "llm_marketplace")),
            user=user,
            password=password,
        )


@dataclass(frozen=True)
class Topology:
    stacks: dict[Role, StackView]

    @property
    def agreed_active(self) -> Role | None:
        values = {self.stacks[r].active_region for r in ROLES}
        if len(values) != 1:
            return None
        (value,) = values
        return value if value in ROLES else None

    @property
    def dns_owner(self) -> Role:
        owner = self.stacks["dr"].outputs.get(Output.DNS_OWNER) or "dr"
        return "primary" if owner == "primary" else "dr"

    @property
    def zone_name(self) -> str:
        records = self.stacks[self.dns_owner].outputs.get(Output.DNS_RECORDS) or {}
        db_name = str(records.get("db", "db.llm-marketplace.com"))
        return db_name.split(".", 1)[1]

    def writer_of(self, target: Role) -> Role:
        return other_role(target)


def read_configs(project_dir: Path) -> dict[Role, tuple[str | None, str]]:
    out: dict[Role, tuple[str | None, str]] = {}
    for role in ROLES:
        cfg = stackconfig.load(project_dir, role)
        out[role] = (cfg.get(ConfigKey.ACTIVE_REGION), cfg.get(ConfigKey.REPLICATE_FROM) or "")
    return out


def load(project_dir: Path, engine: Engine) -> Topology:
    configs = read_configs(project_dir)
    stacks = {
        role: StackView(role, configs[role][0], configs[role][1], engine.outputs(role))
        for role in ROLES
    }
    return Topology(stacks)
