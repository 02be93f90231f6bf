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
from tests.testing._helpers import TOKEN, bearer, get_token, inference_path, poll_until, progress_path, train

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
    deadline = time.monotonic() + 10  # the callback goes out on a thread of its own
    while not emu.callback_attempts and time.monotonic() < deadline:
        time.sleep(0.02)
    [attempt] = emu.callback_attempts
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
    payload = {"inputs": [{"query": "opening hours?", "auth": {"password": "pw-1", "n": 5}}], "api_key": "k-2"}
    response = http.post(emu.url + inference_path(emu.tenant, "qa"), json=payload, headers=bearer(inference))
    assert response.status_code == 200 and "9:00" in response.json()["result"][0]["answer"]
    record = emu.requests[-1]
    assert record.json == {
        "inputs": [{"query": "opening hours?", "auth": {"password": emu.redacted("pw-1"), "n": 5}}],
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
