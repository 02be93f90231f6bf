"""Shared helpers of the benchmarks: child processes, the emulator process, memory figures, machine facts."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
MIB = 1024 * 1024


def log(message: str) -> None:
    """Progress output on stderr (stdout is kept for the final table)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def child_env(extra: Mapping[str, str] | None = None, airflow_home: str | None = None) -> dict[str, str]:
    """Environment of a benchmark child: a throwaway AIRFLOW_HOME, no proxies, the repo importable."""
    # No proxies (all traffic is loopback); bytecode caching on, as in any installed deployment.
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["AIRFLOW_HOME"] = airflow_home or tempfile.mkdtemp(prefix="sestek-bench-home-")
    os.makedirs(env["AIRFLOW_HOME"], exist_ok=True)
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    env["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("AIRFLOW_CONN_SESTEK_DEFAULT", None)
    env.update(extra or {})
    return env


def setup_child_airflow_home() -> str:
    """In a child process, before Airflow is imported: make sure AIRFLOW_HOME is a throwaway dir."""
    home = os.environ.get("AIRFLOW_HOME")
    if not home or not home.startswith(tempfile.gettempdir()):
        home = tempfile.mkdtemp(prefix="sestek-bench-home-")
        os.environ["AIRFLOW_HOME"] = home
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    return home


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """VmRSS / VmHWM (KiB) of a process from /proc."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux ``clear_refs`` 5); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def run_json_child(args: Sequence[str], env: Mapping[str, str], timeout: float) -> dict[str, Any]:
    """Run a child that prints one JSON object as its last stdout line; return it."""
    proc = subprocess.run(
        list(args), env=dict(env), cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])}... exited {proc.returncode}: {proc.stderr[-3000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if not lines:
        raise RuntimeError(f"{' '.join(args[:4])}... printed nothing; stderr: {proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def median_speed(runs: Sequence[Mapping[str, Any]], mode: str) -> float | None:
    """Median MiB/s of the upload runs of one client (``mode``), or None if it did not run."""
    values = [r["mib_s"] for r in runs if r["mode"] == mode]
    return round(median(values), 1) if values else None


def worst_growth(runs: Sequence[Mapping[str, Any]], mode: str) -> float | None:
    """Worst peak RSS growth (MiB) of the upload runs of one client (``mode``), or None if it did not run."""
    values = [r["rss_growth_kib"] for r in runs if r["mode"] == mode]
    return round(max(values) / 1024, 1) if values else None


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (0-100) of unsorted values; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return float(ordered[rank])


class EmulatorProcess:
    """The Sestek emulator in its own process (``python -m airflow_provider_sestek.testing``)."""

    def __init__(self, *args: str, workdir: str) -> None:
        self.args = list(args)
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout: float = 30.0) -> EmulatorProcess:
        ready = os.path.join(self.workdir, f"emulator-{time.time_ns()}.url")
        data_dir = tempfile.mkdtemp(prefix="emulator-data-", dir=self.workdir)
        self.stderr = open(os.path.join(self.workdir, "emulator.log"), "ab")
        self.proc = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "airflow_provider_sestek.testing",
                "--port",
                "0",
                "--ready-file",
                ready,
                "--data-dir",
                data_dir,
                *self.args,
            ],
            env=child_env(airflow_home=os.path.join(self.workdir, "airflow-home")),
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
        )
        deadline = time.monotonic() + timeout
        while not os.path.exists(ready):
            if self.proc.poll() is not None:
                raise RuntimeError(f"the emulator exited with {self.proc.returncode}; see {self.stderr.name}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("the emulator did not start")
            time.sleep(0.05)
        with open(ready, encoding="utf-8") as handle:
            self.url = handle.read().strip()
        from airflow_provider_sestek.testing import EmulatorClient

        self.client = EmulatorClient(self.url, timeout=60)
        self.client.wait_until_ready()
        return self

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].split("/")[0])

    def counters(self) -> dict[str, int]:
        return dict(self.client.state()["counters"])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if getattr(self, "stderr", None) is not None:
            self.stderr.close()


def sestek_connection_json(url: str, **extra: Any) -> str:
    """The JSON form of a ``sestek`` connection to an emulator (or sink) at ``url``."""
    from airflow_provider_sestek.testing import DEFAULT_CLIENTS

    client_id, secret = next(iter(DEFAULT_CLIENTS.items()))
    extras: dict[str, Any] = {"identity_url": url, "timeout": 120}
    extras.update(extra)
    return json.dumps({"conn_type": "sestek", "host": url, "login": client_id, "password": secret, "extra": extras})


def _read_first(path: str, prefix: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def machine_info() -> dict[str, Any]:
    """The facts of the machine a run measured on."""
    from importlib.metadata import PackageNotFoundError, version

    def pkg(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    mem_kib = _read_first("/proc/meminfo", "MemTotal")
    return {
        "cpu": _read_first("/proc/cpuinfo", "model name") or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "ram_gib": round(int(mem_kib.split()[0]) / MIB, 1) if mem_kib else None,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "airflow": pkg("apache-airflow"),
        "provider": pkg("airflow-provider-sestek"),
        "http_provider": pkg("apache-airflow-providers-http"),
        "dbt_cloud_provider": pkg("apache-airflow-providers-dbt-cloud"),
        "httpx": pkg("httpx"),
        "requests": pkg("requests"),
        "aiohttp": pkg("aiohttp"),
        "curl": _curl_version(),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def _curl_version() -> str | None:
    try:
        out = subprocess.run(["curl", "--version"], capture_output=True, text=True, timeout=10, check=False).stdout
    except OSError:
        return None
    return out.split()[1] if out else None
