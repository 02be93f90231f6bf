"""
Upload from object storage: one ``s3://`` object sent by ``SestekHook.submit_training``, beside bare s3fs
reads of the same object (the peer: in our block size, and with s3fs's defaults) and the same bytes uploaded
from a local file.

The object lives in moto's S3 server (``python -m moto.server``, its own process on 127.0.0.1), read
through an ``aws`` connection whose ``endpoint_url`` points at it; the upload goes to the plain sink of the
local-file benchmark (``benchmarks.sink``). Each client runs in a fresh process
(``benchmarks.upload_s3_client``), in an order that rotates every round.
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
from benchmarks.upload import Sink, make_file

CONN_ID = "aws_bench"
BUCKET = "bench-data"
KEY = "corpus/training-data.txt"


class Moto:
    """moto's S3 server in its own process on a free loopback port."""

    def __init__(self, workdir: str) -> None:
        self.log_path = os.path.join(workdir, "moto.log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> Moto:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                cwd=REPO,
                env=child_env(airflow_home=os.path.join(os.path.dirname(self.log_path), "moto-home")),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + 60
        while True:
            try:
                with opener.open(self.url + "/moto-api/data.json", timeout=2):
                    return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.__exit__()
                    raise RuntimeError(f"moto did not start; see {self.log_path}") from None
                time.sleep(0.1)

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id="AKIABENCHKEY",
            aws_secret_access_key="bench-secret",
            region_name="us-east-1",
        )

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def run(workdir: str, file_mib: int, reps: int) -> dict[str, Any]:
    """Every client ``reps`` times; medians of the throughput, worst peak RSS growth."""
    path = os.path.join(workdir, "s3-training-data.txt")
    log(f"upload_s3: writing a {file_mib} MiB object")
    make_file(path, file_mib)
    size = os.path.getsize(path)
    url = f"s3://{CONN_ID}@{BUCKET}/{KEY}"
    runs: list[dict[str, Any]] = []
    try:
        with Moto(workdir) as moto, Sink(workdir) as sink:
            s3 = moto.client()
            s3.create_bucket(Bucket=BUCKET)
            s3.upload_file(path, BUCKET, KEY)
            aws = {
                "conn_type": "aws",
                "login": "AKIABENCHKEY",
                "password": "bench-secret",
                "extra": {"endpoint_url": moto.url, "region_name": "us-east-1"},
            }
            env = child_env(
                {
                    "AIRFLOW_CONN_SESTEK_DEFAULT": sestek_connection_json(sink.url),
                    f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(aws),
                    "AWS_EC2_METADATA_DISABLED": "true",  # nothing leaves the machine
                },
                airflow_home=os.path.join(workdir, "airflow-home"),
            )
            clients = ("sestek", "s3fs-blocks", "s3fs", "local")
            for rep in range(reps):
                for client in clients[rep % 4 :] + clients[: rep % 4]:
                    raw = run_json_child(
                        [PYTHON, "-m", "benchmarks.upload_s3_client", "--mode", client, "--url", url, "--file", path],
                        env,
                        timeout=900,
                    )
                    if not client.startswith("s3fs"):
                        received = sink.stats()["last_body"]
                        if received < size:
                            raise RuntimeError(f"{client} upload: the sink received {received} of {size} bytes")
                    result = {
                        "mode": client,
                        "rep": rep,
                        "seconds": raw["seconds"],
                        "mib_s": size / MIB / raw["seconds"],
                        "rss_growth_kib": raw["rss_peak_kib"] - raw["rss_base_kib"],
                    }
                    runs.append(result)
                    log(
                        f"  upload_s3 {client:11s} rep {rep}: {result['mib_s']:7.0f} MiB/s, "
                        f"peak RSS +{result['rss_growth_kib'] / 1024:.1f} MiB"
                    )
    finally:
        os.unlink(path)

    from airflow_provider_sestek.hooks.object_storage import REMOTE_BLOCK_SIZE

    return {
        "file_mib": file_mib,
        "sestek_mib_s": median_speed(runs, "sestek"),
        "s3fs_blocks_read_mib_s": median_speed(runs, "s3fs-blocks"),
        "s3fs_read_mib_s": median_speed(runs, "s3fs"),
        "local_mib_s": median_speed(runs, "local"),
        "sestek_rss_growth_mib": worst_growth(runs, "sestek"),
        "s3fs_blocks_read_rss_growth_mib": worst_growth(runs, "s3fs-blocks"),
        "s3fs_read_rss_growth_mib": worst_growth(runs, "s3fs"),
        "local_rss_growth_mib": worst_growth(runs, "local"),
        "block_mib": REMOTE_BLOCK_SIZE // MIB,
        "reps": reps,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "runs": runs,
    }


if __name__ == "__main__":  # pragma: no cover - manual use
    import tempfile

    print(json.dumps(run(tempfile.mkdtemp(), int(sys.argv[1]) if len(sys.argv) > 1 else 64, 1), indent=1))
