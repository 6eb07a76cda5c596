"""The canary secret from the test config never reaches the previews', dnsplan's or status's output.

(The switch's output, journal and report: tests/test_switch.py; plain-text stack outputs:
tests/test_program.py.)
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from failover import dnsplan, preview, stackconfig, status
from tests.conftest import CANARY_PASSWORD, PROJECT_DIR
from tests.test_preview_cli import EVENTS, ReplayEngine, factory


@pytest.fixture(scope="module")
def canary_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project with the canary as each stack's db_password (a secret key)."""
    project = tmp_path_factory.mktemp("canary")
    for name in ("Pulumi.yaml", "Pulumi.primary.yaml", "Pulumi.dr.yaml", "__main__.py"):
        shutil.copy2(PROJECT_DIR / name, project / name)
    shutil.copytree(PROJECT_DIR / "components", project / "components",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    for stack in ("primary", "dr"):
        stackconfig.set_values(project, stack, {"db_password": CANARY_PASSWORD})
        assert CANARY_PASSWORD in (project / f"Pulumi.{stack}.yaml").read_text()
    return project


def test_dnsplan_never_prints_the_canary(
    canary_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--project-dir", str(canary_project)]
    assert dnsplan.main([*base, "--format", "text"]) == 0
    assert dnsplan.main([*base, "--format", "markdown", "--flip"]) == 0
    assert dnsplan.main([*base, "--format", "json", "--flip"]) == 0
    out = capsys.readouterr()
    assert "api.llm-marketplace.com" in out.out  # it did print the plan
    assert CANARY_PASSWORD not in out.out + out.err


def test_status_never_prints_the_canary(
    canary_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status.main(["--project-dir", str(canary_project), "--json"])
    status.main(["--project-dir", str(canary_project)])
    out = capsys.readouterr()
    assert "db.llm-marketplace.com" in out.out
    assert CANARY_PASSWORD not in out.out + out.err


@pytest.mark.parametrize("fmt", ["markdown", "json"])
def test_preview_never_prints_the_canary(tmp_path: Path, fmt: str) -> None:
    # An event log written with --show-secrets, where the canary travels as secret plaintext.
    log = tmp_path / "events.jsonl"
    text = (
        (EVENTS / "secrets.jsonl").read_text().replace("hunter2-SUPERSECRET-7f3a", CANARY_PASSWORD)
    )
    assert CANARY_PASSWORD in text
    log.write_text(text)
    out = tmp_path / f"preview.{fmt}"
    code = preview.main(
        ["--stack", "dr", "--format", fmt, "--output", str(out)],
        engine_factory=factory(ReplayEngine(log)),
    )
    assert code == 0
    assert "[secret]" in out.read_text()
    assert CANARY_PASSWORD not in out.read_text()
