"""
A request the emulator cannot read is the API's 400, never a 500 (which tells a client with a retry policy to
send the same broken request again): malformed multipart part headers (a NUL in a filename, a 100 kB header
line: aiohttp's ``HttpProcessingError`` was not caught) are the 400 "Failed to read the request form"; inference
JSON nested 100,000 deep (Python's decoder raises ``RecursionError``, not ``ValueError``) is a 400 validation
error, as ASP.NET's JSON reader stops at a maximum depth.

The emulator through its public interface (HTTP on loopback, raw sockets where ``requests`` would refuse to send
the request); no mocks.
"""

from __future__ import annotations

import json

import pytest
import requests

from airflow_provider_sestek.testing import SestekEmulator
from tests.testing._helpers import bearer, get_token, inference_path, poll_until, running, train
from tests.testing._raw_http import multipart_upload, part

END = b"--B--\r\n"


def _form_head(model_id: bytes) -> bytes:
    return part("modelId", model_id) + part("projectName", b"p")


@pytest.mark.parametrize(
    "bad_part",
    [
        pytest.param(part("dataFiles", b"x", filename=b"a\x00b.txt"), id="nul-in-part-header"),
        pytest.param(part("dataFiles", b"x", headers=b"X-Long: " + b"a" * 100_000 + b"\r\n"), id="huge-part-header"),
    ],
)
def test_malformed_part_headers_are_a_400_form_error_not_a_500(
    sestek_emulator: SestekEmulator, bad_part: bytes
) -> None:
    # A 500 tells a client with a retry policy to try the same broken upload again; the API's answer to
    # an unreadable form is the 400 ABP envelope, as for every other malformed multipart body.
    status, _, body = multipart_upload(
        sestek_emulator.port, sestek_emulator.issue_token(), _form_head(b"m1") + bad_part + END
    )
    assert status == 400, body
    error = json.loads(body)["error"]
    assert "Failed to read the request form" in error["details"]
    (record,) = sestek_emulator.requests
    assert record.status == 400 and record.error is None
    assert sestek_emulator.counters["trainings_created"] == 0
    assert not list((sestek_emulator.data_dir / "uploads").iterdir())


def _published(emu: SestekEmulator, http: requests.Session, document: bytes, model_id: str = "faq") -> None:
    token = get_token(http, emu)
    response = train(http, emu, token, model_id, files=[("faq.txt", document)])
    assert response.status_code == 200, response.text
    poll_until(http, emu, token, model_id, running)


def test_deeply_nested_inference_json_is_a_400_not_a_500(
    sestek_emulator: SestekEmulator, http: requests.Session
) -> None:
    # ASP.NET's JSON reader stops at a maximum depth and the API answers a validation error; the
    # emulator must not crash on the same body (Python's decoder raises RecursionError, not ValueError).
    _published(sestek_emulator, http, b"Our store opens at 9 and closes at 18 on weekdays.\n")
    token = get_token(http, sestek_emulator, inference=True)
    nested = '{"inputs": [{"query": "When?", "chat_history": ' + "[" * 100_000 + "]" * 100_000 + "}]}"
    response = http.post(
        sestek_emulator.url + inference_path(sestek_emulator.tenant, "faq"),
        data=nested.encode(),
        headers={**bearer(token), "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["validationErrors"]
    assert sestek_emulator.requests[-1].error is None
