"""Test doubles and builders for the tests of `failover.switch`.

Everything is as real as this machine allows:
- PostgreSQL: the lab's writer + streaming replica (`failover.lab.postgres.PgPair`);
- RDS: `failover.cloud.AwsCloud` over boto3 against moto in server mode (a real HTTP endpoint);
- ElastiCache Global Datastore and CloudWatch ReplicaLag, which moto lacks: botocore `Stubber`s
  on the clients `AwsCloud` asks for, with expected parameters and responses that botocore
  validates against the service models;
- Pulumi: `RecordingEngine`, the thin `Engine` seam, with outputs built from the real servers.
"""

from __future__ import annotations

import copy
import io
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.stub import ANY, Stubber
from pulumi.automation import events

from components.contract import PROJECT, ROLES, STACK_REGIONS, ConfigKey, DnsName, Output, Role
from failover import stackconfig, switch
from failover.cloud import AwsCloud, CacheDatastore, CloudError, DbInstance
from failover.engine import EventHandler, StackMissing, UpdateFailed, UpdateResult
from failover.journal import Journal
from failover.lab import procs
from failover.lab.motoserver import MotoServer, isolated_session
from failover.lab.postgres import PgPair, PgServer

if TYPE_CHECKING:
    from mypy_boto3_rds import RDSClient

REPO = Path(__file__).resolve().parent.parent
ACCOUNT = "123456789012"  # moto's default account
ZONE = "llm-marketplace.com"
GLOBAL_ID = "ldgnf-llm-marketplace"
DB_IDS: dict[Role, str] = {role: f"{PROJECT}-{role}-db" for role in ROLES}
CACHE_GROUPS: dict[Role, str] = {role: f"{PROJECT}-{role}" for role in ROLES}


def db_arn(role: Role, identifier: str | None = None) -> str:
    return f"arn:aws:rds:{STACK_REGIONS[role]}:{ACCOUNT}:db:{identifier or DB_IDS[role]}"


# -- the project directory ------------------------------------------------------------------


def make_project(base: Path) -> Path:
    """A project dir with copies of the repo's Pulumi.yaml and stack files."""
    project = base / "project"
    project.mkdir()
    for name in ("Pulumi.yaml", "Pulumi.primary.yaml", "Pulumi.dr.yaml"):
        shutil.copyfile(REPO / name, project / name)
    return project


def stack_files(project: Path) -> dict[str, bytes]:
    return {role: stackconfig.stack_file(project, role).read_bytes() for role in ROLES}


def stack_config(project: Path, role: Role) -> dict[str, str | None]:
    cfg = stackconfig.load(project, role)
    return {
        "active_region": cfg.get(ConfigKey.ACTIVE_REGION),
        "replicate_from": cfg.get(ConfigKey.REPLICATE_FROM),
    }


def journal_records(project: Path) -> list[dict[str, Any]]:
    return Journal(project).records()


def journal_events(project: Path) -> list[str]:
    return [rec["event"] for rec in journal_records(project)]


# -- moto -----------------------------------------------------------------------------------

# moto 5.2.5's PromoteReadReplica flips an internal flag but keeps returning
# ReadReplicaSourceDBInstanceIdentifier and keeps the promoted instance in its source's
# ReadReplicaDBInstanceIdentifiers. Real RDS drops both once the instance is standalone, and
# that is what AwsCloud (rightly) waits for. The server runs with this one correction.
_MOTO_LAUNCHER = """
import sys
from moto.rds.models import RDSBackend

_original = RDSBackend.promote_read_replica


def promote_read_replica(self, db_kwargs):
    database = self.databases.get(db_kwargs["db_instance_identifier"])
    source = None
    if database is not None and database.is_replica:
        source = database.source_db_instance_identifier
    result = _original(self, db_kwargs)
    if source:
        try:
            primary = self.find_db_from_id(source)
        except Exception:
            primary = None
        if primary is not None:
            for ref in (database.db_instance_arn, database.db_instance_identifier):
                if ref in primary.replicas:
                    primary.replicas.remove(ref)
        database.source_db_instance_identifier = None
    return result


RDSBackend.promote_read_replica = promote_read_replica

from moto.server import main

main(sys.argv[1:])
"""


