"""Process registry for lab servers: every child is tracked so none can outlive the lab.

Children run in their own session, so a terminal Ctrl-C does not reach them directly;
`stop_all()` runs from atexit and, once `install_signal_handlers()` was called, from
SIGINT/SIGTERM too, and takes down each child with everything it forked (a postmaster's
backends included).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import pwd
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Self

from failover.pids import proc_stat_fields

log = logging.getLogger(__name__)

_POLL_INTERVAL = 0.05


class Lifecycle:
    """`with x:` starts x and stops it on the way out, also on an exception."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class LabError(RuntimeError):
    """A lab server could not be built, started, stopped or queried."""


class LabTimeoutError(LabError):
    """A lab condition did not become true in time."""


@dataclass(frozen=True)
class RunAs:
    """Unprivileged identity for servers that refuse to run as root (PostgreSQL)."""

    name: str
    uid: int
    gid: int


def unprivileged_user(candidates: Sequence[str] = ("postgres", "nobody")) -> RunAs | None:
    """The account to drop to when we are root; None means run as ourselves."""
    if os.geteuid() != 0:
        return None
    for name in candidates:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return RunAs(name=name, uid=entry.pw_uid, gid=entry.pw_gid)
    raise LabError(f"running as root but none of the users {list(candidates)} exists")


def chown_tree(path: Path, run_as: RunAs | None) -> None:
    if run_as is None:
        return
    os.chown(path, run_as.uid, run_as.gid)
    for root, dirs, files in os.walk(path):
        for entry in (*dirs, *files):
            os.chown(os.path.join(root, entry), run_as.uid, run_as.gid, follow_symlinks=False)


_handed_out_ports: set[int] = set()
_handed_out_lock = threading.Lock()


def free_port() -> int:
    """A loopback TCP port that was free a moment ago; never the same one twice per process."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        with _handed_out_lock:
            if port not in _handed_out_ports:
                _handed_out_ports.add(port)
                return port


def port_accepts(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    interval: float = _POLL_INTERVAL,
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise LabTimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


@dataclass(frozen=True)
class _ProcInfo:
    ppid: int
    pgrp: int
    start: int  # clock ticks after boot: with the pid, identifies a process despite pid reuse


def _proc_info(pid: int) -> _ProcInfo | None:
    """None for a process that is gone or a zombie."""
    fields = proc_stat_fields(pid)
    if fields is None or fields[0] == "Z":
        return None
    return _ProcInfo(ppid=int(fields[1]), pgrp=int(fields[2]), start=int(fields[19]))


def _process_table() -> dict[int, _ProcInfo]:
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (info := _proc_info(int(entry.name))) is not None:
            table[int(entry.name)] = info
    return table


def _start_time(pid: int) -> int | None:
    """Start time of `pid`, zombies included (an unreaped child still holds its pid)."""
    fields = proc_stat_fields(pid)
    return None if fields is None else int(fields[19])


def _alive_as(pid: int, start: int) -> bool:
    info = _proc_info(pid)
    return info is not None and info.start == start


def _process_family(leader: int, leader_start: int) -> dict[int, int]:
    """pid -> start time of processes descended from `leader` or in its process group.

    Both are needed: PostgreSQL backends call setsid(), so they leave the postmaster's group,
    and orphans leave the tree (re-parented to init) once their parent dies.
    """
    if _start_time(leader) not in (None, leader_start):
        return {}  # the pid was reused, so its group emptied long ago: nothing of ours is left
    table = _process_table()
    children: dict[int, list[int]] = {}
    for pid, info in table.items():
        children.setdefault(info.ppid, []).append(pid)
    family = {pid for pid, info in table.items() if info.pgrp == leader}
    pending = [leader] if leader in table else []
    while pending:
        pid = pending.pop()
        family.add(pid)
        pending.extend(children.get(pid, []))
    return {pid: table[pid].start for pid in family}


def _kill_quietly(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


@dataclass
class ManagedProcess:
    """A child started in its own session, with everything it forks."""

    name: str
    popen: subprocess.Popen[bytes]
    stop_signal: signal.Signals = signal.SIGTERM
    _start: int = field(init=False, repr=False)
    _gone: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        # Not reaped yet, so /proc/<pid> exists even if the child already exited.
        start = _start_time(self.popen.pid)
        if start is None:
            raise LabError(f"{self.name}: no /proc entry for pid {self.popen.pid}")
        self._start = start

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def gone(self) -> bool:
        return self._gone

    def is_running(self) -> bool:
        return self.popen.poll() is None

    def members(self) -> list[int]:
        """Live pids of the leader and everything it forked."""
        return sorted(self._family())

    def _family(self) -> dict[int, int]:
        return {} if self._gone else _process_family(self.pid, self._start)

    def stop(self, sig: signal.Signals | None = None, timeout: float = 10.0) -> None:
        """Ask the leader to exit, then SIGKILL whatever is left of its family."""
        sig = sig if sig is not None else self.stop_signal
        family = self._family()
        if self.is_running():
            _kill_quietly(self.pid, sig)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s (pid %d) ignored %s, killing it", self.name, self.pid, sig.name)
        self._kill(timeout, seen=family)

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL the leader and its whole family at once."""
        self._kill(timeout, seen={})

    def _kill(self, timeout: float, seen: dict[int, int]) -> None:
        if self._gone:
            return
        if self.is_running():
            # Frozen, the leader cannot fork a child we would miss.
            _kill_quietly(self.pid, signal.SIGSTOP)
        victims = {**seen, **self._family()}
        for pid, start in victims.items():
            if _alive_as(pid, start):
                _kill_quietly(pid, signal.SIGKILL)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise LabError(f"{self.name} (pid {self.pid}) survived SIGKILL") from exc
        wait_until(
            lambda: not any(_alive_as(p, s) for p, s in victims.items()) and not self._family(),
            timeout,
            f"every process of {self.name} to exit",
        )
        self._gone = True


