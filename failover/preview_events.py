"""Summarize Pulumi engine events: DNS changes and database promotions (rendering: preview_render).

Input is the engine's event stream (`pulumi preview --event-log FILE` writes one JSON
`apitype.EngineEvent` per line; the Automation API hands the same objects to `on_event`),
parsed with `pulumi.automation.events.EngineEvent.from_json`. This module does no I/O: it
turns events into a `PreviewSummary` and renders that as Markdown (for the pull request) or
JSON (for machines).

What reviewers must not miss, and a plain `pulumi preview` hides:

* every Route53 record and health check that changes: name, type, routing (set identifier,
  failover role, weight), operation, target before -> after, TTL before -> after;
* a database that stops being a read replica (`replicateSourceDb` going from a value to
  empty/absent): AWS *promotes* it, silently, as part of an ordinary-looking update;
* a database that is replaced (deleted and recreated: its data does not come along) or
  deleted.

Secrets never reach the output. The engine writes secret values into the event log through
its blinding crypter (`{<sig>: <secret sig>, "ciphertext": "[secret]"}`); with
`--show-secrets` it writes `"plaintext"`, and in-memory objects carry `"value"`. Every such
object renders as `[secret]`, and any plaintext found in one is also scrubbed from every other
string that is rendered (record targets, names, diagnostics).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from pulumi.automation.events import EngineEvent, StepEventMetadata, StepEventStateMetadata

__all__ = [
    "COMMENT_MARKER",
    "GITHUB_COMMENT_LIMIT",
    "DatabaseChange",
    "DnsChange",
    "PreviewSummary",
    "ReplacedResource",
    "op_rank",
    "parse_event_log",
    "summarize",
]

COMMENT_MARKER: Final = "<!-- llm-marketplace-dns-preview -->"
GITHUB_COMMENT_LIMIT: Final = 65536

RECORD_TYPE: Final = "aws:route53/record:Record"
HEALTH_CHECK_TYPE: Final = "aws:route53/healthCheck:HealthCheck"
DNS_TYPES: Final = frozenset({RECORD_TYPE, HEALTH_CHECK_TYPE})

# Database resource type -> the input that makes it a read replica. Clearing it promotes.
DATABASE_REPLICA_KEYS: Final[Mapping[str, str]] = {
    "aws:rds/instance:Instance": "replicateSourceDb",
    "aws:rds/cluster:Cluster": "replicationSourceIdentifier",
}

SECRET_TEXT: Final = "[secret]"
UNKNOWN_TEXT: Final = "(known after apply)"
NONE_TEXT: Final = "—"

# Wire-format signatures, as in pulumi/runtime/rpc.py and the engine's stack serializer.
_SIG_KEY: Final = "4dabf18193072939515e22adb298388d"
_SECRET_SIG: Final = "1b47061264138c4ac30d75fd1eb44270"
_OUTPUT_VALUE_SIG: Final = "d0e6a833031e9bbcd3f4e8bde6ca49a4"
_RESOURCE_REF_SIG: Final = "5cf8f73096256a8f31e491e813e4eb8e"
_UNKNOWN: Final = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"

# A secret shorter than this is not scrubbed from unrelated strings (it would mangle TTLs
# and words); it is still rendered as [secret] wherever it appears as a secret value.
_MIN_SCRUB_LEN: Final = 4
_MAX_VALUE_CHARS: Final = 300
_MAX_MESSAGE_CHARS: Final = 500

# Ops that change a resource (or its cloud object). Reads, refreshes and discards don't.
_CHANGE_OPS: Final = frozenset({"create", "update", "delete", "replace", "delete-replaced"})
# Op precedence when one URN has several steps (a replacement is create-replacement +
# replace + delete-replaced, and each may appear in both a pre and an outputs event).
_OP_ORDER: Final[tuple[str, ...]] = (
    "replace",
    "create",
    "update",
    "delete",
    "delete-replaced",
    "import-replacement",
    "import",
    "read-replacement",
    "read",
    "refresh",
    "discard-replaced",
    "discard",
    "remove-pending-replace",
    "same",
)
_SEVERITY: Final[Mapping[str, int]] = {
    "delete": 0,
    "delete-replaced": 0,
    "replace": 1,
    "update": 2,
    "create": 3,
}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|<\{%[^%]*%\}>")

DnsKind = Literal["record", "health-check"]
DatabaseChangeKind = Literal["promotion", "replacement", "deletion"]


@dataclass(frozen=True)
class DnsChange:
    """One Route53 record or health check that the plan creates, changes or removes."""

    urn: str
    resource_type: str
    kind: DnsKind
    name: str
    name_before: str | None
    record_type: str
    operation: str
    set_identifier: str | None
    failover_role: str | None
    weight: int | None
    routing_before: str | None
    routing_after: str | None
    target_before: str | None
    target_after: str | None
    ttl_before: int | str | None
    ttl_after: int | str | None
    changed_keys: tuple[str, ...] = ()
    replace_keys: tuple[str, ...] = ()
    # True when the target changes even if both sides render the same (e.g. [secret]).
    target_changed: bool = False

    @property
    def routing(self) -> str:
        return self.routing_after or self.routing_before or "simple"


@dataclass(frozen=True)
class DatabaseChange:
    """A database that the plan promotes (replica source removed), replaces or deletes."""

    urn: str
    resource_type: str
    name: str
    identifier: str | None
    kind: DatabaseChangeKind
    operation: str
    replica_source_before: str | None
    replica_source_after: str | None
    replace_keys: tuple[str, ...] = ()
    protected: bool = False


@dataclass(frozen=True)
class ReplacedResource:
    urn: str
    resource_type: str
    name: str
    replace_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class PreviewSummary:
    dns_changes: tuple[DnsChange, ...] = ()
    databases: tuple[DatabaseChange, ...] = ()
    other_replaced: tuple[ReplacedResource, ...] = ()
    # One count per resource (URN), by its effective op: a replacement counts once.
    op_counts: dict[str, int] = field(default_factory=dict)
    # The engine's own summaryEvent.resourceChanges, when the log has one.
    engine_counts: dict[str, int] = field(default_factory=dict)
    errors: tuple[str, ...] = ()
    warnings: int = 0
    failed: tuple[str, ...] = ()
    policy_violations: tuple[str, ...] = ()

    @property
    def dns_records(self) -> tuple[DnsChange, ...]:
        return tuple(c for c in self.dns_changes if c.kind == "record")

    @property
    def health_checks(self) -> tuple[DnsChange, ...]:
        return tuple(c for c in self.dns_changes if c.kind == "health-check")

    @property
    def promotions(self) -> tuple[DatabaseChange, ...]:
        return tuple(d for d in self.databases if d.kind == "promotion")

    @property
    def db_replacements(self) -> tuple[DatabaseChange, ...]:
        return tuple(d for d in self.databases if d.kind == "replacement")

    @property
    def db_deletions(self) -> tuple[DatabaseChange, ...]:
        return tuple(d for d in self.databases if d.kind == "deletion")

    @property
    def other_replaced_count(self) -> int:
        return len(self.other_replaced)

    @property
    def replaced_count(self) -> int:
        """Every resource the plan replaces: DNS objects, databases and the rest."""
        return (
            sum(1 for c in self.dns_changes if c.operation == "replace")
            + len(self.db_replacements)
            + len(self.other_replaced)
        )

    @property
    def has_dns_changes(self) -> bool:
        return bool(self.dns_changes)


# --------------------------------------------------------------------------------------
# Parsing


def parse_event_log(lines: Iterable[str]) -> list[EngineEvent]:
    """Parse the lines of an `--event-log` file (JSON lines) into engine events.

    Blank lines are skipped. A malformed line raises ValueError naming its line number: a
    preview that silently dropped an event could hide exactly the change it exists to show.
    """
    events: list[EngineEvent] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise TypeError(f"expected a JSON object, got {type(data).__name__}")
            events.append(EngineEvent.from_json(data))
        except (ValueError, TypeError, AttributeError) as exc:
            raise ValueError(f"event log line {number}: {exc}") from exc
    return events


# --------------------------------------------------------------------------------------
# Values: secrets, unknowns, display


def _is_secret(value: object) -> bool:
    if not isinstance(value, Mapping):
        return False
    sig = value.get(_SIG_KEY)
    return sig == _SECRET_SIG or (sig == _OUTPUT_VALUE_SIG and bool(value.get("secret")))


def _is_unknown(value: object) -> bool:
    if value == _UNKNOWN:
        return True
    return (
        isinstance(value, Mapping)
        and value.get(_SIG_KEY) == _OUTPUT_VALUE_SIG
        and "value" not in value
    )


def _collect_plain(value: object, out: set[str]) -> None:
    if isinstance(value, str):
        out.add(value)
    elif isinstance(value, bool):
        return
    elif isinstance(value, int | float):
        out.add(str(value))
    elif isinstance(value, Mapping):
        for item in value.values():
            _collect_plain(item, out)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect_plain(item, out)


def _collect_secrets(value: object, out: set[str]) -> None:
    """Collect the plaintexts of every secret object inside `value`."""
    if isinstance(value, Mapping):
        if _is_secret(value):
            plaintext = value.get("plaintext")
            if isinstance(plaintext, str):
                out.add(plaintext)
                with contextlib.suppress(ValueError):
                    _collect_plain(json.loads(plaintext), out)
            if "value" in value:
                _collect_plain(value["value"], out)
            return
        for item in value.values():
            _collect_secrets(item, out)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect_secrets(item, out)


class _Scrubber:
    """Replaces known secret plaintexts in any rendered string."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = sorted(
            {s for s in secrets if len(s) >= _MIN_SCRUB_LEN and s != SECRET_TEXT},
            key=len,
            reverse=True,
        )

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, SECRET_TEXT)
        return text


