"""
Everything the provider knows about the Sestek AI external training API, with no I/O.

This is the "sans-IO" core: URL building, request shapes, response parsing, the status enums, the
model-id rule and the mapping of HTTP errors to exceptions. The sync (requests) and async (aiohttp)
transports in :mod:`airflow_provider_sestek.hooks.sestek` only move bytes; operators, sensors and
triggers never build a URL themselves. Keeping this module pure makes every rule testable without
a server and keeps the two transports from drifting apart.
"""

from __future__ import annotations

import email.utils
import json
import math
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import SplitResult, quote, quote_plus, urljoin, urlsplit

from airflow_provider_sestek.exceptions import (
    SestekApiError,
    SestekAuthError,
    SestekConfigError,
    SestekModelNotPublished,
    SestekTrainingInProgress,
    SestekValidationError,
)

TOKEN_PATH = "/connect/token"
_TRAININGS = "/sestekai-api/api/external/generative-question-answering-trainings"
TRAIN_PATH = f"{_TRAININGS}/train"
PROGRESS_PATH = _TRAININGS + "/{model_id}/progress"
INFERENCE_PATH = "/published/{tenant}-{model_id}/v1/text/question-answering/inference"

TRAINING_SCOPE = "SestekAI_External"
INFERENCE_SCOPE = "AIModule"

MODEL_ID_MAX_LENGTH = 63
MODEL_ID_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
MODEL_ID_RULE = (
    f"lowercase letters a-z, digits and '-', not starting or ending with '-', at most {MODEL_ID_MAX_LENGTH} characters"
)

# Longest server message quoted in an exception: an HTML error page must not flood the task log.
_MAX_MESSAGE = 300
#: What an access token may contain to be sent in an ``Authorization: Bearer`` header: visible ASCII
#: (RFC 6750's b64token is stricter; real servers send JWTs and opaque tokens within this).
BEARER_TOKEN_PATTERN = re.compile(r"[\x21-\x7e]+")
# The in-progress rejection is documented only by its text; match it whatever the status code.
_IN_PROGRESS_TEXT = "training is still in progress for the same model id"


class TrainingStatus(StrEnum):
    """``trainingStatus`` values in lifecycle order; ``UNKNOWN`` stands for any value not documented."""

    INITIALIZED = "Initialized"
    PENDING_TRAINING = "PendingTraining"
    DATASET_UPLOADING = "DatasetUploading"
    DATA_PROCESSING = "DataProcessing"
    TRAINING_STARTED = "TrainingStarted"
    TRAINING = "Training"
    TRAINED = "Trained"
    MODEL_UPLOADING = "ModelUploading"
    COMPLETED = "Completed"
    FAILED = "Failed"
    UNKNOWN = "Unknown"

    @classmethod
    def parse(cls, value: object) -> TrainingStatus:
        """
        Map a server value to a status, ignoring case (the docs write both ``Completed`` and ``completed``).

        :param value: the raw ``trainingStatus``.
        """
        if isinstance(value, str):
            return _TRAINING_BY_LOWER.get(value.strip().lower(), cls.UNKNOWN)
        return cls.UNKNOWN

    @property
    def is_terminal(self) -> bool:
        """``True`` for ``Completed`` and ``Failed``."""
        return self in (TrainingStatus.COMPLETED, TrainingStatus.FAILED)


_TRAINING_BY_LOWER = {s.value.lower(): s for s in TrainingStatus if s is not TrainingStatus.UNKNOWN}


class InferenceStatus(StrEnum):
    """``inferenceStatus`` values; ``None`` on the wire (training not done) is kept as ``None``."""

    PENDING = "Pending"
    RUNNING = "Running"
    UNKNOWN = "Unknown"

    @classmethod
    def parse(cls, value: object) -> InferenceStatus | None:
        """
        Map a server value to a status; ``None`` and empty stay ``None``.

        :param value: the raw ``inferenceStatus``.
        """
        if value is None or value == "":
            return None
        if isinstance(value, str):
            for status in (cls.PENDING, cls.RUNNING):
                if value.strip().lower() == status.value.lower():
                    return status
        return cls.UNKNOWN


