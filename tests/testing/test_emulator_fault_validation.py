"""
A fault that could not be delivered as made is refused when made (``ValueError``; through ``POST
/_emulator/faults`` a 400 and no fault queued), instead of hanging the client or answering the emulator's own 500.

A 1xx status (an interim response, never final in HTTP/1.1: the client waited for a final response that never
came); a ``retry_after`` with control characters (it went into the response head unchecked: the connection
closed without a response while the record said 503); text that cannot be sent as UTF-8, a lone surrogate in a
``raw_body``, an ``odd_token`` value or a ``message`` (the request got a 500, ``UnicodeEncodeError``).

The emulator through its public interface (HTTP on loopback, the documented API); no mocks.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from airflow_provider_sestek.testing import Fault, SestekEmulator
from tests.testing._raw_http import exchange


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


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"retry_after": True}, "retry_after"),  # was sent as the header "Retry-After: True"
        ({"retry_after": -5}, "retry_after"),
        ({"retry_after": -0.5}, "retry_after"),
        ({"retry_after": ""}, "retry_after"),
        ({"retry_after": float("nan")}, "retry_after"),
        ({"count": True}, "count"),
        ({"delay": True}, "delay"),
        ({"kind": "delay", "delay": 10**400}, "delay"),  # an OverflowError, and a 500 from the admin API
        ({"kind": "delay", "delay": float("inf")}, "delay"),
        ({"message": b"x"}, "message"),  # was a 500 when delivered
        ({"message": [1, 2]}, "message"),
        ({"model_id": 5}, "model_id"),
    ],
)
def test_fault_numbers_and_texts_of_the_wrong_kind_are_rejected_in_code_and_by_the_admin_api(
    sestek_emulator: SestekEmulator, fields: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        Fault(**fields)
    if isinstance(fields.get("message"), bytes):
        return  # JSON has no bytes
    text = json.dumps(fields).replace(str(10**400), "1" + "0" * 400)
    answer = requests.post(sestek_emulator.url + "/_emulator/faults", data=text, timeout=10)
    assert answer.status_code == 400 and named in answer.json()["error"]
    assert sestek_emulator.faults == []


def test_a_retry_after_that_is_zero_or_a_text_is_still_sent_as_given(sestek_emulator: SestekEmulator) -> None:
    # Hostile values stay possible as text: only numbers are held to seconds >= 0.
    for value, header in ((0, "0"), (2.5, "2.5"), ("-1", "-1"), ("Wed, 21 Oct 2015 07:28:00 GMT", None)):
        sestek_emulator.add_fault(Fault(endpoint="token", retry_after=value))
        answer = requests.post(sestek_emulator.url + "/connect/token", timeout=10)
        assert answer.headers["Retry-After"] == (header or value)
