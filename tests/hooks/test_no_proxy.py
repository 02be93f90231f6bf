"""Proxies from the environment are honoured, and so is NO_PROXY, the same way in both transports."""

from __future__ import annotations

import socket

import pytest

from airflow_provider_sestek.testing import SestekEmulator
from tests.hooks._hostile_servers import RawServer
from tests.hooks._sides import TOKEN


@pytest.mark.parametrize("side", ["sync", "async"])
def test_no_proxy_cidr_keeps_the_client_secret_away_from_the_proxy(
    sestek_conn: SestekEmulator, monkeypatch: pytest.MonkeyPatch, side: str
) -> None:
    def proxy(conn: socket.socket, head: bytes, body: bytes) -> None:
        conn.close()

    with RawServer(proxy, own_token=True) as recording_proxy:
        for name in ("HTTP_PROXY", "http_proxy"):
            monkeypatch.setenv(name, recording_proxy.url)
        for name in ("NO_PROXY", "no_proxy"):
            # "do not proxy loopback": requests honours CIDR entries; the async side ignores them.
            monkeypatch.setenv(name, "127.0.0.0/8")
        try:
            TOKEN[side]()
        except Exception:
            pass  # a proxied request fails (the proxy hangs up): the assertions below say where it went
        leaked = list(recording_proxy.bodies)
    assert leaked == [], "the token request (with client_secret) went to the proxy that NO_PROXY excludes"
    assert not any(sestek_conn.train_client[1].encode() in b for b in leaked)
    # ...and it was sent, straight to the emulator: a call refused before sending anything passed the above too.
    assert [r.endpoint for r in sestek_conn.requests] == ["token"]
