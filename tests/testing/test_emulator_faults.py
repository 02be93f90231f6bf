"""
The hostile-server fault kinds (redirect, drip, odd_token, non_finite, raw), exercised over real HTTP.

Timings are only ever asserted as lower bounds (the server cannot be faster than its pace) or with
generous ceilings: these tests run on loaded two-core machines.
"""

from __future__ import annotations

import json
import math
import socket
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_sestek.testing import FOREIGN_TOKEN, EmulatorClient, Fault, SestekEmulator

from ._helpers import TOKEN, bearer, get_token, inference_path, poll, progress_path, train

CREDENTIALS = {"client_id": "train-client", "client_secret": "train-secret", "grant_type": "client_credentials"}


def _raw_request(emu: SestekEmulator, method: str, path: str, headers: dict[str, str] | None = None) -> socket.socket:
    """Send a request over a bare socket (UTF-8 header bytes allowed) and return the socket, unread."""
    connection = socket.create_connection(("127.0.0.1", emu.port), timeout=10)
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{emu.port}", "Content-Length: 0"]
    lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
    connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
    return connection


def _read_head(connection: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read the status line and headers; return them and the body bytes that came along."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(4096)
        assert chunk, f"connection closed before the head ended: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, rest


def _wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "redirect", "status": 200},
        {"kind": "redirect", "status": 503},
        {"kind": "redirect", "location": ""},
        {"kind": "redirect", "location": "http://a.example/\r\nSet-Cookie: x=1"},
        {"kind": "status", "location": "http://a.example/"},
        {"kind": "drip"},
        {"kind": "drip", "delay": 0},
        {"kind": "delay", "delay": 1, "endless": True},
        {"kind": "drip", "delay": 1, "endless": "yes"},
        {"endpoint": "token", "kind": "odd_token"},
        {"endpoint": "progress", "kind": "odd_token", "value": "x"},
        {"endpoint": "any", "kind": "odd_token", "value": "x"},
        {"endpoint": "progress", "kind": "non_finite"},
        {"endpoint": "progress", "kind": "non_finite", "value": "inf"},
        {"endpoint": "token", "kind": "non_finite", "value": "NaN"},
        {"kind": "status", "value": "NaN"},
        {"kind": "raw"},
        {"kind": "raw", "raw_body": 5},
        {"kind": "status", "raw_body": "x"},
        {"kind": "raw", "raw_body": "x", "content_type": "text/plain\r\nX: y"},
        {"kind": "raw", "raw_body": "x", "status": 99},
    ],
)
def test_bad_fault_combinations_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Fault(**kwargs)


def test_kind_defaults_and_dict_round_trip() -> None:
    assert Fault().status == 503
    assert Fault(kind="redirect").status == 307
    assert Fault(kind="raw", raw_body="").status == 200
    assert Fault(kind="redirect", status=308).status == 308
    faults = [
        Fault(kind="redirect", status=302, location="https://elsewhere.example/x", when="after"),
        Fault(endpoint="progress", kind="drip", delay=0.5, endless=True),
        Fault(endpoint="token", kind="odd_token", value="abc\r\ndef"),
        Fault(endpoint="progress", kind="non_finite", value="-Infinity", model_id="m"),
        Fault(kind="raw", status=418, raw_body="tea ☕", content_type="", retry_after=3),
    ]
    for fault in faults:
        assert Fault.from_dict(json.loads(json.dumps(fault.to_dict()))) == fault


def test_bad_fault_through_the_admin_endpoint_is_a_400(sestek_emulator: SestekEmulator, http: requests.Session) -> None:
    emu = sestek_emulator
    response = http.post(emu.url + "/_emulator/faults", json={"kind": "drip", "endless": True})
    assert response.status_code == 400 and "delay" in response.json()["error"]
    assert emu.faults == []


# ---------------------------------------------------------------- redirect


