"""
A fault whose Retry-After cannot go into a response head is rejected when made.

Attack on the emulator through its public interface (HTTP on loopback, the documented API); no mocks.
"""

from __future__ import annotations

import json

import pytest

from airflow_provider_sestek.testing import Fault, SestekEmulator

from ._raw import exchange


@pytest.mark.parametrize(
    "retry_after", ["1\r\nSet-Cookie: injected=1", "1\nX-Evil: 1", "\x00"], ids=["crlf", "lf", "nul"]
)
def test_fault_retry_after_with_control_characters_is_rejected(retry_after: str) -> None:
    # "Invalid combinations raise ValueError": location and content_type are checked for control
    # characters, retry_after went into the same response head unchecked, so the fault was accepted
    # and then never delivered (the connection closed without a response, the record said 503).
    with pytest.raises(ValueError, match="retry_after"):
        Fault(endpoint="progress", status=503, retry_after=retry_after)
    with pytest.raises(ValueError, match="retry_after"):
        Fault.from_dict({"endpoint": "token", "kind": "raw", "raw_body": "{}", "retry_after": retry_after})


def test_admin_rejects_a_fault_whose_retry_after_cannot_be_sent(sestek_emulator: SestekEmulator) -> None:
    payload = json.dumps({"endpoint": "token", "status": 503, "retry_after": "1\r\nX-Evil: 1"}).encode()
    status, _, body = exchange(
        sestek_emulator.port,
        b"POST /_emulator/faults HTTP/1.1\r\nHost: e\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(payload)}\r\n\r\n".encode()
        + payload,
    )
    assert status == 400, body
    assert sestek_emulator.faults == []
