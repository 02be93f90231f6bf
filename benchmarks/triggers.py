"""
Triggerer scale: N waits in one event loop, ours beside the http provider's ``HttpSensorTrigger``.

The emulator runs in its own process with the clock-driven lifecycle and hours per status, so no
training finishes during a run. Each run is a fresh ``benchmarks.trigger_worker`` process; this
process reads the emulator's counters at the edges of the measurement window and samples the
worker's established TCP connections to the emulator every 0.2 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks._common import PYTHON, REPO, EmulatorProcess, child_env, log, sestek_connection_json

PREFIX = "bench-"


def register_trainings(emu: EmulatorProcess, n: int, workers: int = 4) -> float:
    """Start ``n`` small trainings (``bench-00000`` ...) through the real train endpoint; returns seconds."""
    import requests

    from airflow_provider_sestek import api
    from airflow_provider_sestek.testing import DEFAULT_CLIENTS

    client_id, secret = next(iter(DEFAULT_CLIENTS.items()))
    token = requests.post(api.token_url(emu.url), data=api.token_form(client_id, secret), timeout=30).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    local = threading.local()

    def submit(index: int) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.trust_env = False
        response = session.post(
            api.train_url(emu.url),
            data={"modelId": f"{PREFIX}{index:05d}", "projectName": "bench"},
            files={"dataFiles": ("faq.txt", b"Q: When are you open?\nA: 9 to 17.\n", "text/plain")},
            headers=headers,
            timeout=60,
        )
        if response.status_code != 200:
            raise RuntimeError(f"registering training {index} failed: {response.status_code} {response.text[:200]}")

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(submit, range(n)))
    return time.perf_counter() - start


def static_token(emu: EmulatorProcess) -> str:
    """One access token, fetched once: the peer sends it as a static header, as an HttpSensor user would."""
    import requests

    from airflow_provider_sestek import api
    from airflow_provider_sestek.testing import DEFAULT_CLIENTS

    client_id, secret = next(iter(DEFAULT_CLIENTS.items()))
    response = requests.post(api.token_url(emu.url), data=api.token_form(client_id, secret), timeout=30)
    response.raise_for_status()
    return str(response.json()["access_token"])


def _established(pid: int, port: int) -> int:
    import psutil

    try:
        process = psutil.Process(pid)
        connections = process.net_connections(kind="tcp")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0
    return sum(1 for c in connections if c.status == psutil.CONN_ESTABLISHED and c.raddr and c.raddr.port == port)


def run_one(
    emu: EmulatorProcess, kind: str, n: int, poll_interval: float, measure: float, workdir: str, token: str
) -> dict[str, Any]:
    """One worker run; returns the worker's figures plus emulator counters and connection samples."""
    extra = {"AIRFLOW_CONN_SESTEK_DEFAULT": sestek_connection_json(emu.url)}
    if kind == "peer":
        extra["AIRFLOW_CONN_BENCH_HTTP"] = json.dumps(
            {
                "conn_type": "http",
                "host": "127.0.0.1",
                "port": emu.port,
                "schema": "http",
                "extra": {"Authorization": f"Bearer {token}"},
            }
        )
    env = child_env(extra, airflow_home=os.path.join(workdir, "airflow-home"))
    log_path = os.path.join(workdir, f"trigger-{kind}-{n}.log")
    before = emu.counters()
    marks: dict[str, tuple[float, dict[str, int]]] = {}
    lines: list[str] = []
    log_bytes = [0]
    with open(log_path, "wb") as stderr:
        proc = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "benchmarks.trigger_worker",
                "--kind",
                kind,
                "--n",
                str(n),
                "--poll-interval",
                str(poll_interval),
                "--measure",
                str(measure),
                "--prefix",
                PREFIX,
            ],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                if not line.startswith(("PHASE ", "{")):
                    log_bytes[0] += len(line)
                    continue
                lines.append(line)
                if line.startswith("PHASE "):
                    name = line.split()[1]
                    if name in ("steady", "end"):
                        t0 = time.time()
                        counters = emu.counters()
                        marks[name] = ((t0 + time.time()) / 2, counters)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        deadline = time.monotonic() + poll_interval + measure + 120
        samples: list[tuple[float, int]] = []
        try:
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"trigger worker {kind} N={n} did not finish in time; see {log_path}")
                samples.append((time.time(), _established(proc.pid, emu.port)))
                time.sleep(0.2)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(30)
            reader.join(10)
    if proc.returncode != 0:
        raise RuntimeError(f"trigger worker {kind} N={n} exited {proc.returncode}; see {log_path}")
    result: dict[str, Any] = json.loads([line for line in lines if line.startswith("{")][-1])
    after = emu.counters()
    (t_steady, c_steady), (t_end, c_end) = marks["steady"], marks["end"]
    result["log_bytes"] = log_bytes[0]
    result["token_requests"] = after["token_requests"] - before["token_requests"]
    result["polls_per_s"] = (c_end["progress_polls"] - c_steady["progress_polls"]) / (t_end - t_steady)
    result["configured_polls_per_s"] = n / poll_interval
    result["max_connections"] = max((c for _, c in samples), default=0)
    result["max_connections_steady"] = max((c for t, c in samples if t_steady <= t <= t_end), default=0)
    result["mean_connections_steady"] = _mean([c for t, c in samples if t_steady <= t <= t_end])
    return result


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def run(
    workdir: str, ns: Sequence[int], rate: float, measure: float, kinds: Sequence[str] = ("sestek", "peer")
) -> dict[str, Any]:
    """
    Every N for every kind, interleaved (ours then the peer at each N) so both see the same machine.

    :param ns: trigger counts.
    :param rate: configured aggregate polls per second (poll interval = N / rate).
    :param measure: seconds of the measurement window after the ramp.
    """
    runs: list[dict[str, Any]] = []
    with EmulatorProcess(
        "--advance", "time", "--seconds-per-step", "1000000", "--token-prefix", "bench-tok-", workdir=workdir
    ) as emu:
        log(f"registering {max(ns)} trainings in the emulator")
        seconds = register_trainings(emu, max(ns))
        log(f"registered in {seconds:.1f}s")
        token = static_token(emu)
        for n in ns:
            interval = n / rate
            for kind in kinds:
                log(f"triggers: {kind} N={n}, poll interval {interval:.1f}s, window {measure:.0f}s")
                result = run_one(emu, kind, n, interval, measure, workdir, token)
                log(
                    f"  lag p50/p99 {result['loop_lag_p50_ms']:.1f}/{result['loop_lag_p99_ms']:.1f} ms, "
                    f"{result['rss_per_trigger_kib']:.1f} KiB/trigger, {result['polls_per_s']:.0f}/"
                    f"{result['configured_polls_per_s']:.0f} polls/s, conns {result['max_connections']}, "
                    f"tokens {result['token_requests']}, cpu {result['cpu_pct']:.0f}%, errors {result['errors']}, "
                    f"gc {result['gc_collections']} max {result['gc_pause_max_ms']:.0f} ms"
                )
                runs.append(result)
    return {"runs": runs, "registration_s": seconds}
