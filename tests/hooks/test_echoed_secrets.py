"""
A server (or a gateway before it) that echoes what it received puts no secret in our errors (issue 17).

Every secret a request carries (the bearer token, the client secret of a token form, the callback client
secret of the training form) is kept out of every text built from its answer: API errors, auth errors,
unreadable bodies, redirects and transport errors, in ``str()``, ``repr()``, ``args``, every attribute,
the exception chain and the formatted traceback. The servers here echo *everything* they received so
far (every request's head and body), as a debugging gateway does, over real loopback HTTP.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_sestek.api import CallbackConfig
from airflow_provider_sestek.exceptions import SestekError
from airflow_provider_sestek.hooks.sestek import SestekHook
from tests.hooks._hostile_servers import CLIENT_SECRET, TOKEN, RawServer, conn_env

# Lowercase and host-name safe, so a hostile server can also put them in a redirect's host.
CALLBACK_SECRET = "cbsecret-7f3a9d2e"
INFERENCE_SECRET = "infsecret-41c8b0aa"
FAST = {"retry_delay": 0.01, "retry_max_delay": 0.05, "retry_limit": 1}
SECRETS = (CALLBACK_SECRET, CLIENT_SECRET, INFERENCE_SECRET, TOKEN)

Answer = Callable[[str], bytes]


def _http(status: str, body: str, content_type: str = "text/plain", extra: str = "") -> bytes:
    data = body.encode()
    head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(data)}\r\n{extra}\r\n"
    return head.encode() + data


ANSWERS: dict[str, Answer] = {
    # The ABP envelope quoting the form in every field it has, validation members included.
    "abp-400": lambda echo: _http(
        "400 Bad Request",
        json.dumps(
            {
                "error": {
                    "code": echo[:200],
                    "message": f"Invalid form: {echo}",
                    "details": echo,
                    "validationErrors": [{"message": echo, "members": [echo[-200:], "callbackClientSecret"]}],
                }
            }
        ),
        "application/json",
    ),
    "oauth-400": lambda echo: _http(
        "400 Bad Request",
        json.dumps({"error": "invalid_client", "error_description": echo}),
        "application/json",
    ),
    "text-500": lambda echo: _http("500 Internal Server Error", f"Unhandled exception for request:\n{echo}"),
    "text-502": lambda echo: _http("502 Bad Gateway", f"upstream refused: {echo}"),
    "html-403": lambda echo: _http("403 Forbidden", f"<html><title>Denied {echo}</title></html>", "text/html"),
    "not-json-200": lambda echo: _http("200 OK", f"debug: {echo}"),
    "json-200": lambda echo: _http("200 OK", json.dumps({"echo": echo[-100:]}), "application/json"),
    # The echo's words as the host (which messages do name, as an origin, lowercased).
    "redirect": lambda echo: _http("307 Temporary Redirect", "", extra=f"Location: https://{_host(echo)}.evil/\r\n"),
    # Not HTTP at all: the client library quotes the odd status line in its own error.
    "bad-status-line": lambda echo: f"HTTP/1.1 abc {' '.join(echo.split())[:3000]}\r\n\r\n".encode(),
}


def _host(echo: str) -> str:
    labels = re.findall(r"[A-Za-z0-9-]{8,63}", echo)
    while len(".".join(labels)) > 240:
        labels.pop()
    return ".".join(labels)


def _summary(head: bytes, body: bytes) -> str:
    """What a debugging gateway dumps of a request: its Authorization header and its form values."""
    lines = head.decode("latin-1").split("\r\n")
    auth = [line for line in lines if line.lower().startswith("authorization:")]
    boundary = next((line.split("boundary=")[1] for line in lines if "boundary=" in line), None)
    text = body.decode("utf-8", "replace")
    if boundary:  # multipart: each part's value, without its headers
        parts = text.split("--" + boundary)[1:-1]
        text = " ".join(part.partition("\r\n\r\n")[2].strip() for part in parts)
    return " ".join([*auth, text])


class EchoServer(RawServer):
    """
    Answers ``path_part`` requests with ``answer(everything received so far)``; others get a good token
    (the token endpoint) or a progress (anything else).

    :param path_part: which requests to answer with an echo (``/connect/token``, ``/train``, ``/published/``...).
    :param answer: builds the answer from the echo.
    """

    def __init__(self, path_part: bytes, answer: Answer) -> None:
        super().__init__(self._handle, own_token=True)
        self.path_part = path_part
        self.answer = answer

    def _handle(self, conn: socket.socket, head: bytes, body: bytes) -> bool:
        line = head.split(b"\r\n")[0]
        if self.path_part in line:
            # The latest request first, as a short dump: a quoted snippet of the answer then holds its secrets.
            seen = [_summary(h, b) for h, b in zip(self.heads, self.bodies, strict=True)]
            conn.sendall(self.answer(" | ".join(reversed(seen))))
            return False
        if b"/connect/token" in line:
            reply = json.dumps({"access_token": TOKEN, "expires_in": 3600}).encode()
        else:
            reply = json.dumps({"percent": 5, "trainingStatus": "Training", "inferenceStatus": None}).encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(reply))
        conn.sendall(reply)
        return True


@pytest.fixture
def echo(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[bytes, Answer], EchoServer]]:
    """Start an :class:`EchoServer` and point ``sestek_default`` at it (with an inference client)."""
    servers: list[EchoServer] = []

    def start(path_part: bytes, answer: Answer) -> EchoServer:
        server = EchoServer(path_part, answer).__enter__()
        servers.append(server)
        extra = {"inference_client_id": "inf-client", "inference_client_secret": INFERENCE_SECRET, "timeout": 5}
        monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", conn_env(server.url, **extra))
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def _texts(exc: BaseException) -> Iterator[str]:
    """Every text an exception offers: its own, its attributes', its chain's and its formatted traceback."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield str(item)
        yield repr(item)
        yield repr(item.args)
        for name, value in vars(item).items():
            yield f"{name}={value!r}"
        todo += [e for e in (item.__cause__, item.__context__) if e is not None]
    yield "".join(traceback.format_exception(exc))


