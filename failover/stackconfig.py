"""Reading and editing the project's Pulumi.yaml and Pulumi.<stack>.yaml files.

The switch writes `active_region` and `replicate_from` into the stack files so git keeps
the truth. Edits are line-based on purpose: they keep the operators' comments and order,
which a YAML round-trip would drop.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.contract import PROJECT


class StackConfigError(RuntimeError):
    """A project or stack file is missing or malformed."""


def full_key(key: str) -> str:
    return key if ":" in key else f"{PROJECT}:{key}"


def stack_file(project_dir: Path, stack: str) -> Path:
    return project_dir / f"Pulumi.{stack}.yaml"


@dataclass(frozen=True)
class StackConfig:
    """A stack's effective config: project defaults overlaid by the stack file."""

    values: dict[str, str]
    secret_keys: frozenset[str]
    # Keys whose value is encrypted in the stack file (`secure:`); unreadable offline.
    encrypted_keys: frozenset[str]

    def get(self, key: str) -> str | None:
        return self.values.get(full_key(key))


def _to_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def _load_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise StackConfigError(f"{path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise StackConfigError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise StackConfigError(f"{path} must hold a mapping")
    return data


def load(project_dir: Path, stack: str) -> StackConfig:
    project = _load_yaml(project_dir / "Pulumi.yaml")
    values: dict[str, str] = {}
    secret: set[str] = set()
    for key, decl in (project.get("config") or {}).items():
        name = full_key(key)
        if isinstance(decl, dict):
            if "default" in decl:
                values[name] = _to_str(decl["default"])
            if decl.get("secret"):
                secret.add(name)
        else:
            values[name] = _to_str(decl)
    encrypted: set[str] = set()
    for key, value in (_load_yaml(stack_file(project_dir, stack)).get("config") or {}).items():
        name = full_key(key)
        if isinstance(value, dict) and "secure" in value:
            encrypted.add(name)
            secret.add(name)
            values.pop(name, None)
        else:
            values[name] = _to_str(value)
    return StackConfig(values, frozenset(secret), frozenset(encrypted))


_LINE = re.compile(r"^(?P<indent>\s+)(?P<key>[\w:.-]+):(?P<rest>.*)$")


def set_values(project_dir: Path, stack: str, updates: dict[str, str]) -> bool:
    """Set plain-text keys in a stack file, atomically. Returns whether anything changed."""
    path = stack_file(project_dir, stack)
    lines = path.read_text().splitlines(keepends=True)
    pending = {full_key(k): v for k, v in updates.items()}
    changed = False
    out: list[str] = []
    in_config = False
    indent = "  "
    for line in lines:
        if re.match(r"^config:\s*$", line):
            in_config = True
            out.append(line)
            continue
        if in_config and line.strip() and not line[0].isspace():
            in_config = False
        match = _LINE.match(line) if in_config else None
        if match and full_key(match["key"]) in pending:
            indent = match["indent"]
            new_value = pending.pop(full_key(match["key"]))
            new_line = f"{indent}{match['key']}: {json.dumps(new_value)}\n"
            if yaml.safe_load(match["rest"]) != new_value:
                changed = True
            out.append(new_line)
            continue
        out.append(line)
    if pending:
        if not any(re.match(r"^config:\s*$", x) for x in out):
            out.append("config:\n")
        # Append after the config block's last line (files here keep config last).
        for key, value in pending.items():
            out.append(f"{indent}{key}: {json.dumps(value)}\n")
        changed = True
    if changed:
        _atomic_write(path, "".join(out))
    return changed


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
