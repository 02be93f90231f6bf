"""Secrets and issued tokens never appear in exception text or logs, even when a server echoes them."""

from __future__ import annotations

import logging

import pytest

from airflow_provider_sestek.exceptions import SestekError
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.testing import Fault, SestekEmulator
from tests.hooks._sides import ONE_QUICK_RETRY, PROGRESS, TOKEN


@pytest.mark.parametrize("side", ["sync", "async"])
def test_token_error_echoing_the_client_secret_is_not_quoted(sestek_conn: SestekEmulator, side: str) -> None:
    secret = sestek_conn.train_client[1]
    # A gateway / misconfigured identity service that echoes the rejected form in its error page.
    body = f"invalid_request: grant_type=client_credentials&client_id=x&client_secret={secret}"
    sestek_conn.add_fault(
        Fault(endpoint="token", kind="raw", status=400, raw_body=body, content_type="text/plain", count=None)
    )
    with pytest.raises(SestekError) as info:
        TOKEN[side]()
    assert secret not in str(info.value)


@pytest.mark.parametrize("side", ["sync", "async"])
def test_error_echoing_the_bearer_token_is_not_quoted_nor_logged(
    sestek_conn: SestekEmulator, side: str, caplog: pytest.LogCaptureFixture
) -> None:
    token = SestekHook(**ONE_QUICK_RETRY).get_token()  # cached for the call below
    body = f"<html><body>Bad gateway while forwarding Authorization: Bearer {token}</body></html>"
    sestek_conn.add_fault(
        Fault(endpoint="progress", kind="raw", status=502, raw_body=body, content_type="text/html", count=None)
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(SestekError) as info:
        PROGRESS[side]("m")
    assert token not in str(info.value)
    assert token not in caplog.text
