"""
A real Airflow on this machine for the end-to-end tests: scheduler, dag-processor, triggerer and api-server
as separate processes (LocalExecutor, SQLite, a throwaway AIRFLOW_HOME), plus the Sestek emulator as its own
process. Everything is started and stopped by PID (each in its own process group), on free loopback ports.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from airflow_provider_sestek.testing import EmulatorClient
from tests._processes import Process, free_port, start_process, tail

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
_ACTIVE = ("scheduled", "queued", "running", "deferred", "up_for_retry", "up_for_reschedule", "restarting")


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    """Call ``check`` until it returns something truthy; raise ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except Exception as exc:  # the component may not be up yet
            last_error = exc
        else:
            if result:
                return result
        time.sleep(interval)
    raise TimeoutError(f"{what} did not happen within {timeout:.0f}s (last error: {last_error!r})")


def _output(logs: Path, name: str) -> Path:
    """A new output file per start: a component started again (a new triggerer) keeps the old one's log."""
    return logs / f"{name}-{time.time_ns()}.out"


@dataclass
class Emulator:
    """The emulator CLI as a process, controlled over its admin endpoints."""

    process: Process
    url: str
    client: EmulatorClient

    @classmethod
    def start(cls, workdir: Path, args: list[str]) -> Emulator:
        ready = workdir / "emulator.url"
        ready.unlink(missing_ok=True)
        # --port 0: a free port (the CLI's default is 8765); --quiet: no printed connection lines, which carry the
        # client secrets the scans look for (tests/production scans the whole workdir, process output included).
        argv = [sys.executable, "-m", "airflow_provider_sestek.testing", "--port", "0", "--quiet"]
        argv += ["--ready-file", str(ready), *args]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        process = start_process("emulator", argv, env, _output(workdir / "process-output", "emulator"), workdir)
        url = wait_for("the emulator to listen", lambda: ready.exists() and ready.read_text().strip(), 30, 0.1)
        client = EmulatorClient(url)
        client.wait_until_ready(10)
        return cls(process, url, client)


@dataclass
class RealAirflow:
    """
    A throwaway Airflow installation.

    :param home: the AIRFLOW_HOME (deleted by the caller).
    :param dags: the DAGs folder.
    :param connections: conn id -> connection JSON, given as ``AIRFLOW_CONN_*`` variables.
    :param env_extra: further environment.
    """

    home: Path
    dags: Path
    connections: Mapping[str, str]
    env_extra: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    #: The log servers of workers and triggerers (they bind every interface; the defaults may be taken).
    worker_log_port: int = field(default_factory=free_port)
    trigger_log_port: int = field(default_factory=free_port)
    fernet_key: str = field(default_factory=lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
    jwt_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    processes: dict[str, Process] = field(default_factory=dict)
    #: How each component was started (command line, working directory, own variables), to start it again.
    arguments: dict[str, tuple[list[str], Path | None, dict[str, str]]] = field(default_factory=dict)
    retired: list[Process] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SESTEK_"))}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__FERNET_KEY": self.fernet_key,
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__CORE__PARALLELISM": "8",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home}/airflow.db",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API_AUTH__JWT_SECRET": self.jwt_secret,
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.worker_log_port),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.trigger_log_port),
                # Faster hand-over of the triggers of a triggerer that died.
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "8",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
                "PYTHONUNBUFFERED": "1",
            }
        )
        for conn_id, value in self.connections.items():
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = value
        env.update(self.env_extra)
        return env

    def __post_init__(self) -> None:
        self.http = requests.Session()
        self.http.trust_env = False

    def airflow(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )

    def start_component(
        self,
        name: str,
        args: list[str] | None = None,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Process:
        """
        Start ``airflow <args>`` as the component ``name``.

        :param args: the command line after ``airflow``; by default the component's name.
        :param cwd: its working directory (AIRFLOW_HOME by default).
        :param env: variables on top of :attr:`env`.
        """
        if args is None:
            args = [name, "--port", str(self.port)] if name == "api-server" else [name]
        self.arguments[name] = (args, cwd, dict(env or {}))
        process = start_process(
            name,
            [sys.executable, "-m", "airflow", *args],
            {**self.env, **(env or {})},
            _output(self.home / "process-output", name),
            cwd or self.home,
        )
        self.processes[name] = process
        return process

    def start(self, timeout: float = 180, components: tuple[str, ...] = COMPONENTS) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.airflow("db", "migrate")
        for name in components:
            self.start_component(name)
        wait_for(
            "the api-server to answer",
            lambda: self.http.get(f"{self.base_url}/api/v2/monitor/health", timeout=5).ok,
            timeout,
        )

    def stop(self) -> None:
        for process in [*self.processes.values(), *self.retired]:
            process.stop()

    def replace(self, name: str, *, kill: bool) -> tuple[Process, Process]:
        """SIGKILL (or stop) a component and start a new one as it was started; returns (old, new)."""
        old = self.retire(name, kill=kill)
        return old, self.restart(name)

    def restart(self, name: str) -> Process:
        """Start a component that was retired (or died) again, with the arguments it was first started with."""
        args, cwd, env = self.arguments[name]
        return self.start_component(name, args, cwd, env)

    def check_alive(self) -> None:
        """Fail at once, with its output, when a component exited (instead of waiting out a timeout)."""
        dead = [p for p in self.processes.values() if not p.alive()]
        if dead:
            raise RuntimeError("\n".join(f"{p.name} exited ({p.popen.returncode}):\n{tail(p.output)}" for p in dead))

    def retire(self, name: str, *, kill: bool) -> Process:
        """SIGKILL (or stop) a component for good."""
        old = self.processes.pop(name)
        old.kill() if kill else old.stop()
        self.retired.append(old)
        return old

    # --- REST API ---------------------------------------------------------------------------------------

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.base_url}/api/v2{path}", timeout=30, **kwargs)
        if not response.ok:
            raise RuntimeError(f"{method} {path}: HTTP {response.status_code} {response.text[:500]}")
        return response.json() if response.content else None

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        wait_for(f"DAG {dag_id} to be parsed", lambda: self.api("GET", f"/dags/{dag_id}"), timeout)

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> str:
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        run = self.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": dict(conf or {})})
        return str(run["dag_run_id"])

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        data = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti["state"] for ti in data["task_instances"]}

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        data = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries")
        return list(data["task_instances"])


