"""failover.dnsplan: the DNS records the program declares, a flip, and a change between revisions.

The flip runs in-process on this checkout. The revision comparisons run the CLI's main()
against a throwaway git repository holding a copy of the program, one commit per change;
its working tree is another checkout, so both sides are evaluated in subprocesses.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components.contract import API_PRIMARY_SET_ID, API_SECONDARY_SET_ID, DNS_TTL, Output
from failover import dnsplan
from failover.dnsplan import DnsPlanError, FieldChange, Scenario
from failover.preview_render import COMMENT_MARKER
from failover.programeval import peer_placeholder
from tests.conftest import PROJECT_DIR

ZONE = "llm-marketplace.com"
API_PRIMARY = f"api.{ZONE} CNAME [{API_PRIMARY_SET_ID}]"
API_SECONDARY = f"api.{ZONE} CNAME [{API_SECONDARY_SET_ID}]"
SHARED = {
    API_PRIMARY,
    API_SECONDARY,
    f"db.{ZONE} CNAME",
    f"redis.{ZONE} CNAME",
    f"search.{ZONE} CNAME",
}
HEALTH_CHECKS = {"dr-dns-primary-gateway-health", "dr-dns-dr-gateway-health"}

# Where each shared name points, by active region, as the dr stack (the DNS owner) sees it.
DR = {
    "gateway": "<dr-workloads-gateway.lb_hostname>",
    "db": "<dr-database-instance.address>",
    "redis": "<dr-cache-group.primary_endpoint_address>",
    "search": "<dr-search-domain.endpoint>",
}
PRIMARY = {
    "gateway": peer_placeholder("primary", Output.GATEWAY_HOSTNAME),
    "db": peer_placeholder("primary", Output.DB_ADDRESS),
    "redis": peer_placeholder("primary", Output.CACHE_ENDPOINT),
    "search": peer_placeholder("primary", Output.SEARCH_ENDPOINT),
}
HEALTH_ID = {"primary": "<dr-dns-primary-gateway-health.id>", "dr": "<dr-dns-dr-gateway-health.id>"}


@pytest.fixture(scope="module")
def plans() -> dnsplan.Plans:
    return dnsplan.plan(PROJECT_DIR)


def test_plan_lists_every_record_and_health_check_with_placeholders(plans: dnsplan.Plans) -> None:
    assert set(plans) == {Scenario(s, a) for s in ("primary", "dr") for a in ("primary", "dr")}
    assert plans[Scenario("primary", "primary")] == plans[Scenario("primary", "dr")] == ()
    entries = {e.key: e for e in plans[Scenario("dr", "primary")]}
    assert set(entries) == SHARED | HEALTH_CHECKS
    api = entries[API_PRIMARY].fields
    assert api == {
        "name": f"api.{ZONE}",
        "type": "CNAME",
        "set_identifier": API_PRIMARY_SET_ID,
        "routing": "failover PRIMARY",
        "targets": (PRIMARY["gateway"],),
        "ttl": DNS_TTL,
        "health_check_id": HEALTH_ID["primary"],
        "zone_id": "Z0EXAMPLE0LLMMARKET",
        "resource": "dr-dns-api-primary-slot",
    }
    assert entries[API_SECONDARY].fields["routing"] == "failover SECONDARY"
    assert entries[f"db.{ZONE} CNAME"].fields["routing"] == "simple"
    assert entries[f"db.{ZONE} CNAME"].fields["health_check_id"] is None
    check = entries["dr-dns-dr-gateway-health"]
    assert check.kind == "health-check"
    assert (
        check.fields["type"],
        check.fields["fqdn"],
        check.fields["path"],
        check.fields["port"],
    ) == (
        "HTTP",
        DR["gateway"],
        "/health",
        80,
    )


def test_flip_moves_every_shared_name_in_dr_and_nothing_else(plans: dnsplan.Plans) -> None:
    flips = dnsplan.flip(plans)
    assert flips[Scenario("primary", "dr")].empty  # the primary stack declares no records
    d = flips[Scenario("dr", "dr")]
    assert d.added == () and d.removed == ()  # health checks stay: one per region, same fqdn
    changed = {c.key: c.changes for c in d.changed}
    assert set(changed) == SHARED
    assert changed[API_PRIMARY] == (
        FieldChange("targets", (PRIMARY["gateway"],), (DR["gateway"],)),
        FieldChange("health_check_id", HEALTH_ID["primary"], HEALTH_ID["dr"]),
    )
    assert changed[API_SECONDARY] == (
        FieldChange("targets", (DR["gateway"],), (PRIMARY["gateway"],)),
        FieldChange("health_check_id", HEALTH_ID["dr"], HEALTH_ID["primary"]),
    )
    for label in ("db", "redis", "search"):
        assert changed[f"{label}.{ZONE} CNAME"] == (
            FieldChange("targets", (PRIMARY[label],), (DR[label],)),
        )


def test_flip_cli_markdown_starts_with_the_marker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "flip.md"
    assert dnsplan.main(["--flip", "--format", "markdown", "--output", str(out)]) == 0
    text = out.read_text()
    assert text.startswith(COMMENT_MARKER + "\n")
    assert text.splitlines()[1].endswith("flip (primary -> dr): 5 DNS changes")
    # Placeholders sit in code spans: bare <...> would be swallowed as HTML by GitHub.
    assert (
        f"| changed | `record {f'db.{ZONE} CNAME'}` | targets | `{PRIMARY['db']}` | `{DR['db']}` |"
        in text
    )
    assert "No DNS change: primary: flip active_region primary -> dr." in text
    assert "wrote" in capsys.readouterr().out


def test_listing_json_without_base_always_writes(tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    assert dnsplan.main(["--format", "json", "--stack", "dr", "--output", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert [(s["stack"], s["active_region"]) for s in doc["scenarios"]] == [
        ("dr", "primary"),
        ("dr", "dr"),
    ]
    by_key = {e["key"]: e for e in doc["scenarios"][1]["entries"]}
    assert by_key[f"search.{ZONE} CNAME"]["fields"]["targets"] == [DR["search"]]
    assert by_key[API_SECONDARY]["fields"]["health_check_id"] == HEALTH_ID["primary"]


# --------------------------------------------------------------------------------------
# Revisions, through a temporary git worktree

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}
STATUS_RECORD = """
        self.records["status"] = aws.route53.Record(
            f"{name}-status",
            zone_id=args.zone_id,
            name=f"status.{args.zone_name}",
            type="CNAME",
            ttl=120,
            records=[args.endpoints[active].gateway],
            opts=child,
        )
