"""A 3xx is a SestekApiError naming only the target origin, in both transports, whatever the Location."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from airflow_provider_sestek.exceptions import SestekApiError
from airflow_provider_sestek.testing import Fault, SestekEmulator
from tests.hooks._hostile_servers import RawServer, conn_env
from tests.hooks._sides import PROGRESS, TOKEN


@pytest.mark.parametrize("side", ["sync", "async"])
@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.2:99999/private/path?sig=LEAKED-QUERY",  # a port out of range
        "http://[::1]:70000/private/path?sig=LEAKED-QUERY",
        "data:text/plain,LEAKED-QUERY",  # no origin at all
    ],
)
def test_redirect_message_names_only_an_origin(sestek_conn: SestekEmulator, side: str, location: str) -> None:
    sestek_conn.add_fault(Fault(endpoint="token", kind="redirect", location=location, count=None))
    with pytest.raises(SestekApiError, match="not followed") as info:
        TOKEN[side]()
    assert "LEAKED-QUERY" not in str(info.value)
    assert "/private/path" not in str(info.value)


def _answer(location: bytes):  # type: ignore[no-untyped-def]
    def handler(conn: socket.socket, head: bytes, body: bytes) -> None:
        conn.sendall(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n")

    return handler


@pytest.fixture(params=[b"//[::1/x?y", b"http://\xff\xfe/x"], ids=["unparsable-ipv6", "non-utf8"])
def odd_redirect(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[RawServer]:
    with RawServer(_answer(request.param)) as server:
        monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", conn_env(server.url, timeout=3))
        yield server


@pytest.mark.parametrize("side", ["sync", "async"])
def test_unparsable_location_is_a_redirect_error(odd_redirect: RawServer, side: str) -> None:
    # sync: requests parses the Location even with allow_redirects=False; a raw ValueError /
    # UnicodeDecodeError escaped get_training_progress.
    with pytest.raises(SestekApiError, match="not followed"):
        PROGRESS[side]("m")