def test_redirect_before_lands_on_the_foreign_listener_which_records_the_leak(
    sestek_emulator: SestekEmulator, http: requests.Session
) -> None:
    emu = sestek_emulator
    emu.add_fault(Fault(endpoint="token", kind="redirect"))
    foreign = urllib.parse.urlsplit(emu.foreign_url)
    assert (foreign.hostname, foreign.port) != ("127.0.0.1", emu.port)
    assert emu.state()["foreign_url"] == emu.foreign_url

    redirected = http.post(emu.url + TOKEN + "?tenant=acme", data=CREDENTIALS, allow_redirects=False)
    assert redirected.status_code == 307 and redirected.content == b""
    assert redirected.headers["Location"] == emu.foreign_url + TOKEN + "?tenant=acme"
    assert emu.requests[-1].fault == "redirect:before" and emu.requests[-1].status == 307
    assert emu.foreign_requests == []  # nobody followed yet

    # A client that follows a 307 re-posts its form to the other origin and believes what it hears.
    emu.add_fault(Fault(endpoint="token", kind="redirect"))
    followed = http.post(emu.url + TOKEN, data=CREDENTIALS)
    assert followed.status_code == 200 and followed.json()["access_token"] == FOREIGN_TOKEN
    [leak] = emu.foreign_requests
    assert (leak.method, leak.path, leak.endpoint, leak.status) == ("POST", TOKEN, "token", 200)
    marker = emu.redacted("train-secret")  # the leaked secret, recorded as its marker
    assert leak.form["client_secret"] == [marker] and leak.body_size > 0
    assert emu.state()["foreign_requests"][0]["form"]["client_secret"] == [marker]
    assert emu.counters["token_requests"] == 2  # the foreign listener counts nothing of the real API's

    emu.reset()
    assert emu.foreign_requests == [] and emu.state()["foreign_requests"] == []


def test_redirect_after_takes_effect_and_records_the_bearer_token_sent_along(
    sestek_emulator: SestekEmulator, http: requests.Session
) -> None:
    emu = sestek_emulator
    token = emu.issue_token()
    assert train(http, emu, token, "m1").status_code == 200
    emu.add_fault(Fault(endpoint="progress", kind="redirect", status=308, when="after"))
    redirected = http.get(emu.url + progress_path("m1"), headers=bearer(token), allow_redirects=False)
    assert redirected.status_code == 308 and emu.requests[-1].fault == "redirect:after"
    assert emu.trainings["m1"].status == "PendingTraining"  # the redirected poll still counted

    # What a careless client would do: resend its credentials to wherever it was sent.
    leaked = http.get(redirected.headers["Location"], headers=bearer(token))
    assert leaked.json() == {"percent": 100, "trainingStatus": "Completed", "inferenceStatus": "Running"}
    [leak] = emu.foreign_requests
    assert leak.header("Authorization") == f"Bearer {emu.redacted(token)}" and leak.endpoint == "progress"


