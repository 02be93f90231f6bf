"""
The object store goes away in the middle of an upload: the error is a ``SestekDataFileError`` naming the file,
never botocore's own exception, and no training starts. A moto S3 server of the test's own (killed by its PID
once it has served the first block of the object) and the emulator over loopback, no mocks.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from airflow_provider_sestek.exceptions import SestekDataFileError
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.testing import SestekEmulator
from tests._moto import ACCESS_KEY, SECRET_KEY, MotoServer

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
