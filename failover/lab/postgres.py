"""Real PostgreSQL writer + streaming replica on loopback, for failover drills.

The postmaster is started directly (not through pg_ctl) so it is our child and leads its own
process group: `kill()` can then SIGKILL it together with every backend, like a region dying.
Per-server settings (port, listen address, socket dir) go on the command line, because
pg_basebackup copies postgresql.conf and the copies must not point at each other.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import logging
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.abc import Query
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from failover.lab import procs
from failover.lab.procs import LabError, Lifecycle, ManagedProcess, RunAs

log = logging.getLogger(__name__)

StopMode = Literal["smart", "fast", "immediate"]
_STOP_SIGNALS: dict[StopMode, signal.Signals] = {
    "smart": signal.SIGTERM,
    "fast": signal.SIGINT,
    "immediate": signal.SIGQUIT,
}
# sun_path is 108 bytes; the socket file name adds ".s.PGSQL.NNNNN".
_MAX_SOCKET_DIR_LEN = 90

_SERVER_CONF = """
# failover lab
wal_level = replica
max_wal_senders = 10
wal_keep_size = '256MB'
hot_standby = on
fsync = off
shared_buffers = '32MB'
max_connections = 40
password_encryption = 'scram-sha-256'
wal_retrieve_retry_interval = '200ms'
wal_receiver_status_interval = '1s'
log_line_prefix = '%m [%p] '
"""

_HBA_CONF = """\
local all         all              scram-sha-256
local replication all              scram-sha-256
host  all         all 127.0.0.1/32 scram-sha-256
host  replication all 127.0.0.1/32 scram-sha-256
"""

_SCHEMA = """
CREATE TABLE services (
    id integer PRIMARY KEY,
    name text NOT NULL UNIQUE,
    tier text NOT NULL,
    status text NOT NULL DEFAULT 'active'
);
CREATE TABLE users (
    id integer PRIMARY KEY,
    email text NOT NULL UNIQUE,
    display_name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE api_keys (
    id integer PRIMARY KEY,
    user_id integer NOT NULL REFERENCES users (id),
    service_id integer NOT NULL REFERENCES services (id),
    key_prefix text NOT NULL,
    key_sha256 text NOT NULL,
    revoked boolean NOT NULL DEFAULT false
);
CREATE TABLE writes (
    seq bigint PRIMARY KEY,
    written_at timestamptz DEFAULT now(),
    region text
);
"""

_SERVICES = [
    (1, "chat-completions", "premium"),
    (2, "embeddings", "standard"),
    (3, "model-catalog", "standard"),
]
_USERS = [
    (1, "ada@example.com", "Ada"),
    (2, "grace@example.com", "Grace"),
    (3, "linus@example.com", "Linus"),
]


def lsn_to_int(lsn: str) -> int:
    high, low = lsn.split("/")
    return (int(high, 16) << 32) | int(low, 16)


@functools.cache
def pg_bindir() -> Path:
    """Server binaries: pg_config's bindir, else the newest /usr/lib/postgresql/*/bin."""
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidate = Path(out.stdout.strip())
        if out.returncode == 0 and (candidate / "postgres").exists():
            return candidate
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=_version_key)
    if not found:
        raise LabError(
            "PostgreSQL server binaries not found (no pg_config, no /usr/lib/postgresql)"
        )
    return Path(found[-1]).parent


def _version_key(path: str) -> int:
    version = Path(path).parts[-3]
    return int(version) if version.isdigit() else 0


def _pgpass_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def _write_private(path: Path, text: str, run_as: RunAs | None) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    if run_as is not None:
        os.chown(path, run_as.uid, run_as.gid)


