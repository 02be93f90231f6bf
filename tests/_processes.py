"""
Processes the end-to-end tests start (Airflow components, the emulator CLI): each in its own process group,
started and stopped by PID, output to a log file, on free loopback ports.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log, for failure messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class Process:
    """A started process group and where its output goes."""

    name: str
    popen: subprocess.Popen[bytes]
    output: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``ready`` while the process lives; fail with its log tail if it exits or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{tail(self.output)}")
            if ready():
                return
            time.sleep(0.3)
        raise RuntimeError(f"{self.name}: {what} not within {timeout:.0f}s:\n{tail(self.output)}")

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signum)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to the group, then SIGKILL whatever is left."""
        if self.alive():
            self.signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # Children (task runners, trigger subprocesses) may outlive the leader: the group goes.
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)

    def kill(self) -> None:
        """SIGKILL the whole group at once: no clean-up code runs."""
        self.signal_group(signal.SIGKILL)
        self.popen.wait(10)


def start_process(name: str, argv: list[str], env: Mapping[str, str], output: Path, cwd: Path | None = None) -> Process:
    """
    Start ``argv`` in its own process group (stopped as a whole, by PID).

    :param name: for messages.
    :param argv: the command.
    :param env: its whole environment.
    :param output: the file that receives its stdout and stderr.
    :param cwd: its working directory.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("wb") as handle:
        popen = subprocess.Popen(
            argv,
            env=dict(env),
            cwd=cwd,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return Process(name, popen, output)