@dataclass(frozen=True)
class TrainingProgress:
    """
    One answer of the progress endpoint.

    :param percent: 0-100.
    :param training_status: parsed ``trainingStatus``.
    :param inference_status: parsed ``inferenceStatus`` (``None`` until the training is done).
    :param raw_training_status: the value as the server sent it (kept for logs when it is unknown).
    :param raw_inference_status: the value as the server sent it.
    """

    percent: int
    training_status: TrainingStatus
    inference_status: InferenceStatus | None
    raw_training_status: str = ""
    raw_inference_status: str | None = None

    @property
    def is_published(self) -> bool:
        """The model can be queried: trained AND its inference pod is running."""
        return self.training_status is TrainingStatus.COMPLETED and self.inference_status is InferenceStatus.RUNNING

    @property
    def is_active(self) -> bool:
        """The training is not in a terminal state (an unknown status counts as still running)."""
        return not self.training_status.is_terminal

    def is_done(self, wait_for_inference: bool) -> bool:
        """
        Whether a waiter may stop polling with success.

        :param wait_for_inference: also require the published endpoint to be running.
        """
        if self.training_status is not TrainingStatus.COMPLETED:
            return False
        return self.is_published if wait_for_inference else True

    def describe(self) -> str:
        """Short human text, e.g. ``Training 42%`` or ``Completed 100% (inference Pending)``."""
        status = self.raw_training_status or self.training_status.value
        text = f"{status} {self.percent}%"
        if self.training_status is TrainingStatus.COMPLETED or self.inference_status is not None:
            text += f" (inference {self.raw_inference_status or 'not started'})"
        return text

    def to_dict(self) -> dict[str, Any]:
        """A small JSON-safe dict, used for XCom and trigger events."""
        return {
            "percent": self.percent,
            "training_status": self.raw_training_status or self.training_status.value,
            "inference_status": self.raw_inference_status,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingProgress:
        """
        Rebuild from :meth:`to_dict` output (trigger events).

        :param data: the dict.
        """
        return parse_progress(
            {
                "percent": data.get("percent"),
                "trainingStatus": data.get("training_status"),
                "inferenceStatus": data.get("inference_status"),
            }
        )


@dataclass(frozen=True)
class Token:
    """
    An access token and its absolute expiry (epoch seconds).

    :param access_token: the bearer token.
    :param expires_at: wall-clock expiry.
    :param scope: the scope the server granted.
    :param lifetime: the ``expires_in`` it was issued with (the refresh margin is a share of it).
    """

    access_token: str = field(repr=False)
    expires_at: float
    scope: str | None = None
    lifetime: float = 3600.0

    def fresh(self, now: float | None = None) -> bool:
        """
        Whether the token is still safe to use: a margin before expiry covers clock skew and slow calls.

        :param now: the current time (defaults to :func:`time.time`).
        """
        now = time.time() if now is None else now
        return self.expires_at - now > refresh_margin(self.lifetime)


def refresh_margin(expires_in: float) -> float:
    """
    Seconds before expiry at which a token is refreshed: 10% of its lifetime, at most 5 minutes.

    :param expires_in: lifetime of the token in seconds.
    """
    return min(300.0, max(expires_in, 0.0) * 0.1)


@dataclass(frozen=True)
class CallbackConfig:
    """
    Where Sestek reports "train failed" / "train success".

    :param address: the callback URL.
    :param identity_address: token service Sestek authenticates against.
    :param client_id: client id for that token service.
    :param client_secret: client secret for that token service (never shown in ``repr``).
    """

    address: str
    identity_address: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)


# --- URLs -----------------------------------------------------------------------------------------


