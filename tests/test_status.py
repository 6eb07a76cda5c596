"""failover.status shows disagreement and pending actions from the journal."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.contract import Output
from failover import stackconfig, status
from failover.journal import Journal
from failover.lab.motoserver import MotoServer
from tests.conftest import PROJECT_DIR
from tests.switch_support import (
    DB_IDS,
    GlobalDatastoreStub,
    LabAwsCloud,
    RdsCalls,
    RdsMotoServer,
    ReplicaLagStub,
    db_arn,
    seed_rds,
)


def project(tmp_path: Path) -> Path:
    for name in ("Pulumi.yaml", "Pulumi.primary.yaml", "Pulumi.dr.yaml"):
        shutil.copy2(PROJECT_DIR / name, tmp_path / name)
    return tmp_path


def test_clean_state_exits_zero(tmp_path: Path) -> None:
    assert status.main(["--project-dir", str(project(tmp_path)), "--no-dns"]) == 0


def test_pending_old_side_up_is_shown_until_done(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proj = project(tmp_path)
    journal = Journal(proj)
    journal.write("pending", run_id="r1", action="up-primary", error="region down")
    assert status.main(["--project-dir", str(proj), "--no-dns"]) == 1
    assert "PENDING: up-primary: region down" in capsys.readouterr().out
    journal.write("pending-done", action="up-primary")
    assert status.main(["--project-dir", str(proj), "--no-dns"]) == 0


def test_disagreeing_stacks_are_flagged(tmp_path: Path) -> None:
    proj = project(tmp_path)
    stackconfig.set_values(proj, "dr", {"active_region": "dr"})
    result = status.collect(proj, with_dns=False)
    assert result["agreed_active_region"] is None
    assert status.main(["--project-dir", str(proj), "--no-dns"]) == 1
    # The edit kept the file's comments.
    assert (proj / "Pulumi.dr.yaml").read_text().startswith('# Stack "dr"')


class OutputsOnly:
    """The Engine seam reduced to what status reads: each stack's database identifier."""

    def __init__(self, identifiers: dict[str, str]) -> None:
        self.identifiers = identifiers

    def outputs(self, stack: str) -> dict[str, Any]:
        return {Output.DB_IDENTIFIER: self.identifiers[stack]}


@pytest.fixture(scope="module")
def rds_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with RdsMotoServer(tmp_path_factory.mktemp("moto")) as server:
        seed_rds(server)
        yield server


def live_cloud(moto: MotoServer, lag: float) -> LabAwsCloud:
    return LabAwsCloud(moto.endpoint_url, GlobalDatastoreStub(), ReplicaLagStub(lag), RdsCalls())


def test_live_shows_each_database_as_aws_reports_it(
    tmp_path: Path, rds_moto: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    proj = project(tmp_path)
    engine = OutputsOnly(DB_IDS)  # type: ignore[arg-type]
    code = status.report(proj, False, False, True, engine, live_cloud(rds_moto, 42.0))  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert code == 0, out
    assert "live database llm-marketplace-primary-db: writer (available)" in out
    assert f"live database llm-marketplace-dr-db: replica of {db_arn('primary')}" in out
    assert "lag 42s" in out


def test_live_flags_a_config_that_disagrees_with_aws(
    tmp_path: Path, rds_moto: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    proj = project(tmp_path)
    # The dr file says writer (as after a switch) but AWS still has a replica.
    stackconfig.set_values(proj, "dr", {"replicate_from": ""})
    code = status.report(proj, False, False, True, OutputsOnly(DB_IDS), live_cloud(rds_moto, 0.0))  # type: ignore[arg-type]
    assert code == 1
    assert "WARNING: dr's config declares a writer, AWS has a replica" in capsys.readouterr().out


def test_live_without_a_pulumi_cli_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert status.main(["--project-dir", str(project(tmp_path)), "--no-dns", "--live"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pulumi" in err[0]
