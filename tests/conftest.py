"""Shared fixtures: program evaluations under Pulumi mocks, cached per config."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parent.parent
if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))

from failover.programeval import Evaluation, evaluate  # noqa: E402

# A canary secret: it must never show up in any plain-text output, journal or report.
CANARY_PASSWORD = "canary-Pa55w0rd-7f3e9c"

Evaluator = Callable[..., Evaluation]

_CACHE: dict[tuple[str, tuple[tuple[str, str], ...]], Evaluation] = {}


def state_config(stack: str, active: str) -> dict[str, str]:
    """The config each stack holds when `active` is the active region after a clean switch."""
    replicate = "primary" if stack == "dr" and active == "primary" else ""
    return {"active_region": active, "replicate_from": replicate, "db_password": CANARY_PASSWORD}


@pytest.fixture(scope="session")
def evaluated() -> Evaluator:
    def run(stack: str, overrides: Mapping[str, str] | None = None) -> Evaluation:
        merged = {"db_password": CANARY_PASSWORD, **(overrides or {})}
        key = (stack, tuple(sorted(merged.items())))
        if key not in _CACHE:
            _CACHE[key] = evaluate(PROJECT_DIR, stack, merged)
        return _CACHE[key]

    return run
