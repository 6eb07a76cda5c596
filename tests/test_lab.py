from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest

from failover.lab import procs
from failover.lab.motoserver import MotoServer
from failover.lab.postgres import PgPair, PgServer
from failover.lab.procs import LabError, LabTimeoutError
from failover.lab.redisproc import RedisPair
from failover.pids import pid_alive
from tests.lab_fixtures import (  # noqa: F401 - pytest finds fixtures in module globals
    lab_password_fixture,
    lab_processes_fixture,
    moto_server_fixture,
    pg_pair_fixture,
    redis_pair_fixture,
)

ROOT = Path(__file__).resolve().parents[1]


def _insert_write(server: PgServer, seq: int) -> None:
    with server.connect() as conn:
        conn.execute("INSERT INTO writes (seq, region) VALUES (%s, %s)", (seq, server.name))


def _write_seqs(server: PgServer) -> list[int]:
    with server.connect() as conn:
        return [row[0] for row in conn.execute("SELECT seq FROM writes ORDER BY seq")]


def test_wait_until_names_what_it_waited_for() -> None:
    with pytest.raises(LabTimeoutError, match="the impossible"):
        procs.wait_until(lambda: False, 0.1, "the impossible")


def test_stop_all_kills_whole_process_groups(tmp_path: Path) -> None:
    registry = procs.ProcessRegistry()
    shell = registry.start(
        ["sh", "-c", "sleep 60 & sleep 60"], name="sh", log_file=tmp_path / "sh.log"
    )
    procs.wait_until(lambda: len(shell.members()) == 3, 5, "sh and both sleeps")
    pids = shell.members()

    registry.stop_all(timeout=2)

    assert [pid for pid in pids if pid_alive(pid)] == []
    assert registry.running() == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_lab_processes(tmp_path: Path, sig: signal.Signals) -> None:
    script = textwrap.dedent(
        """
        import signal, sys, time
        from pathlib import Path
        from failover.lab import procs
        # A background job inherits SIGINT ignored; behave as if started from a terminal.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        procs.install_signal_handlers()
        child = procs.start(["sleep", "60"], name="sleep", log_file=Path(sys.argv[1]))
        print(child.pid, flush=True)
        time.sleep(60)
        """
    )
    lab = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "sleep.log")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert lab.stdout is not None
        child_pid = int(lab.stdout.readline())
        assert pid_alive(child_pid)

        lab.send_signal(sig)

        assert lab.wait(timeout=20) == -sig
        assert not pid_alive(child_pid)
    finally:
        lab.kill()
        lab.wait()
        if lab.stdout is not None:
            lab.stdout.close()


def test_replica_receives_committed_row(pg_pair: PgPair) -> None:
    _insert_write(pg_pair.writer, 1)
    pg_pair.wait_caught_up()

    assert _write_seqs(pg_pair.replica) == [1]
    assert pg_pair.is_in_recovery(pg_pair.replica)
    for table in ("services", "users", "api_keys"):
        assert pg_pair.replica.query_one(f"SELECT count(*) FROM {table}") > 0


def test_seeded_api_keys_hold_digests_only(pg_pair: PgPair) -> None:
    with pg_pair.writer.connect() as conn:
        columns = {row[0] for row in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'api_keys'"
        )}  # fmt: skip
        digests = [row[0] for row in conn.execute("SELECT key_sha256 FROM api_keys")]

    assert "key_sha256" in columns
    assert not {"key", "api_key", "secret", "token"} & columns
    assert all(len(d) == 64 and int(d, 16) >= 0 for d in digests)


def test_resume_streaming_catches_up(pg_pair: PgPair) -> None:
    pg_pair.pause_streaming()
    _insert_write(pg_pair.writer, 1)
    assert pg_pair.lag_bytes() > 0
    assert _write_seqs(pg_pair.replica) == []

    pg_pair.resume_streaming()
    pg_pair.wait_caught_up()

    assert _write_seqs(pg_pair.replica) == [1]