@dataclass
class RunWatch:
    """Every state each task was seen in while a run was polled."""

    seen: dict[str, list[str]] = field(default_factory=dict)

    def record(self, states: Mapping[str, str | None]) -> None:
        for task_id, state in states.items():
            history = self.seen.setdefault(task_id, [])
            if state and (not history or history[-1] != state):
                history.append(state)


def follow_run(
    airflow: RealAirflow,
    dag_id: str,
    run_id: str,
    timeout: float,
    watch: RunWatch | None = None,
    until: Callable[[str, dict[str, str | None]], bool] | None = None,
) -> str:
    """Poll a run (recording task states) until it ends or ``until(run_state, task_states)``; return its state."""
    watch = watch or RunWatch()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        airflow.check_alive()
        state = airflow.run_state(dag_id, run_id)
        tasks = airflow.task_states(dag_id, run_id)
        watch.record(tasks)
        if until is not None and until(state, tasks):
            return state
        if state in ("success", "failed") and not any(s in _ACTIVE for s in tasks.values()):
            return state
        time.sleep(0.3)
    raise TimeoutError(f"run {run_id} of {dag_id} still not finished after {timeout:.0f}s: {watch.seen}")


def connection(host: str, login: str, password: str, **extra: Any) -> str:
    return json.dumps({"conn_type": "sestek", "host": host, "login": login, "password": password, "extra": extra})


def emulator_with_secrets(
    workdir: Path, train_secret: str, inference_secret: str, token_prefix: str, seconds_per_step: float
) -> Emulator:
    """The emulator CLI with distinctive client secrets and token prefix (what the secret scans look for)."""
    args = ["--advance", "time", "--seconds-per-step", str(seconds_per_step), "--token-prefix", token_prefix]
    args += ["--client", f"train-client:{train_secret}", "--inference-client", f"inference-client:{inference_secret}"]
    return Emulator.start(workdir, args)


def sestek_connection_json(emulator: Emulator, train_secret: str, inference_secret: str) -> str:
    """The ``sestek_default`` connection for :func:`emulator_with_secrets` (tenant ``acme``)."""
    return connection(
        emulator.url,
        "train-client",
        train_secret,
        identity_url=emulator.url,
        tenant="acme",
        inference_client_id="inference-client",
        inference_client_secret=inference_secret,
    )


# --- looking for secrets -------------------------------------------------------------------------------------


def _decoded(value: Any, fernet: Any) -> list[str]:
    """A DB cell as every text it may hide: itself, zlib-decompressed, Fernet-decrypted."""
    import zlib

    texts: list[str] = []
    raw: bytes | None = None
    if isinstance(value, bytes | memoryview):
        raw = bytes(value)
        texts.append(raw.decode("utf-8", "replace"))
        with contextlib.suppress(zlib.error):
            texts.append(zlib.decompress(raw).decode("utf-8", "replace"))
    elif isinstance(value, str):
        texts.append(value)
        raw = value.encode()
    if raw is not None and raw.startswith(b"gAAAAA"):
        with contextlib.suppress(Exception):
            texts.append(fernet.decrypt(raw).decode("utf-8", "replace"))
    return texts


def db_texts(db: Path, fernet_key: str) -> list[tuple[str, str]]:
    """Every cell of every table of a SQLite metadata DB, decoded, as ``(table.column#row, text)``."""
    import sqlite3

    from cryptography.fernet import Fernet

    fernet = Fernet(fernet_key.encode())
    found: list[tuple[str, str]] = []
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as conn:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            cursor = conn.execute(f'SELECT * FROM "{table}"')  # table names from sqlite_master
            columns = [d[0] for d in cursor.description]
            for number, row in enumerate(cursor):
                for column, value in zip(columns, row, strict=True):
                    for text in _decoded(value, fernet):
                        found.append((f"{table}.{column}#{number}", text))
    return found


def file_texts(root: Path) -> list[tuple[str, str]]:
    """Every file under ``root`` (logs, process output, the DB bytes), as text."""
    return [
        (str(path.relative_to(root)), path.read_bytes().decode("utf-8", "replace"))
        for path in sorted(root.rglob("*"))
        if path.is_file()
    ]


def occurrences(needles: list[str], corpus: list[tuple[str, str]]) -> list[str]:
    """Where any needle occurs: ``needle @ location``."""
    return [f"{needle} @ {where}" for where, text in corpus for needle in needles if needle in text]
