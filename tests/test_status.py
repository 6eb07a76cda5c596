"""failover.status shows disagreement and pending actions from the journal."""

from __future__ import annotations

import shutil
from pathlib import Path

from failover import stackconfig, status
from failover.journal import Journal
from tests.conftest import PROJECT_DIR


def project(tmp_path: Path) -> Path:
    for name in ("Pulumi.yaml", "Pulumi.primary.yaml", "Pulumi.dr.yaml"):
        shutil.copy2(PROJECT_DIR / name, tmp_path / name)
    return tmp_path


def test_clean_state_exits_zero(tmp_path: Path) -> None:
    assert status.main(["--project-dir", str(project(tmp_path)), "--no-dns"]) == 0


def test_pending_old_side_up_is_shown_until_done(tmp_path: Path, capsys: object) -> None:
    proj = project(tmp_path)
    journal = Journal(proj)
    journal.write("pending", run_id="r1", action="up-primary", error="region down")
    assert status.main(["--project-dir", str(proj), "--no-dns"]) == 1
    assert "PENDING: up-primary: region down" in capsys.readouterr().out  # type: ignore[attr-defined]
    journal.write("pending-done", action="up-primary")
    assert status.main(["--project-dir", str(proj), "--no-dns"]) == 0


def test_disagreeing_stacks_are_flagged(tmp_path: Path) -> None:
    proj = project(tmp_path)
    stackconfig.set_values(proj, "dr", {"active_region": "dr"})
    result = status.collect(proj, with_dns=False)
    assert result["agreed_active_region"] is None
    assert status.main(["--project-dir", str(proj), "--no-dns"]) == 1
    # The edit kept the file's comments.
    assert (proj / "Pulumi.dr.yaml").read_text().startswith("# Stack \"dr\"")
