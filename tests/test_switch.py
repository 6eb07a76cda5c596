"""`python -m failover.switch` against real PostgreSQL, moto in server mode and botocore Stubbers.

Each test gets a fresh lab PostgreSQL writer + streaming replica (the switch promotes, fences
or kills them: built once per module, restored from its stopped data dirs per test), a fresh
copy of the stack files and journal dir, and a moto server (shared by the module) reset and
seeded with the RDS writer and its cross-region replica.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from failover import stackconfig, switch
from failover.journal import Journal, switch_lock
from failover.lab.motoserver import MotoServer
from failover.lab.postgres import PgPair
from tests.conftest import PROJECT_DIR
from tests.lab_fixtures import (  # noqa: F401 - pytest finds fixtures in module globals
    ProcessLeakCheck,
    lab_processes_fixture,
)
from tests.switch_support import (
    DB_IDS,
    FailingService,
    PgSnapshot,
    RdsMotoServer,
    SwitchLab,
    db_arn,
    seed_rds,
    stack_config,
    stack_files,
)

ALL_STEPS = [
    "fence",
    "promote-database",
    "unfence-new-writer",
    "failover-cache",
    "search-restore",
    "write-config",
    "up-dr",
    "up-primary",
]
TO_DR_UPDATES = [("refresh", "dr"), ("up", "dr"), ("refresh", "primary"), ("up", "primary")]


@pytest.fixture(scope="module", name="rds_moto")
def rds_moto_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with RdsMotoServer(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture(scope="module", name="pg_snapshot")
def pg_snapshot_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgSnapshot]:
    base = tmp_path_factory.mktemp("pg")
    pair = PgPair(base / "pair", password=secrets.token_urlsafe(18))
    try:
        pair.start()
        yield PgSnapshot(pair, base / "snapshot")
    finally:
        pair.stop()


@pytest.fixture(name="lab_pg")
def lab_pg_fixture(pg_snapshot: PgSnapshot, lab_processes: ProcessLeakCheck) -> Iterator[PgPair]:
    """A writer + streaming replica as just built; stopped (or killed) again after the test."""
    pair = pg_snapshot.restore()
    try:
        yield pair
    finally:
        pg_snapshot.stop_servers()


@pytest.fixture(name="lab")
def lab_fixture(tmp_path: Path, lab_pg: PgPair, rds_moto: MotoServer) -> SwitchLab:
    return SwitchLab.build(tmp_path, lab_pg, rds_moto, lab_pg.writer.password)


def steps_done(lab: SwitchLab) -> list[str]:
    return [r["step"] for r in lab.journal() if r["event"] == "step-done"]


def assert_nothing_switched(lab: SwitchLab, files_before: dict[str, bytes]) -> None:
    assert stack_files(lab.project) == files_before
    assert lab.in_recovery("dr")
    assert lab.rds_source("dr") == db_arn("primary")
    assert lab.rds_calls.promote_calls == 0
    assert lab.cloud.pg_promotions == 0
    assert lab.datastore.failovers == 0
    assert lab.datastore.primary_region == "us-east-1"
    assert ("up", "dr") not in lab.engine.calls and ("up", "primary") not in lab.engine.calls


def assert_switched_to_dr(lab: SwitchLab) -> None:
    assert not lab.in_recovery("dr")
    assert lab.can_write("dr")
    assert lab.rds_source("dr") is None
    assert lab.datastore.primary_region == "us-west-2"
    assert stack_config(lab.project, "dr") == {"active_region": "dr", "replicate_from": ""}
    assert stack_config(lab.project, "primary") == {"active_region": "dr", "replicate_from": ""}
    assert lab.journal()[-1]["event"] == "run-end"
    assert lab.journal()[-1]["outcome"] == "switched"


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def leave_stale_lock(project: Path) -> None:
    """What a killed switch leaves behind: a lock naming a process that is gone."""
    holder = {
        "pid": dead_pid(),
        "host": socket.gethostname(),
        "user": "ops",
        "started": "2024-01-01T00:00:00Z",
        "command": "switch --active dr --mode planned",
    }
    (project / ".failover" / "switch.lock").write_text(json.dumps(holder))


# -- the happy path ---------------------------------------------------------------------------


def test_planned_switch_to_dr(lab: SwitchLab) -> None:
    files_before = stack_files(lab.project)

    result = lab.run("--active", "dr", "--json")

    assert result.code == switch.EXIT_OK, result.output
    # The replica is the writer, in moto and in PostgreSQL; the old writer is fenced.
    assert_switched_to_dr(lab)
    assert lab.rds_calls.promote_calls == 1
    assert lab.cloud.pg_promotions == 1
    assert lab.fenced("primary")
    assert not lab.can_write("primary")
    assert not lab.in_recovery("primary")  # kept as it was: never converted in place
    # Only active_region changed in primary's file; dr's also lost replicate_from; comments kept.
    new_files = stack_files(lab.project)
    primary_changed = set(new_files["primary"].splitlines()) ^ set(
        files_before["primary"].splitlines()
    )
    assert {line.strip() for line in primary_changed} == {
        b"llm-marketplace:active_region: primary",
        b'llm-marketplace:active_region: "dr"',
    }
    assert new_files["dr"].startswith(b'# Stack "dr": us-west-2, the DNS owner.')
    # The target first (it is also the DNS owner), the old side last.
    assert lab.engine.updates() == TO_DR_UPDATES
    assert lab.engine.stack_outputs["dr"]["db_replica_source"] == ""
    # The journal: run-start, every step done, run-end.
    events = [r["event"] for r in lab.journal()]
    assert events[0] == "run-start"
    assert events[-1] == "run-end"
    assert steps_done(lab) == ALL_STEPS
    assert "step-failed" not in events
    # The report: zero data loss, validation by direct endpoint and by DNS name.
    report = result.report
    assert report is not None
    assert report["outcome"] == "switched"
    assert report["row_counts_before"] == report["row_counts_after"]
    assert set(report["row_counts_before"]) == {"services", "users", "api_keys"}
    assert report["rows_missing_after_switch"] == {}
    assert report["pending"] == []
    assert report["within_targets"] is True
    assert "validate: db.llm-marketplace.com: pg_is_in_recovery() = false" in report["checks"]
    assert lab.resolver is not None and lab.resolver.lookups == ["db.llm-marketplace.com"]
    # Asked once before the irreversible step.
    assert len(lab.confirm.questions) == 1
    assert DB_IDS["dr"] in lab.confirm.questions[0]
    assert "CANNOT BE UNDONE" in lab.confirm.questions[0]
    lab.datastore.assert_drained()
    lab.metrics.assert_drained()
    assert not (lab.project / ".failover" / "switch.lock").exists()


def test_planned_switch_under_write_load_loses_nothing(lab: SwitchLab) -> None:
    load = WriteLoad(lab.server("primary").dsn())
    load.start()
    try:
        load.wait_for_rows(20)
        result = lab.run("--active", "dr", "--yes", "--json")
    finally:
        load.stop()

    assert result.code == switch.EXIT_OK, result.output
    assert load.refused_read_only, "the fence should have stopped the writes"
    with lab.server("dr").connect() as conn:
        on_new_writer = {row[0] for row in conn.execute("SELECT id FROM users")}
    assert set(load.committed) <= on_new_writer
    assert result.report is not None
    assert result.report["rows_missing_after_switch"] == {}
    assert result.report["row_counts_after"]["users"] == len(on_new_writer)


class WriteLoad(threading.Thread):
    """An application inserting users until the database refuses writes."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.committed: list[int] = []
        self.refused_read_only = False
        self._halt = threading.Event()
        self._rows = threading.Condition()

    def run(self) -> None:
        next_id = 1000
        while not self._halt.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True) as conn:
                    while not self._halt.is_set():
                        conn.execute(
                            "INSERT INTO users (id, email, display_name) VALUES (%s, %s, %s)",
                            (next_id, f"load{next_id}@example.com", "Load"),
                        )
                        with self._rows:
                            self.committed.append(next_id)
                            self._rows.notify_all()
                        next_id += 1
            except psycopg.errors.ReadOnlySqlTransaction:
                self.refused_read_only = True
                return
            except psycopg.OperationalError:
                next_id += 1  # terminated by the fence mid-statement: reconnect

    def wait_for_rows(self, count: int) -> None:
        with self._rows:
            assert self._rows.wait_for(lambda: len(self.committed) >= count, timeout=10)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)


