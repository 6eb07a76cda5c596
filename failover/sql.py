"""What the switch asks of PostgreSQL directly: the runbook's SQL checks, fencing, probes.

Fencing (planned switchover) makes the writer refuse writes: the database default becomes
`default_transaction_read_only = on` (allowed to the RDS master user, unlike ALTER SYSTEM),
and every other session is terminated so that reconnecting clients get the read-only
default. Unfencing resets the default. Nothing here ever logs a password.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import psycopg
from psycopg import sql

from components.contract import RUNBOOK_TABLES

log = logging.getLogger(__name__)

PROBE_TABLE = "failover_probe"


class SqlError(RuntimeError):
    """A database could not be reached or answered unexpectedly."""


@dataclass(frozen=True)
class DbEndpoint:
    host: str
    port: int
    dbname: str
    user: str
    password: str

    def __repr__(self) -> str:
        return f"DbEndpoint({self.user}@{self.host}:{self.port}/{self.dbname})"

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}/{self.dbname}"


def connect(ep: DbEndpoint, timeout: float = 5.0) -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(
            host=ep.host,
            port=ep.port,
            dbname=ep.dbname,
            user=ep.user,
            password=ep.password,
            connect_timeout=max(1, int(timeout)),
            autocommit=True,
        )
    except psycopg.Error as err:
        raise SqlError(f"cannot connect to {ep.label}: {str(err).strip().splitlines()[0]}") from err


def reachable(ep: DbEndpoint, timeout: float = 3.0) -> bool:
    """True when the server accepts a connection and answers a query."""
    try:
        with connect(ep, timeout) as conn:
            conn.execute("SELECT 1")
        return True
    except (SqlError, psycopg.Error):
        return False


def _one(ep: DbEndpoint, query: str) -> object:
    try:
        with connect(ep) as conn:
            row = conn.execute(query).fetchone()
    except psycopg.Error as err:
        raise SqlError(f"{ep.label}: {str(err).strip().splitlines()[0]}") from err
    return row[0] if row else None


def is_in_recovery(ep: DbEndpoint) -> bool:
    return bool(_one(ep, "SELECT pg_is_in_recovery()"))


def replay_lag_seconds(ep: DbEndpoint) -> float | None:
    """The replica's own view of its lag; None when it is not streaming from its source.

    Without a streaming WAL receiver the replica cannot know what it has not received, and
    "all received is replayed" would read as zero lag: unknown is the honest answer.
    """
    value = _one(
        ep,
        "SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') "
        "THEN NULL WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
        "ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) END",
    )
    return None if value is None else float(str(value))


def current_lsn(ep: DbEndpoint) -> str:
    return str(_one(ep, "SELECT pg_current_wal_lsn()"))


def replay_lsn(ep: DbEndpoint) -> str | None:
    value = _one(ep, "SELECT pg_last_wal_replay_lsn()")
    return None if value is None else str(value)


def lsn_bytes(lsn: str) -> int:
    high, low = lsn.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def row_counts(ep: DbEndpoint) -> dict[str, int]:
    counts: dict[str, int] = {}
    try:
        with connect(ep) as conn:
            for table in RUNBOOK_TABLES:
                row = conn.execute(
                    sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
                ).fetchone()
                counts[table] = int(str(row[0])) if row else 0
    except psycopg.Error as err:
        raise SqlError(f"{ep.label}: counting rows failed: {err}") from err
    return counts


def fence(ep: DbEndpoint) -> None:
    """Stop every write on the writer (see the module docstring for the mechanism)."""
    try:
        with connect(ep) as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(
                    sql.Identifier(ep.dbname)
                )
            )
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND backend_type = 'client backend'"
            )
    except psycopg.Error as err:
        raise SqlError(f"fencing {ep.label} failed: {err}") from err


def unfence(ep: DbEndpoint) -> None:
    try:
        with connect(ep) as conn:
            # This session inherits the read-only default it is about to remove.
            conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE")
            conn.execute(
                sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only").format(
                    sql.Identifier(ep.dbname)
                )
            )
    except psycopg.Error as err:
        raise SqlError(f"unfencing {ep.label} failed: {err}") from err


def is_fenced(ep: DbEndpoint) -> bool:
    return str(_one(ep, "SHOW default_transaction_read_only")) == "on"


def wait_replayed(replica: DbEndpoint, target_lsn: str, timeout: float) -> float:
    """Wait until the replica has replayed `target_lsn`; returns the seconds waited."""
    start = time.monotonic()
    goal = lsn_bytes(target_lsn)
    while True:
        lsn = replay_lsn(replica)
        if lsn is not None and lsn_bytes(lsn) >= goal:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise SqlError(
                f"replica {replica.label} replayed only to {lsn} of {target_lsn} within {timeout:.0f}s"
            )
        time.sleep(0.05)


def write_read_probe(ep: DbEndpoint, run_id: str) -> None:
    """Write a row and read it back: the runbook's 'applications can read/write' check."""
    try:
        with connect(ep) as conn:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {PROBE_TABLE} "
                "(run_id text PRIMARY KEY, written_at timestamptz NOT NULL DEFAULT now())"
            )
            conn.execute(
                f"INSERT INTO {PROBE_TABLE} (run_id) VALUES (%s) ON CONFLICT (run_id) "
                "DO UPDATE SET written_at = now()",
                (run_id,),
            )
            row = conn.execute(
                f"SELECT run_id FROM {PROBE_TABLE} WHERE run_id = %s", (run_id,)
            ).fetchone()
    except psycopg.Error as err:
        raise SqlError(f"write/read probe on {ep.label} failed: {err}") from err
    if not row or row[0] != run_id:
        raise SqlError(f"write/read probe on {ep.label}: the row written was not read back")
