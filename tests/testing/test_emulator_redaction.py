"""
Recorded requests keep no secret unless a test asks for raw capture (``record_secrets=True``).

Everything a recorded request can be read through is searched for the secret itself: the Python
objects, their dict form, the admin endpoints (which need no credentials), the training snapshots.
The markers that take the secrets' place still let a test prove *which* secret arrived
(:meth:`SestekEmulator.redacted`), and the emulator goes on working on the real values.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time

import pytest
import requests

from airflow_provider_sestek.testing import EmulatorClient, Fault, SestekEmulator
from tests.testing._helpers import (
    TOKEN,
    TRAIN,
    bearer,
    callback_attempts,
    get_token,
    inference_path,
    poll_until,
    progress_path,
    train,
)

SECRET = "Train-S3cret-Value"
CALLBACK_SECRET = "Callback-S3cret-Value"
CLIENTS = {"train-client": SECRET}


def _everything(emu: SestekEmulator) -> str:
    """Every form in which the emulator shows what it recorded, as one text to search."""
    admin = EmulatorClient(emu.url)
    return json.dumps(
        [
            [r.to_dict() for r in emu.requests],
            [repr(r) for r in emu.requests],
            [r.to_dict() for r in emu.foreign_requests],
            [repr(t) for t in emu.trainings.values()],
            emu.state(),
            admin.requests(),
            admin.state(),
            admin.foreign_requests(),
        ],
        default=str,
    )


@pytest.mark.sestek_emulator(clients=CLIENTS)
def test_client_secret_and_bearer_token_are_markers_in_every_recorded_form(
    sestek_emulator: SestekEmulator, http: requests.Session
) -> None:
    emu = sestek_emulator
    token = get_token(http, emu)
    assert train(http, emu, token, "m1").status_code == 200
    assert http.get(emu.url + progress_path("m1"), headers=bearer(token)).status_code == 200

    token_record, train_record, progress_record = emu.requests
    assert token_record.form["client_secret"] == [emu.redacted(SECRET)]
    assert token_record.form["client_id"] == ["train-client"]  # not a secret: kept
    assert train_record.header("Authorization") == f"Bearer {emu.redacted(token)}"
    assert progress_record.headers["Authorization"] == f"Bearer {emu.redacted(token)}"
    # One token, one marker: a test can still see that every call reused the first token.
    assert emu.redacted(token) != emu.redacted(SECRET)
    text = _everything(emu)
    assert SECRET not in text and token not in text
    assert emu.redacted(SECRET) in text


@pytest.mark.sestek_emulator(clients=CLIENTS)
def test_basic_credentials_are_a_marker_and_still_authenticate(
    sestek_emulator: SestekEmulator, http: requests.Session
) -> None:
    emu = sestek_emulator
    encoded = base64.b64encode(f"train-client:{SECRET}".encode()).decode()
    response = http.post(
        emu.url + TOKEN,
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {encoded}"},
    )
    assert response.status_code == 200, response.text  # the emulator checked the real credentials
    assert emu.requests[0].header("Authorization") == f"Basic {emu.redacted(encoded)}"
    text = _everything(emu)
    assert encoded not in text and SECRET not in text


def test_callback_secret_is_a_marker_in_requests_and_training_snapshots(
    sestek_emulator: SestekEmulator, http: requests.Session
) -> None:
    emu = sestek_emulator
    token = emu.issue_token()
    response = train(
        http, emu, token, "cb", callbackAddress="http://127.0.0.1:9/hook", callbackClientSecret=CALLBACK_SECRET
    )
    assert response.status_code == 200
    assert emu.requests[0].form["callbackClientSecret"] == [emu.redacted(CALLBACK_SECRET)]
    callback = emu.trainings["cb"].callback
    assert callback is not None and callback.client_secret == emu.redacted(CALLBACK_SECRET)
    assert CALLBACK_SECRET not in _everything(emu)


def test_callback_is_still_sent_with_the_real_secret(sestek_emulator: SestekEmulator, http: requests.Session) -> None:
    # The emulator's own token request for the callback uses the secret it was given, not the marker:
    # the receiver here is the emulator's own token service, which only accepts the real one.
    emu = sestek_emulator
    token = emu.issue_token()
    client_id, secret = emu.train_client
    response = train(
        http,
        emu,
        token,
        "cb",
        callbackAddress=emu.url + "/callback-sink",
        callbackIdentityAddress=emu.identity_url,
        callbackClientId=client_id,
        callbackClientSecret=secret,
    )
    assert response.status_code == 200
    poll_until(http, emu, token, "cb", lambda body: body["inferenceStatus"] == "Running")
    [attempt] = callback_attempts(emu)
    assert attempt.authenticated  # a token was obtained with the real secret


@pytest.mark.sestek_emulator(clients=CLIENTS)
def test_secrets_leaked_to_the_foreign_origin_show_as_their_markers(
    sestek_emulator: SestekEmulator, http: requests.Session
) -> None:
    emu = sestek_emulator
    emu.add_fault(Fault(endpoint="token", kind="redirect"))
    form = {"client_id": "train-client", "client_secret": SECRET, "grant_type": "client_credentials"}
    assert http.post(emu.url + TOKEN, data=form).status_code == 200  # followed to the foreign origin
    [leak] = emu.foreign_requests
    # The leak is visible (the field arrived, with this secret), the secret is not.
    assert leak.form["client_secret"] == [emu.redacted(SECRET)]
    assert SECRET not in _everything(emu)


def test_credentials_in_a_query_string_are_markers_and_the_rest_is_kept(
    sestek_emulator: SestekEmulator, http: requests.Session
) -> None:
    emu = sestek_emulator
    http.get(emu.url + "/somewhere?a=1&client_secret=p%40ss&access_token=tok&b=%2F&token_type=Bearer")
    [record] = emu.requests
    # The query as the server decoded it (as recorded before redaction existed), secrets swapped.
    marker, token = emu.redacted("p@ss"), emu.redacted("tok")
    assert record.query == f"a=1&client_secret={marker}&access_token={token}&b=/&token_type=Bearer"


def test_a_redirect_forwards_the_real_query_while_the_record_shows_the_marker(
    sestek_emulator: SestekEmulator, http: requests.Session
) -> None:
    emu = sestek_emulator
    emu.add_fault(Fault(endpoint="progress", kind="redirect"))
    response = http.get(emu.url + progress_path("m") + "?api_key=k-123", allow_redirects=False)
    assert response.headers["Location"].endswith("?api_key=k-123")
    assert emu.requests[0].query == "api_key=" + emu.redacted("k-123")


def test_secret_keys_in_a_json_body_are_markers_at_any_depth(
    sestek_emulator: SestekEmulator, http: requests.Session
) -> None:
    emu = sestek_emulator
    token = emu.issue_token()
    assert train(http, emu, token, "qa").status_code == 200
    poll_until(http, emu, token, "qa", lambda body: body["inferenceStatus"] == "Running")
    inference = emu.issue_token(inference=True)
    payload = {"inputs": [{"query": "opening hours?", "options": {"password": "pw-1", "n": 5}}], "api_key": "k-2"}
    response = http.post(emu.url + inference_path(emu.tenant, "qa"), json=payload, headers=bearer(inference))
    assert response.status_code == 200 and "9:00" in response.json()["result"][0]["answer"]
    record = emu.requests[-1]
    assert record.json == {
        "inputs": [{"query": "opening hours?", "options": {"password": emu.redacted("pw-1"), "n": 5}}],
        "api_key": emu.redacted("k-2"),
    }
    assert payload["api_key"] == "k-2"  # the body the handler answered from was not touched

    # As deep as the JSON decoder goes: the walk is iterative, so no RecursionError (and no 500).
    deep: object = {"secret": "deep-value"}
    for _ in range(900):
        deep = [deep]
    body = json.dumps({"inputs": [{"query": "q"}], "x": deep})
    answered = http.post(
        emu.url + inference_path(emu.tenant, "qa"),
        data=body,
        headers={**bearer(inference), "Content-Type": "application/json"},
    )
    assert answered.status_code == 200
    assert "deep-value" not in json.dumps(emu.requests[-1].to_dict())


def test_markers_are_keyed_per_emulator_and_reveal_nothing() -> None:
    with SestekEmulator() as one, SestekEmulator() as other:
        marker = one.redacted("train-secret")
        assert marker.startswith("<redacted:") and marker.endswith(">")
        assert marker == one.redacted("train-secret")  # stable within one emulator
        assert marker != other.redacted("train-secret")  # keyed: not comparable across emulators
        digest = hashlib.sha256(b"train-secret").hexdigest()
        assert digest[:16] not in marker  # not a plain hash anyone could look up


@pytest.mark.sestek_emulator(clients=CLIENTS, record_secrets=True)
def test_raw_capture_keeps_every_credential_verbatim(sestek_emulator: SestekEmulator, http: requests.Session) -> None:
    emu = sestek_emulator
    token = get_token(http, emu)
    assert train(http, emu, token, "m", callbackAddress="http://127.0.0.1:9/h", callbackClientSecret=CALLBACK_SECRET)
    token_record, train_record = emu.requests
    assert token_record.form["client_secret"] == [SECRET]
    assert train_record.header("Authorization") == f"Bearer {token}"
    assert train_record.form["callbackClientSecret"] == [CALLBACK_SECRET]
    callback = emu.trainings["m"].callback
    assert callback is not None and callback.client_secret == CALLBACK_SECRET
    assert emu.redacted(SECRET) == SECRET
    assert emu.state()["config"]["record_secrets"] is True


@pytest.mark.sestek_emulator(clients=CLIENTS)
def test_a_token_request_answered_by_an_odd_token_fault_records_the_secret_as_a_marker(
    sestek_emulator: SestekEmulator, http: requests.Session
) -> None:
    emu = sestek_emulator
    emu.add_fault(Fault(endpoint="token", kind="odd_token", value="odd-value"))
    form = {"client_id": "train-client", "client_secret": SECRET, "grant_type": "client_credentials"}
    assert http.post(emu.url + TOKEN, data=form).json()["access_token"] == "odd-value"
    assert emu.requests[-1].form["client_secret"] == [emu.redacted(SECRET)]
    assert SECRET not in _everything(emu)


def test_the_admin_api_cannot_confirm_a_guessed_secret(sestek_emulator: SestekEmulator, http: requests.Session) -> None:
    # Anyone on the port can read the admin API and put a guess into a recorded request: if the markers
    # there were comparable, a matching guess would be confirmed. They are not; in-process ones still are.
    emu = sestek_emulator
    token = emu.issue_token()
    train(http, emu, token, "m", callbackAddress="http://127.0.0.1:9/h", callbackClientSecret="summer2024")
    http.get(emu.url + progress_path("m") + "?secret=summer2024")  # the attacker's guess
    admin = EmulatorClient(emu.url)
    text = json.dumps([admin.requests(), admin.state()])
    assert emu.redacted("summer2024")[10:-1] not in text  # no keyed part anywhere
    train_form, guess_query = admin.requests()[0]["form"], admin.requests()[1]["query"]
    assert train_form["callbackClientSecret"] == ["<redacted>"] and guess_query == "secret=<redacted>"
    assert emu.requests[0].form["callbackClientSecret"] == [emu.redacted("summer2024")]


@pytest.mark.parametrize(
    "name",
    [
        "authToken",
        "sessionToken",
        "apiToken",
        "bearerToken",
        "pwd",
        "pass",
        "passphrase",
        "token[]",
        "auth[token]",
        "access_token[0]",
        "credentials",
        "private_key",
    ],
)
def test_every_name_that_looks_like_a_credential_is_redacted_in_query_form_and_json(
    sestek_emulator: SestekEmulator, http: requests.Session, name: str
) -> None:
    emu = sestek_emulator
    http.get(emu.url + "/x", params={name: "V-1"})
    http.post(emu.url + TOKEN, data={name: "V-2", "grant_type": "client_credentials"})
    http.post(emu.foreign_url + "/y", json={"nested": [{name: "V-3"}]})
    assert not {"V-1", "V-2", "V-3"} & set(_everything(emu).replace('"', " ").split())
    assert "V-1" not in _everything(emu) and "V-2" not in _everything(emu) and "V-3" not in _everything(emu)


def test_names_that_only_contain_pass_or_auth_as_part_of_a_word_are_kept(
    sestek_emulator: SestekEmulator, http: requests.Session
) -> None:
    emu = sestek_emulator
    http.get(emu.url + "/x", params={"passenger": "p", "author": "a", "bypass": "b", "grant_type": "g"})
    assert emu.requests[0].query == "passenger=p&author=a&bypass=b&grant_type=g"


def test_a_credential_key_is_redacted_whatever_the_type_of_its_value(
    sestek_emulator: SestekEmulator, http: requests.Session
) -> None:
    emu = sestek_emulator
    payload = {"client_secret": ["S1"], "password": 424242, "api_key": {"value": "S3"}, "token": None}
    http.post(emu.foreign_url + "/x", json=payload)
    recorded = emu.foreign_requests[0].json
    assert recorded["client_secret"] == emu.redacted('["S1"]') and recorded["password"] == emu.redacted("424242")
    assert recorded["api_key"] == emu.redacted('{"value": "S3"}') and recorded["token"] is None
    assert "S1" not in _everything(emu) and "424242" not in _everything(emu) and "S3" not in _everything(emu)


def test_credentials_inside_urls_are_markers_in_records_snapshots_and_callbacks(
    sestek_emulator: SestekEmulator, http: requests.Session
) -> None:
    emu = sestek_emulator
    token = emu.issue_token()
    response = train(
        http,
        emu,
        token,
        "u",
        urls=["http://127.0.0.1:9/faq.txt?access_token=URLQ-SECRET&v=1"],
        callbackAddress="http://user:CBU-SECRET@127.0.0.1:9/cb",
    )
    assert response.status_code == 200
    form = emu.requests[-1].form
    assert form["dataUrls"] == [f"http://127.0.0.1:9/faq.txt?access_token={emu.redacted('URLQ-SECRET')}&v=1"]
    assert form["callbackAddress"] == [f"http://user:{emu.redacted('CBU-SECRET')}@127.0.0.1:9/cb"]
    poll_until(http, emu, token, "u", lambda body: body["inferenceStatus"] == "Running")
    assert callback_attempts(emu)[0].address == f"http://user:{emu.redacted('CBU-SECRET')}@127.0.0.1:9/cb"
    text = _everything(emu) + json.dumps([repr(a) for a in emu.callback_attempts])
    assert "URLQ-SECRET" not in text and "CBU-SECRET" not in text


@pytest.mark.parametrize("header", ["X-Auth-Token", "Api-Key", "X-Access-Token", "X-Api-Key", "Cookie"])
def test_credential_headers_besides_authorization_are_markers(
    sestek_emulator: SestekEmulator, http: requests.Session, header: str
) -> None:
    emu = sestek_emulator
    http.get(emu.url + "/x", headers={header: "H-SECRET-1"})
    assert emu.requests[0].header(header) == emu.redacted("H-SECRET-1")


def test_a_request_aiohttp_cannot_parse_is_logged_without_its_bytes(
    sestek_emulator: SestekEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    # aiohttp logs the parser's error, which quotes the offending header line, at ERROR: with it an
    # Authorization header reached stderr even with the CLI's --quiet and --log-level ERROR.
    import socket

    emu = sestek_emulator
    with caplog.at_level("DEBUG"):
        with socket.create_connection(("127.0.0.1", emu.port)) as sock:
            sock.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer emu-RAW-TOKEN\x01\r\n\r\n")
            sock.settimeout(5)
            assert b" 400 " in sock.recv(100).split(b"\r\n")[0]
        deadline = time.monotonic() + 5  # logged by the server thread as it closes the connection
        while "Error handling request" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.02)
    assert "Error handling request" in caplog.text and "BadHttpMessage" in caplog.text
    assert "emu-RAW-TOKEN" not in caplog.text


def test_a_callback_url_urllib_cannot_use_leaves_no_password_in_the_attempts_error(
    sestek_emulator: SestekEmulator, http: requests.Session
) -> None:
    # urllib's InvalidURL quoted the netloc: "nonnumeric port: 'CBPASS1@127.0.0.1'".
    emu = sestek_emulator
    token = emu.issue_token()
    train(http, emu, token, "cb", callbackAddress="http://cbuser:CBPASS1@127.0.0.1/cb")
    poll_until(http, emu, token, "cb", lambda body: body["inferenceStatus"] == "Running")
    [attempt] = callback_attempts(emu)
    assert attempt.error is not None and attempt.error.startswith("InvalidURL")
    assert "CBPASS1" not in repr(emu.callback_attempts) and "CBPASS1" not in _everything(emu)


@pytest.mark.parametrize("password", ["NFKCpw\u2100x", "pw[x"])
def test_a_data_url_urlsplit_refuses_is_a_400_and_recorded_without_its_password(
    sestek_emulator: SestekEmulator, http: requests.Session, caplog: pytest.LogCaptureFixture, password: str
) -> None:
    emu = sestek_emulator
    with caplog.at_level("DEBUG"):
        response = train(http, emu, emu.issue_token(), "u", files=(), urls=[f"http://user:{password}@127.0.0.1/x"])
    assert response.status_code == 400  # a validation error, not the emulator's own 500
    assert password not in _everything(emu) and password not in caplog.text


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("https://a.blob.core.windows.net/c/f.txt?sv=2024&sig=AZSIG1", "AZSIG1"),  # an Azure SAS URL
        ("https://storage.example.com/f?key=GKEY1", "GKEY1"),
        ("https://h.example.com/cb?code=OCODE1", "OCODE1"),
        ("https://h.example.com/cb#access_token=FRAG1", "FRAG1"),
    ],
)
def test_signed_url_parameters_and_fragments_are_markers(
    sestek_emulator: SestekEmulator, http: requests.Session, url: str, secret: str
) -> None:
    emu = sestek_emulator
    assert train(http, emu, emu.issue_token(), "s", urls=[url]).status_code == 200
    assert secret not in _everything(emu)
    assert emu.redacted(secret) in emu.requests[-1].form["dataUrls"][0]


def test_the_foreign_listener_answers_from_what_was_sent_not_from_the_redacted_record(
    sestek_emulator: SestekEmulator, http: requests.Session
) -> None:
    # It echoed the record's projectName: with a URL password in it, the keyed marker came back to anyone.
    emu = sestek_emulator
    sent = {"modelId": "m", "projectName": "http://u:GUESS@x/"}
    answer = http.post(emu.foreign_url + TRAIN, data=sent).json()
    assert answer["description"] == "http://u:GUESS@x/" and "<redacted" not in json.dumps(answer)
    assert emu.foreign_requests[0].form["projectName"] == [f"http://u:{emu.redacted('GUESS')}@x/"]


@pytest.mark.parametrize("header", ["X-Authorization", "Authentication", "Ocp-Apim-Subscription-Key", "X-Access-Key"])
def test_more_credential_header_names_are_markers(
    sestek_emulator: SestekEmulator, http: requests.Session, header: str
) -> None:
    emu = sestek_emulator
    http.get(emu.url + "/x", headers={header: "H-SECRET-2"})
    assert "H-SECRET-2" not in _everything(emu)
