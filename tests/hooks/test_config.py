"""Odd connection values are a SestekConfigError naming the field, never a raw error at request time."""

from __future__ import annotations

import json

import pytest

from airflow_provider_sestek.exceptions import SestekConfigError
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.testing import SestekEmulator
from tests.conftest import connection_json
from tests.hooks._sides import TOKEN


@pytest.mark.parametrize("side", ["sync", "async"])
def test_boolean_timeout_is_refused(emulator: SestekEmulator, monkeypatch: pytest.MonkeyPatch, side: str) -> None:
    # JSON true is not a number of seconds; it is taken as a 1-second deadline today.
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emulator, timeout=True))
    with pytest.raises(SestekConfigError, match="timeout"):
        TOKEN[side]()
    assert emulator.requests == []


@pytest.mark.parametrize("value", [1e10, "1e10", 1e300])
def test_huge_timeout_is_refused_naming_the_field(
    emulator: SestekEmulator, monkeypatch: pytest.MonkeyPatch, value: object
) -> None:
    # Finite and positive, but past the one-day cap: refused before any request (it used to reach the token
    # lock and the socket as a raw OverflowError, "timestamp out of range for platform time_t").
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emulator, timeout=value))
    with pytest.raises(SestekConfigError, match="timeout"):
        SestekHook(retry_limit=0).get_token()
    assert emulator.requests == []


@pytest.mark.parametrize("value", [1e10, "1e10"])
def test_connection_test_reports_a_huge_timeout(
    emulator: SestekEmulator, monkeypatch: pytest.MonkeyPatch, value: object
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emulator, timeout=value))
    ok, message = SestekHook(retry_limit=0).test_connection()  # raised OverflowError
    assert not ok and "timeout" in message, message
    assert emulator.requests == []


def _conn(monkeypatch: pytest.MonkeyPatch, host: str, secret: str = "cfg-secret-ABCDEF") -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_SESTEK_DEFAULT",
        json.dumps({"conn_type": "sestek", "host": host, "login": "c", "password": secret, "extra": {"timeout": 2}}),
    )


@pytest.mark.parametrize("host", ["http://127.0.0.1 x:1", "http://127.0.0.1\t:1", "127.0.0 .1"])
def test_host_with_whitespace_is_a_config_error(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    _conn(monkeypatch, host)
    with pytest.raises(SestekConfigError, match="host"):  # today: SestekTransportError at request time
        SestekHook(retry_limit=0).get_token()


@pytest.mark.parametrize("side", ["sync", "async"])
def test_host_with_an_overlong_label_is_a_config_error(monkeypatch: pytest.MonkeyPatch, side: str) -> None:
    # A DNS label longer than 63 characters cannot be encoded (IDNA): sync raised a raw urllib3
    # LocationParseError, async a SestekTransportError after retries. Fails before any DNS lookup.
    _conn(monkeypatch, "http://" + "a" * 64 + ".invalid:1")
    with pytest.raises(SestekConfigError, match="host"):
        TOKEN[side](retry_limit=0)
