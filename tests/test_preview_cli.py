"""failover.preview: the CLI around Engine.preview, with a fake engine replaying an event log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pulumi.automation.events import EngineEvent

from failover import preview
from failover.engine import EventHandler, PulumiCliMissing, UpdateFailed, UpdateResult
from failover.preview_render import COMMENT_MARKER
from tests.conftest import PROJECT_DIR

EVENTS = Path(__file__).parent / "data" / "events"


class ReplayEngine:
    """An `Engine` whose preview replays a `pulumi preview --event-log` file."""

    def __init__(self, event_log: Path, fail: str | None = None) -> None:
        self.event_log = event_log
        self.fail = fail
        self.calls: list[tuple[str, Path | None]] = []
        # What the preview saw in its work dir (the copy is gone afterwards).
        self.seen: dict[str, str] = {}

    def outputs(self, stack: str) -> dict[str, object]:
        raise AssertionError("a preview reads no outputs")

    def refresh(self, stack: str, on_event: EventHandler | None = None) -> UpdateResult:
        raise AssertionError("a preview never refreshes")

    def up(self, stack: str, on_event: EventHandler | None = None) -> UpdateResult:
        raise AssertionError("a preview never updates")

    def preview(
        self, stack: str, on_event: EventHandler | None = None, work_dir: Path | None = None
    ) -> UpdateResult:
        self.calls.append((stack, work_dir))
        if work_dir is not None:
            for path in work_dir.iterdir():
                if path.is_file():
                    self.seen[path.name] = path.read_text()
            self.seen["components/dns.py"] = (work_dir / "components" / "dns.py").read_text()
        assert on_event is not None
        for line in self.event_log.read_text().splitlines():
            if line.strip():
                on_event(EngineEvent.from_json(json.loads(line)))
        if self.fail:
            raise UpdateFailed(self.fail)
        return UpdateResult(stack, "preview", "succeeded", {})


def factory(engine: ReplayEngine) -> preview.EngineFactory:
    def make(project_dir: Path) -> ReplayEngine:
        assert project_dir == PROJECT_DIR
        return engine

    return make


def stack_files() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(PROJECT_DIR.glob("Pulumi*.yaml"))}


def test_markdown_report_of_the_replayed_preview(tmp_path: Path) -> None:
    engine = ReplayEngine(EVENTS / "dns_records.jsonl")
    out = tmp_path / "preview-dr.md"
    code = preview.main(["--stack", "dr", "--output", str(out)], engine_factory=factory(engine))
    assert code == 0
    assert engine.calls == [("dr", None)]  # no flip: the project itself is previewed
    text = out.read_text()
    head = text.splitlines()[0]
    assert head.startswith("**DNS preview for stack `dr`:** 5 DNS records change")
    assert COMMENT_MARKER in head
    assert (
        "| `api.example.com` | CNAME | failover PRIMARY, set api-primary-slot "
        "| update: `healthCheckId`, `records` "
        "| `gw-primary.elb.us-east-1.amazonaws.com` → `gw-dr.elb.us-west-2.amazonaws.com` | 60 |"
    ) in text
    assert "| `db.example.com` | CNAME | simple | update: `records`, `ttl` |" in text
    assert "| 300 → 60 |" in text


def test_json_report_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    engine = ReplayEngine(EVENTS / "database_promotion.jsonl")
    code = preview.main(["--stack", "dr", "--format", "json"], engine_factory=factory(engine))
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["marker"] == COMMENT_MARKER and doc["stack"] == "dr"
    assert doc["active_region"] is None
    assert doc["databases_promoted"] == 1
    (promotion,) = [d for d in doc["databases"] if d["kind"] == "promotion"]
    assert promotion["replica_source_after"] is None


def test_flip_preview_runs_on_a_copy_and_leaves_the_stack_files_alone(tmp_path: Path) -> None:
    before = stack_files()
    engine = ReplayEngine(EVENTS / "dns_records.jsonl")
    out = tmp_path / "flip.md"
    argv = ["--stack", "dr", "--active", "dr", "--output", str(out)]
    assert preview.main(argv, engine_factory=factory(engine)) == 0
    assert stack_files() == before
    ((stack, work_dir),) = engine.calls
    assert stack == "dr" and work_dir is not None
    assert work_dir != PROJECT_DIR and not work_dir.exists()  # temporary, and removed
    config = yaml.safe_load(engine.seen["Pulumi.dr.yaml"])["config"]
    assert config["llm-marketplace:active_region"] == "dr"
    assert config["llm-marketplace:replicate_from"] == ""  # dr's replica is promoted
    assert config["llm-marketplace:hosted_zone_id"] == "Z0EXAMPLE0LLMMARKET"  # rest kept
    assert "Pulumi.primary.yaml" not in engine.seen
    runtime = yaml.safe_load(engine.seen["Pulumi.yaml"])["runtime"]
    assert runtime["options"]["virtualenv"] == str(PROJECT_DIR / ".venv")
    assert runtime["options"]["toolchain"] == "uv"
    assert {"__main__.py", "pyproject.toml", "uv.lock"} <= set(engine.seen)
    assert engine.seen["components/dns.py"] == (PROJECT_DIR / "components" / "dns.py").read_text()
    assert out.read_text().startswith("**DNS preview for stack `dr (active_region=dr)`:**")


def test_flip_of_primary_changes_only_its_active_region_line() -> None:
    engine = ReplayEngine(EVENTS / "no_dns_changes.jsonl")
    argv = ["--stack", "primary", "--active", "dr", "--if-changes"]
    assert preview.main(argv, engine_factory=factory(engine)) == 0
    original = (PROJECT_DIR / "Pulumi.primary.yaml").read_text().splitlines()
    copied = engine.seen["Pulumi.primary.yaml"].splitlines()
    changed = [(a, b) for a, b in zip(original, copied, strict=True) if a != b]
    assert [b for _, b in changed] == ['  llm-marketplace:active_region: "dr"']


def test_dr_back_to_primary_keeps_its_replicate_from() -> None:
    engine = ReplayEngine(EVENTS / "no_dns_changes.jsonl")
    argv = ["--stack", "dr", "--active", "primary", "--if-changes"]
    assert preview.main(argv, engine_factory=factory(engine)) == 0
    config = yaml.safe_load(engine.seen["Pulumi.dr.yaml"])["config"]
    assert config["llm-marketplace:active_region"] == "primary"
    assert config["llm-marketplace:replicate_from"] == "primary"


def test_if_changes_writes_nothing_without_dns_or_database_changes(tmp_path: Path) -> None:
    out = tmp_path / "preview.md"
    engine = ReplayEngine(EVENTS / "no_dns_changes.jsonl")
    argv = ["--stack", "dr", "--if-changes", "--output", str(out)]
    assert preview.main(argv, engine_factory=factory(engine)) == 0
    assert not out.exists()


def test_failed_preview_exits_1_and_still_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "preview.md"
    engine = ReplayEngine(EVENTS / "dns_records.jsonl", fail="preview of 'dr' failed: error: boom")
    code = preview.main(["--stack", "dr", "--output", str(out)], engine_factory=factory(engine))
    assert code == 1
    assert capsys.readouterr().err == "preview: error: preview of 'dr' failed: error: boom\n"
    assert "5 DNS records change" in out.read_text()


def test_without_cli_exit_3_with_the_one_line_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no `pulumi` anywhere
    before = stack_files()
    assert preview.main(["--stack", "dr", "--active", "dr"]) == 3
    err = capsys.readouterr().err
    assert err == f"preview: error: {PulumiCliMissing()}\n"
    assert stack_files() == before


def test_without_cli_as_a_command_no_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "failover.preview", "--stack", "primary"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 3
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [f"preview: error: {PulumiCliMissing()}"]


def test_help_documents_the_exit_codes() -> None:
    text = preview._parser().format_help()
    for code in ("0 preview ran", "1 the preview failed", "2 usage error", "3 no `pulumi` CLI"):
        assert code in " ".join(text.split())