def test_failback_after_rebuilding_the_old_primary(lab: SwitchLab) -> None:
    # Fail over with the old side's `up` failing: it is left pending.
    lab.engine.fail_up_once["primary"] = "error: RequestError: send request failed"
    assert lab.run("--active", "dr", "--yes").code == switch.EXIT_OK
    assert [p["action"] for p in Journal(lab.project).pending()] == ["up-primary"]
    new_primary = lab.rebuild_primary_as_replica()
    lab.engine.calls.clear()

    result = lab.run("--active", "primary", "--yes", "--json")

    assert result.code == switch.EXIT_OK, result.output
    assert not lab.in_recovery("primary")
    assert lab.rds_source("primary", new_primary) is None
    assert lab.fenced("dr")
    assert lab.datastore.primary_region == "us-east-1"
    assert stack_config(lab.project, "primary") == {
        "active_region": "primary",
        "replicate_from": "",
    }
    # dr's old writer is kept as it is (a later rebuild makes it a replica again).
    assert stack_config(lab.project, "dr") == {"active_region": "primary", "replicate_from": ""}
    # The target first, then dr, which is both the DNS owner and the old side.
    assert lab.engine.updates() == [
        ("refresh", "primary"),
        ("up", "primary"),
        ("refresh", "dr"),
        ("up", "dr"),
    ]
    assert lab.rds_calls.promote_calls == 2
    assert result.report is not None
    assert result.report["rows_missing_after_switch"] == {}
    # primary's stack was brought up since: it is no longer pending.
    assert Journal(lab.project).pending() == []
    assert result.report["pending"] == []