class RdsMotoServer(MotoServer):
    """`MotoServer` whose RDS promotes a read replica the way AWS does (see above)."""

    process_name = "moto_server[rds-promote]"

    def argv(self) -> list[str]:
        return [sys.executable, "-c", _MOTO_LAUNCHER, "-H", self.host, "-p", str(self.port)]


def seed_rds(moto: MotoServer, *, replica_source: str | None = None) -> None:
    """A fresh moto: the primary writer in us-east-1, its cross-region replica in us-west-2."""
    moto.reset()
    east = moto.boto3_client("rds", STACK_REGIONS["primary"])
    west = moto.boto3_client("rds", STACK_REGIONS["dr"])
    sources = {DB_IDS["primary"]}
    if replica_source is not None:
        sources.add(replica_source)
    for identifier in sorted(sources):
        east.create_db_instance(
            DBInstanceIdentifier=identifier,
            DBInstanceClass="db.r6g.large",
            Engine="postgres",
            EngineVersion="15.7",
            MasterUsername="postgres",
            MasterUserPassword="moto-only-not-the-lab-password",
            AllocatedStorage=100,
            BackupRetentionPeriod=7,
            DBName="llm_marketplace",
        )
    west.create_db_instance_read_replica(
        DBInstanceIdentifier=DB_IDS["dr"],
        SourceDBInstanceIdentifier=db_arn("primary", replica_source),
        DBInstanceClass="db.r6g.large",
        SourceRegion=STACK_REGIONS["primary"],
    )


def moto_db(moto: MotoServer, role: Role, identifier: str | None = None) -> dict[str, Any]:
    rds: RDSClient = moto.boto3_client("rds", STACK_REGIONS[role])
    found = rds.describe_db_instances(DBInstanceIdentifier=identifier or DB_IDS[role])
    return dict(found["DBInstances"][0])


# -- botocore Stubbers for what moto does not emulate --------------------------------------


class _StubbedService:
    """One long-lived stubbed client per region; each call queues its answer just in time.

    The answer depends on the stub's state (a Global Datastore changes its primary), so it
    cannot be queued up front: a `provide-client-params` handler, which runs before the
    Stubber checks the parameters, queues the response and the parameters it expects. The
    Stubber then validates both against the service model as usual.
    """

    service = ""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []  # (region, operation, params)
        self._clients: dict[str, tuple[Any, Stubber]] = {}

    def client(self, region: str) -> Any:
        if region not in self._clients:
            client = isolated_session(region).client(  # type: ignore[call-overload]
                self.service, region_name=region, config=Config(retries={"max_attempts": 1})
            )
            stubber = Stubber(client)
            client.meta.events.register(
                f"provide-client-params.{client.meta.service_model.service_id.hyphenize()}",
                lambda params, model, **_: self._queue(stubber, region, model.name, params),
            )
            stubber.activate()
            self._clients[region] = (client, stubber)
        return self._clients[region][0]

    def _queue(self, stubber: Stubber, region: str, operation: str, params: dict[str, Any]) -> None:
        self.calls.append((region, operation, dict(params)))
        self.answer(stubber, region, operation)

    def answer(self, stubber: Stubber, region: str, operation: str) -> None:
        raise NotImplementedError

    def operations(self, name: str) -> list[tuple[str, dict[str, Any]]]:
        return [(region, params) for region, op, params in self.calls if op == name]

    def assert_drained(self) -> None:
        for _, stubber in self._clients.values():
            stubber.assert_no_pending_responses()


