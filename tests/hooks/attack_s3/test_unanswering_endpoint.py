"""
An S3 endpoint that accepts connections and never answers: the check before the training is bounded
(``CHECK_TIMEOUT``) instead of holding the task for botocore's and s3fs's retries (about 25 minutes). A real
listening socket on 127.0.0.1 and the emulator over loopback, no mocks.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from airflow_provider_sestek.exceptions import SestekValidationError
from airflow_provider_sestek.hooks import object_storage
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.testing import SestekEmulator
from tests._moto import SECRET_KEY, aws_connection_json


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