def test_redirect_location_override_needs_no_foreign_listener(
    sestek_emulator: SestekEmulator, http: requests.Session
) -> None:
    emu = sestek_emulator
    emu.add_fault(Fault(kind="redirect", status=302, location="https://elsewhere.example/x?y=1", retry_after=5))
    response = http.get(emu.url + progress_path("m"), allow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"] == "https://elsewhere.example/x?y=1"
    assert response.headers["Retry-After"] == "5"
    assert emu.state()["foreign_url"] is None


def test_foreign_listener_answers_success_for_every_endpoint(
    sestek_emulator: SestekEmulator, http: requests.Session
) -> None:
    emu = sestek_emulator
    base = emu.foreign_url
    trained = http.post(
        base + "/sestekai-api/api/external/generative-question-answering-trainings/train",
        data={"modelId": "m", "projectName": "P", "callbackClientSecret": "cb-secret"},
        files={"dataFiles": ("faq.txt", b"Q: a\nA: b")},
    )
    assert trained.status_code == 200 and trained.json()["name"] == "m" and trained.json()["status"] == 0
    asked = http.post(base + inference_path("acme", "m"), json={"inputs": [{"query": "q"}]})
    assert asked.status_code == 200 and len(asked.json()["result"]) == 1
    assert http.get(base + "/anything").json() == {}
    train_record, inference_record, other = emu.foreign_requests
    assert train_record.form["callbackClientSecret"] == [emu.redacted("cb-secret")]
    assert [(f.filename, f.size) for f in train_record.files] == [("faq.txt", 9)]
    assert inference_record.json == {"inputs": [{"query": "q"}]} and inference_record.endpoint == "inference"
    assert other.endpoint == "other"
    assert emu.requests == []


# ---------------------------------------------------------------- drip


def test_drip_sends_the_real_body_one_byte_at_a_time(sestek_emulator: SestekEmulator) -> None:
    emu = sestek_emulator
    token = emu.issue_token()
    with requests.Session() as session:
        session.trust_env = False
        assert train(session, emu, token, "m1").status_code == 200
    delay = 0.05
    emu.add_fault(Fault(endpoint="progress", kind="drip", delay=delay))
    started = time.monotonic()
    connection = _raw_request(emu, "GET", progress_path("m1"), bearer(token))
    with connection:
        status, headers, body = _read_head(connection)
        length = int(headers["content-length"])
        assert status == 200 and length > 40 and "connection" not in headers
        connection.settimeout(0.2)
        while time.monotonic() - started < 0.5:
            try:
                body += connection.recv(100)
            except TimeoutError:
                pass
        # The server cannot go faster than its pace, so this bound holds on any machine...
        assert len(body) <= (time.monotonic() - started) / delay + 1
        # ...and only a stall of several seconds of this test could let the whole body in already.
        assert len(body) < length
        connection.settimeout(5 * 5 * delay)  # a read timeout far above the pace never fires
        while len(body) < length:
            chunk = connection.recv(100)
            assert chunk, "connection closed mid-body"
            body += chunk
        assert time.monotonic() - started >= (length - 1) * delay
    # with when="before" the request is handled normally: the answer is real and the poll counted
    assert json.loads(body)["trainingStatus"] == "Initialized"
    assert emu.trainings["m1"].status == "PendingTraining"
    assert emu.requests[-1].fault == "drip:before" and emu.requests[-1].status == 200


def test_drip_after_with_a_client_read_timeout_longer_than_the_pace(
    sestek_emulator: SestekEmulator, http: requests.Session
) -> None:
    emu = sestek_emulator
    emu.add_fault(Fault(endpoint="token", kind="drip", delay=0.02, when="after"))
    started = time.monotonic()
    response = http.post(emu.url + TOKEN, data=CREDENTIALS, timeout=(10, 0.5))
    elapsed = time.monotonic() - started
    assert response.status_code == 200 and response.json()["access_token"].startswith("emu-")
    assert elapsed >= (len(response.content) - 1) * 0.02
    assert emu.requests[-1].fault == "drip:after"
    # The connection stays usable once the whole body is out.
    assert http.post(emu.url + TOKEN, data=CREDENTIALS, timeout=10).status_code == 200


def test_endless_drip_stops_when_the_client_hangs_up(sestek_emulator: SestekEmulator) -> None:
    emu = sestek_emulator
    emu.add_fault(Fault(endpoint="progress", kind="drip", delay=0.02, endless=True))
    connection = _raw_request(emu, "GET", progress_path("nobody"))
    with connection:
        status, headers, body = _read_head(connection)
        assert status == 401  # the real answer's status: no token was sent
        assert "content-length" not in headers and headers["connection"] == "close"
        while len(body) < 10:
            body += connection.recv(100)
        assert set(body) == {ord(" ")}
    _wait_for(lambda: emu.open_connections == 0)


def test_endless_drip_never_blocks_stop(http: requests.Session) -> None:
    emulator = SestekEmulator().start()
    try:
        emulator.add_fault(Fault(endpoint="token", kind="drip", delay=0.05, endless=True))
        response = http.post(emulator.url + TOKEN, data=CREDENTIALS, stream=True, timeout=10)
        assert response.status_code == 200 and "Content-Length" not in response.headers
        assert response.raw.read(3) == b"   "
    finally:
        started = time.monotonic()
        emulator.stop()
        assert time.monotonic() - started < 5
    # After stop the server side is gone: the client reads the end of the stream, not more spaces forever.
    rest = b""
    deadline = time.monotonic() + 10
    try:
        while chunk := response.raw.read(1):
            rest += chunk
            assert time.monotonic() < deadline, "still dripping after stop()"
    except (requests.exceptions.RequestException, OSError):
        pass
    response.close()


# ---------------------------------------------------------------- odd_token


@pytest.mark.parametrize("value", ["tök€n", "abc\r\ndef", "with space"])
def test_odd_token_is_handed_out_verbatim(sestek_emulator: SestekEmulator, http: requests.Session, value: str) -> None:
    emu = sestek_emulator
    emu.add_fault(Fault(endpoint="token", kind="odd_token", value=value))
    response = http.post(emu.url + TOKEN, data=CREDENTIALS)
    answer = response.json()
    assert response.status_code == 200 and answer["access_token"] == value
    assert answer["expires_in"] == 86400 and answer["scope"] == "SestekAI_External"
    assert emu.requests[-1].fault == "odd_token:before"


@pytest.mark.sestek_emulator(record_secrets=True)  # the recorded header is compared byte for byte
def test_odd_token_is_accepted_by_the_api(sestek_emulator: SestekEmulator, http: requests.Session) -> None:
    emu = sestek_emulator
    assert train(http, emu, emu.issue_token(), "m1").status_code == 200
    emu.add_fault(Fault(endpoint="token", kind="odd_token", value="tök€n"))
    assert http.post(emu.url + TOKEN, data=CREDENTIALS).json()["access_token"] == "tök€n"
    # Sent as UTF-8 bytes, which is what a client that does not refuse the token puts on the wire.
    connection = _raw_request(emu, "GET", progress_path("m1"), {"Authorization": "Bearer tök€n"})
    with connection:
        status, _, _ = _read_head(connection)
    assert status == 200
    assert emu.requests[-1].header("Authorization") == "Bearer tök€n".encode().decode("latin-1")
    # a value with a space fits in a header as-is; a different token still fails
    emu.add_fault(Fault(endpoint="token", kind="odd_token", value="two words"))
    http.post(emu.url + TOKEN, data=CREDENTIALS)
    assert http.get(emu.url + progress_path("m1"), headers=bearer("two words")).status_code == 200
    assert http.get(emu.url + progress_path("m1"), headers=bearer("two")).status_code == 401


def test_odd_token_after_takes_the_scope_of_the_client(sestek_emulator: SestekEmulator, http: requests.Session) -> None:
    emu = sestek_emulator
    emu.add_fault(Fault(endpoint="token", kind="odd_token", value="odd-inference", when="after"))
    client_id, secret = emu.inference_client
    answer = http.post(
        emu.url + TOKEN, data={"client_id": client_id, "client_secret": secret, "grant_type": "client_credentials"}
    ).json()
    assert answer == {"access_token": "odd-inference", "expires_in": 86400, "token_type": "Bearer", "scope": "AIModule"}
    assert emu.requests[-1].fault == "odd_token:after"
    assert http.get(emu.url + progress_path("m"), headers=bearer("odd-inference")).status_code == 403


# ---------------------------------------------------------------- non_finite and raw


@pytest.mark.parametrize("literal", ["1e999", "Infinity", "-Infinity", "NaN"])
def test_non_finite_percent_is_written_literally(
    sestek_emulator: SestekEmulator, http: requests.Session, literal: str
) -> None:
    emu = sestek_emulator
    token = get_token(http, emu)
    assert train(http, emu, token, "m1").status_code == 200
    emu.add_fault(Fault(endpoint="progress", kind="non_finite", value=literal, when="after"))
    response = http.get(emu.url + progress_path("m1"), headers=bearer(token))
    assert response.status_code == 200
    assert response.text == f'{{"percent":{literal},"trainingStatus":"Initialized","inferenceStatus":null}}'
    # Python's lenient parser reads every one of them; the point is that none of them is a finite number.
    assert not math.isfinite(json.loads(response.text)["percent"])
    assert poll(http, emu, token, "m1")["trainingStatus"] == "PendingTraining"  # the faulted poll counted


def test_non_finite_before_reports_without_advancing(sestek_emulator: SestekEmulator, http: requests.Session) -> None:
    emu = sestek_emulator
    token = emu.issue_token()
    assert train(http, emu, token, "m1").status_code == 200
    emu.add_fault(Fault(endpoint="progress", kind="non_finite", value="NaN"))
    response = http.get(emu.url + progress_path("m1"), headers=bearer(token))
    assert response.text == '{"percent":NaN,"trainingStatus":"Initialized","inferenceStatus":null}'
    assert poll(http, emu, token, "m1")["trainingStatus"] == "Initialized"


def test_raw_sends_the_exact_body(sestek_emulator: SestekEmulator, http: requests.Session) -> None:
    emu = sestek_emulator
    body = '{"percent": 50, "trainingStatus": "Träining"}\n\x00<!-- ☕ -->'
    emu.add_fault(Fault(endpoint="progress", kind="raw", raw_body=body))
    response = http.get(emu.url + progress_path("m"))
    assert response.status_code == 200 and response.content == body.encode("utf-8")
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Content-Length"] == str(len(body.encode("utf-8")))

    emu.add_fault(Fault(kind="raw", status=502, raw_body="", content_type="", retry_after="7", when="after"))
    response = http.post(emu.url + TOKEN, data=CREDENTIALS)
    assert response.status_code == 502 and response.content == b""
    assert "Content-Type" not in response.headers and response.headers["Retry-After"] == "7"
    assert emu.requests[-1].fault == "raw:after" and emu.counters["token_requests"] == 1


# ---------------------------------------------------------------- remote control


def test_redirect_and_foreign_requests_through_the_admin_client(
    sestek_emulator: SestekEmulator, http: requests.Session
) -> None:
    emu = sestek_emulator
    admin = EmulatorClient(emu.url)
    fault = Fault(endpoint="token", kind="redirect", status=303, when="after")
    admin.add_fault(fault)
    assert admin.faults() == [fault]
    foreign_url = admin.foreign_url()
    assert foreign_url == emu.foreign_url == admin.state()["foreign_url"]
    # 303 turns the POST into a GET: the form is not resent, but the client still went there.
    response = http.post(emu.url + TOKEN, data=CREDENTIALS)
    assert response.json()["access_token"] == FOREIGN_TOKEN
    [leak] = admin.foreign_requests()
    assert (leak["method"], leak["path"], leak["form"]) == ("GET", TOKEN, {})
    admin.reset()
    assert admin.foreign_requests() == [] and admin.state()["foreign_requests"] == []


def test_model_filtered_delay_and_drip_on_train_keep_the_upload(
    sestek_emulator: SestekEmulator, http: requests.Session
) -> None:
    emu = sestek_emulator
    token = emu.issue_token()
    emu.add_fault(Fault(endpoint="train", kind="delay", delay=0.05, model_id="m1"))
    emu.add_fault(Fault(endpoint="train", kind="drip", delay=0.001, model_id="m2"))
    for model_id in ("m1", "m2"):
        assert train(http, emu, token, model_id).status_code == 200
        [received] = emu.trainings[model_id].files
        assert Path(received.path).is_file(), model_id
    assert [r.fault for r in emu.requests] == ["delay:before", "drip:before"]


def test_a_redirect_forwards_the_path_and_query_as_sent(sestek_emulator: SestekEmulator) -> None:
    # The Location was rebuilt from aiohttp's decoded form: "+" became a space and "%23" a fragment.
    emu = sestek_emulator
    emu.add_fault(Fault(endpoint="progress", kind="redirect"))
    tail = progress_path("m1") + "?c=d+e&q=a%23b&p=%2526&e=%C3%A9"
    response = requests.get(emu.url + tail, allow_redirects=False, timeout=10)
    assert response.headers["Location"] == emu.foreign_url + tail


def test_a_drip_faster_than_a_millisecond_is_refused() -> None:
    # delay=5e-324 never let the event loop run: every other client of the emulator stalled.
    with pytest.raises(ValueError, match="drip"):
        Fault(endpoint="token", kind="drip", delay=0.0005, endless=True)