@dataclass
class ProcessRegistry:
    _procs: list[ManagedProcess] = field(default_factory=list)
    # Re-entrant: a signal handler may call stop_all() while start() holds the lock.
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def start(
        self,
        argv: Sequence[str],
        *,
        name: str,
        log_file: Path,
        env: Mapping[str, str] | None = None,
        run_as: RunAs | None = None,
        cwd: Path | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> ManagedProcess:
        with self._lock, log_file.open("ab") as out:
            popen = _spawn(argv, out, env, run_as, cwd)
            proc = ManagedProcess(name=name, popen=popen, stop_signal=stop_signal)
            self._procs = [p for p in self._procs if not p.gone]
            self._procs.append(proc)
        log.debug("started %s pid %d: %s", name, proc.pid, " ".join(argv))
        return proc

    def running(self) -> list[ManagedProcess]:
        with self._lock:
            return [p for p in self._procs if p.is_running() or p.members()]

    def stop_all(self, timeout: float = 10.0) -> None:
        with self._lock:
            procs, self._procs = list(self._procs), []
        for proc in reversed(procs):
            try:
                proc.stop(timeout=timeout)
            except LabError:
                log.exception("could not stop %s (pid %d)", proc.name, proc.pid)


def _spawn(
    argv: Sequence[str],
    out: IO[bytes],
    env: Mapping[str, str] | None,
    run_as: RunAs | None,
    cwd: Path | None,
) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            user=None if run_as is None else run_as.uid,
            group=None if run_as is None else run_as.gid,
            extra_groups=None if run_as is None else [],
        )
    except OSError as exc:
        raise LabError(f"cannot start {argv[0]}: {exc}") from exc


REGISTRY = ProcessRegistry()


def start(
    argv: Sequence[str],
    *,
    name: str,
    log_file: Path,
    env: Mapping[str, str] | None = None,
    run_as: RunAs | None = None,
    cwd: Path | None = None,
    stop_signal: signal.Signals = signal.SIGTERM,
) -> ManagedProcess:
    return REGISTRY.start(
        argv,
        name=name,
        log_file=log_file,
        env=env,
        run_as=run_as,
        cwd=cwd,
        stop_signal=stop_signal,
    )


def run(
    argv: Sequence[str],
    *,
    what: str,
    log_file: Path,
    env: Mapping[str, str] | None = None,
    run_as: RunAs | None = None,
    timeout: float = 120.0,
) -> None:
    """Run a short-lived tool to completion; registered meanwhile, so stop_all() covers it."""
    proc = start(argv, name=what, log_file=log_file, env=env, run_as=run_as)
    try:
        code = proc.popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{what} did not finish in {timeout:g}s") from exc
    finally:
        proc.kill()
    if code != 0:
        raise LabError(f"{what} failed (exit {code}):\n{tail(log_file)}")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop_all(timeout: float = 10.0) -> None:
    REGISTRY.stop_all(timeout=timeout)


atexit.register(stop_all)

_Handler = Callable[[int, FrameType | None], object] | int | signal.Handlers | None
_installed: dict[int, _Handler] = {}


def install_signal_handlers(
    signals: Sequence[signal.Signals] = (signal.SIGINT, signal.SIGTERM),
) -> bool:
    """Stop every lab process on these signals, then defer to the previous handler.

    Idempotent. A signal that is ignored (as SIGINT is in a background job) stays ignored.
    Python only lets the main thread install handlers: elsewhere this returns False and
    atexit remains the only safety net.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    for sig in signals:
        if sig in _installed or signal.getsignal(sig) == signal.SIG_IGN:
            continue
        _installed[sig] = signal.signal(sig, _on_signal)
    return True


def _on_signal(signum: int, frame: FrameType | None) -> None:
    log.warning("signal %d: stopping all lab processes", signum)
    stop_all(timeout=5.0)
    previous = _installed.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:
        # Re-deliver with the default disposition so the exit status reports the signal.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
