"""
Hostile and bad input, one table: every documented rule and configuration error gives a specific exception
whose message names the field and the rule, and local mistakes are caught before a single request reaches
Sestek. Bad server answers (not JSON, cut off, huge) give a clear error too, on the sync and async paths.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sestek.exceptions import (
    SestekApiError,
    SestekConfigError,
    SestekError,
    SestekTransportError,
    SestekValidationError,
)
from airflow_provider_sestek.hooks.sestek import MAX_RESPONSE_BYTES, SestekHook
from airflow_provider_sestek.operators.sestek import SestekTrainOperator
from airflow_provider_sestek.testing import Fault, SestekEmulator
from tests.conftest import connection_json

pytestmark = pytest.mark.usefixtures("fast_retries")

RULE = "lowercase letters a-z, digits and '-', not starting or ending with '-', at most 63 characters"


@dataclass(frozen=True)
class Case:
    """
    :param operator: operator arguments over the defaults.
    :param connection: ``sestek_default`` as raw fields (``None``: a good connection to the emulator).
    :param error: the exception type expected (exactly this type).
    :param needles: what the message must say: the field and the rule.
    """

    operator: dict[str, Any] = field(default_factory=dict)
    connection: dict[str, Any] | None = None
    error: type[BaseException] = SestekValidationError
    needles: tuple[str, ...] = ()


CASES: dict[str, Case] = {
    # --- the model id rule: lowercase a-z, digits, '-', no '-' first or last, 1-63 characters
    "model id too long": Case({"model_id": "a" * 64}, needles=("Invalid model_id", "64 characters long", "at most 63")),
    "model id uppercase": Case({"model_id": "FAQ-Bot"}, needles=("Invalid model_id = 'FAQ-Bot'", RULE)),
    "model id leading hyphen": Case({"model_id": "-faq"}, needles=("Invalid model_id = '-faq'", RULE)),
    "model id trailing hyphen": Case({"model_id": "faq-"}, needles=("Invalid model_id = 'faq-'", RULE)),
    "model id unicode": Case({"model_id": "faq-b\u00f6t"}, needles=("Invalid model_id", RULE)),
    "model id lookalike": Case({"model_id": "faq\u2010bot"}, needles=("Invalid model_id", RULE)),  # U+2010 hyphen
    "model id underscore": Case({"model_id": "faq_bot"}, needles=("Invalid model_id = 'faq_bot'", RULE)),
    "model id empty": Case({"model_id": ""}, needles=("Invalid model_id = ''", "must not be empty")),
    "model id not a string": Case({"model_id": 42}, needles=("Invalid model_id = 42", "must be a string")),
    # --- the training request
    "project name empty": Case({"project_name": ""}, needles=("Invalid project_name", "must be a non-empty string")),
    "project name blank": Case({"project_name": "   "}, needles=("Invalid project_name", "must be a non-empty string")),
    "neither files nor URLs": Case(
        {"data_files": None, "data_urls": None},
        needles=("Invalid data_files", "give at least one of data_files or data_urls"),
    ),
    "empty file list": Case({"data_files": []}, needles=("give at least one of data_files or data_urls",)),
    "missing file": Case(
        {"data_files": ["{tmp}/missing.txt"]}, needles=("Invalid data_files[0]", "missing.txt", "file does not exist")
    ),
    "second file missing": Case(
        {"data_files": ["{faq}", "{tmp}/gone.txt"]}, needles=("Invalid data_files[1]", "file does not exist")
    ),
    "directory": Case({"data_files": ["{tmp}"]}, needles=("Invalid data_files[0]", "is a directory")),
    "unreadable file": Case({"data_files": ["{unreadable}"]}, needles=("Invalid data_files[0]", "is not readable")),
    "web URL as a file": Case(
        {"data_files": ["https://example.com/faq.txt"]}, needles=("Invalid data_files[0]", "pass it in data_urls")
    ),
    "ftp URL": Case(
        {"data_files": None, "data_urls": ["ftp://example.com/faq.txt"]},
        needles=("Invalid data_urls[0] = 'ftp://example.com/faq.txt'", "http:// or https://"),
    ),
    "file URL": Case(
        {"data_files": None, "data_urls": "file:///etc/passwd"}, needles=("Invalid data_urls[0]", "http:// or https://")
    ),
    "URL without host": Case({"data_urls": ["https://"]}, needles=("Invalid data_urls[0]", "with a host")),
    "callback URL without scheme": Case(
        {"callback_address": "hooks.example.com/sestek"}, needles=("Invalid callback_address", "http:// or https://")
    ),
    "callback identity URL malformed": Case(
        {"callback_address": "https://hooks.example.com", "callback_identity_address": "id.example.com"},
        needles=("Invalid callback_identity_address", "http:// or https://"),
    ),
    "callback secret without client id": Case(
        {"callback_address": "https://hooks.example.com", "callback_client_secret": "s3cr3t-value"},
        needles=("Invalid callback_client_id", "given together"),
    ),
    "callback credentials without address": Case(
        {"callback_client_id": "cb"}, needles=("Invalid callback_address", "is required")
    ),
    "poll interval zero": Case({"poll_interval": 0}, needles=("Invalid poll_interval = 0", "positive number")),
    "timeout negative": Case({"timeout": -5}, needles=("Invalid timeout = -5", "non-negative")),
    "URL with a space": Case({"data_urls": ["https://x.example.com/a b"]}, needles=("Invalid data_urls[0]", "spaces")),
    "failure limit zero": Case(
        {"max_consecutive_failures": 0}, needles=("Invalid max_consecutive_failures = 0", "at least 1")
    ),
    "failure limit not whole": Case({"max_consecutive_failures": 1.5}, needles=("max_consecutive_failures = 1.5",)),
    "failure limit a string": Case({"max_consecutive_failures": "3"}, needles=("max_consecutive_failures = '3'",)),
    "failure limit a bool": Case({"max_consecutive_failures": True}, needles=("max_consecutive_failures = True",)),
    "wait flag a string": Case({"wait_for_completion": "no"}, needles=("wait_for_completion = 'no'", "True or False")),
    "inference flag a string": Case({"wait_for_inference": "false"}, needles=("wait_for_inference = 'false'",)),
    "durable flag a string": Case({"durable": "no"}, needles=("Invalid durable = 'no'", "True or False")),
    "callback secret not a string": Case(
        {"callback_address": "https://hooks.example.com", "callback_client_id": "cb", "callback_client_secret": 5},
        needles=("Invalid callback_client_secret", "must be a string, not int"),
    ),
    "callback connection unknown": Case(
        {"callback_conn_id": "no_such_callback"}, needles=("callback_conn_id = 'no_such_callback'", "no Airflow")
    ),
    # --- the connection
    "unknown connection id": Case(
        {"sestek_conn_id": "no_such_conn"}, error=SestekConfigError, needles=("no_such_conn", "is not defined")
    ),
    "empty connection id": Case(
        {"sestek_conn_id": ""}, error=SestekConfigError, needles=("sestek_conn_id", "must name an Airflow connection")
    ),
    "connection without host": Case(
        connection={"host": None}, error=SestekConfigError, needles=("field 'host'", "is empty")
    ),
    "connection host not http": Case(
        connection={"host": "ftp://ai.example.com"},
        error=SestekConfigError,
        needles=("field 'host'", "not an http(s) URL"),
    ),
    "connection host with query": Case(
        connection={"host": "https://ai.example.com/?x=1"},
        error=SestekConfigError,
        needles=("field 'host'", "must not have a query"),
    ),
    "connection without client id": Case(
        connection={"login": None}, error=SestekConfigError, needles=("field 'login'", "Client ID is empty")
    ),
    "connection without secret": Case(
        connection={"password": None}, error=SestekConfigError, needles=("field 'password'", "Client Secret is empty")
    ),
    "identity URL malformed": Case(
        connection={"extra": {"identity_url": "ftp://id.example.com"}},
        error=SestekConfigError,
        needles=("field 'identity_url'", "not an http(s) URL"),
    ),
    "identity URL without host": Case(
        connection={"extra": {"identity_url": "https://"}},
        error=SestekConfigError,
        needles=("field 'identity_url'", "with a host name"),
    ),
    "verify CA file missing": Case(
        connection={"extra": {"verify": "/nonexistent/ca.pem"}},
        error=SestekConfigError,
        needles=("field 'verify'", "/nonexistent/ca.pem", "does not exist"),
    ),
    "inference id without secret": Case(
        connection={"extra": {"inference_client_id": "inf", "inference_client_secret": ""}},
        error=SestekConfigError,
        needles=("field 'inference_client_id'", "set together"),
    ),
    "timeout not a number": Case(
        connection={"extra": {"timeout": "soon"}}, error=SestekConfigError, needles=("field 'timeout'", "not a number")
    ),
    "timeout not positive": Case(
        connection={"extra": {"timeout": 0}}, error=SestekConfigError, needles=("field 'timeout'", "positive")
    ),
}


class _TaskInstance:
    def xcom_push(self, key: str, value: Any) -> None:
        raise AssertionError("nothing is pushed before the input is valid")


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, faq: str) -> dict[str, str]:
    unreadable = tmp_path / "unreadable.txt"
    unreadable.write_text("secret plans")
    unreadable.chmod(0)
    if os.geteuid() == 0:  # root reads every file: make the worker's access check see what a user would
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: p != str(unreadable) and real_access(p, mode, **kw))
    return {"tmp": str(tmp_path), "faq": faq, "unreadable": str(unreadable)}


def _fill(value: Any, files: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**files) if "{" in value else value
    if isinstance(value, list):
        return [_fill(v, files) for v in value]
    return value


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name: str, emulator: SestekEmulator, monkeypatch: pytest.MonkeyPatch, files: dict[str, str]) -> None:
    case = CASES[name]
    conn = json.loads(connection_json(emulator))
    if case.connection is not None:
        extra = {**conn["extra"], **case.connection.get("extra", {})}
        conn.update({k: v for k, v in case.connection.items() if k != "extra"}, extra=extra)
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", json.dumps(conn))
    arguments = {"model_id": "faq-bot", "project_name": "FAQ", "data_files": [files["faq"]], "poll_interval": 0.05}
    arguments.update({k: _fill(v, files) for k, v in case.operator.items()})
    operator = SestekTrainOperator(task_id="bad_input", deferrable=False, **arguments)

    with pytest.raises(BaseException) as info:
        operator.execute({"ti": _TaskInstance()})  # type: ignore[arg-type]

    assert type(info.value) is case.error, f"{type(info.value).__name__}: {info.value}"
    for needle in case.needles:
        assert needle in str(info.value), f"{needle!r} not in {str(info.value)!r}"
    assert emulator.requests == [], "local input must be rejected before any request"


def test_every_documented_rule_is_in_the_table() -> None:
    fields = " ".join(name for name in CASES)
    documented = (
        "too long, uppercase, leading hyphen, trailing hyphen, unicode, model id empty, project name empty, "
        "neither files nor URLs, missing file, directory, unreadable file, ftp URL, callback URL, unknown "
        "connection, without host, without client id, without secret, identity URL malformed, verify CA file missing"
    )
    for rule in documented.split(", "):
        assert rule in fields, rule


# --- bad answers from the server ------------------------------------------------------------------------------


class _HugeAnswers(BaseHTTPRequestHandler):
    """Answers every request with a body far past the client's limit (with or without Content-Length)."""

    size = 4 * MAX_RESPONSE_BYTES

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer()

    def _answer(self) -> None:
        status, kind, declare = self.server.answer  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Type", "text/html" if kind == "html" else "application/json")
        if declare:
            self.send_header("Content-Length", str(self.size))
        self.end_headers()
        chunk = (b"<p>gateway error</p>" if kind == "html" else b'{"padding": "') + b"x" * 65_000
        sent = 0
        try:
            while sent < self.size:
                self.wfile.write(chunk)
                sent += len(chunk)
        except OSError:
            pass  # the client stopped reading: that is the point


