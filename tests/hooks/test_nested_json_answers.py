"""Odd JSON from the server must end as a SestekError, never a raw library exception."""

from __future__ import annotations

import pytest

from airflow_provider_sestek.exceptions import SestekError
from airflow_provider_sestek.testing import Fault, SestekEmulator
from tests.hooks._sides import PROGRESS, TOKEN

# Well within max_response_bytes (16 MiB): 200,000 bytes of "[" is what a garbled proxy or a hostile
# server can send; CPython's json raises RecursionError (not ValueError) on it.
DEEP = "[" * 200_000


@pytest.mark.parametrize("side", ["sync", "async"])
@pytest.mark.parametrize("status", [200, 400, 500])
def test_deeply_nested_progress_answer_is_a_sestek_error(sestek_conn: SestekEmulator, side: str, status: int) -> None:
    sestek_conn.add_fault(Fault(endpoint="progress", kind="raw", status=status, raw_body=DEEP, count=None))
    with pytest.raises(SestekError):
        PROGRESS[side]("m")


@pytest.mark.parametrize("side", ["sync", "async"])
@pytest.mark.parametrize("status", [200, 400])
def test_deeply_nested_token_answer_is_a_sestek_error(sestek_conn: SestekEmulator, side: str, status: int) -> None:
    sestek_conn.add_fault(Fault(endpoint="token", kind="raw", status=status, raw_body=DEEP, count=None))
    with pytest.raises(SestekError):
        TOKEN[side]()
