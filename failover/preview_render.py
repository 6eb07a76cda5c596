"""Render a `PreviewSummary` (failover.preview_events) as a PR comment or as JSON.

The comment leads with one summary line, then a table of Route53 records and health checks,
then a loud line per promoted, replaced or deleted database; it never exceeds GitHub's
comment limit and says what it left out.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any, Final

from failover.preview_events import (
    COMMENT_MARKER,
    GITHUB_COMMENT_LIMIT,
    NONE_TEXT,
    SECRET_TEXT,
    UNKNOWN_TEXT,
    DatabaseChange,
    DnsChange,
    PreviewSummary,
    ReplacedResource,
    op_rank,
    parse_event_log,
    summarize,
)

# Re-exported: callers import the whole preview API from here.
__all__ = [
    "COMMENT_MARKER",
    "GITHUB_COMMENT_LIMIT",
    "DatabaseChange",
    "DnsChange",
    "PreviewSummary",
    "ReplacedResource",
    "parse_event_log",
    "render_json",
    "render_markdown",
    "summarize",
    "summary_line",
]

# --------------------------------------------------------------------------------------
# Markdown


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count:,} {word if count == 1 else (plural or word + 's')}"


def _breakdown(changes: Sequence[DnsChange]) -> str:
    counts = Counter(c.operation for c in changes)
    return ", ".join(
        f"{n:,} {op}" for op, n in sorted(counts.items(), key=lambda kv: op_rank(kv[0]))
    )


def summary_line(summary: PreviewSummary) -> str:
    """The one-line verdict (plain text, no Markdown) that heads every rendering."""
    records, checks = summary.dns_records, summary.health_checks
    if records:
        dns = f"{_plural(len(records), 'DNS record')} change ({_breakdown(records)})"
    else:
        dns = "no DNS record changes"
    if checks:
        dns += f", {_plural(len(checks), 'health check')} change ({_breakdown(checks)})"
    db_parts = []
    if summary.promotions:
        db_parts.append(f"{_plural(len(summary.promotions), 'database')} PROMOTED")
    if summary.db_replacements:
        db_parts.append(f"{_plural(len(summary.db_replacements), 'database')} REPLACED")
    if summary.db_deletions:
        db_parts.append(f"{_plural(len(summary.db_deletions), 'database')} DELETED")
    db = "⚠️ " + ", ".join(db_parts) if db_parts else "no database promoted or replaced"
    replaced = (
        f"{_plural(summary.replaced_count, 'resource')} replaced"
        if summary.replaced_count
        else "nothing replaced"
    )
    line = f"{dns}; {db}; {replaced}"
    if summary.errors or summary.failed:
        line += f"; {_plural(len(summary.errors) + len(summary.failed), 'error')}"
    return line


def _cell(text: str) -> str:
    """Make text safe inside a Markdown table cell (no pipes, newlines or raw HTML)."""
    return (
        text.replace("\\", "\\\\")
        .replace("|", "\\|")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("\r", " ")
        .replace("\n", " ")
    )


def _code(text: str) -> str:
    """An inline code span that survives any content (backticks, pipes)."""
    body = _cell(text).replace("`", "'")
    return f"`{body}`"


def _value(text: str | None) -> str:
    if text is None:
        return NONE_TEXT
    if text in (UNKNOWN_TEXT, SECRET_TEXT, NONE_TEXT):
        return text
    return _code(text)


def _transition(before: str | None, after: str | None, op: str, changed: bool) -> str:
    if op in ("delete", "delete-replaced"):
        return f"{_value(before)} → {NONE_TEXT}"
    if op == "create" or before is None:
        return f"{NONE_TEXT} → {_value(after)}"
    if before == after:
        if changed:
            return f"{_value(before)} → {_value(after)} (changed; value not shown)"
        return f"{_value(after)} (unchanged)"
    return f"{_value(before)} → {_value(after)}"


def _ttl_text(before: int | str | None, after: int | str | None, op: str) -> str:
    def one(v: int | str | None) -> str:
        return NONE_TEXT if v is None else _cell(str(v))

    if op in ("delete", "delete-replaced"):
        return one(before) if before is not None else NONE_TEXT
    if op == "create" or before == after:
        return one(after)
    return f"{one(before)} → {one(after)}"


def _operation_text(change: DnsChange) -> str:
    op = change.operation
    text = "**REPLACE**" if op == "replace" else ("**DELETE**" if op.startswith("delete") else op)
    if op == "replace" and change.replace_keys:
        text += " (forced by " + ", ".join(_code(k) for k in change.replace_keys) + ")"
    elif op == "update" and change.changed_keys:
        text += ": " + ", ".join(_code(k) for k in change.changed_keys)
    return text


def _routing_text(change: DnsChange) -> str:
    if change.kind != "record":
        return NONE_TEXT
    before, after = change.routing_before, change.routing_after
    if change.operation in ("create",) or before is None:
        return _cell(after or "simple")
    if change.operation.startswith("delete") or after is None or before == after:
        return _cell(before)
    return f"{_cell(before)} → {_cell(after)}"


def _row(change: DnsChange) -> str:
    name = _code(change.name)
    if change.name_before:
        name = f"{_code(change.name_before)} → {name}"
    if change.kind == "health-check":
        name = "health check " + name
    cells = [
        name,
        _cell(change.record_type),
        _routing_text(change),
        _operation_text(change),
        _transition(
            change.target_before, change.target_after, change.operation, change.target_changed
        ),
        _ttl_text(change.ttl_before, change.ttl_after, change.operation),
    ]
    return "| " + " | ".join(cells) + " |"


_TABLE_HEAD: Final = (
    "| Record / health check | Type | Routing | Operation | Before → After | TTL |\n"
    "| --- | --- | --- | --- | --- | --- |"
)


def _loud_line(db: DatabaseChange) -> str:
    what = _code(db.identifier or db.name)
    where = f"({db.resource_type} {_code(db.name)})"
    protected = (
        " It is protected: the update will fail until protection is lifted." if db.protected else ""
    )
    if db.kind == "promotion":
        source = _code(db.replica_source_before or "?")
        return (
            f"⚠️ DATABASE PROMOTION: {what} {where} stops replicating from {source}: "
            "this update PROMOTES the read replica to a standalone writer (irreversible; "
            "the old writer keeps running, so two writers may exist). Only a failover "
            "switch should ever do this."
        )
    if db.kind == "replacement":
        keys = ", ".join(_code(k) for k in db.replace_keys) or "unknown keys"
        extra = ""
        if db.replica_source_before and not db.replica_source_after:
            extra = f" The new instance will NOT replicate from {_code(db.replica_source_before)}."
        return (
            f"⚠️ DATABASE REPLACEMENT: {what} {where} will be DELETED AND RECREATED "
            f"(forced by {keys}); its data is not carried over.{extra}{protected}"
        )
    return (
        f"⚠️ DATABASE DELETION: {what} {where} will be DELETED; its data is lost unless a "
        f"final snapshot is taken.{protected}"
    )


def _detail_lines(summary: PreviewSummary) -> list[str]:
    lines: list[str] = []
    if summary.op_counts:
        ops = ", ".join(f"{n:,} {op}" for op, n in summary.op_counts.items())
        lines.append(f"- Resources by operation: {ops}")
    if summary.engine_counts and summary.engine_counts != summary.op_counts:
        ops = ", ".join(f"{n:,} {op}" for op, n in summary.engine_counts.items())
        lines.append(f"- Engine summary: {ops}")
    if summary.warnings:
        lines.append(f"- Warnings from the engine: {summary.warnings:,}")
    for err in summary.errors:
        lines.append(f"- ❌ Error: {_cell(err)}")
    for failed in summary.failed:
        lines.append(f"- ❌ Failed: {_cell(failed)}")
    for violation in summary.policy_violations:
        lines.append(f"- 🚫 Policy: {_cell(violation)}")
    if summary.other_replaced:
        lines.append(f"- Other resources replaced ({summary.other_replaced_count:,}):")
        for res in summary.other_replaced:
            keys = (
                " (forced by " + ", ".join(_code(k) for k in res.replace_keys) + ")"
                if res.replace_keys
                else ""
            )
            lines.append(f"  - {_code(res.resource_type)} {_code(res.name)}{keys}")
    return lines


def _size(text: str) -> int:
    """Characters as GitHub may count them (UTF-16 code units), never fewer than len()."""
    return len(text.encode("utf-16-le")) // 2


def _fit(items: Sequence[str], budget: int, note: Callable[[int], str]) -> list[str]:
    """As many items (each taking a line) as fit in budget, plus a note of what was left out."""
    total = sum(_size(i) + 1 for i in items)
    if total <= budget:
        return list(items)
    kept: list[str] = []
    used = 0
    for index, item in enumerate(items):
        omitted_after = len(items) - index - 1
        cost = _size(item) + 1
        note_cost = _size(note(omitted_after)) + 1 if omitted_after else 0
        if used + cost + note_cost > budget:
            break
        kept.append(item)
        used += cost
    omitted = len(items) - len(kept)
    if omitted:
        text = note(omitted)
        if used + _size(text) + 1 <= budget:
            kept.append(text)
    return kept


def render_markdown(
    summary: PreviewSummary, stack: str, max_chars: int = GITHUB_COMMENT_LIMIT
) -> str:
    """Markdown for the PR comment: verdict line, DNS table, loud DB lines, details.

    Never longer than max_chars. When it must cut, the verdict line and the database lines
    stay, and the comment says how many rows or details it left out.
    """
    head = f"**DNS preview for stack {_code(stack)}:** {_cell(summary_line(summary))}"
    head += f" {COMMENT_MARKER}"
    loud = [_loud_line(db) + "\n" for db in summary.databases]
    rows = [_row(c) for c in summary.dns_changes]
    details = _detail_lines(summary)

    def rows_note(n: int) -> str:
        return f"\n… {n:,} more DNS {'row' if n == 1 else 'rows'} not shown (comment size limit)."

    def loud_note(n: int) -> str:
        return f"⚠️ … {n:,} more database warnings not shown (comment size limit).\n"

    def details_note(n: int) -> str:
        return f"- … {n:,} more detail lines not shown (comment size limit)."

    budget = max_chars - _size(head) - 2  # the head and the blank line after it
    if budget < 0:
        return _hard_cut(head, max_chars)

    # Database lines first: they must survive any cut.
    loud_kept = _fit(loud, budget, loud_note)
    budget -= sum(_size(x) + 1 for x in loud_kept)

    details_open = "<details><summary>Other changes</summary>\n"
    details_close = "\n</details>"
    details_overhead = _size(details_open) + _size(details_close) + 2
    min_details = details_overhead + _size(details_note(len(details))) + 1 if details else 0

    table: list[str] = []
    if rows:
        table_budget = budget - (min_details if details else 0) - _size(_TABLE_HEAD) - 2
        if table_budget > 0:
            table = [_TABLE_HEAD, *_fit(rows, table_budget, rows_note)]
        else:
            table = [rows_note(len(rows)).strip()]
        budget -= sum(_size(x) + 1 for x in table) + 1

    detail_block: list[str] = []
    if details and budget > details_overhead:
        kept = _fit(details, budget - details_overhead, details_note)
        if kept:
            detail_block = [details_open, *kept, details_close]

    parts = [head, ""]
    if table:
        parts += [*table, ""]
    parts += loud_kept
    if detail_block:
        parts += detail_block
    text = "\n".join(parts).rstrip("\n") + "\n"
    return text if _size(text) <= max_chars else _hard_cut(text, max_chars)


def _hard_cut(text: str, max_chars: int) -> str:
    """Last resort for absurdly small limits: cut, but keep the marker when it fits."""
    tail = f"\n… cut to {max_chars:,} characters {COMMENT_MARKER}\n"
    if _size(tail) >= max_chars:
        tail = ""
    out = text
    while _size(out) + _size(tail) > max_chars and out:
        out = out[: max(0, len(out) - max(1, _size(out) + _size(tail) - max_chars))]
    return out + tail


# --------------------------------------------------------------------------------------
# JSON


def render_json(summary: PreviewSummary, stack: str) -> str:
    """The same facts as JSON (for automation). Carries the marker as `marker`."""
    doc: dict[str, Any] = {
        "marker": COMMENT_MARKER,
        "stack": stack,
        "summary": f"{stack}: {summary_line(summary)}",
        "dns_record_changes": len(summary.dns_records),
        "health_check_changes": len(summary.health_checks),
        "databases_promoted": len(summary.promotions),
        "databases_replaced": len(summary.db_replacements),
        "databases_deleted": len(summary.db_deletions),
        "replaced": summary.replaced_count,
        "dns_changes": [asdict(c) for c in summary.dns_changes],
        "databases": [asdict(d) for d in summary.databases],
        "other_replaced": [asdict(r) for r in summary.other_replaced],
        "op_counts": summary.op_counts,
        "engine_counts": summary.engine_counts,
        "errors": list(summary.errors),
        "warnings": summary.warnings,
        "failed": list(summary.failed),
        "policy_violations": list(summary.policy_violations),
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