# -- refusals: nothing changes ----------------------------------------------------------------


def test_unknown_active_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        switch.main(["--active", "us-west-2"])

    assert exc.value.code == switch.EXIT_USAGE
    assert "invalid choice: 'us-west-2'" in capsys.readouterr().err


def test_target_already_active_changes_nothing(lab: SwitchLab) -> None:
    files_before = stack_files(lab.project)

    result = lab.run("--active", "primary", "--yes")

    assert result.code == switch.EXIT_OK, result.output
    assert "primary is already the active region: nothing to do" in result.output
    assert stack_files(lab.project) == files_before
    assert lab.engine.updates() == []
    assert lab.journal() == []
    assert lab.confirm.questions == []
    assert lab.can_write("primary")
    assert lab.in_recovery("dr")


def test_missing_stack_is_refused(lab: SwitchLab) -> None:
    files_before = stack_files(lab.project)
    lab.engine.missing.add("dr")

    result = lab.run("--active", "dr", "--yes")

    assert result.code == switch.EXIT_REFUSED, result.output
    assert "refused: stack 'dr' does not exist (it is never created here)" in result.output
    assert_nothing_switched(lab, files_before)
    assert lab.journal() == []


def test_lag_above_the_gate_is_refused_then_accepted_with_approval(lab: SwitchLab) -> None:
    files_before = stack_files(lab.project)
    lab.metrics.lag_seconds = 900.0

    refused = lab.run("--active", "dr", "--yes")

    assert refused.code == switch.EXIT_REFUSED, refused.output
    assert "CloudWatch ReplicaLag 900.0s" in refused.output
    assert "replica lag 900s is above --max-lag 300s" in refused.output
    assert_nothing_switched(lab, files_before)
    assert not lab.fenced("primary") and lab.can_write("primary")
    assert lab.journal() == []
    # The CloudWatch query asked for the replica's metric in the replica's region.
    ((region, params),) = lab.metrics.operations("GetMetricStatistics")
    assert region == "us-west-2"
    assert params["Dimensions"] == [{"Name": "DBInstanceIdentifier", "Value": DB_IDS["dr"]}]

    accepted = lab.run("--active", "dr", "--yes", "--max-lag", "1000", "--approved-by", "alice")

    assert accepted.code == switch.EXIT_OK, accepted.output
    assert_switched_to_dr(lab)
    overrides = [r for r in lab.journal() if r["event"] == "override"]
    assert [(o["what"], o["value"], o["approved_by"]) for o in overrides] == [
        ("max_lag", 1000.0, "alice")
    ]
    run_start = next(r for r in lab.journal() if r["event"] == "run-start")
    assert (run_start["approved_by"], run_start["max_lag"]) == ("alice", 1000.0)


def test_unplanned_while_the_writer_answers_is_refused(lab: SwitchLab) -> None:
    files_before = stack_files(lab.project)

    result = lab.run("--active", "dr", "--mode", "unplanned", "--yes")

    assert result.code == switch.EXIT_REFUSED, result.output
    assert "still answers" in result.output
    assert "second writer" in result.output
    assert_nothing_switched(lab, files_before)
    assert lab.can_write("primary")
    assert lab.journal() == []


