"""
Upload: one data file sent by ``SestekHook.submit_training``, by ``curl -F`` and by ``requests.post(files=...)``.

All three send to the same plain sink (``benchmarks.sink``) in its own process; each Python client runs
in a fresh process (``benchmarks.upload_client``), curl as a child whose peak RSS comes from ``wait4``.
Runs are interleaved, in an order that rotates every round, so all clients see the same machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from typing import Any

from benchmarks._common import (
    MIB,
    PYTHON,
    REPO,
    child_env,
    log,
    median_speed,
    run_json_child,
    sestek_connection_json,
    worst_growth,
)


def make_file(path: str, mib: int) -> None:
    """Random bytes (4 MiB of them, repeated): nothing on the way compresses, and it is quick to write."""
    block = os.urandom(4 * MIB)
    left = mib * MIB
    with open(path, "wb") as handle:
        while left > 0:
            handle.write(block[: min(left, len(block))])
            left -= len(block)


class Sink:
    """The plain sink server in its own process."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> Sink:
        ready = os.path.join(self.workdir, "sink.url")
        if os.path.exists(ready):  # a sink started earlier in the run (another section): not this one's URL
            os.unlink(ready)
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "benchmarks.sink", "--ready-file", ready],
            cwd=REPO,
            env=child_env(airflow_home=os.path.join(self.workdir, "airflow-home")),
        )
        deadline = time.monotonic() + 30
        while not os.path.exists(ready):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError("the sink did not start")
            time.sleep(0.05)
        with open(ready, encoding="utf-8") as handle:
            self.url = handle.read().strip()
        return self

    def stats(self) -> dict[str, Any]:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(self.url + "/_sink/stats", timeout=10) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _curl(args: list[str]) -> tuple[str, int]:
    """Run curl; return its stdout and its peak RSS in KiB (``wait4`` of that very child)."""
    proc = subprocess.Popen(["curl", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"curl exited {proc.returncode}: {err.decode(errors='replace')[-500:]}")
    return out.decode(), int(usage.ru_maxrss)


def curl_available() -> bool:
    try:
        return subprocess.run(["curl", "--version"], capture_output=True, timeout=10, check=False).returncode == 0
    except OSError:
        return False


def run(workdir: str, file_mib: int, reps: int) -> dict[str, Any]:
    """Every client ``reps`` times; medians of the throughput, worst peak RSS growth."""
    from airflow_provider_sestek import api

    path = os.path.join(workdir, "training-data.txt")
    log(f"upload: writing a {file_mib} MiB data file")
    make_file(path, file_mib)
    size = os.path.getsize(path)
    runs: list[dict[str, Any]] = []
    has_curl = curl_available()
    try:
        with Sink(workdir) as sink:
            env = child_env(
                {"AIRFLOW_CONN_SESTEK_DEFAULT": sestek_connection_json(sink.url)},
                airflow_home=os.path.join(workdir, "airflow-home"),
            )
            curl_base = 0
            if has_curl:
                _, curl_base = _curl(["-sS", "--noproxy", "*", "-o", "/dev/null", sink.url + "/_sink/stats"])
            clients = ("sestek", "curl", "naive")
            for rep in range(reps):
                # The order rotates, so no client always follows the same one (the naive one frees 2 GiB).
                for client in clients[rep % 3 :] + clients[: rep % 3]:
                    if client == "curl":
                        if not has_curl:
                            continue
                        out, peak = _curl(
                            [
                                "-sS",
                                "--noproxy",
                                "*",
                                "-o",
                                "/dev/null",
                                "-w",
                                "%{http_code} %{time_total}",
                                "-H",
                                "Authorization: Bearer sink-token",
                                "-F",
                                "modelId=bench-upload",
                                "-F",
                                "projectName=bench",
                                "-F",
                                f"dataFiles=@{path};type=text/plain",
                                api.train_url(sink.url),
                            ]
                        )
                        code, seconds = out.split()
                        if code != "200":
                            raise RuntimeError(f"curl upload answered HTTP {code}")
                        result = {"mode": "curl", "seconds": float(seconds), "rss_growth_kib": peak - curl_base}
                    else:
                        raw = run_json_child(
                            [
                                PYTHON,
                                "-m",
                                "benchmarks.upload_client",
                                "--mode",
                                client,
                                "--url",
                                sink.url,
                                "--file",
                                path,
                            ],
                            env,
                            timeout=600,
                        )
                        result = {
                            "mode": client,
                            "seconds": raw["seconds"],
                            "rss_growth_kib": raw["rss_peak_kib"] - raw["rss_base_kib"],
                        }
                    received = sink.stats()["last_body"]
                    if received < size:
                        raise RuntimeError(f"{client} upload: the sink received {received} of {size} bytes")
                    result["rep"] = rep
                    result["mib_s"] = size / MIB / result["seconds"]
                    runs.append(result)
                    log(
                        f"  upload {client:6s} rep {rep}: {result['mib_s']:7.0f} MiB/s, "
                        f"peak RSS +{result['rss_growth_kib'] / 1024:.1f} MiB"
                    )
    finally:
        os.unlink(path)

    return {
        "file_mib": file_mib,
        "sestek_mib_s": median_speed(runs, "sestek"),
        "curl_mib_s": median_speed(runs, "curl"),
        "naive_mib_s": median_speed(runs, "naive"),
        "sestek_rss_growth_mib": worst_growth(runs, "sestek"),
        "naive_rss_growth_mib": worst_growth(runs, "naive"),
        "curl_rss_growth_mib": worst_growth(runs, "curl"),
        "reps": reps,
        "runs": runs,
    }


if __name__ == "__main__":  # pragma: no cover - manual use
    import tempfile

    print(json.dumps(run(tempfile.mkdtemp(), int(sys.argv[1]) if len(sys.argv) > 1 else 64, 1), indent=1))
