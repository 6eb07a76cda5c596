"""A write load through the shared DB name, and what it saw.

Every reconnect resolves db.<zone> through the lab's Route53, like an application whose
connection pool re-resolves after an error. Every commit the database acknowledged is
recorded with the server that acknowledged it.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import psycopg

from failover.probes import Resolver

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ack:
    seq: int
    at: float
    server: tuple[str, int]


@dataclass
class WriteLoad:
    resolver: Resolver
    fqdn: str
    dbname: str
    user: str
    password: str
    rate: float
    region_of: Mapping[tuple[str, int], str]
    acks: list[Ack] = field(default_factory=list)
    attempted: int = 0
    failed: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="write-load", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _connect(self) -> tuple[psycopg.Connection[tuple[object, ...]], tuple[str, int]]:
        host, port = self.resolver.resolve(self.fqdn, 5432)
        conn = psycopg.connect(
            host=host, port=port, dbname=self.dbname, user=self.user, password=self.password,
            connect_timeout=2, autocommit=True,
        )  # fmt: skip
        return conn, (host, port)

    def _loop(self) -> None:
        interval = 1.0 / self.rate
        seq = 0
        conn: psycopg.Connection[tuple[object, ...]] | None = None
        server = ("", 0)
        next_at = time.monotonic()
        while not self._stop.is_set():
            next_at += interval
            seq += 1
            self.attempted += 1
            try:
                if conn is None:
                    conn, server = self._connect()
                conn.execute(
                    "INSERT INTO writes (seq, region) VALUES (%s, %s)",
                    (seq, self.region_of.get(server, "?")),
                )
                self.acks.append(Ack(seq, time.monotonic(), server))
            except (psycopg.Error, OSError, RuntimeError) as err:
                self.failed += 1
                log.debug("write %d failed: %s", seq, err)
                if conn is not None:
                    conn.close()
                conn = None
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_at = time.monotonic()
        if conn is not None:
            conn.close()


@dataclass(frozen=True)
class Measurement:
    rpo_lost: list[int]
    rto_seconds: float
    split_brain: list[int]
    attempted: int
    acknowledged: int
    failed: int


def measure(
    load: WriteLoad, new_writer: tuple[str, int], present: set[int], window: tuple[float, float]
) -> Measurement:
    """RPO: acknowledged but missing; RTO: longest gap between commits; split brain."""
    acked = [a.seq for a in load.acks]
    lost = sorted(set(acked) - present)
    times = [window[0]] + [a.at for a in load.acks if window[0] <= a.at <= window[1]] + [window[1]]
    gap = max((b - a for a, b in itertools.pairwise(times)), default=0.0)
    first_new = min((a.at for a in load.acks if a.server == new_writer), default=None)
    split = (
        []
        if first_new is None
        else [a.seq for a in load.acks if a.server != new_writer and a.at > first_new]
    )
    return Measurement(lost, gap, split, load.attempted, len(acked), load.failed)