def test_unplanned_with_the_writer_killed(lab: SwitchLab) -> None:
    lab.server("primary").kill()
    # Its region is down: the old side's `up` cannot work and is left pending.
    lab.engine.fail_up_once["primary"] = "error: RequestError: send request failed (us-east-1)"

    result = lab.run("--active", "dr", "--mode", "unplanned", "--yes", "--json")

    assert result.code == switch.EXIT_OK, result.output
    assert_switched_to_dr(lab)
    assert lab.rds_calls.promote_calls == 1
    assert steps_done(lab) == [s for s in ALL_STEPS if "fence" not in s]
    assert lab.engine.updates() == TO_DR_UPDATES
    assert result.report is not None
    assert result.report["mode"] == "unplanned"
    assert result.report["pending"] == ["up-primary"]
    # With the old writer gone, row counts cannot tell what was lost: the report says so
    # and gives the lag measured before the promotion (CloudWatch; the replica's own view is
    # unknown once it stopped streaming) instead of a reassuring "nothing missing".
    assert result.report["rows_missing_after_switch"] is None
    assert result.report["row_count_change_since_preflight"] == {}
    assert result.report["replica_lag_at_preflight_seconds"] == 0.0
    assert "replica's own n/a" in result.output


def test_unplanned_report_states_the_row_count_difference() -> None:
    report = switch.Report(run_id="r1", target="dr", mode="unplanned", approved_by=None)
    report.counts_before = {"services": 3, "users": 10, "api_keys": 3}
    report.counts_after = {"services": 3, "users": 8, "api_keys": 4}

    assert report.to_json()["row_count_change_since_preflight"] == {"users": -2, "api_keys": 1}
    assert report.to_json()["rows_missing_after_switch"] is None
    assert (
        "row count change since preflight (counted on the replica): {'users': -2, 'api_keys': 1}"
        in report.table()
    )


def test_replica_of_another_database_is_refused(lab: SwitchLab, rds_moto: MotoServer) -> None:
    # In RDS the dr replica follows a different writer than the one the primary stack names
    # (e.g. a generation-2 writer); promoting it would not take over the current writer.
    seed_rds(rds_moto, replica_source=f"{DB_IDS['primary']}-g2")
    files_before = stack_files(lab.project)

    result = lab.run("--active", "dr", "--yes")

    assert result.code == switch.EXIT_REFUSED, result.output
    assert f"replicates from {db_arn('primary', DB_IDS['primary'] + '-g2')}" in result.output
    assert stack_files(lab.project) == files_before
    assert lab.rds_calls.promote_calls == 0
    assert lab.in_recovery("dr")


# -- failures and resuming --------------------------------------------------------------------


def test_failed_promotion_changes_no_config_and_resumes(lab: SwitchLab) -> None:
    files_before = stack_files(lab.project)
    lab.rds_calls.fail_promote.append(
        ("InvalidDBInstanceState", "Instance is not in a state that allows promotion")
    )

    failed = lab.run("--active", "dr", "--yes")

    assert failed.code == switch.EXIT_FAILED, failed.output
    assert "rds:PromoteReadReplica failed: InvalidDBInstanceState" in failed.output
    assert_nothing_switched(lab, files_before)
    assert lab.engine.updates() == []
    (failure,) = [r for r in lab.journal() if r["event"] == "step-failed"]
    assert failure["step"] == "promote-database"
    assert lab.journal()[-1]["event"] == "phase-failed"
    assert lab.journal()[-1]["phase"] == "promote"

    resumed = lab.run("--active", "dr", "--yes")

    assert resumed.code == switch.EXIT_OK, resumed.output
    assert "fence: already done by this run, skipped" in resumed.output
    assert_switched_to_dr(lab)
    assert lab.rds_calls.promote_calls == 1
    assert lab.cloud.pg_promotions == 1


