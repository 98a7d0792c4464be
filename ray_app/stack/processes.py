"""Start, find and stop the local stack's processes through pid files.

A pid file records the pid *and* the process start time, so a stale file whose pid was reused by an unrelated
process is never mistaken for ours, and `stack down` only ever signals processes the stack started (and their
descendants).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from ray_app.errors import ActionableError


class StackError(ActionableError):
    """The local stack could not start, stop or be set up."""


@dataclass(frozen=True)
class PidRecord:
    pid: int
    create_time: float
    argv: list[str]

    def process(self) -> psutil.Process | None:
        """The live process this record names, or None when it is gone or the pid was reused."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 1.0 or proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.Error:
            return None


def read_pid_file(pid_file: Path) -> PidRecord | None:
    try:
        data = json.loads(pid_file.read_text())
        return PidRecord(pid=int(data["pid"]), create_time=float(data["create_time"]), argv=list(data["argv"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def running_process(pid_file: Path) -> psutil.Process | None:
    record = read_pid_file(pid_file)
    return record.process() if record else None


def start_process(
    argv: Sequence[str],
    *,
    pid_file: Path,
    log_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> psutil.Process:
    """Start a detached process (its own session, so Ctrl-C in the terminal does not reach it)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        log.write(f"\n===== {time.strftime('%Y-%m-%dT%H:%M:%S%z')} starting: {' '.join(argv)}\n".encode())
        log.flush()
        try:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            raise StackError(f"cannot start {argv[0]}: {exc.strerror}", log_file) from exc
    proc = psutil.Process(popen.pid)
    record = {"pid": popen.pid, "create_time": proc.create_time(), "argv": list(argv)}
    tmp = pid_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(pid_file)
    return proc


def stop_process(pid_file: Path, timeout_s: float) -> bool:
    """Stop the process named by ``pid_file`` and its descendants. Returns True when something was running.

    The top process is asked first (SIGTERM), since it knows how to shut its children down (Ray's
    `ray start --block`, Elasticsearch's launcher); descendants still alive after ``timeout_s`` are
    terminated, then killed.
    """
    record = read_pid_file(pid_file)
    proc = record.process() if record else None
    if proc is None:
        pid_file.unlink(missing_ok=True)
        return False
    try:
        descendants = proc.children(recursive=True)
    except psutil.Error:
        descendants = []
    with contextlib.suppress(psutil.Error):
        proc.send_signal(signal.SIGTERM)
    leftovers = _wait_gone([proc, *descendants], timeout_s)
    for signal_name in ("terminate", "kill"):
        for member in leftovers:
            with contextlib.suppress(psutil.Error):
                getattr(member, signal_name)()
        leftovers = _wait_gone(leftovers, 5)
    _reap(proc.pid)
    pid_file.unlink(missing_ok=True)
    return True


def _wait_gone(procs: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Wait until every process has exited; returns those still running. A zombie counts as exited: only its
    parent can reap it, and that parent may be the very process waiting on `stack down` (a test session)."""
    deadline = time.monotonic() + timeout_s
    alive = [p for p in procs if _running(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in alive if _running(p)]
    return alive


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _reap(pid: int) -> None:
    """Collect the exit status if the process was our child, so no zombie is left behind."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def port_owner(host: str, port: int) -> str:
    """A short description of who listens on ``host:port`` ("pid 123 (java)"), or '' when unknown."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                try:
                    return f"pid {conn.pid} ({psutil.Process(conn.pid).name()})"
                except psutil.Error:
                    return f"pid {conn.pid}"
    except psutil.Error:
        pass
    return ""


def port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_until_healthy(
    name: str,
    probe: Callable[[], bool],
    proc: psutil.Process,
    *,
    timeout_s: float,
    log_file: Path,
    interval_s: float = 0.5,
) -> None:
    """Poll ``probe`` until it answers True; fail fast if the process dies, or when the time is up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
            code = _exit_code(proc.pid)
            raise StackError(f"{name} exited during start-up (exit code {code}): {last_log_line(log_file)}", log_file)
        if probe():
            return
        time.sleep(interval_s)
    raise StackError(f"{name} did not become healthy within {timeout_s:.0f} s", log_file)


def _exit_code(pid: int) -> int | str:
    try:
        _, status = os.waitpid(pid, os.WNOHANG)
        return os.waitstatus_to_exitcode(status)
    except ChildProcessError:
        return "unknown"


def last_log_line(log_file: Path, max_chars: int = 300) -> str:
    """The last meaningful line of a log, to quote in a one-line error."""
    try:
        lines = [line.strip() for line in log_file.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    for line in reversed(lines):
        if any(word in line for word in ("ERROR", "Exception", "error", "FATAL", "fatal")):
            return line[:max_chars]
    return lines[-1][:max_chars] if lines else "(empty log)"