def normalize_base_url(url: str | None, field_name: str = "host") -> str:
    """
    Validate a base URL from the connection; a bare host name means https.

    :param url: the value as configured.
    :param field_name: connection field named in the error.
    """
    if url is None or not str(url).strip():
        raise SestekConfigError(field_name, "is empty; set it to the base URL, e.g. https://ai.example.com")
    url = str(url).strip()
    if "://" not in url:
        url = "https://" + url
    shown = repr(redact_url(url))
    parts = _split(url)
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise SestekConfigError(field_name, f"{shown} is not an http(s) URL with a host name")
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in url):
        raise SestekConfigError(field_name, f"{shown} contains white space or control characters")
    if not _valid_hostname(parts.hostname):
        raise SestekConfigError(
            field_name, f"{shown} does not have a valid host name (labels of 1-63 characters, 253 in all)"
        )
    if parts.username is not None or parts.password is not None:
        # requests would send it as Basic auth to every address, redirects included.
        raise SestekConfigError(
            field_name, f"{shown} must not contain user:password@; put the client id and secret in login and password"
        )
    if parts.query or parts.fragment:
        raise SestekConfigError(field_name, f"{shown} must not have a query or fragment")
    return url.rstrip("/")


def _split(url: str) -> SplitResult | None:
    """``urlsplit`` and its port check, or ``None`` for what they refuse (``https://[::1``, a port of ``x``)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsed lazily; a bad one raises here
    except ValueError:
        return None
    return parts


def _valid_hostname(hostname: str) -> bool:
    if ":" in hostname:  # an IPv6 literal; urlsplit has checked its brackets
        return True
    try:
        ascii_name = hostname.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    labels = ascii_name.rstrip(".").split(".")
    return len(ascii_name) <= 253 and all(0 < len(label) <= 63 for label in labels)


def origin(url: str) -> str:
    """
    ``scheme://host[:port]`` of a URL, without credentials, path or query: how messages name where a
    request went. What cannot be parsed is not echoed.

    :param url: an absolute URL.
    """
    parts = _split(url)
    if parts is None:
        return "an unparsable URL"
    if not parts.hostname:
        return f"{parts.scheme}:" if parts.scheme else "an unparsable URL"
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def redact_url(url: str) -> str:
    """
    A URL fit for messages, logs and lineage: any ``user:password@`` is removed, whatever else is wrong
    with the URL (an unparsable one is cut at its last ``@`` before the path).

    :param url: the URL as given.
    """
    text = str(url)
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    netloc_end = len(rest)
    for stop in "/?#":
        index = rest.find(stop)
        if index != -1:
            netloc_end = min(netloc_end, index)
    netloc = rest[:netloc_end]
    if "@" not in netloc:
        return text
    netloc = netloc.rsplit("@", 1)[1]
    return f"{scheme}{sep}{netloc}{rest[netloc_end:]}"


def token_url(identity_url: str) -> str:
    """
    The token endpoint: ``{identity_url}/connect/token`` unless the URL already names it.

    :param identity_url: normalized identity base URL.
    """
    return identity_url if identity_url.endswith(TOKEN_PATH) else identity_url + TOKEN_PATH


def train_url(base_url: str) -> str:
    """:param base_url: normalized API base URL."""
    return base_url + TRAIN_PATH


def progress_url(base_url: str, model_id: str) -> str:
    """
    :param base_url: normalized API base URL.
    :param model_id: a valid model id.
    """
    return base_url + PROGRESS_PATH.format(model_id=quote(model_id, safe=""))


def inference_url(base_url: str, tenant: str, model_id: str) -> str:
    """
    ``{tenant}-{model_id}`` is ONE path segment.

    :param base_url: normalized API base URL.
    :param tenant: the tenant name.
    :param model_id: a valid model id.
    """
    return base_url + INFERENCE_PATH.format(tenant=quote(tenant, safe=""), model_id=quote(model_id, safe=""))


# --- validation -----------------------------------------------------------------------------------


def validate_model_id(model_id: object, field_name: str = "model_id") -> str:
    """
    Check the documented model-id rule.

    :param model_id: the value to check.
    :param field_name: parameter name used in the error.
    """
    if not isinstance(model_id, str):
        raise SestekValidationError(field_name, model_id, f"must be a string ({MODEL_ID_RULE})")
    if not model_id:
        raise SestekValidationError(field_name, model_id, f"must not be empty ({MODEL_ID_RULE})")
    if len(model_id) > MODEL_ID_MAX_LENGTH:
        raise SestekValidationError(
            field_name, model_id, f"is {len(model_id)} characters long; at most {MODEL_ID_MAX_LENGTH} are allowed"
        )
    if not MODEL_ID_PATTERN.fullmatch(model_id):
        raise SestekValidationError(field_name, model_id, f"must match {MODEL_ID_RULE}")
    return model_id


def validate_http_url(value: object, field_name: str) -> str:
    """
    Check that a value is an absolute http(s) URL with a host.

    :param value: the value to check.
    :param field_name: parameter name used in the error.
    """
    if not isinstance(value, str) or not value.strip():
        raise SestekValidationError(field_name, value, "must be a non-empty http(s) URL")
    parts = _split(value.strip())
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise SestekValidationError(
            field_name, redact_url(value), "must be an absolute http:// or https:// URL with a host"
        )
    return value.strip()


def validate_project_name(project_name: object) -> str:
    """:param project_name: the value to check."""
    if not isinstance(project_name, str) or not project_name.strip():
        raise SestekValidationError("project_name", project_name, "must be a non-empty string")
    return project_name


def validate_callback(callback: CallbackConfig | None) -> None:
    """
    Check the callback URLs; credentials must come in pairs.

    :param callback: the callback settings or ``None``.
    """
    if callback is None:
        return
    validate_http_url(callback.address, "callback_address")
    if callback.identity_address is not None:
        validate_http_url(callback.identity_address, "callback_identity_address")
    if bool(callback.client_id) != bool(callback.client_secret):
        raise SestekValidationError(
            "callback_client_id", callback.client_id, "callback client id and secret must be given together"
        )
    if callback.client_id and not callback.identity_address:
        raise SestekValidationError(
            "callback_identity_address", None, "is required when callback client credentials are given"
        )


def as_list(value: Any, field_name: str = "value") -> list[Any]:
    """
    Accept one string (or path) or a list of them: what templated operator arguments give.

    :param value: ``None``, a string or ``os.PathLike``, or a list (any iterable but a mapping) of them.
    :param field_name: parameter name used in the error.
    """
    if value is None:
        return []
    if isinstance(value, bytes):
        try:
            return [value.decode()]
        except UnicodeDecodeError:
            raise SestekValidationError(field_name, None, "bytes that are not UTF-8 text") from None
    if isinstance(value, str | os.PathLike):
        return [value]
    # A dict would give its keys; anything else iterable (an XCom sequence of a mapped task) is a list.
    if isinstance(value, Iterable) and not isinstance(value, Mapping):
        return list(value)
    raise SestekValidationError(field_name, value, "must be a string or a list of strings")


def training_form_fields(
    model_id: str,
    project_name: str,
    data_urls: Sequence[str] = (),
    callback: CallbackConfig | None = None,
) -> list[tuple[str, str]]:
    """
    The non-file multipart fields of a train request, in order (plain values: the doc's escaped quotes
    are a Postman artefact).

    :param model_id: a valid model id.
    :param project_name: project name.
    :param data_urls: training data URLs, one ``dataUrls`` field each.
    :param callback: optional callback settings.
    """
    fields = [("modelId", model_id), ("projectName", project_name)]
    fields += [("dataUrls", url) for url in data_urls]
    if callback is not None:
        fields.append(("callbackAddress", callback.address))
        if callback.identity_address:
            fields.append(("callbackIdentityAddress", callback.identity_address))
        if callback.client_id:
            fields.append(("callbackClientId", callback.client_id))
        if callback.client_secret:
            fields.append(("callbackClientSecret", callback.client_secret))
    return fields


def token_form(client_id: str, client_secret: str) -> dict[str, str]:
    """
    Form body of a client-credentials token request (no scope is sent, as documented).

    :param client_id: OAuth2 client id.
    :param client_secret: OAuth2 client secret.
    """
    return {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}


def inference_body(
    queries: Sequence[str],
    prompt: str | None = None,
    chat_history: Sequence[Any] | None = None,
    use_semantic_cache: bool | None = None,
    semantic_cache_threshold: float | None = None,
) -> dict[str, Any]:
    """
    JSON body of an inference request: one ``inputs`` item per query.

    :param queries: the questions.
    :param prompt: optional instructions.
    :param chat_history: list of ``[user, assistant]`` message pairs, shared by every query (a JSON string,
        as a rendered template gives, is parsed first); see :func:`chat_history_pairs`.
    :param use_semantic_cache: let the server answer from its semantic cache.
    :param semantic_cache_threshold: similarity needed for a cache hit (0-1).
    """
    history = chat_history_pairs(chat_history)
    if not queries:
        raise SestekValidationError("queries", list(queries), "at least one question is required")
    for i, query in enumerate(queries):
        if not isinstance(query, str) or not query.strip():
            raise SestekValidationError(f"queries[{i}]", query, "must be a non-empty string")
    if semantic_cache_threshold is not None and not 0.0 <= float(semantic_cache_threshold) <= 1.0:
        raise SestekValidationError("semantic_cache_threshold", semantic_cache_threshold, "must be between 0 and 1")
    inputs = []
    for query in queries:
        item: dict[str, Any] = {"query": query, "chat_history": history}
        if use_semantic_cache is not None:
            item["use_semantic_cache"] = bool(use_semantic_cache)
        if semantic_cache_threshold is not None:
            item["semantic_cache_threshold"] = float(semantic_cache_threshold)
        inputs.append(item)
    body: dict[str, Any] = {"inputs": inputs}
    if prompt:
        body["prompt"] = prompt
    return body


_PAIR_RULE = 'must be a [user, assistant] pair of {"role", "content"} messages'
_HISTORY_RULE = 'must be a list of [user, assistant] pairs of {"role", "content"} messages'


def chat_history_pairs(chat_history: Any) -> list[list[dict[str, str]]]:
    """
    Check ``chat_history`` and return it as the API wants it: a list of ``[user, assistant]`` pairs, each
    message a ``{"role", "content"}`` dict with the role ``user`` first and ``assistant`` second.

    A string is parsed as JSON first (a templated value is rendered to a string). Anything else (a flat list
    of messages, a dict, a pair of three) raises instead of being sent garbled.

    :param chat_history: ``None``, a list of pairs, or its JSON text.
    :raises SestekValidationError: naming ``chat_history`` (or the offending item) and the rule.
    """
    if chat_history is None:
        return []
    if isinstance(chat_history, str):
        if not chat_history.strip():
            return []
        try:
            chat_history = json.loads(chat_history)
        except ValueError:
            raise SestekValidationError(
                "chat_history", None, f"given as a string it must be JSON text; the value {_HISTORY_RULE}"
            ) from None
    if isinstance(chat_history, str | bytes | Mapping) or not isinstance(chat_history, Sequence):
        raise SestekValidationError("chat_history", None, f"{_HISTORY_RULE}, not a {type(chat_history).__name__}")
    pairs: list[list[dict[str, str]]] = []
    for i, pair in enumerate(chat_history):
        if isinstance(pair, str | bytes | Mapping) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise SestekValidationError(f"chat_history[{i}]", None, f"{_PAIR_RULE}, not {type(pair).__name__}")
        messages = []
        for j, (message, role) in enumerate(zip(pair, ("user", "assistant"), strict=True)):
            if (
                not isinstance(message, Mapping)
                or message.get("role") != role
                or not isinstance(message.get("content"), str)
            ):
                raise SestekValidationError(
                    f"chat_history[{i}][{j}]", None, f'must be {{"role": "{role}", "content": "<text>"}}'
                )
            messages.append({"role": role, "content": message["content"]})
        pairs.append(messages)
    return pairs


# --- responses ------------------------------------------------------------------------------------


def _decode_json(method: str, endpoint: str, status: int, body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise SestekApiError(
            method=method, endpoint=endpoint, status=status, message=f"response is not JSON: {_snippet(body)}"
        ) from None


def _expect_object(method: str, endpoint: str, status: int, data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise SestekApiError(
            method=method,
            endpoint=endpoint,
            status=status,
            message=f"expected a JSON object ({what}), got {data!r:.80}",
        )
    return data


def parse_token(status: int, body: bytes, endpoint: str, now: float | None = None) -> Token:
    """
    Parse a 200 token response.

    :param status: HTTP status (200).
    :param body: raw body.
    :param endpoint: token URL, for messages.
    :param now: when the token request was sent (defaults to now): the server issued the token after
        that, so the expiry computed from it is never later than the server's, however slow the answer.
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        data = None
    if not isinstance(data, dict):
        # Unreadable (cut off, garbled by a proxy): worth asking again like any such answer. No snippet of
        # the body: whatever it holds may be a credential.
        raise SestekApiError(
            method="POST", endpoint=endpoint, status=status, message="token response is not a JSON object"
        )
    token = data.get("access_token")
    if not isinstance(token, str) or not token:
        raise SestekAuthError(f"Token response from {endpoint} has no access_token", status=status)
    if not BEARER_TOKEN_PATTERN.fullmatch(token):
        # CR/LF would split the Authorization header, non-Latin-1 cannot be encoded in it, and a message
        # quoting it would show an escaped form the log masker does not recognise: refuse, never echo.
        raise SestekAuthError(
            f"Token response from {endpoint} has an access_token of {len(token)} characters that cannot be sent "
            "as a bearer token (only visible ASCII characters can); check the connection's identity URL",
            status=status,
        )
    try:
        expires_in = float(data.get("expires_in", 3600))
    except (TypeError, ValueError, OverflowError):
        expires_in = 3600.0
    if not math.isfinite(expires_in):
        expires_in = 3600.0
    expires_in = max(expires_in, 0.0)
    now = time.time() if now is None else now
    scope = data.get("scope")
    return Token(
        access_token=token,
        expires_at=now + expires_in,
        scope=scope if isinstance(scope, str) else None,
        lifetime=expires_in,
    )


