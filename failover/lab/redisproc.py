"""Real redis-server primary + replica on loopback, password protected, nothing persisted."""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from failover.lab import procs
from failover.lab.procs import LabError, Lifecycle, ManagedProcess

log = logging.getLogger(__name__)

RedisRole = Literal["master", "slave"]


def redis_server_binary() -> str:
    found = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.access(found, os.X_OK):
        raise LabError("redis-server not found")
    return found


def _quote(value: str) -> str:
    """A redis.conf double-quoted argument."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class RedisServer:
    name: str
    port: int
    work_dir: Path
    password: str = field(repr=False)
    host: str = "127.0.0.1"
    _proc: ManagedProcess | None = field(default=None, init=False, repr=False)
    _client: redis.Redis | None = field(default=None, init=False, repr=False)

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def process_ids(self) -> list[int]:
        return [] if self._proc is None else self._proc.members()

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.is_running()

    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = self._new_client()
        return self._client

    def _new_client(self) -> redis.Redis:
        # No retries: a dead server must fail the call at once, not after a back-off.
        return redis.Redis(
            host=self.host,
            port=self.port,
            password=self.password,
            decode_responses=True,
            socket_timeout=3,
            socket_connect_timeout=3,
            retry=Retry(NoBackoff(), 0),
        )

    def start(self, replica_of: RedisServer | None = None, timeout: float = 15.0) -> None:
        if self.is_running():
            return
        self.work_dir.mkdir(parents=True, exist_ok=True)
        conf = self.work_dir / "redis.conf"
        # The password goes in a 0600 file, never on the command line where `ps` shows it.
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(self._config(replica_of))
        self._proc = procs.start(
            [redis_server_binary(), str(conf)],
            name=f"redis[{self.name}]",
            log_file=self.work_dir / "redis.log",
            cwd=self.work_dir,
        )
        try:
            procs.wait_until(self._answers, timeout, f"redis {self.name} to answer PING")
        except BaseException:
            self.kill()
            raise
        log.info("redis %s up on %s:%d (pid %d)", self.name, self.host, self.port, self.pid)

    def _config(self, replica_of: RedisServer | None) -> str:
        lines = [
            f"bind {self.host}",
            f"port {self.port}",
            "protected-mode yes",
            "daemonize no",
            f"dir {_quote(str(self.work_dir))}",
            'logfile ""',
            'save ""',
            "appendonly no",
            f"requirepass {_quote(self.password)}",
            f"masterauth {_quote(self.password)}",
            # The default 5 s delay before a diskless full sync only slows every drill down.
            "repl-diskless-sync yes",
            "repl-diskless-sync-delay 0",
        ]
        if replica_of is not None:
            lines.append(f"replicaof {replica_of.host} {replica_of.port}")
        return "\n".join(lines) + "\n"

    def _answers(self) -> bool:
        if not self.is_running():
            raise LabError(f"redis {self.name} exited during start-up; see {self.work_dir}")
        try:
            return bool(self.client().ping())
        except redis.ConnectionError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        self._close_client()
        if self._proc is not None:
            self._proc.stop(timeout=timeout)

    def kill(self) -> None:
        self._close_client()
        if self._proc is not None:
            self._proc.kill()
            log.info("redis %s killed", self.name)

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class RedisPair(Lifecycle):
    """A primary and a replica; `primary`/`replica` follow the roles after `failover_to`."""

    def __init__(
        self, base_dir: Path, *, password: str, names: tuple[str, str] = ("primary", "dr")
    ) -> None:
        self.primary, self.replica = (
            RedisServer(
                name=name, port=procs.free_port(), work_dir=base_dir / name, password=password
            )
            for name in names
        )

    @property
    def servers(self) -> tuple[RedisServer, RedisServer]:
        return self.primary, self.replica

    def start(self) -> RedisPair:
        try:
            self.primary.start()
            self.replica.start(replica_of=self.primary)
            self.wait_synced(self.replica, self.primary)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        errors: list[LabError] = []
        for server in self.servers:
            try:
                server.stop()
            except LabError as exc:
                errors.append(exc)
        if errors:
            raise LabError(f"could not stop every redis server: {errors}")

    def role(self, server: RedisServer) -> RedisRole:
        reply = server.client().role()
        role = str(reply[0])
        if role not in ("master", "slave"):
            raise LabError(f"redis {server.name} reports unexpected role {role!r}")
        return "master" if role == "master" else "slave"

    def wait_synced(
        self, replica: RedisServer, primary: RedisServer, timeout: float = 15.0
    ) -> None:
        # After a diskless sync the primary only streams to a replica it has marked online,
        # which waits for the replica's first ACK (up to 1 s): the link being up is not enough.
        procs.wait_until(
            lambda: _link_up(replica) and _replica_online(primary, replica),
            timeout,
            f"redis {replica.name} to sync from {primary.name}",
        )

    def failover_to(self, target: RedisServer, timeout: float = 15.0) -> None:
        """Make `target` the primary; a surviving old primary becomes its replica."""
        other = self.replica if target is self.primary else self.primary
        target.client().replicaof("NO", "ONE")
        procs.wait_until(
            lambda: self.role(target) == "master", timeout, f"redis {target.name} to become master"
        )
        if other.is_running():
            other.client().replicaof(target.host, target.port)
            self.wait_synced(other, target, timeout)
        self.primary, self.replica = target, other
        log.info("redis failover: %s is primary", target.name)


def _link_up(replica: RedisServer) -> bool:
    info = replica.client().info("replication")
    return info.get("role") == "slave" and info.get("master_link_status") == "up"


def _replica_online(primary: RedisServer, replica: RedisServer) -> bool:
    info = primary.client().info("replication")
    entries = (info[key] for key in info if key.startswith("slave") and isinstance(info[key], dict))
    return any(e.get("port") == replica.port and e.get("state") == "online" for e in entries)