@dataclass
class PgServer:
    name: str
    port: int
    data_dir: Path
    log_file: Path
    password: str = field(repr=False)
    superuser: str = "postgres"
    dbname: str = "llm_marketplace"
    run_as: RunAs | None = None
    host: str = "127.0.0.1"
    _proc: ManagedProcess | None = field(default=None, init=False, repr=False)

    def dsn(
        self, dbname: str | None = None, user: str | None = None, password: str | None = None
    ) -> str:
        return make_conninfo(
            host=self.host,
            port=self.port,
            dbname=dbname or self.dbname,
            user=user or self.superuser,
            password=self.password if password is None else password,
            connect_timeout=3,
            sslmode="disable",
            gssencmode="disable",
        )

    def connect(self, dbname: str | None = None) -> psycopg.Connection[TupleRow]:
        return psycopg.connect(self.dsn(dbname=dbname), autocommit=True)

    def query_one(self, query: Query, dbname: str | None = None) -> Any:
        """First column of the first row."""
        with self.connect(dbname) as conn:
            row = conn.execute(query).fetchone()
        if row is None:
            raise LabError(f"{self.name}: no row from {query!r}")
        return row[0]

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def process_ids(self) -> list[int]:
        """The postmaster and all its children."""
        return [] if self._proc is None else self._proc.members()

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.is_running()

    def start(self, timeout: float = 60.0) -> None:
        if self.is_running():
            return
        argv = [
            str(pg_bindir() / "postgres"),
            "-D",
            str(self.data_dir),
            f"--port={self.port}",
            f"--listen_addresses={self.host}",
            f"--unix_socket_directories={self._socket_dir()}",
        ]
        self._proc = procs.start(
            argv,
            name=f"postgres[{self.name}]",
            log_file=self.log_file,
            env=lab_env(self.data_dir.parent),
            run_as=self.run_as,
            stop_signal=_STOP_SIGNALS["fast"],
        )
        try:
            procs.wait_until(
                self._accepts_queries, timeout, f"postgres {self.name} to accept queries"
            )
        except BaseException:
            self._proc.kill()
            raise
        log.info("postgres %s up on %s:%d (pid %d)", self.name, self.host, self.port, self.pid)

    def _socket_dir(self) -> str:
        # An over-long socket path makes the postmaster refuse to start; TCP is all we use.
        data_dir = str(self.data_dir)
        return data_dir if len(data_dir) <= _MAX_SOCKET_DIR_LEN else ""

    def _accepts_queries(self) -> bool:
        if not self.is_running():
            raise LabError(f"postgres {self.name} exited during start-up:\n{self.log_tail()}")
        try:
            with psycopg.connect(self.dsn(dbname="postgres")) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    def stop(self, mode: StopMode = "fast", timeout: float = 30.0) -> None:
        if self._proc is None:
            return
        self._proc.stop(_STOP_SIGNALS[mode], timeout=timeout)
        log.info("postgres %s stopped (%s)", self.name, mode)

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend at once: the region is gone."""
        if self._proc is None:
            return
        self._proc.kill()
        log.info("postgres %s killed", self.name)

    def log_tail(self, lines: int = 30) -> str:
        return procs.tail(self.log_file, lines)


def lab_env(home: Path, pgpass: Path | None = None) -> dict[str, str]:
    """Environment for server tools: no inherited PG* settings can redirect them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(LC_ALL="C", LANG="C", HOME=str(home))
    if pgpass is not None:
        env["PGPASSFILE"] = str(pgpass)
    return env


