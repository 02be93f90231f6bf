"""
Deeply nested inference JSON is a 400 validation error, not a 500.

Attack on the emulator through its public interface (HTTP on loopback, the documented API); no mocks.
"""

from __future__ import annotations

import requests

from airflow_provider_sestek.testing import SestekEmulator
from tests.testing._helpers import bearer, get_token, inference_path, poll_until, running, train


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