def test_commit_is_lost_when_writer_dies_while_replica_is_paused(pg_pair: PgPair) -> None:
    writer, replica = pg_pair.writer, pg_pair.replica
    _insert_write(writer, 1)
    pg_pair.wait_caught_up()
    pg_pair.pause_streaming()
    _insert_write(writer, 2)
    lag_before_kill = pg_pair.lag_bytes()

    writer.kill()

    assert lag_before_kill > 0
    assert not writer.is_running()
    assert not procs.port_accepts(writer.port)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(writer.dsn(), connect_timeout=2)
    with pytest.raises(LabError, match="both"):
        pg_pair.lag_bytes()
    assert pg_pair.promote(replica) is True
    assert pg_pair.writer is replica
    assert _write_seqs(replica) == [1]
    _insert_write(replica, 3)


def test_promote_of_a_writer_is_detected(pg_pair: PgPair) -> None:
    replica = pg_pair.replica
    assert pg_pair.is_in_recovery(replica)

    assert pg_pair.promote(replica) is True
    assert not pg_pair.is_in_recovery(replica)
    assert pg_pair.promote(replica) is False
    assert pg_pair.promote(pg_pair.replica) is False


def test_rebuild_as_replica_streams_from_new_writer(pg_pair: PgPair) -> None:
    old_writer, new_writer = pg_pair.writer, pg_pair.replica
    old_writer.kill()
    pg_pair.promote(new_writer)
    _insert_write(new_writer, 10)

    pg_pair.rebuild_as_replica(old_writer, new_writer)
    _insert_write(new_writer, 11)
    pg_pair.wait_caught_up()

    assert (pg_pair.writer, pg_pair.replica) == (new_writer, old_writer)
    assert pg_pair.is_in_recovery(old_writer)
    assert _write_seqs(old_writer) == [10, 11]
    streaming = "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
    assert new_writer.query_one(streaming) == 1


def test_redis_failover_swaps_roles(redis_pair: RedisPair) -> None:
    old, new = redis_pair.primary, redis_pair.replica
    old.client().set("session:1", "before")
    procs.wait_until(lambda: new.client().get("session:1") == "before", 5, "replication")

    redis_pair.failover_to(new)

    assert (redis_pair.role(new), redis_pair.role(old)) == ("master", "slave")
    assert (redis_pair.primary, redis_pair.replica) == (new, old)
    new.client().set("session:2", "after")
    procs.wait_until(lambda: old.client().get("session:2") == "after", 5, "reverse replication")


def test_redis_failover_with_dead_primary(redis_pair: RedisPair) -> None:
    old, new = redis_pair.primary, redis_pair.replica
    old.kill()

    redis_pair.failover_to(new)

    assert redis_pair.role(new) == "master"
    assert new.client().set("k", "v")


def test_moto_answers_rds_and_route53(
    moto_server: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real user's broken profile must not leak into lab clients.
    broken = tmp_path / "aws-config"
    broken.write_text("[[[ not an ini file")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(broken))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(broken))
    monkeypatch.setenv("AWS_PROFILE", "does-not-exist")

    rds = moto_server.boto3_client("rds", "us-west-2")
    route53 = moto_server.boto3_client("route53")

    assert rds.describe_db_instances()["DBInstances"] == []
    zone = route53.create_hosted_zone(Name="lab.example.com", CallerReference="lab-1")
    assert zone["HostedZone"]["Name"] == "lab.example.com."
    assert moto_server.endpoint_url.startswith("http://127.0.0.1:")


def test_labs_leave_no_process_behind(tmp_path: Path, lab_password: str) -> None:
    with (
        PgPair(tmp_path / "pg", password=lab_password) as pg,
        RedisPair(tmp_path / "redis", password=lab_password) as cache,
        MotoServer(tmp_path / "moto") as aws,
    ):
        pids = [
            *pg.writer.process_ids(),
            *pg.replica.process_ids(),
            *cache.primary.process_ids(),
            *cache.replica.process_ids(),
            *aws.process_ids(),
        ]
        assert len(pids) > 5
        assert all(pid_alive(pid) for pid in pids)
        data_root = pg.data_root

    assert [pid for pid in pids if pid_alive(pid)] == []
    if pg.run_as is not None:
        assert not data_root.exists(), "the private data dir made for the postgres user stays"
