"""
Malformed multipart part headers are a 400 form error, not a 500.

Attack on the emulator through its public interface (HTTP on loopback, the documented API); no mocks.
"""

from __future__ import annotations

import json

import pytest

from airflow_provider_sestek.testing import SestekEmulator

from ._raw import multipart_upload, part

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