def parse_experiment(status: int, body: bytes, endpoint: str) -> dict[str, Any]:
    """
    Parse the 200 answer of the train endpoint (the ABP "experiment" object).

    :param status: HTTP status.
    :param body: raw body.
    :param endpoint: URL, for messages.
    """
    return _expect_object("POST", endpoint, status, _decode_json("POST", endpoint, status, body), "experiment")


def _as_percent(value: Any) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return 0
    return max(0, min(100, int(number))) if math.isfinite(number) else 0


def parse_progress(data: Mapping[str, Any]) -> TrainingProgress:
    """
    Parse a progress object; tolerant of case and of unknown values.

    :param data: the decoded JSON object.
    """
    raw_training = data.get("trainingStatus")
    raw_inference = data.get("inferenceStatus")
    return TrainingProgress(
        percent=_as_percent(data.get("percent")),
        training_status=TrainingStatus.parse(raw_training),
        inference_status=InferenceStatus.parse(raw_inference),
        raw_training_status=str(raw_training) if raw_training is not None else "",
        raw_inference_status=str(raw_inference) if raw_inference not in (None, "") else None,
    )


def parse_progress_response(status: int, body: bytes, endpoint: str) -> TrainingProgress:
    """
    Parse a 200 progress response.

    :param status: HTTP status.
    :param body: raw body.
    :param endpoint: URL, for messages.
    """
    data = _expect_object("GET", endpoint, status, _decode_json("GET", endpoint, status, body), "progress")
    if "trainingStatus" not in data:
        raise SestekApiError(
            method="GET",
            endpoint=endpoint,
            status=status,
            message=f"progress response lacks trainingStatus: {data!r:.120}",
        )
    percent = data.get("percent")
    if isinstance(percent, float) and not math.isfinite(percent):
        # JSON has no such numbers; Python reads Infinity, NaN and 1e999 all the same. Unreadable, not 0%.
        raise SestekApiError(
            method="GET",
            endpoint=endpoint,
            status=status,
            message=f"progress percent is not a finite number: {percent}",
        )
    return parse_progress(data)


