"""The sans-IO core: URLs, parsing, the model-id rule and error mapping, without a server."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_sestek import api
from airflow_provider_sestek.exceptions import (
    SestekApiError,
    SestekAuthError,
    SestekConfigError,
    SestekModelNotPublished,
    SestekTrainingInProgress,
    SestekValidationError,
)

DOC_RULE = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")


@given(st.text(alphabet="abcxyz019-AZ_é ", max_size=70))
def test_model_id_validator_matches_documented_rule(value: str) -> None:
    expected = bool(DOC_RULE.fullmatch(value)) and len(value) <= 63
    try:
        api.validate_model_id(value)
        accepted = True
    except SestekValidationError as exc:
        accepted = False
        assert exc.field == "model_id"
        assert repr(value) in str(exc)
    assert accepted == expected


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("", "must not be empty"),
        ("a" * 64, "at most 63"),
        ("FAQ-bot", "lowercase"),
        ("-faq", "not starting or ending"),
        ("faq-", "not starting or ending"),
        ("faq_bot", "lowercase"),
        ("fäq", "lowercase"),
        (42, "must be a string"),
    ],
)
def test_model_id_errors_name_field_value_and_rule(value: object, rule: str) -> None:
    with pytest.raises(SestekValidationError, match="model_id") as info:
        api.validate_model_id(value)
    assert rule in str(info.value)


def test_urls() -> None:
    assert api.normalize_base_url("ai.example.com") == "https://ai.example.com"
    assert api.normalize_base_url("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    assert api.token_url("https://id.example.com") == "https://id.example.com/connect/token"
    assert api.token_url("https://id.example.com/connect/token") == "https://id.example.com/connect/token"
    assert (
        api.progress_url("https://h", "faq-bot")
        == "https://h/sestekai-api/api/external/generative-question-answering-trainings/faq-bot/progress"
    )
    assert api.train_url("https://h") == (
        "https://h/sestekai-api/api/external/generative-question-answering-trainings/train"
    )
    assert (
        api.inference_url("https://h", "acme", "faq-bot")
        == "https://h/published/acme-faq-bot/v1/text/question-answering/inference"
    )


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "ftp://x",
        "http://",
        "https://h/?q=1",
        None,
        # A base URL whose model asset URI the sestek:// normalizer would refuse after the training ran.
        "https://h:0",
        "https://h/a/../b",
        "https://h/%2e%2e",
        "https://h/./x",
        "https://h/a/%2E",
    ],
)
def test_bad_base_url(bad: str | None) -> None:
    with pytest.raises(SestekConfigError, match="host"):
        api.normalize_base_url(bad)


@pytest.mark.parametrize("port", ["99999", "65536", "-1", "x"])
def test_a_base_url_with_an_impossible_port_is_named_as_such(port: str) -> None:
    # The generic "is not an http(s) URL with a host name" sent users looking at the scheme and host.
    with pytest.raises(SestekConfigError, match="must have a port from 1 to 65535") as refused:
        api.normalize_base_url(f"https://ai.example.com:{port}/base")
    assert "host" in str(refused.value)  # the field is named


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Completed", api.TrainingStatus.COMPLETED),
        ("completed", api.TrainingStatus.COMPLETED),
        ("COMPLETED ", api.TrainingStatus.COMPLETED),
        ("PendingTraining", api.TrainingStatus.PENDING_TRAINING),
        ("failed", api.TrainingStatus.FAILED),
        ("Rebalancing", api.TrainingStatus.UNKNOWN),
        (None, api.TrainingStatus.UNKNOWN),
        (3, api.TrainingStatus.UNKNOWN),
    ],
)
def test_training_status_parse(raw: object, expected: api.TrainingStatus) -> None:
    assert api.TrainingStatus.parse(raw) is expected


def test_progress_rules() -> None:
    done = api.parse_progress({"percent": 100, "trainingStatus": "completed", "inferenceStatus": "Running"})
    assert done.is_published and done.is_done(True) and not done.is_active
    trained = api.parse_progress({"percent": 100, "trainingStatus": "Completed", "inferenceStatus": None})
    assert trained.is_done(False) and not trained.is_done(True)
    unknown = api.parse_progress({"percent": "37.5", "trainingStatus": "Warming", "inferenceStatus": None})
    assert unknown.is_active and unknown.percent == 37 and unknown.describe() == "Warming 37%"
    assert api.TrainingProgress.from_dict(done.to_dict()) == done


def test_parse_progress_response_rejects_garbage() -> None:
    with pytest.raises(SestekApiError, match="not JSON"):
        api.parse_progress_response(200, b"<html>oops</html>", "u")
    with pytest.raises(SestekApiError, match="lacks trainingStatus"):
        api.parse_progress_response(200, b'{"percent": 1}', "u")
    with pytest.raises(SestekApiError, match="JSON object"):
        api.parse_progress_response(200, b"[1, 2]", "u")


def test_parse_token_absolute_expiry() -> None:
    body = json.dumps({"access_token": "tok-SECRET-123", "expires_in": 100, "scope": "SestekAI_External"}).encode()
    token = api.parse_token(200, body, "u", now=1000.0)
    assert token.expires_at == 1100.0 and token.scope == "SestekAI_External"
    assert token.fresh(now=1080.0) and not token.fresh(now=1095.0)
    assert token.access_token == "tok-SECRET-123" and "SECRET" not in repr(token)


def test_abp_envelope() -> None:
    body = json.dumps(
        {
            "error": {
                "code": None,
                "message": "Your request is not valid!",
                "details": "The following errors were detected",
                "validationErrors": [{"message": "modelId is invalid", "members": ["modelId"]}],
            }
        }
    ).encode()
    exc = api.error_from_response("POST", "https://h/train", 400, {"_AbpErrorFormat": "true"}, body)
    assert isinstance(exc, SestekApiError) and exc.status == 400
    assert exc.validation_errors == [("modelId is invalid", ["modelId"])]
    assert "HTTP 400" in str(exc) and "modelId: modelId is invalid" in str(exc) and "https://h/train" in str(exc)


def test_in_progress_and_not_published() -> None:
    body = json.dumps({"error": {"message": "The training is still in progress for the same model ID: faq"}}).encode()
    assert isinstance(api.error_from_response("POST", "u", 403, {}, body), SestekTrainingInProgress)
    assert isinstance(
        api.error_from_response("POST", "u", 503, {}, b"Published pod is currently unavailable", inference=True),
        SestekModelNotPublished,
    )


def test_openiddict_and_empty_auth_errors() -> None:
    body = json.dumps({"error": "invalid_client", "error_description": "The specified client credentials are invalid."})
    exc = api.error_from_response("POST", "https://id/connect/token", 401, {}, body.encode())
    assert isinstance(exc, SestekAuthError)
    assert "invalid_client" in str(exc) and "Client Secret" in str(exc)
    exc = api.error_from_response("GET", "https://h/p", 401, {}, b"")
    assert isinstance(exc, SestekAuthError) and "401" in str(exc)
    exc = api.error_from_response("POST", "https://h/i", 403, {}, b"", inference=True)
    assert isinstance(exc, SestekAuthError) and "AIModule" in str(exc)


def test_html_error_page_is_summarised() -> None:
    page = b"<html><head><title>502 Bad Gateway</title></head><body>" + b"x" * 5000 + b"</body></html>"
    exc = api.error_from_response("GET", "u", 502, {"Retry-After": "7"}, page)
    assert isinstance(exc, SestekApiError)
    assert exc.message == "502 Bad Gateway" and exc.retry_after == 7.0


def test_retry_after_forms() -> None:
    assert api.retry_after_seconds({"Retry-After": "3"}) == 3.0
    assert api.retry_after_seconds({}) is None
    assert api.retry_after_seconds({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412470.0) == 10.0
    assert api.retry_after_seconds({"Retry-After": "soon"}) is None


def test_retryable_statuses() -> None:
    assert api.is_retryable_status(429, "POST") and api.is_retryable_status(503, "GET")
    assert api.is_retryable_status(500, "GET") and not api.is_retryable_status(500, "POST")
    assert not api.is_retryable_status(404, "GET")


def test_inference_body_and_validation() -> None:
    pair = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    body = api.inference_body(["q1", "q2"], "be brief", [pair], True, 0.9)
    assert body["inputs"][1]["chat_history"] == [pair]
    assert body["prompt"] == "be brief" and len(body["inputs"]) == 2
    assert body["inputs"][0]["semantic_cache_threshold"] == 0.9
    with pytest.raises(SestekValidationError, match="semantic_cache_threshold"):
        api.inference_body(["q"], semantic_cache_threshold=2)
    with pytest.raises(SestekValidationError, match=r"queries\[1\]"):
        api.inference_body(["q", " "])


def test_callback_rules() -> None:
    api.validate_callback(api.CallbackConfig("https://cb.example.com/hook", "https://id.example.com", "c", "s"))
    with pytest.raises(SestekValidationError, match="callback_address"):
        api.validate_callback(api.CallbackConfig("not a url"))
    with pytest.raises(SestekValidationError, match="callback_identity_address"):
        api.validate_callback(api.CallbackConfig("https://cb", None, "c", "s"))
    cfg = api.CallbackConfig("https://cb", "https://id", "c", "topsecret")
    assert "topsecret" not in repr(cfg)
    fields = api.training_form_fields("m", "p", ["https://d/1"], cfg)
    assert fields == [
        ("modelId", "m"),
        ("projectName", "p"),
        ("dataUrls", "https://d/1"),
        ("callbackAddress", "https://cb"),
        ("callbackIdentityAddress", "https://id"),
        ("callbackClientId", "c"),
        ("callbackClientSecret", "topsecret"),
    ]


# --- secrets a request carries (issue 17) -----------------------------------------------------------


def test_training_form_marks_the_callback_client_secret_as_secret() -> None:
    callback = api.CallbackConfig("https://cb.example", "https://id.example", "cb-client", "cb-secret-value")
    fields = api.training_form_fields("m", "p", ["https://data.example/x"], callback)
    assert api.secret_values(fields) == {"cb-secret-value"}
    assert api.secret_values(api.token_form("client", "client-secret-value")) == {"client-secret-value"}


def test_secret_values_finds_secret_fields_at_any_depth_of_a_json_body_and_skips_file_parts() -> None:
    body = {"inputs": [{"query": "q", "auth": {"client_secret": "deep-secret"}}], "client_id": "x"}
    assert api.secret_values(body) == {"deep-secret"}
    assert api.secret_values([("dataFiles", ("a.txt", object(), "text/plain")), ("modelId", "m")]) == frozenset()
    assert api.secret_values(None) == frozenset()


SECRET = 's3 cr3t/+&="x\\y'


@pytest.mark.parametrize(
    "shown",
    [SECRET, "s3%20cr3t%2F%2B%26%3D%22x%5Cy", "s3+cr3t%2F%2B%26%3D%22x%5Cy", 's3 cr3t/+&=\\"x\\\\y', SECRET.upper()],
    ids=["raw", "quoted", "quote-plus", "json-escaped", "upper-case"],
)
def test_redact_hides_a_secret_in_every_form_an_echo_may_quote_it(shown: str) -> None:
    assert api.redact(f"echo: {shown} end", [SECRET]) == "echo: *** end"


def test_without_secrets_copies_an_api_error_with_every_field_and_no_chain() -> None:
    secret = "callback-secret-1"
    try:
        try:
            raise ValueError(f"library error quoting {secret}")
        except ValueError:
            raise SestekApiError(
                method="POST",
                endpoint="https://api.example/train",
                status=400,
                message=f"bad {secret}",
                code=secret,
                details=secret,
                validation_errors=[(secret, [secret])],
                retry_after=3.0,
            ) from None
    except SestekApiError as exc:
        error = exc
    clean = api.without_secrets(error, [secret])
    assert type(clean) is SestekApiError and clean.status == 400 and clean.retry_after == 3.0
    assert secret not in repr(clean.args) + repr(vars(clean))
    assert clean.validation_errors == [("***", ["***"])]
    assert clean.__context__ is None and clean.__cause__ is None


def test_without_secrets_keeps_an_error_that_quotes_none() -> None:
    error = SestekAuthError("refused", status=401)
    assert api.without_secrets(error, ["not-there"]) is error


def test_status_texts_of_a_progress_answer_are_bounded() -> None:
    """A server's status words reach logs, XCom, trigger and asset events: never more than 100 characters each."""
    from airflow_provider_sestek.waiting import WaitSpec

    progress = api.parse_progress({"percent": 5, "trainingStatus": "Q" * 100_000, "inferenceStatus": "P" * 50_000})
    assert len(progress.raw_training_status) == 100 and len(progress.raw_inference_status or "") == 100
    event = WaitSpec("faq-bot", end_time=0.0).watcher().step(progress, now=1.0).outcome
    assert event is not None and len(str(event.to_event("faq-bot"))) < 1500