class ReplicaLagStub(_StubbedService):
    """CloudWatch `ReplicaLag` of the RDS replicas (moto has no RDS metrics)."""

    service = "cloudwatch"

    def __init__(self, lag_seconds: float | None = 0.0) -> None:
        super().__init__()
        self.lag_seconds = lag_seconds
        # The replica whose metric each region's CloudWatch is expected to be asked for.
        self.replicas = {STACK_REGIONS[role]: DB_IDS[role] for role in ROLES}

    def answer(self, stubber: Stubber, region: str, operation: str) -> None:
        if operation != "GetMetricStatistics":
            raise AssertionError(f"unexpected CloudWatch call {operation}")
        points = []
        if self.lag_seconds is not None:
            points = [
                {"Timestamp": datetime.now(UTC), "Maximum": self.lag_seconds, "Unit": "Seconds"}
            ]
        stubber.add_response(
            "get_metric_statistics",
            {"Label": "ReplicaLag", "Datapoints": points},
            {
                "Namespace": "AWS/RDS",
                "MetricName": "ReplicaLag",
                "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": self.replicas[region]}],
                "StartTime": ANY,
                "EndTime": ANY,
                "Period": 60,
                "Statistics": ["Maximum"],
            },
        )


class GlobalDatastoreStub(_StubbedService):
    """The ElastiCache Global Datastore of both regions' replication groups.

    A failover reports the datastore `modifying` for `settle_polls` describes, then the
    roles swapped and `available`, as AWS does. `fail_failover` makes the next failover
    call answer with that error code.
    """

    service = "elasticache"

    def __init__(self, primary: Role = "primary", settle_polls: int = 1) -> None:
        super().__init__()
        self.primary_region = STACK_REGIONS[primary]
        self.status = "available"
        self.settle_polls = settle_polls
        self._polls_left = 0
        self._next_primary: str | None = None
        self.fail_failover: str | None = None

    @property
    def failovers(self) -> int:
        return len(self.operations("FailoverGlobalReplicationGroup"))

    def _members(self) -> list[dict[str, Any]]:
        return [
            {
                "ReplicationGroupId": CACHE_GROUPS[role],
                "ReplicationGroupRegion": STACK_REGIONS[role],
                "Role": "PRIMARY" if STACK_REGIONS[role] == self.primary_region else "SECONDARY",
                "AutomaticFailover": "enabled",
                "Status": "associated",
            }
            for role in ROLES
        ]

    def _group(self) -> dict[str, Any]:
        return {
            "GlobalReplicationGroupId": GLOBAL_ID,
            "GlobalReplicationGroupDescription": "llm-marketplace sessions and rate limits",
            "Status": self.status,
            "CacheNodeType": "cache.r6g.large",
            "Engine": "redis",
            "EngineVersion": "7.1",
            "Members": self._members(),
            "ClusterEnabled": False,
            "AuthTokenEnabled": True,
            "TransitEncryptionEnabled": True,
            "AtRestEncryptionEnabled": True,
            "ARN": f"arn:aws:elasticache::{ACCOUNT}:globalreplicationgroup:{GLOBAL_ID}",
        }

    def _secondary_region(self) -> str:
        return next(STACK_REGIONS[r] for r in ROLES if STACK_REGIONS[r] != self.primary_region)

    def answer(self, stubber: Stubber, region: str, operation: str) -> None:
        if operation == "DescribeGlobalReplicationGroups":
            if self._next_primary is not None:
                if self._polls_left > 0:
                    self._polls_left -= 1
                else:
                    self.primary_region, self._next_primary = self._next_primary, None
                    self.status = "available"
            stubber.add_response(
                "describe_global_replication_groups",
                {"GlobalReplicationGroups": [self._group()]},
                {"GlobalReplicationGroupId": GLOBAL_ID, "ShowMemberInfo": True},
            )
        elif operation == "FailoverGlobalReplicationGroup":
            target = self._secondary_region()
            expected = {
                "GlobalReplicationGroupId": GLOBAL_ID,
                "PrimaryRegion": target,
                "PrimaryReplicationGroupId": CACHE_GROUPS[
                    next(r for r in ROLES if STACK_REGIONS[r] == target)
                ],
            }
            if self.fail_failover is not None:
                code, self.fail_failover = self.fail_failover, None
                stubber.add_client_error(
                    "failover_global_replication_group",
                    service_error_code=code,
                    service_message="the Global Datastore cannot fail over now",
                    http_status_code=400,
                    expected_params=expected,
                )
                return
            self.status = "modifying"
            self._next_primary, self._polls_left = target, self.settle_polls
            stubber.add_response(
                "failover_global_replication_group", {"GlobalReplicationGroup": self._group()},
                expected,
            )  # fmt: skip
        else:
            raise AssertionError(f"unexpected ElastiCache call {operation}")


