"""
A server that echoes a secret puts no fragment of it in our errors, wherever the echo falls.

Error texts quote a server's answer cut to a length (300 characters of a body, 120 or 80 of a parsed
document, 300 of a library's error): the secrets a request carried are redacted from the *whole* text
before it is cut, so a secret straddling the cut leaves none of its characters; and a secret echoed
HTML-escaped (an HTML error page) is redacted like one echoed as it is, URL-encoded or JSON-escaped.

Real loopback HTTP; each case moves the echoed secret across every offset around its cut.
"""

from __future__ import annotations

import asyncio
import html
import json
import socket
from collections.abc import Callable, Iterator
from urllib.parse import quote, quote_plus

import pytest

from airflow_provider_sestek.exceptions import SestekError
from airflow_provider_sestek.hooks.sestek import SestekHook
from tests.hooks._hostile_servers import RawServer
from tests.hooks.test_echoed_secrets import _texts

# Every character an escaping changes: HTML (& < > " '), URL (% + #) and JSON / Python literals (" ').
CLIENT_SECRET = "Qz&<Wk>\"Jv'Hq%Yp+ZrMx#Ub"
TOKEN = "Tk&<Rw>\"Lm'Pn%Vb+GhDc#Fy"


def _forms(secret: str) -> set[str]:
    return {
        secret,
        html.escape(secret),
        html.escape(secret, quote=False),
        quote(secret, safe=""),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        repr(secret)[1:-1],
    }


FRAGMENTS = {
    form[i : i + 4] for secret in (CLIENT_SECRET, TOKEN) for form in _forms(secret) for i in range(len(form) - 3)
}


def _http(status: str, body: str, content_type: str) -> bytes:
    data = body.encode()
    head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(data)}\r\n\r\n"
    return head.encode() + data


def _page(text: str) -> str:
    return f"<html><body><h1>Bad request</h1><p>{text}</p></body></html>"


# name: (path the echo answers, the cut the text meets, answer(padding) echoing the secret after the padding)
CASES: dict[str, tuple[bytes, int, Callable[[str], bytes]]] = {
    "token-400-plain": (
        b"/connect/token",
        300,
        lambda pad: _http("400 Bad Request", f"invalid form {pad} client_secret={CLIENT_SECRET} end", "text/plain"),
    ),
    "token-400-form-echo": (
        b"/connect/token",
        300,
        lambda pad: _http("400 Bad Request", f"{pad} client_secret={quote_plus(CLIENT_SECRET)}&x=1", "text/plain"),
    ),
    "token-400-html-escaped": (
        b"/connect/token",
        300,
        lambda pad: _http("400 Bad Request", _page(f"{pad} client_secret={html.escape(CLIENT_SECRET)}"), "text/html"),
    ),
    "progress-502-html-escaped": (
        b"/progress",
        300,
        lambda pad: _http("502 Bad Gateway", _page(f"{pad} Authorization: Bearer {html.escape(TOKEN)}"), "text/html"),
    ),
    "progress-200-not-json": (
        b"/progress",
        300,
        lambda pad: _http("200 OK", f"debug {pad} Bearer {TOKEN} end", "text/plain"),
    ),
    "progress-200-no-status": (
        b"/progress",
        120,
        lambda pad: _http("200 OK", json.dumps({"echo": pad + TOKEN}), "application/json"),
    ),
    "progress-200-not-an-object": (
        b"/progress",
        80,
        lambda pad: _http("200 OK", json.dumps([pad + TOKEN]), "application/json"),
    ),
    # Not HTTP: the client library quotes the odd status line in its own error, which is cut too.
    "progress-bad-status-line": (
        b"/progress",
        300,
        lambda pad: f"HTTP/1.1 abc {pad}{TOKEN}\r\n\r\n".encode(),
    ),
}


class CutServer(RawServer):
    """Answers the ``path`` requests with ``answer(padding)``, the padding set by the test; a good token else."""

    def __init__(self, path: bytes, answer: Callable[[str], bytes]) -> None:
        super().__init__(self._handle, own_token=True)
        self.path = path
        self.answer = answer
        self.pad = ""

    def _handle(self, conn: socket.socket, head: bytes, body: bytes) -> bool:
        line = head.split(b"\r\n")[0]
        if self.path in line:
            conn.sendall(self.answer(self.pad))
            return False
        reply = json.dumps({"access_token": TOKEN, "expires_in": 3600}).encode()
        conn.sendall(_http("200 OK", reply.decode(), "application/json"))
        return True


@pytest.fixture
def server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[CutServer]:
    path, _, answer = CASES[request.param]
    with CutServer(path, answer) as srv:
        conn = {
            "conn_type": "sestek",
            "host": srv.url,
            "login": "train-client",
            "password": CLIENT_SECRET,
            "extra": {"tenant": "acme", "timeout": 5},
        }
        monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", json.dumps(conn))
        yield srv  # type: ignore[misc]


def _pads(name: str) -> list[int]:
    """Paddings that put the secret at the start, then anywhere from well before the cut to just past it."""
    cut = CASES[name][1]
    return [0, 1, 2, 3, *range(max(4, cut - len(TOKEN) - 60), cut + 2)]


def _leaks(exc: BaseException) -> list[str]:
    return sorted({fragment for text in _texts(exc) for fragment in FRAGMENTS if fragment in text})


def _call(hook: SestekHook, path: bytes) -> None:
    hook.get_token() if path == b"/connect/token" else hook.get_training_progress("faq-bot")


async def _acall(hook: SestekHook, path: bytes) -> None:
    await (hook.aget_token() if path == b"/connect/token" else hook.aget_training_progress("faq-bot"))


@pytest.mark.parametrize("server", list(CASES), indirect=True)
def test_no_fragment_of_an_echoed_secret_survives_the_cut_sync(
    server: CutServer, request: pytest.FixtureRequest
) -> None:
    name = request.node.callspec.params["server"]
    hook = SestekHook(retry_limit=0)
    leaked: dict[int, list[str]] = {}
    for pad in _pads(name):
        server.pad = "x" * pad
        with pytest.raises(SestekError) as info:
            _call(hook, server.path)
        if found := _leaks(info.value):
            leaked[pad] = found
    assert not leaked, f"fragments of a secret quoted: {dict(list(leaked.items())[:3])}"


@pytest.mark.parametrize("server", list(CASES), indirect=True)
def test_no_fragment_of_an_echoed_secret_survives_the_cut_async(
    server: CutServer, request: pytest.FixtureRequest
) -> None:
    name = request.node.callspec.params["server"]
    hook = SestekHook(retry_limit=0)
    leaked: dict[int, list[str]] = {}

    async def run() -> None:
        for pad in _pads(name):
            server.pad = "x" * pad
            with pytest.raises(SestekError) as info:
                await _acall(hook, server.path)
            if found := _leaks(info.value):
                leaked[pad] = found

    asyncio.run(run())
    assert not leaked, f"fragments of a secret quoted: {dict(list(leaked.items())[:3])}"