def test_failed_up_of_the_target_resumes_at_flip(lab: SwitchLab) -> None:
    lab.engine.fail_up_once["dr"] = "error: update failed: 1 resource failed"

    failed = lab.run("--active", "dr", "--yes")

    assert failed.code == switch.EXIT_FAILED, failed.output
    assert "flip failed: stack dr" in failed.output
    (failure,) = [r for r in lab.journal() if r["event"] == "step-failed"]
    assert failure["step"] == "up-dr"
    assert lab.journal()[-1]["event"] == "phase-failed"
    assert lab.journal()[-1]["phase"] == "flip"
    assert steps_done(lab) == ALL_STEPS[:6]
    assert lab.engine.updates() == [("refresh", "dr"), ("up", "dr")]
    assert lab.rds_calls.promote_calls == 1

    lab.engine.calls.clear()
    resumed = lab.run("--active", "dr", "--yes")

    assert resumed.code == switch.EXIT_OK, resumed.output
    assert "promote-database: already done by this run, skipped" in resumed.output
    assert "write-config: already done by this run, skipped" in resumed.output
    assert lab.engine.updates() == TO_DR_UPDATES
    assert lab.rds_calls.promote_calls == 1
    assert lab.cloud.pg_promotions == 1
    assert lab.datastore.failovers == 1
    assert_switched_to_dr(lab)
    assert "run-resume" in [r["event"] for r in lab.journal()]


def test_failed_up_of_the_old_side_is_left_pending(lab: SwitchLab) -> None:
    lab.engine.fail_up_once["primary"] = "error: Throttling: Rate exceeded"

    result = lab.run("--active", "dr", "--yes", "--json")

    assert result.code == switch.EXIT_OK, result.output
    assert "recorded as pending" in result.output
    assert_switched_to_dr(lab)
    assert result.report is not None
    assert result.report["pending"] == ["up-primary"]
    (pending,) = Journal(lab.project).pending()
    assert pending["action"] == "up-primary"
    assert "Throttling" in pending["error"]


def test_failed_validation_names_the_check(lab: SwitchLab) -> None:
    lab.health = FailingService("admin-service")

    result = lab.run("--active", "dr", "--yes")

    assert result.code == switch.EXIT_INVALID, result.output
    failures = [line for line in result.output.splitlines() if "VALIDATION FAILED" in line]
    assert failures == [
        "VALIDATION FAILED: health: https://api.llm-marketplace.com/admin/health "
        "-> 503 Service Unavailable"
    ]
    assert not lab.in_recovery("dr")  # the switch itself happened
    (record,) = [r for r in lab.journal() if r["event"] == "validation-failed"]
    assert len(record["failures"]) == 1


def test_operator_says_no(lab: SwitchLab) -> None:
    files_before = stack_files(lab.project)
    lab.confirm.answer = False

    result = lab.run("--active", "dr")

    assert result.code == switch.EXIT_ABORTED, result.output
    assert "aborted: the operator declined the promotion" in result.output
    assert len(lab.confirm.questions) == 1
    assert_nothing_switched(lab, files_before)
    assert not lab.fenced("primary")
    assert lab.can_write("primary")
    assert lab.journal()[-1]["event"] == "run-end"
    assert lab.journal()[-1]["outcome"] == "aborted"


# -- one switch at a time -----------------------------------------------------------------------


def test_a_second_switch_is_refused_while_one_runs(lab: SwitchLab) -> None:
    files_before = stack_files(lab.project)

    with switch_lock(lab.project, "switch --active dr --mode planned (bob's terminal)"):
        result = lab.run("--active", "dr", "--yes")

    assert result.code == switch.EXIT_LOCKED, result.output
    assert f"pid {os.getpid()} on {socket.gethostname()}" in result.output
    assert "(bob's terminal)" in result.output
    assert lab.engine.calls == []
    assert_nothing_switched(lab, files_before)


def test_a_stale_lock_does_not_block(lab: SwitchLab) -> None:
    (lab.project / ".failover").mkdir()
    leave_stale_lock(lab.project)

    result = lab.run("--active", "dr", "--yes")

    assert result.code == switch.EXIT_OK, result.output
    assert_switched_to_dr(lab)
    assert not (lab.project / ".failover" / "switch.lock").exists()