# -- the Cloud ------------------------------------------------------------------------------


class RdsCalls:
    """Counts RDS PromoteReadReplica calls that reach moto; can make the next ones fail."""

    def __init__(self) -> None:
        self.promote_calls = 0
        self.fail_promote: list[tuple[str, str]] = []  # (code, message), consumed in order

    def before_promote(self, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if self.fail_promote:
            code, message = self.fail_promote.pop(0)
            # What a before-call handler returns replaces the HTTP call (as in Stubber).
            return AWSResponse("", 400, {}, None), {  # type: ignore[arg-type]
                "Error": {"Code": code, "Message": message},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            }
        return None

    def after_promote(self, http_response: AWSResponse, **_: Any) -> None:
        if http_response.status_code < 300:
            self.promote_calls += 1


class LabAwsCloud(AwsCloud):
    """`AwsCloud` against moto for RDS, with Stubber clients for ElastiCache and CloudWatch."""

    def __init__(
        self,
        endpoint_url: str,
        datastore: GlobalDatastoreStub,
        metrics: ReplicaLagStub,
        rds_calls: RdsCalls,
    ) -> None:
        super().__init__(endpoint_url=endpoint_url, session=isolated_session("us-east-1"))
        self.poll = 0.02
        self.datastore = datastore
        self.metrics = metrics
        self.rds_calls = rds_calls

    def client(self, service: str, role: Role | None = None) -> Any:
        region = STACK_REGIONS[role] if role else "us-east-1"
        if service == "elasticache":
            return self.datastore.client(region)
        if service == "cloudwatch":
            return self.metrics.client(region)
        if service != "rds":
            raise AssertionError(f"the switch asked for an unexpected {service} client")
        client = self.session.client(
            "rds",
            region_name=region,
            endpoint_url=self.endpoint_url,
            config=Config(proxies={}, retries={"max_attempts": 2, "mode": "standard"}),
        )
        events_ = client.meta.events
        # A before-call handler may return a response (botocore's stubs type it as None).
        events_.register(
            "before-call.rds.PromoteReadReplica",
            self.rds_calls.before_promote,  # type: ignore[arg-type]
        )
        events_.register("after-call.rds.PromoteReadReplica", self.rds_calls.after_promote)
        return client


class PgBackedCloud:
    """A `Cloud` whose RDS promotion also promotes the lab's real PostgreSQL replica.

    Whether to promote is decided by `AwsCloud` (its describe check); PostgreSQL follows
    once the RDS promotion is through, so moto and the real servers agree on the writer.
    """

    def __init__(self, aws: LabAwsCloud, pg: PgPair) -> None:
        self.aws = aws
        self.pg = pg
        self.pg_promotions = 0
        # No OpenSearch runs here (its client is tested in test_search_restore.py): the
        # domain's state is scripted, and every restore request is recorded.
        # The waiter gives up although RDS goes on and finishes the promotion.
        self.time_out_after_promoting = False
        self.search_indices_missing = False
        self.search_restore_error: str | None = None
        self.search_restores: list[tuple[str, str, str]] = []

    def server(self, role: Role) -> PgServer:
        return pg_server(self.pg, role)

    def describe_database(self, role: Role, identifier: str) -> DbInstance | None:
        return self.aws.describe_database(role, identifier)

    def replica_lag_seconds(self, role: Role, identifier: str) -> float | None:
        return self.aws.replica_lag_seconds(role, identifier)

    def promote_database(self, role: Role, identifier: str, timeout: float) -> None:
        self.aws.promote_database(role, identifier, timeout)
        if self.pg.promote(self.server(role), timeout=int(timeout)):
            self.pg_promotions += 1
        if self.time_out_after_promoting:
            self.time_out_after_promoting = False
            raise CloudError(f"database {identifier} was not available as a writer within 1s")

    def describe_cache(self, global_id: str) -> CacheDatastore | None:
        return self.aws.describe_cache(global_id)

    def failover_cache(self, global_id: str, to_role: Role, group_id: str, timeout: float) -> None:
        self.aws.failover_cache(global_id, to_role, group_id, timeout)

    def search_needs_restore(self, role: Role, endpoint: str) -> bool:
        return self.search_indices_missing

    def restore_search(
        self, role: Role, endpoint: str, bucket: str, role_arn: str, timeout: float
    ) -> None:
        if self.search_restore_error is not None:
            raise CloudError(self.search_restore_error)
        self.search_restores = [*self.search_restores, (endpoint, bucket, role_arn)]
        self.search_indices_missing = False


def pg_server(pair: PgPair, role: Role) -> PgServer:
    return next(s for s in pair.servers if s.name == role)


class PgSnapshot:
    """One initdb + seed + base backup per module; each test gets the pair back as it was.

    A test promotes, fences or kills the servers, so each needs a fresh pair. Building one
    costs an initdb, a seed and a pg_basebackup (seconds on a busy 2-core box); restoring
    the cleanly stopped data directories and starting the same two servers is much cheaper
    and gives the same state: a writer and a streaming replica that has replayed everything.
    """

    def __init__(self, pair: PgPair, store: Path) -> None:
        self.pair = pair
        self.writer, self.replica = pair.writer, pair.replica
        self.store = store
        pair.wait_caught_up()
        self.stop_servers()
        store.mkdir(parents=True)
        for server in pair.servers:
            _copy_tree(server.data_dir, store / server.name)

    def stop_servers(self) -> None:
        """Stop both servers but keep the pair's data dirs (`PgPair.stop` may remove them)."""
        # The writer first: a fast shutdown sends its last WAL to the connected replica.
        for server in (self.writer, self.replica):
            server.stop()

    def restore(self) -> PgPair:
        self.stop_servers()
        for server in (self.writer, self.replica):
            shutil.rmtree(server.data_dir)
            _copy_tree(self.store / server.name, server.data_dir)
        self.pair.writer, self.pair.replica = self.writer, self.replica
        try:
            self.writer.start()
            self.replica.start()
            self.pair.wait_streaming(self.replica)
        except BaseException:
            self.stop_servers()
            raise
        return self.pair


def _copy_tree(src: Path, dst: Path) -> None:
    # `cp -a` keeps the owner: the servers run as an unprivileged user when we are root.
    copied = subprocess.run(
        ["cp", "-a", str(src), str(dst)], capture_output=True, text=True, check=False
    )
    if copied.returncode != 0:
        raise procs.LabError(f"cp -a {src} {dst} failed: {copied.stderr.strip()}")


# -- the Engine -----------------------------------------------------------------------------


def lab_outputs(pair: PgPair) -> dict[Role, dict[str, Any]]:
    """Both stacks' outputs as `pulumi stack output` would give them, over the lab servers."""
    out: dict[Role, dict[str, Any]] = {}
    for role in ROLES:
        server = pg_server(pair, role)
        region = STACK_REGIONS[role]
        out[role] = {
            Output.ROLE: role,
            Output.REGION: region,
            Output.ACTIVE_REGION: "primary",
            Output.DB_IDENTIFIER: DB_IDS[role],
            Output.DB_ARN: db_arn(role),
            Output.DB_ENDPOINT: f"{server.host}:{server.port}",
            Output.DB_ADDRESS: server.host,
            Output.DB_PORT: server.port,
            Output.DB_NAME: server.dbname,
            Output.DB_REPLICA_SOURCE: db_arn("primary") if role == "dr" else "",
            Output.CACHE_GROUP_ID: CACHE_GROUPS[role],
            Output.CACHE_ENDPOINT: f"master.{CACHE_GROUPS[role]}.abc123.{region}.cache.amazonaws.com",
            Output.CACHE_GLOBAL_ID: GLOBAL_ID,
            Output.SEARCH_DOMAIN: f"llm-mkt-{role}",
            Output.SEARCH_ENDPOINT: f"vpc-llm-mkt-{role}-abc123.{region}.es.amazonaws.com",
            Output.SNAPSHOT_BUCKET: f"llm-marketplace-search-snapshots-{region}-organization",
            Output.SNAPSHOT_ROLE_ARN: f"arn:aws:iam::123456789012:role/llm-mkt-{role}-snapshot",
            Output.GATEWAY_HOSTNAME: f"gw-{role}.elb.{region}.amazonaws.com",
            Output.CLUSTER_NAME: f"{PROJECT}-{role}",
            Output.DNS_OWNER: "dr",
            Output.HOSTED_ZONE_ID: "Z0EXAMPLE0LLMMARKET" if role == "dr" else "",
            Output.DNS_RECORDS: (
                {label: f"{label}.{ZONE}" for label in ("api", "db", "redis", "search")}
                if role == "dr"
                else {}
            ),
        }
    return out


class RecordingEngine:
    """The `Engine` seam for tests: outputs from a dict, every call recorded in order.

    `up` applies the stack file the way the program would: the stack's `active_region`
    output, its database's replica source, and (for the DNS owner) where the shared names
    point, which `DnsResolver` reads.
    """

    def __init__(self, project_dir: Path, outputs: dict[Role, dict[str, Any]]) -> None:
        self.project_dir = project_dir
        self.stack_outputs = copy.deepcopy(outputs)
        self.calls: list[tuple[str, str]] = []
        self.fail_up_once: dict[str, str] = {}  # stack -> error line of the failed update
        self.missing: set[str] = set()
        self.applied_active: dict[str, str | None] = {
            role: stackconfig.load(project_dir, role).get(ConfigKey.ACTIVE_REGION) for role in ROLES
        }

    def _enter(self, op: str, stack: str) -> None:
        self.calls.append((op, stack))
        if stack in self.missing:
            raise StackMissing(f"stack {stack!r} does not exist (it is never created here)")

    def updates(self) -> list[tuple[str, str]]:
        """The refresh/up calls, in order."""
        return [call for call in self.calls if call[0] in ("refresh", "up")]

    def outputs(self, stack: str) -> dict[str, Any]:
        self._enter("outputs", stack)
        return copy.deepcopy(self.stack_outputs[stack])  # type: ignore[index]

    def refresh(self, stack: str, on_event: EventHandler | None = None) -> UpdateResult:
        self._enter("refresh", stack)
        return UpdateResult(stack, "refresh", "succeeded", {"same": 42})

    def up(self, stack: str, on_event: EventHandler | None = None) -> UpdateResult:
        self._enter("up", stack)
        if stack in self.fail_up_once:
            raise UpdateFailed(f"up of {stack!r} failed: {self.fail_up_once.pop(stack)}")
        role: Role = "primary" if stack == "primary" else "dr"
        cfg = stackconfig.load(self.project_dir, role)
        active = cfg.get(ConfigKey.ACTIVE_REGION)
        replicate_from = cfg.get(ConfigKey.REPLICATE_FROM) or ""
        outputs = self.stack_outputs[role]
        changes = {"same": 40}
        if outputs[Output.ACTIVE_REGION] != active:
            changes["update"] = changes.get("update", 0) + 1
            self._event(on_event, "update", "kubernetes:apps/v1:Deployment", "api-gateway")
        outputs[Output.ACTIVE_REGION] = active
        source = (
            db_arn("primary" if replicate_from == "primary" else "dr") if replicate_from else ""
        )
        outputs[Output.DB_REPLICA_SOURCE] = source
        if self.applied_active[role] != active and outputs[Output.DNS_RECORDS]:
            changes["update"] = changes.get("update", 0) + 1
            self._event(on_event, "update", "aws:route53/record:Record", "db")
        self.applied_active[role] = active
        return UpdateResult(stack, "up", "succeeded", changes)

    def preview(
        self, stack: str, on_event: EventHandler | None = None, work_dir: Path | None = None
    ) -> UpdateResult:
        self._enter("preview", stack)
        return UpdateResult(stack, "preview", "succeeded", {"same": 42})

    @staticmethod
    def _event(on_event: EventHandler | None, op: str, type_: str, name: str) -> None:
        if on_event is None:
            return
        urn = f"urn:pulumi:stack::{PROJECT}::{type_}::{name}"
        meta = events.StepEventMetadata(op=events.OpType(op), urn=urn, type=type_, provider="")
        on_event(events.EngineEvent(0, 0, resource_pre_event=events.ResourcePreEvent(meta)))


# -- name resolution, health, confirmation --------------------------------------------------


class DnsResolver:
    """`db.<zone>` resolves to the database of the region the DNS owner last applied."""

    def __init__(self, engine: RecordingEngine) -> None:
        self.engine = engine
        self.lookups: list[str] = []

    def resolve(self, fqdn: str, default_port: int) -> tuple[str, int]:
        self.lookups.append(fqdn)
        if fqdn != f"{DnsName.DB}.{ZONE}":
            raise AssertionError(f"the lab has no record for {fqdn}")
        owner = self.engine.stack_outputs["dr"][Output.DNS_OWNER]
        active = self.engine.applied_active[owner]
        outputs = self.engine.stack_outputs[active]  # type: ignore[index]
        return str(outputs[Output.DB_ADDRESS]), int(outputs[Output.DB_PORT])


class HealthyServices:
    def __init__(self) -> None:
        self.checked: list[tuple[str, str]] = []

    def check(self, api_fqdn: str, service: str) -> tuple[bool, str]:
        self.checked.append((api_fqdn, service))
        return True, f"https://{api_fqdn}/{service.removesuffix('-service')}/health -> 200"


class FailingService(HealthyServices):
    def __init__(self, failing: str) -> None:
        super().__init__()
        self.failing = failing

    def check(self, api_fqdn: str, service: str) -> tuple[bool, str]:
        ok, detail = super().check(api_fqdn, service)
        if service == self.failing:
            url = f"https://{api_fqdn}/{service.removesuffix('-service')}/health"
            return False, f"{url} -> 503 Service Unavailable"
        return ok, detail


class ScriptedConfirm:
    def __init__(self, answer: bool = True) -> None:
        self.answer = answer
        self.questions: list[str] = []

    def __call__(self, question: str) -> bool:
        self.questions.append(question)
        return self.answer


# -- the whole lab --------------------------------------------------------------------------


@dataclass
class RunResult:
    code: int
    output: str  # everything the switch said (its stream) and printed (the report)
    report: dict[str, Any] | None = None  # parsed when run with --json


@dataclass
class SwitchLab:
    project: Path
    pg: PgPair
    moto: MotoServer
    password: str
    engine: RecordingEngine
    datastore: GlobalDatastoreStub
    metrics: ReplicaLagStub
    rds_calls: RdsCalls
    cloud: PgBackedCloud
    confirm: ScriptedConfirm = field(default_factory=ScriptedConfirm)
    health: HealthyServices = field(default_factory=HealthyServices)
    resolver: DnsResolver | None = None
    last_output: str = ""

    @classmethod
    def build(cls, base: Path, pg: PgPair, moto: MotoServer, password: str) -> SwitchLab:
        project = make_project(base)
        seed_rds(moto)
        engine = RecordingEngine(project, lab_outputs(pg))
        datastore, metrics, rds_calls = GlobalDatastoreStub(), ReplicaLagStub(), RdsCalls()
        aws = LabAwsCloud(moto.endpoint_url, datastore, metrics, rds_calls)
        return cls(
            project=project, pg=pg, moto=moto, password=password, engine=engine,
            datastore=datastore, metrics=metrics, rds_calls=rds_calls,
            cloud=PgBackedCloud(aws, pg), resolver=DnsResolver(engine),
        )  # fmt: skip

    def server(self, role: Role) -> PgServer:
        return pg_server(self.pg, role)

    def bindings(
        self, stream: io.StringIO, report: io.StringIO, crash_at: str | None = None
    ) -> switch.Bindings:
        assert self.resolver is not None
        return switch.Bindings(
            engine=self.engine, cloud=self.cloud, resolver=self.resolver, health=self.health,
            db_password=self.password, confirm=self.confirm, crash_at=crash_at, stream=stream,
            report_stream=report,
        )  # fmt: skip

    def run(self, *args: str, crash_at: str | None = None) -> RunResult:
        """`python -m failover.switch ARGS --project-dir <lab>` in this process."""
        argv = [*args, "--project-dir", str(self.project)]
        said, printed = io.StringIO(), io.StringIO()
        try:
            code = switch.main(argv, self.bindings(said, printed, crash_at))
        finally:
            self.last_output = said.getvalue() + printed.getvalue()
        report = None
        if "--json" in args and printed.getvalue().strip():
            report = json.loads(printed.getvalue())
        return RunResult(code, said.getvalue() + printed.getvalue(), report)

    # -- what the test asserts on ----------------------------------------------------------
    def in_recovery(self, role: Role) -> bool:
        return self.pg.is_in_recovery(self.server(role))

    def fenced(self, role: Role) -> bool:
        """A new session's default: what reconnecting applications get."""
        return str(self.server(role).query_one("SHOW default_transaction_read_only")) == "on"

    def can_write(self, role: Role) -> bool:
        try:
            with self.server(role).connect() as conn:
                conn.execute("CREATE TABLE IF NOT EXISTS lab_write_check (x int)")
                conn.execute("INSERT INTO lab_write_check VALUES (1)")
        except psycopg.errors.ReadOnlySqlTransaction:
            return False
        return True

    def rds_source(self, role: Role, identifier: str | None = None) -> str | None:
        found = moto_db(self.moto, role, identifier)
        return found.get("ReadReplicaSourceDBInstanceIdentifier")

    def rebuild_primary_as_replica(self) -> str:
        """After a switch to dr: what the runbook does before a failback, on every layer.

        The old writer is never converted in place: a new generation of the primary
        database is built as a cross-region replica of dr (RDS in moto; PostgreSQL re-cloned
        from the new writer), and the primary stack's config and outputs say so.
        Returns the new primary database identifier.
        """
        identifier = f"{DB_IDS['primary']}-g2"
        self.pg.rebuild_as_replica(self.server("primary"), self.server("dr"))
        east: RDSClient = self.moto.boto3_client("rds", STACK_REGIONS["primary"])
        east.create_db_instance_read_replica(
            DBInstanceIdentifier=identifier,
            SourceDBInstanceIdentifier=db_arn("dr"),
            DBInstanceClass="db.r6g.large",
            SourceRegion=STACK_REGIONS["dr"],
        )
        stackconfig.set_values(
            self.project, "primary", {ConfigKey.REPLICATE_FROM: "dr", ConfigKey.DB_GENERATION: "2"}
        )
        outputs = self.engine.stack_outputs["primary"]
        outputs[Output.DB_IDENTIFIER] = identifier
        outputs[Output.DB_ARN] = db_arn("primary", identifier)
        outputs[Output.DB_REPLICA_SOURCE] = db_arn("dr")
        self.metrics.replicas[STACK_REGIONS["primary"]] = identifier
        return identifier

    def journal(self) -> list[dict[str, Any]]:
        return journal_records(self.project)

    def journal_text(self) -> str:
        path = Journal(self.project).path
        return path.read_text() if path.exists() else ""