def parse_inference(status: int, body: bytes, endpoint: str) -> list[dict[str, Any]]:
    """
    Parse an inference response: one result per input.

    :param status: HTTP status.
    :param body: raw body.
    :param endpoint: URL, for messages.
    """
    data = _expect_object("POST", endpoint, status, _decode_json("POST", endpoint, status, body), "inference")
    result = data.get("result")
    if not isinstance(result, list):
        raise SestekApiError(
            method="POST",
            endpoint=endpoint,
            status=status,
            message=f"inference response lacks a result list: {data!r:.120}",
        )
    return [r if isinstance(r, dict) else {"answer": r} for r in result]


def check_inference_results(questions: int, results: Sequence[Any], endpoint: str) -> None:
    """
    The inference API answers one result per input, in order: anything else cannot be matched to the
    questions and is an error (never truncated or padded).

    :param questions: how many questions were sent.
    :param results: the parsed results.
    :param endpoint: URL, for the message.
    :raises SestekApiError: naming both counts.
    """
    if len(results) != questions:
        raise SestekApiError(
            method="POST",
            endpoint=endpoint,
            status=200,
            message=(
                f"inference answered {len(results)} result(s) for {questions} question(s); "
                "expected exactly one result per question"
            ),
        )


# --- errors ---------------------------------------------------------------------------------------


