"""
An S3-compatible server on 127.0.0.1 for the object-storage tests: moto's server (``python -m moto.server``) in
its own process, a real HTTP server that the amazon provider's s3fs filesystem talks to through an ``aws``
Airflow connection whose ``endpoint_url`` points at it.

``s3_server`` (one process per test session, started on first use) and ``s3`` (per test: moto's state reset,
one bucket, the connection set as ``AIRFLOW_CONN_AWS_MOTO``) are the fixtures.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests._processes import free_port, tail

#: The connection id the tests (and the README's example) read objects through.
CONN_ID = "aws_moto"
BUCKET = "acme-data"
#: moto accepts any key while its authentication is off (its default); these are never real.
ACCESS_KEY = "AKIAMOTOTESTKEY00001"
SECRET_KEY = "moto/secret+key/never-shown-0001"


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


class MotoServer:
    """moto's S3 server in its own process on a free loopback port; stopped by PID."""

    def __init__(self, log_dir: str) -> None:
        self.log = Path(log_dir) / "moto.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout: float = 60) -> MotoServer:
        for _ in range(3):  # the port may be taken between free_port() and the bind
            port = free_port()
            self.url = f"http://127.0.0.1:{port}"
            with open(self.log, "ab") as out:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env={k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")},
                )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with _opener().open(self.url + "/moto-api/data.json", timeout=2):
                        return self
                except (OSError, urllib.error.URLError):
                    time.sleep(0.1)
            self.stop()
        raise RuntimeError(f"moto did not start:\n{tail(self.log)}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def _post(self, path: str, body: bytes) -> None:
        request = urllib.request.Request(
            self.url + path, data=body, method="POST", headers={"Content-Type": "text/plain"}
        )
        with _opener().open(request, timeout=10) as response:
            response.read()

    def reset(self) -> None:
        """Forget every bucket and object, and turn authentication off again."""
        self._post("/moto-api/reset", b"")
        self.require_auth(False)

    def require_auth(self, on: bool = True) -> None:
        """Check every request's signature against moto's IAM users (moto's own switch, over HTTP)."""
        self._post("/moto-api/reset-auth", b"0" if on else b"inf")

    def client(self, service: str = "s3", key: str = ACCESS_KEY, secret: str = SECRET_KEY) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.url,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            region_name="us-east-1",
        )


def aws_connection_json(endpoint_url: str, key: str = ACCESS_KEY, secret: str = SECRET_KEY) -> str:
    """An ``aws`` connection in Airflow's JSON env-var form, reading from ``endpoint_url``."""
    return json.dumps(
        {
            "conn_type": "aws",
            "login": key,
            "password": secret,
            "extra": {"endpoint_url": endpoint_url, "region_name": "us-east-1"},
        }
    )


@dataclass
class S3:
    """One test's view of the server: its bucket, and objects put into it over HTTP."""

    server: MotoServer
    bucket: str

    def put(self, key: str, data: bytes, content_type: str | None = None, bucket: str | None = None) -> str:
        """Store an object; return the SHA-256 of its bytes."""
        extra = {"ContentType": content_type} if content_type else {}
        self.server.client().put_object(Bucket=bucket or self.bucket, Key=key, Body=data, **extra)
        return hashlib.sha256(data).hexdigest()

    def url(self, key: str, conn_id: str | None = CONN_ID) -> str:
        return f"s3://{conn_id}@{self.bucket}/{key}" if conn_id else f"s3://{self.bucket}/{key}"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoServer]:
    """moto's S3 server process, shared by the session (it takes a few seconds to start)."""
    pytest.importorskip("moto", reason="moto[server] is in the test extra")
    pytest.importorskip("s3fs", reason="s3fs is in the test extra")
    with tempfile.TemporaryDirectory(prefix="sestek-moto-") as log_dir:
        server = MotoServer(log_dir).start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def s3(s3_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3]:
    """A clean server with a bucket of its own, and ``aws_moto`` pointing at it (JSON env-var form)."""
    s3_server.reset()
    # A new bucket name per test: the filesystem Airflow caches per connection id keeps listings of old ones.
    bucket = f"{BUCKET}-{uuid.uuid4().hex[:8]}"
    s3_server.client().create_bucket(Bucket=bucket)
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", aws_connection_json(s3_server.url))
    # Guards: anything read without a connection goes to moto too, and no instance-metadata lookup leaves
    # the machine.
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.url)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield S3(s3_server, bucket)
    s3_server.reset()
