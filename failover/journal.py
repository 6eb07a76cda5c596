"""The switch's journal and lock, kept in the project directory.

The journal is append-only JSON lines: every run, every phase start/end/failure, every
pending action. A rerun after a crash reads it to resume where the last run stopped, and
`failover.status` shows what is still pending. The lock makes sure only one switch runs.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from failover.pids import pid_alive

STATE_DIR = ".failover"


class LockHeld(RuntimeError):
    """Another switch holds the lock."""

    def __init__(self, holder: dict[str, Any]) -> None:
        self.holder = holder
        super().__init__(
            f"another switch is running: pid {holder.get('pid')} on {holder.get('host')} "
            f"by {holder.get('user')} since {holder.get('started')} ({holder.get('command')})"
        )


def state_dir(project_dir: Path) -> Path:
    path = project_dir / STATE_DIR
    path.mkdir(exist_ok=True)
    return path


@contextmanager
def switch_lock(project_dir: Path, command: str) -> Iterator[dict[str, Any]]:
    """Hold the one-switch-at-a-time lock; a holder whose process is gone is stale."""
    path = state_dir(project_dir) / "switch.lock"
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "user": getpass.getuser(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command,
    }
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(path.read_text() or "{}")
            except (OSError, json.JSONDecodeError):
                holder = {}
            same_host = holder.get("host") == me["host"]
            if same_host and isinstance(holder.get("pid"), int) and not pid_alive(holder["pid"]):
                path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            raise LockHeld(holder) from None
        with os.fdopen(fd, "w") as handle:
            json.dump(me, handle)
        break
    else:
        raise LockHeld(json.loads(path.read_text() or "{}"))
    try:
        yield me
    finally:
        path.unlink(missing_ok=True)


@dataclass
class RunState:
    """What the journal says about the latest run toward a target."""

    run_id: str
    target: str
    mode: str
    done: set[str] = field(default_factory=set)
    started: set[str] = field(default_factory=set)
    finished: bool = False
    data: dict[str, Any] = field(default_factory=dict)


class Journal:
    def __init__(self, project_dir: Path) -> None:
        self.path = state_dir(project_dir) / "journal.jsonl"

    def write(self, event: str, **fields: Any) -> None:
        record = {"ts": time.time(), "event": event, **fields}
        with self.path.open("a") as handle:
            handle.write(json.dumps(record, default=str) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn last line from a crash mid-write
        return out

    def latest_run(self) -> RunState | None:
        state: RunState | None = None
        for rec in self.records():
            if rec["event"] == "run-start":
                state = RunState(rec["run_id"], rec["target"], rec["mode"])
                state.data.update(rec.get("data", {}))
            elif state is None or rec.get("run_id") != state.run_id:
                continue
            elif rec["event"] == "step-start":
                state.started.add(rec["step"])
            elif rec["event"] == "step-done":
                state.done.add(rec["step"])
                state.data.update(rec.get("data", {}))
            elif rec["event"] == "run-end":
                state.finished = True
        return state

    def unfinished(self) -> RunState | None:
        state = self.latest_run()
        return state if state is not None and not state.finished else None

    def pending(self) -> list[dict[str, Any]]:
        """Actions recorded as pending and not completed since."""
        open_items: dict[str, dict[str, Any]] = {}
        for rec in self.records():
            if rec["event"] == "pending":
                open_items[rec["action"]] = rec
            elif rec["event"] == "pending-done":
                open_items.pop(rec["action"], None)
        return list(open_items.values())

    @staticmethod
    def new_run_id() -> str:
        return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
