"""
An object store that fails the upload ends it with a clear error in bounded time, and no training starts.

The store goes away in the middle of an upload: a ``SestekDataFileError`` naming the file, never botocore's own
exception (a moto S3 server of the test's own, killed by its PID once it has served the first block of the
object). An endpoint that accepts connections and never answers: the check before the training is bounded
(``CHECK_TIMEOUT``) instead of holding the task for botocore's and s3fs's retries (about 25 minutes; a real
listening socket on 127.0.0.1). The emulator over loopback, no mocks.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_sestek.exceptions import SestekDataFileError, SestekValidationError
from airflow_provider_sestek.hooks import object_storage
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.testing import SestekEmulator
from tests._moto import ACCESS_KEY, SECRET_KEY, MotoServer, aws_connection_json

MIB = 1024 * 1024


def kill_after_first_read(server: MotoServer, key: str, done: threading.Event) -> None:
    """SIGKILL the server once its log shows a GET of ``key`` (the first 8 MiB block was served)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not done.is_set():
        if f"GET /{key}" in server.log.read_text(errors="replace"):
            assert server.proc is not None
            server.proc.kill()
            return
        time.sleep(0.01)


def test_store_gone_mid_upload_is_a_data_file_error(
    sestek_conn: SestekEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("moto", reason="moto[server] is in the test extra")
    pytest.importorskip("s3fs", reason="s3fs is in the test extra")
    server = MotoServer(str(tmp_path)).start()
    done = threading.Event()
    try:
        conn = {
            "conn_type": "aws",
            "login": ACCESS_KEY,
            "password": SECRET_KEY,
            "extra": {
                "endpoint_url": server.url,
                "region_name": "us-east-1",
                "config_kwargs": {"retries": {"max_attempts": 1}},
            },
        }
        monkeypatch.setenv("AIRFLOW_CONN_AWS_GOING", json.dumps(conn))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        server.client().create_bucket(Bucket="going")
        server.client().put_object(Bucket="going", Key="corpus.bin", Body=b"x" * (64 * MIB))
        hook = SestekHook(retry_limit=0)
        request = hook.prepare_training("faq-bot", "FAQ", data_files=["s3://aws_going@going/corpus.bin"])
        killer = threading.Thread(target=kill_after_first_read, args=(server, "going/corpus.bin", done))
        killer.start()
        with pytest.raises(SestekDataFileError) as info:
            hook.submit_training(request)
        done.set()
        killer.join()
    finally:
        done.set()
        server.stop()
    message = str(info.value)
    assert "'corpus.bin' could not be read while uploading" in message, message
    assert SECRET_KEY not in message
    assert sestek_conn.counters["trainings_created"] == 0


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A listener that accepts every connection (the kernel's backlog) and never sends a byte."""
    pytest.importorskip("s3fs", reason="s3fs is in the test extra")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(128)
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


def test_an_endpoint_that_never_answers_is_a_clear_error_in_bounded_time(
    silent_endpoint: str, sestek_conn: SestekEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(object_storage, "CHECK_TIMEOUT", 3.0)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_SILENT", aws_connection_json(silent_endpoint))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    started = time.monotonic()
    with pytest.raises(SestekValidationError) as info:
        SestekHook().submit_training("faq-bot", "FAQ", data_files=["s3://aws_silent@acme-data/faq/faq.txt"])
    assert time.monotonic() - started < 30
    message = str(info.value)
    assert info.value.field == "data_files[0]"
    assert info.value.value == "s3://acme-data/faq/faq.txt"
    assert "did not answer within 3 s" in message
    assert "'aws_silent'" in message
    assert SECRET_KEY not in message
    assert sestek_conn.requests == []  # not even a token request