def _clip(text: str, limit: int = _MAX_VALUE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _display(value: object) -> str:
    """A short, secret-free, single-line rendering of a property value."""
    if value is None:
        return NONE_TEXT
    if _is_secret(value):
        return SECRET_TEXT
    if _is_unknown(value):
        return UNKNOWN_TEXT
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, Mapping):
        if value.get(_SIG_KEY) == _OUTPUT_VALUE_SIG:
            return _display(value.get("value"))
        if value.get(_SIG_KEY) == _RESOURCE_REF_SIG:
            return _display(value.get("urn"))
        if _SIG_KEY in value:
            return "(asset)"
        return "{" + ", ".join(f"{k}: {_display(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return ", ".join(_display(v) for v in value) if value else "[]"
    return str(value)


def _present(value: object) -> bool:
    """True when a property holds something (secrets and unknowns count as something)."""
    if value is None:
        return False
    if isinstance(value, str | list | tuple | Mapping):
        return len(value) > 0
    return True


def _int_or_text(value: object, scrub: Callable[[str], str]) -> int | str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return scrub(_display(value))
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return scrub(_display(value))


# --------------------------------------------------------------------------------------
# Steps


def _props(state: StepEventStateMetadata | None, *, fallback_outputs: bool) -> dict[str, Any]:
    """A state's inputs (what the program specified); outputs if it has no inputs.

    The new side of an update never falls back to outputs: during a preview those are the
    old outputs, and showing them as "after" would be a lie.
    """
    if state is None:
        return {}
    props: Mapping[str, Any] | None = state.inputs
    if not props and fallback_outputs:
        props = state.outputs
    return {k: v for k, v in (props or {}).items() if not k.startswith("__")}


def _output(state: StepEventStateMetadata | None, key: str) -> object:
    if state is None or not state.outputs:
        return None
    return state.outputs.get(key)


def _urn_name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1] if "::" in urn else urn


