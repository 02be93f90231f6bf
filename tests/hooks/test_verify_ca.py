"""
The connection extra ``verify`` names a CA file TLS can load, or the connection is refused when it is read;
and a TLS failure of the async transport is a :class:`SestekTransportError`, never a raw ``ssl.SSLError``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import certifi
import pytest

from airflow_provider_sestek.exceptions import SestekConfigError, SestekTransportError
from airflow_provider_sestek.hooks.flow import Request
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.hooks.transport_async import ASYNC_CLIENTS, AsyncTransport
from tests.hooks._hostile_servers import RawServer

SECRET = "verify-secret-Q9x7"


def _use(monkeypatch: pytest.MonkeyPatch, url: str, verify: str) -> None:
    extra = {"tenant": "acme", "verify": verify, "timeout": 3}
    conn = {"conn_type": "sestek", "host": url, "login": "c", "password": SECRET, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", json.dumps(conn))


@pytest.mark.parametrize("content", ["this is not a certificate\n", "", "-----BEGIN CERTIFICATE-----\nAAAA\n"])
def test_a_verify_file_that_is_not_a_ca_bundle_is_refused_when_the_connection_is_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content: str
) -> None:
    garbage = tmp_path / "not-a-ca.pem"
    garbage.write_text(content)
    with RawServer(lambda *_: False) as server:
        _use(monkeypatch, server.url.replace("http:", "https:"), str(garbage))
        with pytest.raises(SestekConfigError) as refused:
            SestekHook(retry_limit=0).get_training_progress("faq-bot")
        assert server.heads == []  # refused before any request
    assert refused.value.field == "verify"
    assert str(garbage) in str(refused.value)
    assert SECRET not in str(refused.value)


def test_a_ca_file_and_a_ca_directory_are_accepted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for verify in (certifi.where(), str(tmp_path)):
        _use(monkeypatch, "https://sestek.example", verify)
        assert SestekHook().config.verify == verify


def test_an_unloadable_ca_in_the_async_transport_is_a_transport_error(tmp_path: Path) -> None:
    """Should a CA file go bad after the connection was read, the triggerer gets a SestekError, not ssl's."""
    garbage = tmp_path / "gone-bad.pem"
    garbage.write_text("not a certificate\n")
    request = Request("GET", "https://127.0.0.1:9/progress", {}, None, 2.0, 1.0, 1024)

    async def send() -> None:
        async with ASYNC_CLIENTS.lease() as pool:
            await AsyncTransport(verify=str(garbage)).send(request, pool)

    with pytest.raises(SestekTransportError, match="TLS error") as failed:
        asyncio.run(send())
    assert failed.value.__cause__ is None
