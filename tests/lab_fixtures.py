"""Fixtures that run real lab servers under tmp_path.

Fixture functions are named `*_fixture` and registered under the short name, so a test module
can import them without its parameters shadowing the import.
Every server fixture depends on `lab_processes`, so that fixture is set up first and torn
down last: its teardown fails the test if any process the test started is still alive.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from failover.lab import procs
from failover.lab.motoserver import MotoServer
from failover.lab.postgres import PgPair
from failover.lab.redisproc import RedisPair


class ProcessLeakCheck:
    def __init__(self) -> None:
        # Strong references keep these ids from being reused by processes started later.
        self._before = procs.REGISTRY.running()

    def leaked(self) -> list[procs.ManagedProcess]:
        before = {id(p) for p in self._before}
        return [p for p in procs.REGISTRY.running() if id(p) not in before]


@pytest.fixture(name="lab_processes")
def lab_processes_fixture() -> Iterator[ProcessLeakCheck]:
    procs.install_signal_handlers()
    check = ProcessLeakCheck()
    yield check
    leaked = check.leaked()
    described = [f"{p.name} pid {p.pid} (live: {p.members()})" for p in leaked]
    for proc in leaked:
        proc.stop()
    assert not leaked, f"lab processes outlived their fixtures: {described}"


@pytest.fixture(name="lab_password")
def lab_password_fixture() -> str:
    return secrets.token_urlsafe(18)


@pytest.fixture(name="pg_pair")
def pg_pair_fixture(
    tmp_path: Path, lab_processes: ProcessLeakCheck, lab_password: str
) -> Iterator[PgPair]:
    with PgPair(tmp_path / "pg", password=lab_password) as pair:
        yield pair


@pytest.fixture(name="redis_pair")
def redis_pair_fixture(
    tmp_path: Path, lab_processes: ProcessLeakCheck, lab_password: str
) -> Iterator[RedisPair]:
    with RedisPair(tmp_path / "redis", password=lab_password) as pair:
        yield pair


@pytest.fixture(name="moto_server")
def moto_server_fixture(tmp_path: Path, lab_processes: ProcessLeakCheck) -> Iterator[MotoServer]:
    with MotoServer(tmp_path / "moto") as server:
        yield server