@pytest.mark.parametrize("phase", ["preflight", "fence", "promote", "flip", "validate"])
def test_a_crash_after_any_phase_is_resumed(lab: SwitchLab, phase: str) -> None:
    with pytest.raises(switch.SimulatedCrash):
        lab.run("--active", "dr", "--yes", crash_at=phase)
    assert f"[{phase}] done" in lab.last_output
    leave_stale_lock(lab.project)

    result = lab.run("--active", "dr", "--yes")

    assert result.code == switch.EXIT_OK, result.output
    assert ("resuming run" in result.output) == (phase != "preflight")
    assert_switched_to_dr(lab)
    assert lab.rds_calls.promote_calls == 1
    assert lab.cloud.pg_promotions == 1
    assert lab.datastore.failovers == 1
    assert sorted(set(steps_done(lab))) == sorted(ALL_STEPS)
    assert [r["event"] for r in lab.journal()].count("run-start") == 1
    assert lab.fenced("primary")


# -- changing nothing, leaking nothing --------------------------------------------------------


def test_dry_run_changes_nothing(lab: SwitchLab) -> None:
    # With the program beside the stack files, the dry run also shows the DNS changes.
    shutil.copy2(PROJECT_DIR / "__main__.py", lab.project / "__main__.py")
    shutil.copytree(PROJECT_DIR / "components", lab.project / "components",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    files_before = stack_files(lab.project)

    result = lab.run("--active", "dr", "--dry-run")

    assert result.code == switch.EXIT_OK, result.output
    assert "plan (planned) to make dr active:" in result.output
    assert f"promote: {DB_IDS['dr']} in us-west-2" in result.output
    assert f"fence: make {DB_IDS['primary']} read-only" in result.output
    assert "dry-run: nothing changed" in result.output
    assert "DNS changes in stack dr (5 changed):" in result.output
    assert "  ~ record db.llm-marketplace.com CNAME" in result.output
    assert (
        "      targets: <stack primary: db_address> -> <dr-database-instance.address>"
        in result.output
    )
    assert_nothing_switched(lab, files_before)
    assert lab.engine.updates() == []
    assert not lab.fenced("primary") and lab.can_write("primary")
    assert lab.confirm.questions == []
    assert lab.journal() == []


def test_no_secret_in_output_journal_or_report(lab: SwitchLab) -> None:
    refused = lab.run("--active", "dr", "--mode", "unplanned", "--yes")
    switched = lab.run("--active", "dr", "--yes", "--json")

    assert refused.code == switch.EXIT_REFUSED
    assert switched.code == switch.EXIT_OK, switched.output
    assert switched.report is not None
    assert len(lab.password) >= 16
    for text in (refused.output, switched.output, lab.journal_text(), json.dumps(switched.report)):
        assert text
        assert lab.password not in text


def test_without_pulumi_cli_names_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))

    code = switch.main(["--active", "dr", "--project-dir", str(tmp_path)])

    captured = capsys.readouterr()
    assert code == switch.EXIT_ENV
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert "`pulumi` CLI is not on PATH" in lines[0]
    assert "https://www.pulumi.com/docs/install/" in lines[0]
    assert "Traceback" not in captured.err + captured.out


def test_without_db_password_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "pulumi"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("FAILOVER_DB_PASSWORD", raising=False)

    code = switch.main(["--active", "dr", "--project-dir", str(tmp_path)])

    captured = capsys.readouterr()
    assert code == switch.EXIT_ENV
    assert captured.err.strip().splitlines() == [captured.err.strip()]
    assert "FAILOVER_DB_PASSWORD is not set" in captured.err


# -- follow-ups: confirmation first, abandon, pending retries, search, topology -------------


def test_the_question_comes_before_the_fence(lab: SwitchLab) -> None:
    lab.confirm.answer = False

    result = lab.run("--active", "dr")

    assert result.code == switch.EXIT_ABORTED, result.output
    (question,) = lab.confirm.questions
    assert question.startswith("Stop writes on llm-marketplace-primary-db, then promote")
    assert not any(r.get("step") == "fence" for r in lab.journal())
    assert lab.can_write("primary")


def test_abandon_unfences_a_run_that_stopped_before_promoting(lab: SwitchLab) -> None:
    crashed = None
    try:
        lab.run("--active", "dr", "--yes", crash_at="fence")
    except switch.SimulatedCrash as crash:
        crashed = crash
    assert crashed is not None
    assert lab.fenced("primary") and not lab.can_write("primary")

    result = lab.run("--active", "dr", "--abandon")

    assert result.code == switch.EXIT_OK, result.output
    assert "takes writes again" in result.output
    assert lab.can_write("primary")
    assert lab.in_recovery("dr")
    assert lab.journal()[-1] == {**lab.journal()[-1], "event": "run-end", "outcome": "abandoned"}
    assert Journal(lab.project).unfinished() is None


