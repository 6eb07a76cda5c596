"""Tests for failover.preview_render over engine event logs in the engine's JSON-lines format.

The fixtures in tests/data/events/ follow `apitype.EngineEvent` as `pulumi preview --event-log`
writes it (and as pulumi.automation.events parses it): one event per line, a replacement as
create-replacement + replace + delete-replaced steps, each in a pre and an outputs event,
secrets blinded as {sig: secret-sig, "ciphertext": "[secret]"}.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pulumi.automation.events import EngineEvent, OpType

from failover.preview_render import (
    COMMENT_MARKER,
    DnsChange,
    PreviewSummary,
    parse_event_log,
    render_json,
    render_markdown,
    summarize,
)

EVENTS = Path(__file__).parent / "data" / "events"
SIG = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
REC = "aws:route53/record:Record"
DB = "aws:rds/instance:Instance"


def load(name: str) -> list[EngineEvent]:
    with (EVENTS / name).open(encoding="utf-8") as handle:
        return parse_event_log(handle)


def summary_of(name: str) -> PreviewSummary:
    return summarize(load(name))


def change(summary: PreviewSummary, name: str) -> DnsChange:
    found = [c for c in summary.dns_changes if c.name == name]
    assert len(found) == 1, [c.name for c in summary.dns_changes]
    return found[0]


def row(markdown: str, needle: str) -> str:
    rows = [line for line in markdown.splitlines() if line.startswith("| ") and needle in line]
    assert len(rows) == 1, rows
    return rows[0]


# ---------------------------------------------------------------------------- the fixtures


@pytest.mark.parametrize("path", sorted(EVENTS.glob("*.jsonl")), ids=lambda p: p.name)
def test_fixtures_are_engine_event_logs(path: Path) -> None:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    events = parse_event_log(lines)
    assert len(events) == len(lines)
    sequences = [e.sequence for e in events]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
    kinds = {
        "resource_pre_event",
        "res_outputs_event",
        "summary_event",
        "diagnostic_event",
        "prelude_event",
        "cancel_event",
    }
    for event in events:
        present = [k for k in kinds if getattr(event, k) is not None]
        assert len(present) == 1, present  # a discriminated union: exactly one payload
    steps = [e.resource_pre_event.metadata for e in events if e.resource_pre_event is not None]
    assert steps and all(
        isinstance(s.op, OpType) and s.urn.startswith("urn:pulumi:") for s in steps
    )
    assert events[-1].cancel_event is not None
    assert any(e.summary_event is not None for e in events)


# ---------------------------------------------------------------------------- DNS records


def test_dns_records_summary_and_counts() -> None:
    summary = summary_of("dns_records.jsonl")
    assert len(summary.dns_records) == 5
    assert len(summary.health_checks) == 2
    assert not summary.databases
    # One replacement (cache -> redis), counted once although it has three steps.
    assert summary.replaced_count == 1
    assert summary.op_counts == {"create": 2, "update": 3, "replace": 1, "delete": 1, "same": 4}
    assert summary.engine_counts["replace"] == 1
    # The unchanged PRIMARY/SECONDARY sibling ("same") is not listed.
    assert all(c.operation != "same" for c in summary.dns_changes)
    assert not [c for c in summary.dns_changes if c.set_identifier == "api-secondary-slot"]


def test_record_update_shows_target_swap_and_failover_role() -> None:
    summary = summary_of("dns_records.jsonl")
    api = change(summary, "api.example.com")
    assert api.operation == "update"
    assert api.failover_role == "PRIMARY"
    assert api.set_identifier == "api-primary-slot"
    assert api.target_before == "gw-primary.elb.us-east-1.amazonaws.com"
    assert api.target_after == "gw-dr.elb.us-west-2.amazonaws.com"
    assert (api.ttl_before, api.ttl_after) == (60, 60)
    assert api.changed_keys == ("healthCheckId", "records")

    md = render_markdown(summary, "dr")
    line = row(md, "`api.example.com`")
    assert "failover PRIMARY, set api-primary-slot" in line
    assert "`gw-primary.elb.us-east-1.amazonaws.com` → `gw-dr.elb.us-west-2.amazonaws.com`" in line
    assert "update: `healthCheckId`, `records`" in line
    assert line.endswith("| 60 |")


def test_record_ttl_change() -> None:
    summary = summary_of("dns_records.jsonl")
    db = change(summary, "db.example.com")
    assert (db.ttl_before, db.ttl_after) == (300, 60)
    line = row(render_markdown(summary, "dr"), "`db.example.com`")
    assert line.endswith("| 300 → 60 |")
    assert "rds.amazonaws.com` → `llm-marketplace-dr" in line


def test_record_create_replace_delete() -> None:
    summary = summary_of("dns_records.jsonl")
    md = render_markdown(summary, "dr")

    search = change(summary, "search.example.com")  # label + zone learned from siblings
    assert search.operation == "create"
    assert search.target_before is None
    assert search.target_after == "vpc-llm-search-dr.us-west-2.es.amazonaws.com"
    assert "| create | — → `vpc-llm-search-dr.us-west-2.es.amazonaws.com` | 60 |" in row(
        md, "`search.example.com`"
    )

    redis = change(summary, "redis.example.com")
    assert redis.operation == "replace"
    assert redis.name_before == "cache.example.com"
    assert redis.replace_keys == ("name",)
    line = row(md, "`redis.example.com`")
    assert "`cache.example.com` → `redis.example.com`" in line
    assert "**REPLACE** (forced by `name`)" in line

    legacy = change(summary, "legacy-api.example.com")
    assert legacy.operation == "delete"
    assert legacy.weight == 100
    assert legacy.target_after is None
    line = row(md, "`legacy-api.example.com`")
    assert "weighted 100, set legacy" in line
    assert "**DELETE** | `192.0.2.10` → — | 300 |" in line


def test_health_check_changes() -> None:
    summary = summary_of("dns_records.jsonl")
    checks = {c.name: c for c in summary.health_checks}
    assert set(checks) == {"api-primary-health", "api-dr-health"}
    primary = checks["api-primary-health"]
    assert primary.operation == "update"
    assert primary.changed_keys == ("resourcePath",)
    assert primary.target_before is not None and primary.target_before.endswith(
        ":443/healthz (threshold 3, every 30s)"
    )
    assert primary.target_after is not None and ":443/health (" in primary.target_after
    assert checks["api-dr-health"].operation == "create"
    md = render_markdown(summary, "dr")
    line = row(md, "health check `api-primary-health`")
    assert "update: `resourcePath`" in line and "/healthz" in line and "/health (" in line
    assert "health check `api-dr-health` | health check HTTPS | — | create |" in md


def test_markdown_layout_summary_first_then_table_then_details() -> None:
    md = render_markdown(summary_of("dns_records.jsonl"), "dr")
    lines = md.splitlines()
    assert lines[0].startswith("**DNS preview for stack `dr`:** ")
    assert (
        "5 DNS records change (1 create, 2 update, 1 replace, 1 delete), "
        "2 health checks change (1 create, 1 update); "
        "no database promoted or replaced; 1 resource replaced"
    ) in lines[0]
    assert COMMENT_MARKER in lines[0]
    assert md.count(COMMENT_MARKER) == 1
    table_at = lines.index(
        "| Record / health check | Type | Routing | Operation | Before → After | TTL |"
    )
    assert table_at > 0
    rows = [line for line in lines if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 7
    # Every row has exactly the six columns.
    assert all(len(re.findall(r"(?<!\\)\|", r)) == 7 for r in rows)
    assert lines.index("<details><summary>Other changes</summary>") > table_at
    assert "Resources by operation: 2 create, 3 update, 1 replace, 1 delete, 4 same" in md


# ---------------------------------------------------------------------------- databases


def test_database_promotion_is_loud() -> None:
    summary = summary_of("database_promotion.jsonl")
    assert not summary.dns_changes
    assert len(summary.promotions) == 1
    promo = summary.promotions[0]
    assert promo.identifier == "llm-marketplace-dr"
    assert promo.replica_source_before == (
        "arn:aws:rds:us-east-1:123456789012:db:llm-marketplace-primary"
    )
    assert promo.replica_source_after is None
    assert promo.operation == "update"

    md = render_markdown(summary, "dr")
    first = md.splitlines()[0]
    assert "no DNS record changes" in first
    assert "⚠️ 1 database PROMOTED" in first
    assert "nothing replaced" in first
    loud = [line for line in md.splitlines() if line.startswith("⚠️ DATABASE PROMOTION:")]
    assert len(loud) == 1
    assert "`llm-marketplace-dr`" in loud[0]
    assert "`arn:aws:rds:us-east-1:123456789012:db:llm-marketplace-primary`" in loud[0]
    assert "PROMOTES" in loud[0]
    # The Kubernetes scale-up is an update, not a replacement, and not a DNS change.
    assert summary.other_replaced_count == 0
    assert summary.warnings == 1


def test_database_replacement_and_deletion_are_loud() -> None:
    summary = summary_of("database_replacement.jsonl")
    assert [d.kind for d in summary.databases] == ["replacement", "deletion"]
    replacement, deletion = summary.databases
    assert replacement.replace_keys == ("dbName",)
    assert replacement.identifier == "llm-marketplace-primary"
    assert deletion.protected
    assert summary.other_replaced_count == 1
    assert summary.other_replaced[0].resource_type == "aws:ec2/securityGroup:SecurityGroup"
    assert summary.replaced_count == 2
    assert summary.op_counts == {"replace": 2, "delete": 1, "same": 2}

    md = render_markdown(summary, "primary")
    first = md.splitlines()[0]
    assert "⚠️ 1 database REPLACED, 1 database DELETED" in first
    assert "2 resources replaced" in first
    assert "1 error" in first
    lines = md.splitlines()
    rep = [x for x in lines if x.startswith("⚠️ DATABASE REPLACEMENT:")]
    dele = [x for x in lines if x.startswith("⚠️ DATABASE DELETION:")]
    assert len(rep) == 1 and "`llm-marketplace-primary`" in rep[0] and "`dbName`" in rep[0]
    assert len(dele) == 1 and "`llm-marketplace-old-replica`" in dele[0]
    assert "protected" in dele[0]
    assert "`aws:ec2/securityGroup:SecurityGroup` `database-sg` (forced by `description`)" in md
    assert "❌ Error: old-replica: resource" in md
    # Loud lines come after the (absent) table and before the details.
    assert lines.index(rep[0]) < lines.index("<details><summary>Other changes</summary>")


def _db_event(
    op: str,
    old_inputs: dict[str, Any] | None,
    new_inputs: dict[str, Any] | None,
    detailed: dict[str, Any] | None = None,
    *,
    seq: int = 1,
    name: str = "db",
) -> EngineEvent:
    urn = f"urn:pulumi:dr::llm-marketplace::{DB}::{name}"

    def state(inputs: dict[str, Any] | None) -> dict[str, Any] | None:
        if inputs is None:
            return None
        return {"type": DB, "urn": urn, "custom": True, "id": "db-1", "parent": "",
                "provider": "", "inputs": inputs, "outputs": inputs}  # fmt: skip

    metadata = {"op": op, "urn": urn, "type": DB, "old": state(old_inputs),
                "new": state(new_inputs), "detailedDiff": detailed, "provider": ""}  # fmt: skip
    return EngineEvent.from_json(
        {"sequence": seq, "timestamp": 0, "resourcePreEvent": {"metadata": metadata}}
    )


def test_promotion_detected_from_inputs_without_detailed_diff() -> None:
    src = "arn:aws:rds:us-east-1:1:db:primary"
    cleared = summarize(
        [_db_event("update", {"replicateSourceDb": src}, {"replicateSourceDb": ""})]
    )
    assert [d.kind for d in cleared.databases] == ["promotion"]
    absent = summarize([_db_event("update", {"replicateSourceDb": src}, {"instanceClass": "x"})])
    assert [d.kind for d in absent.databases] == ["promotion"]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ({"replicateSourceDb": "a"}, {"replicateSourceDb": "a", "instanceClass": "b"}),
        ({"replicateSourceDb": "a"}, {"replicateSourceDb": UNKNOWN}),  # unknown is not empty
        ({"instanceClass": "a"}, {"instanceClass": "b"}),  # a writer stays a writer
    ],
)
def test_no_promotion_when_replica_source_kept(old: dict[str, Any], new: dict[str, Any]) -> None:
    summary = summarize([_db_event("update", old, new)])
    assert summary.databases == ()
    assert "DATABASE" not in render_markdown(summary, "dr")


# ---------------------------------------------------------------------------- secrets


def test_secrets_never_rendered() -> None:
    raw = [
        "verification=hunter2-SUPERSECRET-7f3a",
        "verification=old-OLDSECRET-1c2d",
        "10.77.1.99",
        "S3cr3t-Passw0rd!",
    ]
    text = (EVENTS / "secrets.jsonl").read_text(encoding="utf-8")
    assert all(secret in text for secret in raw)  # the fixture really carries them
    summary = summary_of("secrets.jsonl")
    md = render_markdown(summary, "dr")
    js = render_json(summary, "dr")
    for output in (md, js, repr(summary)):
        for secret in raw:
            assert secret not in output
    assert "hunter2" not in md and "Passw0rd" not in md
    txt = row(md, "`_verify.example.com`")
    assert "[secret] → [secret] (changed; value not shown)" in txt
    assert "— → [secret]" in row(md, "`internal.example.com`")
    # The leaked password in a diagnostic is scrubbed, the rest of the message kept.
    assert "connect failed for marketplace:[secret]@llm-marketplace-dr" in md


def test_secret_signature_objects_everywhere_render_as_secret() -> None:
    urn = f"urn:pulumi:dr::llm-marketplace::{REC}::api"
    secret_value = {SIG: SECRET_SIG, "value": "gw.secret-host.example"}
    secret_list = {SIG: SECRET_SIG, "value": ["gw.secret-host.example"]}
    new = {"type": REC, "urn": urn, "id": "", "parent": "", "provider": "",
           "inputs": {"name": "api", "type": "CNAME", "records": [secret_value], "ttl": 60,
                      "setIdentifier": secret_value,
                      "failoverRoutingPolicies": [{"type": secret_value}]},
           "outputs": {"records": secret_list}}  # fmt: skip
    md_event = {"op": "create", "urn": urn, "type": REC, "old": None, "new": new,
                "detailedDiff": {}, "provider": ""}  # fmt: skip
    summary = summarize([EngineEvent.from_json({"resourcePreEvent": {"metadata": md_event}})])
    md = render_markdown(summary, "dr")
    js = render_json(summary, "dr")
    assert "secret-host" not in md and "secret-host" not in js
    line = row(md, "`api`")
    assert "failover [secret], set [secret]" in line
    assert "| create | — → [secret] | 60 |" in line


# ---------------------------------------------------------------------------- edge cases


def test_no_dns_changes() -> None:
    summary = summary_of("no_dns_changes.jsonl")
    assert not summary.has_dns_changes
    md = render_markdown(summary, "primary")
    assert md.splitlines()[0].startswith(
        "**DNS preview for stack `primary`:** no DNS record changes; "
        "no database promoted or replaced; nothing replaced"
    )
    assert "| Record / health check |" not in md
    assert "⚠️" not in md
    doc = json.loads(render_json(summary, "primary"))
    assert doc["dns_record_changes"] == 0 and doc["dns_changes"] == []


def _record_event(
    seq: int,
    name: str,
    op: str,
    old_records: object,
    new_records: object,
    *,
    ttl: int = 60,
    set_id: str | None = None,
) -> EngineEvent:
    urn = f"urn:pulumi:dr::llm-marketplace::llm-marketplace:dns:SharedDns${REC}::{name}"

    def state(records: object) -> dict[str, Any]:
        inputs: dict[str, Any] = {"name": name, "type": "CNAME", "zoneId": "Z1", "ttl": ttl,
                                  "records": records}  # fmt: skip
        if set_id:
            inputs["setIdentifier"] = set_id
            inputs["weightedRoutingPolicies"] = [{"weight": 10}]
        return {"type": REC, "urn": urn, "custom": True, "id": f"Z1_{name}", "parent": "",
                "provider": "", "inputs": inputs, "outputs": {}}  # fmt: skip

    metadata = {
        "op": op,
        "urn": urn,
        "type": REC,
        "old": state(old_records) if op != "create" else None,
        "new": state(new_records) if op != "delete" else None,
        "diffs": ["records"],
        "detailedDiff": {"records[0]": {"diffKind": "update", "inputDiff": False}},
        "provider": "",
    }
    return EngineEvent.from_json(
        {"sequence": seq, "timestamp": 0, "resourcePreEvent": {"metadata": metadata}}
    )


def test_unknown_targets_and_markdown_escaping() -> None:
    events = [
        _record_event(1, "pending", "create", None, [UNKNOWN]),
        _record_event(2, "weird|name", "update", ["a|b<script>`x`"], ["c"]),
    ]
    md = render_markdown(summarize(events), "dr")
    assert "| create | — → (known after apply) | 60 |" in row(md, "`pending`")
    line = row(md, "weird")
    assert "<script>" not in md
    assert len(re.findall(r"(?<!\\)\|", line)) == 7  # pipes inside values are escaped
    assert "`a\\|b&lt;script&gt;'x'` → `c`" in line


def test_parse_event_log_reports_bad_line() -> None:
    good = (EVENTS / "no_dns_changes.jsonl").read_text(encoding="utf-8").splitlines()[0]
    with pytest.raises(ValueError, match="line 3"):
        parse_event_log([good, "", "{not json"])
    with pytest.raises(ValueError, match="line 1"):
        parse_event_log(['{"resourcePreEvent": {"metadata": {"op": "explode"}}}'])


def test_json_rendering() -> None:
    summary = summary_of("dns_records.jsonl")
    doc = json.loads(render_json(summary, "dr"))
    assert doc["marker"] == COMMENT_MARKER
    assert doc["stack"] == "dr"
    assert doc["summary"].startswith("dr: 5 DNS records change")
    assert doc["dns_record_changes"] == 5 and doc["health_check_changes"] == 2
    assert doc["databases_promoted"] == 0 and doc["replaced"] == 1
    api = next(c for c in doc["dns_changes"] if c["name"] == "api.example.com")
    assert api["operation"] == "update"
    assert api["failover_role"] == "PRIMARY"
    assert api["target_after"] == "gw-dr.elb.us-west-2.amazonaws.com"
    assert api["ttl_before"] == 60 and api["ttl_after"] == 60
    promo = json.loads(render_json(summary_of("database_promotion.jsonl"), "dr"))
    assert promo["databases_promoted"] == 1
    assert promo["databases"][0]["kind"] == "promotion"


# ---------------------------------------------------------------------------- size limit


def _large_plan(records: int) -> list[EngineEvent]:
    events = [
        _record_event(
            i,
            f"tenant-{i:05d}-" + "x" * 40,
            "update",
            [f"gw-primary-{i}.elb.us-east-1.amazonaws.com"],
            [f"gw-dr-{i}.elb.us-west-2.amazonaws.com"],
            set_id=f"slot-{i}",
        )
        for i in range(records)
    ]
    events.append(
        _db_event(
            "update",
            {"replicateSourceDb": "arn:aws:rds:us-east-1:1:db:primary"},
            {},
            seq=records + 1,
            name="dr-db",
        )
    )
    for offset in range(3):
        old = {"identifier": f"search-{offset}", "dbName": "a"}
        detailed = {"dbName": {"diffKind": "update-replace", "inputDiff": False}}
        event = _db_event(
            "replace", old, {**old, "dbName": "b"}, detailed, seq=records + 2, name=f"rep-{offset}"
        )
        events.append(event)
    return events


def test_large_plan_is_cut_to_the_comment_limit() -> None:
    summary = summarize(_large_plan(3000))
    assert len(summary.dns_records) == 3000
    md = render_markdown(summary, "dr")
    assert len(md) <= 65536
    first = md.splitlines()[0]
    assert "3,000 DNS records change (3,000 update)" in first
    assert "⚠️ 1 database PROMOTED, 3 databases REPLACED" in first
    assert COMMENT_MARKER in first
    lines = md.splitlines()
    assert len([x for x in lines if x.startswith("⚠️ DATABASE PROMOTION:")]) == 1
    assert len([x for x in lines if x.startswith("⚠️ DATABASE REPLACEMENT:")]) == 3
    shown = [x for x in lines if x.startswith("| `tenant-")]
    match = re.search(r"… ([\d,]+) more DNS rows not shown", md)
    assert match is not None
    omitted = int(match.group(1).replace(",", ""))
    assert omitted > 0 and len(shown) + omitted == 3000
    assert len(shown) > 100  # it fills the space, it doesn't give up
    assert "cut to" not in md  # the planned cut, not the last-resort one


@pytest.mark.parametrize("limit", [1500, 4000, 20000])
def test_smaller_limits_keep_summary_and_loud_lines(limit: int) -> None:
    summary = summarize(_large_plan(500))
    md = render_markdown(summary, "dr", max_chars=limit)
    assert len(md) <= limit
    assert md.splitlines()[0].startswith("**DNS preview for stack `dr`:** 500 DNS records")
    assert md.count("⚠️ DATABASE PROMOTION:") == 1
    assert md.count("⚠️ DATABASE REPLACEMENT:") == 3
    assert re.search(r"… [\d,]+ more DNS rows not shown", md)


def test_absurdly_small_limit_never_exceeded() -> None:
    summary = summarize(_large_plan(50))
    for limit in (0, 10, 80, 300):
        assert len(render_markdown(summary, "dr", max_chars=limit)) <= limit


def test_plan_that_fits_is_not_cut() -> None:
    summary = summarize(_large_plan(40))
    md = render_markdown(summary, "dr")
    assert "not shown" not in md
    assert len([x for x in md.splitlines() if x.startswith("| `tenant-")]) == 40