"""


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV, "HOME": str(repo.parent)}
    proc = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    )
    return proc.stdout.strip()


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--no-gpg-sign", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A copy of the program in its own repo: base, TTL change, new record, no DNS change.

    Its working tree is not this checkout, so every evaluation of it is a subprocess
    (~5 s each): the comparisons use --stack dr (the DNS owner) to halve their count.
    """
    repo = tmp_path_factory.mktemp("history") / "repo"
    repo.mkdir()
    for name in ("Pulumi.yaml", "Pulumi.primary.yaml", "Pulumi.dr.yaml", "__main__.py"):
        shutil.copy2(PROJECT_DIR / name, repo / name)
    shutil.copytree(
        PROJECT_DIR / "components",
        repo / "components",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (repo / ".gitignore").write_text("__pycache__/\n")
    git(repo, "init", "-q")
    revs = {"base": commit(repo, "program")}
    dns = repo / "components" / "dns.py"
    # In contract.py, where a real change would make it: each side must use its own copy.
    edit(repo / "components" / "contract.py", "DNS_TTL: Final = 60", "DNS_TTL: Final = 300")
    revs["ttl"] = commit(repo, "TTL 300")
    edit(dns, "        self.register_outputs(", STATUS_RECORD + "        self.register_outputs(")
    revs["added"] = commit(repo, "status record")
    edit(repo / "Pulumi.yaml", "default: stable", "default: v2")  # image_tag: apps only
    revs["no_dns"] = commit(repo, "new image tag")
    (repo / "__main__.py").write_text("raise RuntimeError('broken program')\n")
    revs["broken"] = commit(repo, "broken")
    return {"repo": repo, "revs": revs}


def run_at(history: dict[str, Any], head: str, base: str, *extra: str) -> tuple[int, Path]:
    repo: Path = history["repo"]
    git(repo, "checkout", "-q", "--detach", history["revs"][head])
    out = repo.parent / f"{head}-vs-{base}.json"
    argv = ["--project-dir", str(repo), "--base", history["revs"][base], "--format", "json"]
    code = dnsplan.main([*argv, "--output", str(out), *extra])
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1  # ours is gone
    return code, out


def scenario_diffs(out: Path) -> dict[tuple[str, str], dict[str, Any]]:
    doc = json.loads(out.read_text())
    assert doc["marker"] == COMMENT_MARKER and doc["changed"] is True
    return {(s["stack"], s["active_region"]): s for s in doc["scenarios"]}


@pytest.fixture(scope="module")
def ttl_and_new_record(history: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """The commits "TTL 300" and "status record" against the base, in one comparison."""
    code, out = run_at(history, "added", "base", "--stack", "dr")
    assert code == 0
    return scenario_diffs(out)


def test_ttl_change_shows_on_every_record(
    ttl_and_new_record: dict[tuple[str, str], dict[str, Any]],
) -> None:
    assert set(ttl_and_new_record) == {("dr", "primary"), ("dr", "dr")}
    for d in ttl_and_new_record.values():
        assert d["removed"] == []
        assert {c["key"]: c["changes"] for c in d["changed"]} == {
            key: [{"field": "ttl", "before": 60, "after": 300}] for key in SHARED
        }


def test_new_record_shows_as_added(
    ttl_and_new_record: dict[tuple[str, str], dict[str, Any]],
) -> None:
    for (_, active), d in ttl_and_new_record.items():
        (added,) = d["added"]
        assert added["kind"] == "record"
        assert added["key"] == f"status.{ZONE} CNAME"
        fields = added["fields"]
        assert (fields["name"], fields["type"], fields["ttl"], fields["routing"]) == (
            f"status.{ZONE}",
            "CNAME",
            120,
            "simple",
        )
        assert fields["targets"] == [(DR if active == "dr" else PRIMARY)["gateway"]]
        assert fields["resource"] == "dr-dns-status"


def test_no_dns_change_writes_no_file(
    history: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    out = history["repo"].parent / "no_dns-vs-added.json"
    out.write_text("stale report of an earlier run")
    code, out = run_at(history, "no_dns", "added", "--stack", "dr")
    assert code == 0
    assert not out.exists()
    assert "not written" in capsys.readouterr().out


def test_evaluation_error_in_base_is_one_line_and_cleans_up(
    history: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # Both sides broken, so that no evaluation runs long: each fails right after its imports.
    code, out = run_at(history, "broken", "broken", "--stack", "dr")
    assert code == 1
    assert not out.exists()
    err = capsys.readouterr().err.strip()
    broken = history["revs"]["broken"]
    assert err.startswith(f"dnsplan: error: base {broken}, stack dr, active_region ")
    assert err.endswith("broken program")
    assert len(err.splitlines()) == 1


def test_bad_revision_is_one_line_error(
    history: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    repo = history["repo"]
    assert dnsplan.main(["--project-dir", str(repo), "--base", "no-such-branch"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"dnsplan: error: unknown git revision 'no-such-branch' in {repo}"


def test_worktree_is_removed_even_when_the_body_fails(history: dict[str, Any]) -> None:
    repo: Path = history["repo"]
    with (
        pytest.raises(DnsPlanError, match="inside"),
        dnsplan.checkout(repo, history["revs"]["base"]) as tree,
    ):
        assert (tree / "components" / "dns.py").read_text().count("ttl=DNS_TTL") == 2
        assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 2
        raise DnsPlanError("inside")
    assert not tree.exists()
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