def _snippet(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    if "<" in text and ">" in text:
        # An HTML error page: keep its title or visible text, not the markup.
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S)
        text = title.group(1) if title else re.sub(r"<[^>]+>", " ", text)
    text = " ".join(text.split())
    if not text:
        return "(empty body)"
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """
    Parse ``Retry-After`` (seconds or an HTTP date).

    :param headers: response headers (case-insensitive mapping).
    :param now: current time for the date form.
    """
    value = headers.get("Retry-After") or headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def redact(text: str, secrets: Iterable[str]) -> str:
    """
    ``text`` with every secret replaced by ``***``, as it is and in its URL-encoded forms (a server that
    echoes the rejected form body or request headers in its error page must not put them in our messages).

    :param text: the text.
    :param secrets: the secrets (client secrets, the bearer token sent).
    """
    for secret in secrets:
        if len(secret) < 4:
            continue
        for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
            text = text.replace(form, "***")
    return text


def without_secrets(exc: Exception, secrets: Sequence[str]) -> Exception:
    """
    ``exc``, or a copy of it whose texts quote none of ``secrets`` (see :func:`redact`).

    :param exc: an error built from a server's answer.
    :param secrets: the secrets.
    """
    text = str(exc)
    if redact(text, secrets) == text:
        return exc
    if isinstance(exc, SestekApiError):
        clean = type(exc)(
            method=exc.method,
            endpoint=exc.endpoint,
            status=exc.status,
            message=redact(exc.message, secrets),
            code=redact(exc.code, secrets) if exc.code else None,
            details=redact(exc.details, secrets) if exc.details else None,
            validation_errors=[(redact(m, secrets), members) for m, members in exc.validation_errors],
            retry_after=exc.retry_after,
        )
        return clean
    if isinstance(exc, SestekAuthError):
        return SestekAuthError(redact(text, secrets), status=exc.status)
    return exc