@pytest.fixture
def huge_server() -> Iterator[Callable[[int, str, bool], str]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HugeAnswers)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()

    def configure(status: int, kind: str, declare: bool) -> str:
        server.answer = (status, kind, declare)  # type: ignore[attr-defined]
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield configure
    server.shutdown()
    server.server_close()


def _progress(in_trigger: bool) -> Any:
    hook = SestekHook(retry_limit=0)
    if not in_trigger:
        return hook.get_training_progress("faq-bot")
    return asyncio.run(hook.aget_training_progress("faq-bot"))


@pytest.mark.parametrize("in_trigger", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(
    ("fault", "error", "needles"),
    [
        (
            Fault(endpoint="progress", kind="malformed", count=None),
            SestekApiError,
            ("HTTP 200", "response is not JSON"),
        ),
        (
            Fault(endpoint="progress", kind="truncated", count=None),
            SestekTransportError,
            ("/faq-bot/progress", "was cut off"),
        ),
        (
            Fault(endpoint="progress", status=502, body="html", count=None),
            SestekApiError,
            ("answered HTTP 502", "502 Bad Gateway"),
        ),
    ],
    ids=["not-json", "truncated", "html-page"],
)
def test_unreadable_answers(
    sestek_conn: SestekEmulator, fault: Fault, error: type[SestekError], needles: tuple[str, ...], in_trigger: bool
) -> None:
    sestek_conn.add_fault(fault)
    with pytest.raises(SestekError) as info:
        _progress(in_trigger)
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
    for needle in needles:
        assert needle in str(info.value), str(info.value)
    assert len(str(info.value)) < 600, "a server's answer is quoted, not dumped"
    assert "<" not in str(info.value)


@pytest.mark.parametrize("in_trigger", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(
    ("status", "kind", "declare"),
    [(200, "json", True), (200, "json", False), (502, "html", False)],
    ids=["json-with-length", "json-streamed", "html-error-page"],
)
def test_huge_answers_are_not_read(
    emulator: SestekEmulator,
    huge_server: Callable[[int, str, bool], str],
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    kind: str,
    declare: bool,
    in_trigger: bool,
) -> None:
    import time

    # Tokens from the emulator; the API host answers with 64 MiB.
    conn = json.loads(connection_json(emulator))
    conn["host"] = huge_server(status, kind, declare)
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", json.dumps(conn))
    began = time.monotonic()
    with pytest.raises(SestekApiError) as info:
        _progress(in_trigger)
    text = str(info.value)
    assert f"HTTP {status}" in text and "larger than 16,777,216 bytes (max_response_bytes)" in text, text
    assert "/faq-bot/progress" in text and len(text) < 600
    assert time.monotonic() - began < 30
