"""
A fault status of 1xx (an interim response) is rejected when made instead of hanging the client.

Attack on the emulator through its public interface (HTTP on loopback, the documented API); no mocks.
"""

from __future__ import annotations

import pytest

from airflow_provider_sestek.testing import Fault, SestekEmulator
from tests.testing.attack._raw import exchange


@pytest.mark.parametrize("status", [100, 101, 199])
def test_interim_status_faults_are_rejected(sestek_emulator: SestekEmulator, status: int) -> None:
    # A 1xx answer is never final in HTTP/1.1: such a fault was accepted, sent as the only response, and
    # the client then waited for a final response that never came (a hung test, not a tested failure).
    with pytest.raises(ValueError, match="status"):
        Fault(endpoint="token", status=status)
    with pytest.raises(ValueError, match="status"):
        Fault(endpoint="token", kind="raw", raw_body="{}", status=status)
    body = b'{"endpoint": "token", "status": %d}' % status
    answer, _, _ = exchange(
        sestek_emulator.port,
        b"POST /_emulator/faults HTTP/1.1\r\nHost: e\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body,
    )
    assert answer == 400
    assert sestek_emulator.faults == []