def error_from_response(
    method: str, endpoint: str, status: int, headers: Mapping[str, str], body: bytes, *, inference: bool = False
) -> Exception:
    """
    Map an error response to the right exception (never raises; returns it).

    Handles the ABP envelope, OpenIddict token errors (RFC 6749 shape), empty 401/403 bodies, HTML error
    pages and anything else.

    :param method: HTTP method.
    :param endpoint: URL of the request, for the message.
    :param status: HTTP status code.
    :param headers: response headers.
    :param body: raw body.
    :param inference: the request was an inference call (404/503 mean "not published").
    """
    retry_after = retry_after_seconds(headers)
    message = _snippet(body)
    code: str | None = None
    details: str | None = None
    validation: list[tuple[str, list[str]]] = []
    try:
        data = json.loads(body) if body.strip() else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):  # ABP envelope
            message = str(error.get("message") or message)
            code = str(error["code"]) if error.get("code") else None
            details = str(error["details"]) if error.get("details") else None
            for item in error.get("validationErrors") or []:
                if isinstance(item, dict):
                    members = [str(m) for m in item.get("members") or []]
                    validation.append((str(item.get("message", "")), members))
        elif isinstance(error, str):  # OpenIddict / RFC 6749
            code = error
            message = str(data.get("error_description") or error)
    if endpoint.endswith(TOKEN_PATH):
        hint = " Check the Client ID and Client Secret." if status in (400, 401) else ""
        if status in (400, 401, 403):
            return SestekAuthError(
                f"Token request to {endpoint} was refused: HTTP {status} "
                f"{code + ' ' if code else ''}{message.rstrip('.')}.{hint}",
                status=status,
            )
        if status in (404, 405):
            # Not a model that is missing: the token service is not at this address (never "no such model").
            return SestekAuthError(
                f"Token request to {endpoint} failed: HTTP {status} {message.rstrip('.')}. Check the connection's "
                "identity URL (extra 'identity_url', or the host when it is not set)",
                status=status,
            )
    elif status == 401:
        return SestekAuthError(
            f"Sestek API {method} {endpoint} answered HTTP 401: the access token was not accepted (missing or expired)",
            status=status,
        )
    elif status == 403 and data is None and not body.strip():
        scope = INFERENCE_SCOPE if inference else TRAINING_SCOPE
        return SestekAuthError(
            f"Sestek API {method} {endpoint} answered HTTP 403: the token lacks the {scope} scope "
            f"(check that the {'inference ' if inference else ''}client id and secret are the right ones)",
            status=status,
        )
    kwargs: dict[str, Any] = {
        "method": method,
        "endpoint": endpoint,
        "status": status,
        "message": message,
        "code": code,
        "details": details,
        "validation_errors": validation,
        "retry_after": retry_after,
    }
    if _IN_PROGRESS_TEXT in message.lower():
        return SestekTrainingInProgress(**kwargs)
    if inference and status in (404, 503):
        return SestekModelNotPublished(**kwargs)
    return SestekApiError(**kwargs)