def _top_keys(paths: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for path in paths:
        key = re.split(r"[.\[]", path, maxsplit=1)[0].strip('"')
        if key and not key.startswith("__"):
            seen.setdefault(key, None)
    return tuple(seen)


@dataclass
class _Resource:
    """Every step the log holds for one URN, merged into one logical change."""

    urn: str
    type: str
    steps: dict[str, StepEventMetadata] = field(default_factory=dict)

    @property
    def op(self) -> str:
        ops = set(self.steps)
        if "create-replacement" in ops:
            ops.add("replace")
        for op in _OP_ORDER:
            if op in ops:
                return op
        return sorted(ops)[0] if ops else "same"

    def step_for(self, *ops: str) -> StepEventMetadata | None:
        for op in ops:
            if op in self.steps:
                return self.steps[op]
        return None

    @property
    def old(self) -> StepEventStateMetadata | None:
        if self.op == "replace":
            for step_op in ("replace", "delete-replaced", "create-replacement"):
                step = self.steps.get(step_op)
                if step is not None and step.old is not None:
                    return step.old
            return None
        step = self.step_for(self.op)
        return step.old if step else None

    @property
    def new(self) -> StepEventStateMetadata | None:
        if self.op == "replace":
            for step_op in ("replace", "create-replacement"):
                step = self.steps.get(step_op)
                if step is not None and step.new is not None:
                    return step.new
            return None
        if self.op in ("delete", "delete-replaced"):
            return None
        step = self.step_for(self.op)
        return step.new if step else None

    @property
    def changed_keys(self) -> tuple[str, ...]:
        step = self.step_for(self.op, "replace", "create-replacement")
        if step is None:
            return ()
        if step.detailed_diff:
            return _top_keys(step.detailed_diff)
        return _top_keys(step.diffs or ())

    @property
    def replace_keys(self) -> tuple[str, ...]:
        if self.op != "replace":
            return ()
        for step_op in ("replace", "create-replacement"):
            step = self.steps.get(step_op)
            if step is None:
                continue
            if step.keys:
                return _top_keys(step.keys)
            forced = [
                path
                for path, diff in (step.detailed_diff or {}).items()
                if str(diff.diff_kind.value).endswith("-replace")
            ]
            if forced:
                return _top_keys(forced)
        return ()

    @property
    def protected(self) -> bool:
        return bool((self.old and self.old.protect) or (self.new and self.new.protect))


# --------------------------------------------------------------------------------------
# DNS


def _routing(props: Mapping[str, Any]) -> str | None:
    if not props:
        return None
    parts: list[str] = []
    failover = props.get("failoverRoutingPolicies")
    weighted = props.get("weightedRoutingPolicies")
    latency = props.get("latencyRoutingPolicies")
    geo = props.get("geolocationRoutingPolicies")
    if _present(failover):
        parts.append("failover " + _policy_field(failover, "type"))
    elif _present(weighted):
        parts.append("weighted " + _policy_field(weighted, "weight"))
    elif _present(latency):
        parts.append("latency " + _policy_field(latency, "region"))
    elif _present(geo):
        parts.append("geolocation " + _policy_field(geo, "continent", "country", "subdivision"))
    elif props.get("multivalueAnswerRoutingPolicy") is True:
        parts.append("multivalue")
    elif _present(props.get("cidrRoutingPolicy")):
        parts.append("cidr")
    elif _present(props.get("geoproximityRoutingPolicy")):
        parts.append("geoproximity")
    else:
        parts.append("simple")
    set_id = props.get("setIdentifier")
    if _present(set_id):
        parts.append(f"set {_display(set_id)}")
    return ", ".join(parts)


def _policy_field(policies: object, *keys: str) -> str:
    if _is_secret(policies) or _is_unknown(policies):
        return _display(policies)
    first: object = policies[0] if isinstance(policies, list) and policies else policies
    if not isinstance(first, Mapping) or _is_secret(first) or _is_unknown(first):
        return _display(first)
    values = [_display(first.get(k)) for k in keys if first.get(k) is not None]
    return "/".join(values) if values else "?"


def _first_policy_value(props: Mapping[str, Any], policy: str, key: str) -> object:
    policies = props.get(policy)
    if isinstance(policies, list) and policies and isinstance(policies[0], Mapping):
        return policies[0].get(key)
    return None


def _record_target(props: Mapping[str, Any]) -> str | None:
    if not props:
        return None
    aliases = props.get("aliases")
    if _present(aliases):
        if isinstance(aliases, list):
            rendered = []
            for alias in aliases:
                if isinstance(alias, Mapping) and not _is_secret(alias):
                    text = f"ALIAS {_display(alias.get('name'))}"
                    if alias.get("evaluateTargetHealth") is True:
                        text += " (evaluate target health)"
                    rendered.append(text)
                else:
                    rendered.append(f"ALIAS {_display(alias)}")
            return "; ".join(rendered)
        return f"ALIAS {_display(aliases)}"
    records = props.get("records")
    if records is None:
        return None
    return _display(records)


def _health_check_target(props: Mapping[str, Any]) -> str | None:
    if not props:
        return None
    check_type = _display(props.get("type")) if props.get("type") is not None else "?"
    if _present(props.get("childHealthchecks")):
        threshold = props.get("childHealthThreshold")
        return f"{check_type} of [{_display(props['childHealthchecks'])}]" + (
            f", healthy if ≥ {_display(threshold)}" if threshold is not None else ""
        )
    if _present(props.get("cloudwatchAlarmName")):
        return f"{check_type} alarm {_display(props['cloudwatchAlarmName'])}"
    host = props.get("fqdn") if _present(props.get("fqdn")) else props.get("ipAddress")
    target = f"{check_type} {_display(host)}"
    if props.get("port") is not None:
        target += f":{_display(props['port'])}"
    if _present(props.get("resourcePath")):
        path = _display(props["resourcePath"])
        target += path if path.startswith("/") else f" {path}"
    extras = []
    if props.get("failureThreshold") is not None:
        extras.append(f"threshold {_display(props['failureThreshold'])}")
    if props.get("requestInterval") is not None:
        extras.append(f"every {_display(props['requestInterval'])}s")
    if props.get("disabled") is True:
        extras.append("DISABLED")
    if props.get("invertHealthcheck") is True:
        extras.append("INVERTED")
    return target + (f" ({', '.join(extras)})" if extras else "")


def _health_check_name(props: Mapping[str, Any], urn: str) -> str:
    tags = props.get("tags")
    if isinstance(tags, Mapping) and isinstance(tags.get("Name"), str) and tags["Name"]:
        return str(tags["Name"])
    if isinstance(props.get("referenceName"), str) and props["referenceName"]:
        return str(props["referenceName"])
    return _urn_name(urn)


def _zone_suffixes(resources: Iterable[_Resource]) -> dict[str, str]:
    """zoneId -> zone name, learned from records whose state has both `name` and `fqdn`.

    Lets a record given by label (`api`) show as `api.example.com` even when it is new and
    its own fqdn is still unknown, so every row names records the same way.
    """
    zones: dict[str, str] = {}
    for res in resources:
        if res.type != RECORD_TYPE:
            continue
        for step in res.steps.values():
            for state in (step.old, step.new):
                if state is None or not state.inputs or not state.outputs:
                    continue
                name, zone = state.inputs.get("name"), state.inputs.get("zoneId")
                fqdn = state.outputs.get("fqdn")
                if not (isinstance(name, str) and isinstance(zone, str)):
                    continue
                if not isinstance(fqdn, str) or _is_unknown(fqdn):
                    continue
                label, full = name.rstrip(".").lower(), fqdn.rstrip(".").lower()
                if label and full.startswith(label + ".") and len(full) > len(label) + 1:
                    zones.setdefault(zone, full[len(label) + 1 :])
    return zones


def _record_name(props: Mapping[str, Any], zones: Mapping[str, str]) -> str | None:
    name = props.get("name")
    if name is None:
        return None
    text = _display(name).rstrip(".")
    zone = props.get("zoneId")
    suffix = zones.get(zone) if isinstance(zone, str) else None
    lowered = text.lower()
    if (
        isinstance(name, str)
        and suffix
        and lowered != suffix
        and not lowered.endswith("." + suffix)
    ):
        text = f"{text}.{suffix}"
    return text


def _weight(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


_RECORD_TARGET_KEYS: Final = frozenset({"records", "aliases"})
_HEALTH_CHECK_TARGET_KEYS: Final = frozenset(
    {
        "type",
        "fqdn",
        "ipAddress",
        "port",
        "resourcePath",
        "searchString",
        "childHealthchecks",
        "childHealthThreshold",
        "cloudwatchAlarmName",
        "failureThreshold",
        "requestInterval",
        "disabled",
        "invertHealthcheck",
    }
)


def _dns_change(res: _Resource, scrub: Callable[[str], str], zones: Mapping[str, str]) -> DnsChange:
    before = _props(res.old, fallback_outputs=True)
    after = _props(res.new, fallback_outputs=res.op == "create")
    current = after or before
    is_record = res.type == RECORD_TYPE
    if is_record:
        name_after = _record_name(after, zones) if after else None
        name_before = _record_name(before, zones) if before else None
        name = name_after or name_before or _urn_name(res.urn)
        record_type = _display(current.get("type")) if current.get("type") is not None else "?"
        target_before, target_after = _record_target(before), _record_target(after)
        routing_before, routing_after = _routing(before), _routing(after)
        ttl_before = _int_or_text(before.get("ttl"), scrub)
        ttl_after = _int_or_text(after.get("ttl"), scrub)
        role = _first_policy_value(current, "failoverRoutingPolicies", "type")
        weight = _first_policy_value(current, "weightedRoutingPolicies", "weight")
        set_id = current.get("setIdentifier")
    else:
        name_after = _health_check_name(after, res.urn) if after else None
        name_before = _health_check_name(before, res.urn) if before else None
        name = name_after or name_before or _urn_name(res.urn)
        record_type = (
            "health check " + _display(current["type"])
            if current.get("type") is not None
            else "health check"
        )
        target_before, target_after = _health_check_target(before), _health_check_target(after)
        routing_before = routing_after = None
        ttl_before = ttl_after = None
        role = weight = set_id = None

    def text(value: str | None) -> str | None:
        return None if value is None else scrub(_clip(value))

    return DnsChange(
        urn=scrub(res.urn),
        resource_type=res.type,
        kind="record" if is_record else "health-check",
        name=scrub(_clip(name)),
        name_before=text(name_before) if name_before and name_before != name else None,
        record_type=scrub(record_type),
        operation=res.op,
        set_identifier=text(_display(set_id)) if _present(set_id) else None,
        failover_role=text(_display(role)) if role is not None else None,
        weight=_weight(weight),
        routing_before=text(routing_before),
        routing_after=text(routing_after),
        target_before=text(target_before),
        target_after=text(target_after),
        ttl_before=ttl_before,
        ttl_after=ttl_after,
        changed_keys=tuple(scrub(k) for k in res.changed_keys),
        replace_keys=tuple(scrub(k) for k in res.replace_keys),
        target_changed=target_before != target_after
        or bool(
            set(res.changed_keys)
            & (_RECORD_TARGET_KEYS if is_record else _HEALTH_CHECK_TARGET_KEYS)
        ),
    )


# --------------------------------------------------------------------------------------
# Databases


def _database_change(res: _Resource, scrub: Callable[[str], str]) -> DatabaseChange | None:
    key = DATABASE_REPLICA_KEYS[res.type]
    before = _props(res.old, fallback_outputs=True)
    after = _props(res.new, fallback_outputs=False)
    source_before = before.get(key)
    if not _present(source_before):
        source_before = _output(res.old, key)
    source_after = after.get(key)
    diff_kind = None
    step = res.step_for(res.op)
    if step is not None and step.detailed_diff:
        for path, diff in step.detailed_diff.items():
            if _top_keys([path]) == (key,):
                diff_kind = str(diff.diff_kind.value)
    removed = (
        _present(source_before)
        and not _present(source_after)
        and not _is_unknown(source_after)
        and res.new is not None
    ) or (diff_kind in ("delete", "delete-replace") and res.new is not None)

    kind: DatabaseChangeKind
    if res.op == "replace":
        kind = "replacement"
    elif res.op in ("delete", "delete-replaced"):
        kind = "deletion"
    elif res.op == "update" and removed:
        kind = "promotion"
    else:
        return None
    current = after or before
    identifier = current.get("identifier")
    if not _present(identifier):
        identifier = _output(res.new, "identifier") or _output(res.old, "identifier")

    def text(value: object) -> str | None:
        return scrub(_clip(_display(value))) if _present(value) else None

    return DatabaseChange(
        urn=scrub(res.urn),
        resource_type=res.type,
        name=scrub(_urn_name(res.urn)),
        identifier=text(identifier),
        kind=kind,
        operation=res.op,
        replica_source_before=text(source_before),
        replica_source_after=text(source_after),
        replace_keys=tuple(scrub(k) for k in res.replace_keys),
        protected=res.protected,
    )


# --------------------------------------------------------------------------------------
# Summary


def _clean_message(message: str, scrub: Callable[[str], str]) -> str:
    text = " ".join(_ANSI.sub("", message).split())
    return scrub(_clip(text, _MAX_MESSAGE_CHARS))


def summarize(events: Iterable[EngineEvent]) -> PreviewSummary:
    """Reduce an engine event stream to what a reviewer of a DNS/DB change needs."""
    events = list(events)
    secrets: set[str] = set()
    resources: dict[str, _Resource] = {}
    engine_counts: dict[str, int] = {}
    failed_steps: list[StepEventMetadata] = []
    diagnostics: list[tuple[str, str, str | None]] = []
    policy: list[tuple[str, str, str, str | None]] = []

    for event in events:
        for payload in (event.resource_pre_event, event.res_outputs_event):
            if payload is None:
                continue
            md = payload.metadata
            for state in (md.old, md.new):
                if state is not None:
                    _collect_secrets(state.inputs, secrets)
                    _collect_secrets(state.outputs, secrets)
            if not md.urn:
                continue
            res = resources.setdefault(md.urn, _Resource(urn=md.urn, type=md.type))
            res.type = md.type or res.type
            op = md.op.value
            # A later event for the same step (the outputs event) supersedes the earlier.
            res.steps[op] = md
        if event.res_op_failed_event is not None:
            failed_steps.append(event.res_op_failed_event.metadata)
        if event.summary_event is not None:
            engine_counts = {
                str(getattr(k, "value", k)): int(v)
                for k, v in (event.summary_event.resource_changes or {}).items()
            }
        if event.diagnostic_event is not None:
            diag = event.diagnostic_event
            diagnostics.append((diag.severity, diag.message, diag.urn))
        if event.policy_event is not None:
            pe = event.policy_event
            policy.append((pe.policy_name, pe.enforcement_level, pe.message, pe.resource_urn))

    scrub = _Scrubber(secrets)
    zones = _zone_suffixes(resources.values())
    dns: list[DnsChange] = []
    databases: list[DatabaseChange] = []
    other: list[ReplacedResource] = []
    counts: Counter[str] = Counter()
    for res in resources.values():
        op = res.op
        counts[op] += 1
        if res.type in DNS_TYPES:
            if op in _CHANGE_OPS:
                dns.append(_dns_change(res, scrub, zones))
            continue
        if res.type in DATABASE_REPLICA_KEYS:
            db = _database_change(res, scrub)
            if db is not None:
                databases.append(db)
                continue
        if op == "replace":
            other.append(
                ReplacedResource(
                    urn=scrub(res.urn),
                    resource_type=res.type,
                    name=scrub(_urn_name(res.urn)),
                    replace_keys=tuple(scrub(k) for k in res.replace_keys),
                )
            )

    # Records before health checks; the most destructive first, so that a cut table keeps them.
    dns.sort(
        key=lambda c: (
            c.kind != "record",
            _SEVERITY.get(c.operation, len(_SEVERITY)),
            c.name,
            c.set_identifier or "",
            c.urn,
        )
    )
    errors = tuple(
        (f"{_urn_name(urn)}: " if urn else "") + _clean_message(message, scrub)
        for severity, message, urn in diagnostics
        if severity == "error"
    )
    warnings = sum(1 for severity, _, _ in diagnostics if severity == "warning")
    failed = tuple(f"{md.op.value} {md.type} {scrub(_urn_name(md.urn))}" for md in failed_steps)
    violations = tuple(
        f"{name} ({level})"
        + (f" on {scrub(_urn_name(urn))}" if urn else "")
        + f": {_clean_message(message, scrub)}"
        for name, level, message, urn in policy
    )
    return PreviewSummary(
        dns_changes=tuple(dns),
        databases=tuple(databases),
        other_replaced=tuple(other),
        op_counts=dict(sorted(counts.items(), key=lambda kv: op_rank(kv[0]))),
        engine_counts=dict(sorted(engine_counts.items(), key=lambda kv: op_rank(kv[0]))),
        errors=errors,
        warnings=warnings,
        failed=failed,
        policy_violations=violations,
    )


def op_rank(op: str) -> tuple[int, str]:
    order = ("create", "update", "replace", "delete", "delete-replaced")
    return (order.index(op) if op in order else len(order), op)