def test_abandon_is_refused_once_the_replica_was_promoted(lab: SwitchLab) -> None:
    with pytest.raises(switch.SimulatedCrash):
        lab.run("--active", "dr", "--yes", crash_at="promote")

    result = lab.run("--active", "dr", "--abandon")

    assert result.code == switch.EXIT_REFUSED, result.output
    assert "cannot be abandoned" in result.output
    assert lab.run("--active", "dr", "--yes").code == switch.EXIT_OK
    assert lab.rds_calls.promote_calls == 1


def test_a_rerun_retries_the_pending_old_side(lab: SwitchLab) -> None:
    lab.engine.fail_up_once["primary"] = "error: region unreachable"
    assert lab.run("--active", "dr", "--yes").code == switch.EXIT_OK
    assert [p["action"] for p in Journal(lab.project).pending()] == ["up-primary"]
    calls_before = len(lab.engine.updates())

    result = lab.run("--active", "dr", "--yes")

    assert result.code == switch.EXIT_OK, result.output
    assert "retrying pending up-primary" in result.output
    assert lab.engine.updates()[calls_before:] == [("refresh", "primary"), ("up", "primary")]
    assert Journal(lab.project).pending() == []
    assert lab.rds_calls.promote_calls == 1


def test_raising_the_lag_gate_needs_an_approver(lab: SwitchLab) -> None:
    with pytest.raises(SystemExit) as exit_info:
        lab.run("--active", "dr", "--yes", "--max-lag", "1000")
    assert exit_info.value.code == switch.EXIT_USAGE
    assert lab.journal() == []


def test_search_restore_runs_when_the_target_domain_is_empty(lab: SwitchLab) -> None:
    lab.cloud.search_indices_missing = True

    result = lab.run("--active", "dr", "--yes")

    assert result.code == switch.EXIT_OK, result.output
    ((endpoint, bucket, role_arn),) = lab.cloud.search_restores
    assert (endpoint, bucket) == (
        lab.engine.stack_outputs["dr"]["search_endpoint"],
        lab.engine.stack_outputs["dr"]["search_snapshot_bucket"],
    )
    assert role_arn == lab.engine.stack_outputs["dr"]["search_snapshot_role_arn"]
    assert Journal(lab.project).pending() == []


def test_a_failed_search_restore_is_pending_and_does_not_block_the_database(lab: SwitchLab) -> None:
    lab.cloud.search_indices_missing = True
    lab.cloud.search_restore_error = "OpenSearch restore: no successful snapshot in s3_backup"

    result = lab.run("--active", "dr", "--yes")

    assert result.code == switch.EXIT_OK, result.output
    assert_switched_to_dr(lab)
    assert [p["action"] for p in Journal(lab.project).pending()] == ["search-restore"]

    lab.cloud.search_restore_error = None
    retry = lab.run("--active", "dr", "--yes")
    assert retry.code == switch.EXIT_OK, retry.output
    assert "retrying pending search-restore" in retry.output
    assert Journal(lab.project).pending() == []


def test_the_policy_topology_check_refuses_a_standby_writer_as_target(lab: SwitchLab) -> None:
    # The dr stack says it is a writer while primary is active: promoting "it" makes no sense.
    stackconfig.set_values(lab.project, "dr", {"replicate_from": ""})
    files_before = stack_files(lab.project)

    result = lab.run("--active", "dr", "--yes")

    assert result.code == switch.EXIT_REFUSED, result.output
    assert "refused: the standby region dr's database is a writer" in result.output
    assert "the switch to dr is refused until then" in result.output
    assert stack_files(lab.project) == files_before
    assert lab.rds_calls.promote_calls == 0


def test_a_promotion_that_finished_after_the_wait_gave_up_is_resumed(lab: SwitchLab) -> None:
    lab.cloud.time_out_after_promoting = True

    first = lab.run("--active", "dr", "--yes")

    assert first.code == switch.EXIT_FAILED, first.output
    assert not lab.in_recovery("dr")  # RDS finished it anyway

    rerun = lab.run("--active", "dr", "--yes")

    assert rerun.code == switch.EXIT_OK, rerun.output
    assert_switched_to_dr(lab)
    assert lab.rds_calls.promote_calls == 1
    assert lab.cloud.pg_promotions == 1
