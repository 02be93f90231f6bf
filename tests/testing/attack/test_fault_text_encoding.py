"""
A fault whose text cannot be sent as UTF-8 (a lone surrogate) is rejected when made, not answered with a 500.

Attack on the emulator through its public interface (HTTP on loopback, the documented API); no mocks.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from airflow_provider_sestek.testing import Fault, SestekEmulator

_SURROGATE = "\udcff"


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "raw", "raw_body": _SURROGATE},
        {"kind": "odd_token", "value": "tok" + _SURROGATE},
        {"kind": "status", "body": "abp", "message": _SURROGATE},
        {"kind": "status", "body": "openiddict", "message": _SURROGATE},
    ],
    ids=["raw_body", "odd_token-value", "abp-message", "openiddict-message"],
)
def test_fault_text_that_is_not_utf8_encodable_is_rejected(
    sestek_emulator: SestekEmulator, http: requests.Session, fields: dict[str, Any]
) -> None:
    # "Invalid combinations raise ValueError": such a fault was accepted, and the request it matched was
    # answered with the emulator's own 500 (UnicodeEncodeError) instead of the fault.
    with pytest.raises(ValueError, match="UTF-8"):
        Fault(endpoint="token", **fields)
    response = http.post(
        sestek_emulator.url + "/connect/token",
        data={"client_id": "train-client", "client_secret": "train-secret", "grant_type": "client_credentials"},
        timeout=10,
    )
    assert response.status_code == 200