def redirect_error(method: str, endpoint: str, status: int, location: str | None) -> SestekApiError:
    """
    The error for a 3xx answer: no Sestek endpoint redirects, and following one could carry the client
    secret or a token to another host, so it is reported, never followed.

    :param method: HTTP method.
    :param endpoint: URL of the request.
    :param status: the 3xx status.
    :param location: the ``Location`` header, if any (shown as an origin only: no path, query or credentials).
    """
    try:
        target = origin(urljoin(endpoint, location.strip())) if location else None
    except ValueError:
        target = "an unparsable URL"
    if target is None:
        where = "without a Location"
    else:
        where = f"to {target}" if target != origin(endpoint) else f"elsewhere on {target}"
    return SestekApiError(
        method=method,
        endpoint=endpoint,
        status=status,
        message=f"redirected {where}; redirects are not followed (a proxy or a wrong host or identity_url "
        "in the connection?)",
    )


def too_large_error(method: str, endpoint: str, status: int, limit: int) -> SestekApiError:
    """
    The error for an answer larger than the client reads.

    :param method: HTTP method.
    :param endpoint: URL of the request.
    :param status: HTTP status of the answer.
    :param limit: bytes read at most.
    """
    return SestekApiError(
        method=method,
        endpoint=endpoint,
        status=status,
        message=f"response body is larger than {limit:,} bytes (max_response_bytes); not read further. "
        "Sestek answers are a few KiB: check that the connection points at the Sestek API",
    )


def is_retryable_status(status: int, method: str) -> bool:
    """
    Transient statuses worth another try: 429 and gateway errors always, 500 only for an idempotent GET.

    A POST answered 502/503/504 may still have been processed behind the gateway; the train call is
    not retried on those (see :meth:`SestekHook.submit_training`), which is decided by the caller.

    :param status: HTTP status.
    :param method: HTTP method.
    """
    if status in (429, 502, 503, 504):
        return True
    return status == 500 and method.upper() == "GET"
