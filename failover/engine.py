"""The one seam between failover/ and the Pulumi engine (Automation API).

Everything the orchestration asks of Pulumi goes through `Engine`; the real implementation
drives the `pulumi` CLI via `pulumi.automation`, and the tests use a recording double. Keep
this thin: no decisions here, only calls and the translation of engine errors into the
specific exceptions the orchestration tells apart.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pulumi.automation import events

log = logging.getLogger(__name__)

EventHandler = Callable[[events.EngineEvent], None]


class EngineError(RuntimeError):
    """Base class for engine failures the orchestration handles."""


class PulumiCliMissing(EngineError):
    def __init__(self) -> None:
        super().__init__(
            "the `pulumi` CLI is not on PATH: install it (https://www.pulumi.com/docs/install/, "
            "e.g. `curl -fsSL https://get.pulumi.com | sh`) and log in, then run this again"
        )


class StackMissing(EngineError):
    """A stack does not exist; the orchestration never creates one."""


class ConcurrentUpdate(EngineError):
    """Another update holds the stack's lock in the backend."""


class UpdateFailed(EngineError):
    """refresh, up or preview ran and failed."""


@dataclass(frozen=True)
class UpdateResult:
    stack: str
    operation: str
    summary: str
    changes: dict[str, int]


class Engine(Protocol):
    def outputs(self, stack: str) -> dict[str, Any]:
        """Select the stack (never create it) and return its outputs, secrets masked."""
        ...

    def refresh(self, stack: str, on_event: EventHandler | None = None) -> UpdateResult: ...

    def up(self, stack: str, on_event: EventHandler | None = None) -> UpdateResult: ...

    def preview(
        self, stack: str, on_event: EventHandler | None = None, work_dir: Path | None = None
    ) -> UpdateResult: ...


class AutomationEngine:
    """`Engine` over `pulumi.automation.LocalWorkspace` for the project directory."""

    def __init__(self, project_dir: Path) -> None:
        if shutil.which("pulumi") is None:
            raise PulumiCliMissing()
        self.project_dir = project_dir

    def _select(self, stack: str, work_dir: Path | None = None) -> Any:
        from pulumi import automation as auto

        try:
            return auto.select_stack(stack_name=stack, work_dir=str(work_dir or self.project_dir))
        except auto.StackNotFoundError as err:
            raise StackMissing(
                f"stack {stack!r} does not exist (it is never created here)"
            ) from err
        except auto.CommandError as err:
            raise EngineError(f"selecting stack {stack!r} failed: {_first_line(err)}") from err

    def outputs(self, stack: str) -> dict[str, Any]:
        from pulumi import automation as auto

        try:
            raw = self._select(stack).outputs()
        except auto.CommandError as err:
            raise EngineError(f"reading outputs of {stack!r} failed: {_first_line(err)}") from err
        return {k: ("[secret]" if v.secret else v.value) for k, v in raw.items()}

    def _run(self, stack: str, op: str, call: Callable[[Any], Any]) -> UpdateResult:
        from pulumi import automation as auto

        selected = self._select(stack)
        try:
            result = call(selected)
        except auto.ConcurrentUpdateError as err:
            raise ConcurrentUpdate(f"{op} of {stack!r}: another update is running") from err
        except auto.CommandError as err:
            raise UpdateFailed(f"{op} of {stack!r} failed: {_first_line(err)}") from err
        summary = getattr(result, "summary", None)
        changes = dict(getattr(summary, "resource_changes", None) or {})
        if not changes and hasattr(result, "change_summary"):
            changes = {str(k): v for k, v in result.change_summary.items()}
        return UpdateResult(stack, op, str(getattr(summary, "result", "succeeded")), changes)

    def refresh(self, stack: str, on_event: EventHandler | None = None) -> UpdateResult:
        return self._run(stack, "refresh", lambda s: s.refresh(on_event=on_event))

    def up(self, stack: str, on_event: EventHandler | None = None) -> UpdateResult:
        return self._run(stack, "up", lambda s: s.up(on_event=on_event))

    def preview(
        self, stack: str, on_event: EventHandler | None = None, work_dir: Path | None = None
    ) -> UpdateResult:
        from pulumi import automation as auto

        selected = self._select(stack, work_dir)
        try:
            result = selected.preview(on_event=on_event, diff=True)
        except auto.CommandError as err:
            raise UpdateFailed(f"preview of {stack!r} failed: {_first_line(err)}") from err
        return UpdateResult(
            stack, "preview", "succeeded", {str(k): v for k, v in result.change_summary.items()}
        )


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    for line in text.splitlines():
        if "error:" in line:
            return line.strip()
    return text.splitlines()[0] if text else type(err).__name__