class PgPair(Lifecycle):
    """A writer and a streaming replica, built from scratch; logs go to `base_dir`.

    Data dirs live in `base_dir` too, except as root: the unprivileged server then gets a
    private dir under the system temp dir instead, because a path like pytest's tmp_path sits
    under a 0700 root-owned dir whose mode pytest resets whenever any session starts, which
    would lock a running server out of its own files. `stop()` removes that private dir.
    """

    def __init__(
        self,
        base_dir: Path,
        *,
        password: str,
        superuser: str = "postgres",
        dbname: str = "llm_marketplace",
        names: tuple[str, str] = ("primary", "dr"),
    ) -> None:
        self.base_dir = base_dir
        self.run_as = procs.unprivileged_user()
        self.data_root = base_dir
        self._private_root: Path | None = None
        self._tools_log = base_dir / "tools.log"
        self._password = password
        self._saved_conninfo: dict[str, str] = {}
        self.writer = self._server(names[0], password, superuser, dbname)
        self.replica = self._server(names[1], password, superuser, dbname)

    def _server(self, name: str, password: str, superuser: str, dbname: str) -> PgServer:
        return PgServer(
            name=name,
            port=procs.free_port(),
            data_dir=self.base_dir / name,
            log_file=self.base_dir / f"{name}.log",
            password=password,
            superuser=superuser,
            dbname=dbname,
            run_as=self.run_as,
        )

    @property
    def servers(self) -> tuple[PgServer, PgServer]:
        return self.writer, self.replica

    def start(self) -> PgPair:
        try:
            self._prepare_dirs()
            self._initdb(self.writer)
            self.writer.start()
            self._seed(self.writer)
            self._basebackup(source=self.writer, target=self.replica)
            self.replica.start()
            self.wait_streaming(self.replica)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop both servers; then drop the private data dir, if one was made."""
        errors: list[LabError] = []
        for server in self.servers:
            try:
                server.stop()
            except LabError as exc:
                errors.append(exc)
        if errors:
            raise LabError(f"could not stop every server: {errors}")
        if self._private_root is not None:
            shutil.rmtree(self._private_root, ignore_errors=True)
            self._private_root = None

    @property
    def _pgpass(self) -> Path:
        return self.data_root / ".pgpass"

    def _prepare_dirs(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if self.run_as is not None:
            self._private_root = Path(tempfile.mkdtemp(prefix="failover-lab-pg-"))
            procs.chown_tree(self._private_root, self.run_as)
            self.data_root = self._private_root
            log.info("postgres data for %s lives in %s", self.base_dir, self.data_root)
        for server in self.servers:
            server.data_dir = self.data_root / server.name
        user = _pgpass_escape(self.writer.superuser)
        line = f"127.0.0.1:*:*:{user}:{_pgpass_escape(self._password)}\n"
        _write_private(self._pgpass, line, self.run_as)

    def _tool_env(self) -> dict[str, str]:
        return lab_env(self.data_root, self._pgpass)

    def _initdb(self, server: PgServer) -> None:
        pwfile = self.data_root / f".{server.name}.pw"
        _write_private(pwfile, server.password + "\n", self.run_as)
        try:
            procs.run(
                [
                    str(pg_bindir() / "initdb"),
                    f"--pgdata={server.data_dir}",
                    f"--username={server.superuser}",
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                    "--no-instructions",
                ],
                what=f"initdb for {server.name}",
                log_file=self._tools_log,
                env=self._tool_env(),
                run_as=self.run_as,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        with (server.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(_SERVER_CONF)
        (server.data_dir / "pg_hba.conf").write_text(_HBA_CONF)

    def _seed(self, server: PgServer) -> None:
        with server.connect("postgres") as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(server.dbname)))
        with psycopg.connect(server.dsn()) as conn, conn.cursor() as cur:
            cur.execute(_SCHEMA.encode())
            cur.executemany("INSERT INTO services (id, name, tier) VALUES (%s, %s, %s)", _SERVICES)
            cur.executemany(
                "INSERT INTO users (id, email, display_name) VALUES (%s, %s, %s)", _USERS
            )
            cur.executemany(
                "INSERT INTO api_keys (id, user_id, service_id, key_prefix, key_sha256)"
                " VALUES (%s, %s, %s, %s, %s)",
                [_api_key_row(i) for i in range(1, 4)],
            )

    def _basebackup(self, source: PgServer, target: PgServer) -> None:
        procs.run(
            [
                str(pg_bindir() / "pg_basebackup"),
                f"--host={source.host}",
                f"--port={source.port}",
                f"--username={source.superuser}",
                f"--pgdata={target.data_dir}",
                "--write-recovery-conf",
                "--wal-method=stream",
                "--checkpoint=fast",
                "--no-sync",
                "--no-password",
            ],
            what=f"pg_basebackup {source.name} -> {target.name}",
            log_file=self._tools_log,
            env=self._tool_env(),
            run_as=self.run_as,
        )

    def wait_streaming(self, replica: PgServer, timeout: float = 30.0) -> None:
        procs.wait_until(
            lambda: _receiver_status(replica) == "streaming",
            timeout,
            f"{replica.name} to stream WAL",
        )

    def is_in_recovery(self, server: PgServer) -> bool:
        return bool(server.query_one("SELECT pg_is_in_recovery()"))

    def promote(self, server: PgServer, timeout: int = 60) -> bool:
        """Promote `server`; False (and nothing done) when it already is a writer."""
        if not self.is_in_recovery(server):
            log.info("postgres %s is not in recovery: nothing to promote", server.name)
            return False
        promoted = server.query_one(
            sql.SQL("SELECT pg_promote(wait => true, wait_seconds => {})").format(
                sql.Literal(timeout)
            )
        )
        if not promoted:
            raise LabError(f"pg_promote on {server.name} did not finish in {timeout}s")
        procs.wait_until(
            lambda: not self.is_in_recovery(server), timeout, f"{server.name} to leave recovery"
        )
        self._assign_writer(server)
        log.info("postgres %s promoted", server.name)
        return True

    def _assign_writer(self, writer: PgServer) -> None:
        if writer is self.replica:
            self.writer, self.replica = self.replica, self.writer

    def pause_streaming(self, replica: PgServer | None = None, timeout: float = 30.0) -> None:
        """Stop the replica receiving WAL, so later commits on the writer really miss it."""
        replica = replica or self.replica
        conninfo = str(replica.query_one("SHOW primary_conninfo"))
        if not conninfo:
            return
        self._saved_conninfo[replica.name] = conninfo
        self._set_primary_conninfo(replica, "")
        procs.wait_until(
            lambda: _receiver_status(replica) is None, timeout, f"{replica.name} WAL receiver exit"
        )
        log.info("postgres %s: streaming paused", replica.name)

    def resume_streaming(self, replica: PgServer | None = None, timeout: float = 30.0) -> None:
        replica = replica or self.replica
        conninfo = self._saved_conninfo.pop(replica.name, None)
        if conninfo is None:
            return
        self._set_primary_conninfo(replica, conninfo)
        self.wait_streaming(replica, timeout)
        log.info("postgres %s: streaming resumed", replica.name)

    @staticmethod
    def _set_primary_conninfo(server: PgServer, conninfo: str) -> None:
        # ALTER SYSTEM takes no bind parameters, hence the client-side literal.
        with server.connect() as conn:
            conn.execute(
                sql.SQL("ALTER SYSTEM SET primary_conninfo = {}").format(sql.Literal(conninfo))
            )
            conn.execute("SELECT pg_reload_conf()")

    def writer_lsn(self, writer: PgServer | None = None) -> int:
        return lsn_to_int(
            str((writer or self.writer).query_one("SELECT pg_current_wal_lsn()::text"))
        )

    def replay_lsn(self, replica: PgServer | None = None) -> int:
        value = (replica or self.replica).query_one("SELECT pg_last_wal_replay_lsn()::text")
        if value is None:
            raise LabError(f"{(replica or self.replica).name} is not a replica")
        return lsn_to_int(str(value))

    def lag_bytes(self) -> int:
        if not (self.writer.is_running() and self.replica.is_running()):
            raise LabError("lag_bytes needs both the writer and the replica running")
        return self.writer_lsn() - self.replay_lsn()

    def wait_caught_up(self, timeout: float = 30.0) -> None:
        target = self.writer_lsn()
        procs.wait_until(
            lambda: self.replay_lsn() >= target, timeout, f"{self.replica.name} to replay WAL"
        )

    def rebuild_as_replica(self, old_writer: PgServer, new_writer: PgServer) -> None:
        """Discard `old_writer`'s data and re-clone it from `new_writer` as a streaming replica."""
        if self.is_in_recovery(new_writer):
            raise LabError(f"{new_writer.name} is still a replica; promote it first")
        old_writer.stop()
        shutil.rmtree(old_writer.data_dir)
        self._saved_conninfo.pop(old_writer.name, None)
        self._basebackup(source=new_writer, target=old_writer)
        old_writer.start()
        self.wait_streaming(old_writer)
        self.writer, self.replica = new_writer, old_writer
        log.info("postgres %s rebuilt as a replica of %s", old_writer.name, new_writer.name)


def _receiver_status(replica: PgServer) -> str | None:
    with replica.connect() as conn:
        row = conn.execute("SELECT status FROM pg_stat_wal_receiver").fetchone()
    return None if row is None else str(row[0])


def _api_key_row(key_id: int) -> tuple[int, int, int, str, str]:
    # Only a prefix and a digest are stored; the key itself is never kept anywhere.
    key = f"lab_{secrets.token_urlsafe(24)}"
    return key_id, key_id, key_id, key[:8], hashlib.sha256(key.encode()).hexdigest()