def assert_quotes_no_secret(exc: BaseException, server: EchoServer) -> None:
    echoed = b"".join(server.heads + server.bodies).decode("utf-8", "replace")
    sent = [s for s in SECRETS if s in echoed]
    assert sent, "the request carried none of the secrets: the test proves nothing"
    for text in _texts(exc):
        for secret in SECRETS:
            # Case-insensitively: a host name in a message is lowercased.
            assert secret.lower() not in text.lower(), f"{secret!r} quoted in {text[:400]!r}"


def _train() -> None:
    callback = CallbackConfig(
        address="https://callback.example/hook",
        identity_address="https://identity.example",
        client_id="callback-client",
        client_secret=CALLBACK_SECRET,
    )
    SestekHook(**FAST).submit_training("faq-bot", "p", data_urls=["https://data.example/faq.txt"], callback=callback)


@pytest.mark.parametrize("answer", ["abp-400", "text-500", "html-403", "not-json-200", "redirect", "bad-status-line"])
def test_train_answer_echoing_the_form_quotes_no_callback_secret(
    echo: Callable[[bytes, Answer], EchoServer], answer: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = echo(b"/train", ANSWERS[answer])
    with caplog.at_level(logging.DEBUG), pytest.raises(SestekError) as info:
        _train()
    assert CALLBACK_SECRET in b"".join(server.bodies).decode()  # the form did carry it
    assert_quotes_no_secret(info.value, server)
    for secret in SECRETS:
        assert secret not in caplog.text


@pytest.mark.parametrize("side", ["sync", "async"])
@pytest.mark.parametrize("answer", ["oauth-400", "text-502", "abp-400", "not-json-200", "redirect", "bad-status-line"])
def test_token_answer_echoing_the_form_quotes_no_client_secret(
    echo: Callable[[bytes, Answer], EchoServer], answer: str, side: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = echo(b"/connect/token", ANSWERS[answer])
    hook = SestekHook(**FAST)
    with caplog.at_level(logging.DEBUG), pytest.raises(SestekError) as info:
        hook.get_token() if side == "sync" else asyncio.run(hook.aget_token())
    assert_quotes_no_secret(info.value, server)
    for secret in SECRETS:
        assert secret not in caplog.text


@pytest.mark.parametrize("answer", ["abp-400", "text-502", "html-403", "json-200", "redirect", "bad-status-line"])
def test_inference_answer_echoing_the_requests_quotes_no_inference_secret(
    echo: Callable[[bytes, Answer], EchoServer], answer: str
) -> None:
    # The echo holds the inference client's token form too (the identity service shares the gateway).
    server = echo(b"/published/", ANSWERS[answer])
    with pytest.raises(SestekError) as info:
        SestekHook(**FAST).ask("faq-bot", "When are you open?")
    assert INFERENCE_SECRET in b"".join(server.bodies).decode()
    assert_quotes_no_secret(info.value, server)


@pytest.mark.parametrize("side", ["sync", "async"])
@pytest.mark.parametrize("answer", ["text-502", "html-403", "not-json-200", "bad-status-line"])
def test_progress_answer_echoing_the_request_quotes_no_token(
    echo: Callable[[bytes, Answer], EchoServer], answer: str, side: str
) -> None:
    server = echo(b"/progress", ANSWERS[answer])
    hook = SestekHook(**FAST)
    with pytest.raises(SestekError) as info:
        hook.get_training_progress("faq-bot") if side == "sync" else asyncio.run(hook.aget_training_progress("faq-bot"))
    assert_quotes_no_secret(info.value, server)


def test_echo_servers_answer_what_the_hook_expects(echo: Callable[[bytes, Answer], EchoServer]) -> None:
    """The servers above are good enough to be believed: without an echo fault, calls succeed."""
    echo(b"/never-called", ANSWERS["text-500"])
    progress: Any = SestekHook(**FAST).get_training_progress("faq-bot")
    assert progress.percent == 5
