"""
Plain data types of the emulator: faults, recorded requests, training snapshots and defaults.

This module is shared by the in-process emulator, its HTTP admin client and the CLI, so it must stay
free of anything heavier than the standard library.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from types import MappingProxyType
from typing import Any

#: Scope of tokens issued to training clients (what training and progress calls require).
SCOPE_TRAINING = "SestekAI_External"
#: Scope of tokens issued to inference clients (what ``/published/...`` calls require).
SCOPE_INFERENCE = "AIModule"

DEFAULT_TENANT = "acme"
#: Training clients registered when none are given: client id -> secret.
DEFAULT_CLIENTS: Mapping[str, str] = MappingProxyType({"train-client": "train-secret"})
#: Inference clients registered when none are given: client id -> secret.
DEFAULT_INFERENCE_CLIENTS: Mapping[str, str] = MappingProxyType({"inference-client": "inference-secret"})
DEFAULT_TOKEN_LIFETIME = 86400
DEFAULT_TOKEN_PREFIX = "emu-"

#: The documented training status sequence of a successful training, in order.
TRAINING_STATUSES: tuple[str, ...] = (
    "Initialized",
    "PendingTraining",
    "DatasetUploading",
    "DataProcessing",
    "TrainingStarted",
    "Training",
    "Trained",
    "ModelUploading",
    "Completed",
)
FAILED_STATUS = "Failed"

FAULT_ENDPOINTS: tuple[str, ...] = ("token", "train", "progress", "inference", "any")
FAULT_KINDS: tuple[str, ...] = (
    "status",
    "drop",
    "delay",
    "malformed",
    "truncated",
    "redirect",
    "drip",
    "odd_token",
    "non_finite",
    "raw",
)
FAULT_BODIES: tuple[str, ...] = ("abp", "html", "empty", "openiddict")
FAULT_WHEN: tuple[str, ...] = ("before", "after")
FAULT_REDIRECT_STATUSES: tuple[int, ...] = (301, 302, 303, 307, 308)
#: The literals a ``non_finite`` fault may write as ``percent``: what JSON parsers disagree about.
FAULT_NON_FINITE: tuple[str, ...] = ("1e999", "Infinity", "-Infinity", "NaN")
#: The ``status`` a fault gets when none is given, per kind (503 for every kind not listed).
FAULT_DEFAULT_STATUS: Mapping[str, int] = MappingProxyType({"redirect": 307, "raw": 200})
#: The ``access_token`` the foreign listener (the target of ``redirect`` faults) hands out.
FOREIGN_TOKEN = "foreign-token"


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _encodable(value: object) -> bool:
    # Every text of a fault is sent as UTF-8: a lone surrogate cannot be, and would turn into a 500.
    if not isinstance(value, str):
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _header_safe(value: str) -> bool:
    # The value goes into a response header verbatim: a CR or LF would forge further headers.
    return not any(ord(char) < 32 or ord(char) == 127 for char in value)


@dataclass
class Fault:
    """
    A misbehaviour the emulator delivers to the next matching request(s).

    :param endpoint: which API the fault applies to: ``token``, ``train``, ``progress``, ``inference``
        or ``any``.
    :param kind: ``status`` (answer with ``status`` and a ``body`` of the given style), ``drop`` (close
        the socket without answering), ``delay`` (wait ``delay`` seconds, then answer normally),
        ``malformed`` (200 with a body that is not JSON), ``truncated`` (200 whose ``Content-Length``
        promises more than is sent before the connection closes), ``redirect`` (answer ``status`` with
        a ``Location`` header: ``location``, or by default the same path and query on a second, foreign
        listener that records what reaches it, see :attr:`SestekEmulator.foreign_requests`), ``drip``
        (the normal response, its body sent one byte every ``delay`` seconds; with ``when="before"``
        the request is handled normally too), ``odd_token`` (token endpoint only: a 200 token response
        whose ``access_token`` is ``value``, which the API then accepts as a bearer token),
        ``non_finite`` (progress endpoint only: the progress answer with ``percent`` written as the
        JSON-invalid literal ``value``) or ``raw`` (answer ``status`` with the body ``raw_body``, sent
        as UTF-8, and ``content_type``).
    :param status: HTTP status of a ``status``, ``redirect`` or ``raw`` fault; ``None`` picks the kind's
        default: 307 for ``redirect`` (which allows only 301, 302, 303, 307 and 308), 200 for ``raw``,
        503 otherwise.
    :param body: body style of a ``status`` fault: ``abp`` (ABP error envelope), ``html`` (a gateway
        error page), ``empty`` or ``openiddict`` (RFC 6749 error object).
    :param retry_after: value of a ``Retry-After`` header on a ``status``, ``redirect`` or ``raw`` fault
        (seconds or an HTTP date).
    :param delay: seconds a ``delay`` fault waits; seconds between two body bytes of a ``drip`` fault.
    :param when: ``before``: the fault replaces the handling, nothing is created; ``after``: the request
        is handled (a training is created, a poll advances the lifecycle) and the fault is delivered
        instead of the real response.
    :param count: how many matching requests the fault applies to; ``None`` means every one.
    :param model_id: only requests about this model id match.
    :param message: error message of an ``abp`` or ``openiddict`` body instead of the default one.
    :param location: ``redirect`` only: the ``Location`` to send instead of the foreign listener's URL
        (any text without control characters, sent verbatim).
    :param endless: ``drip`` only: send the head without ``Content-Length`` and with
        ``Connection: close``, then one space every ``delay`` seconds until the client disconnects or
        the emulator stops.
    :param value: ``odd_token``: the ``access_token`` to hand out (any string: it is JSON-escaped);
        ``non_finite``: the literal written as ``percent``, one of ``1e999``, ``Infinity``,
        ``-Infinity`` and ``NaN``.
    :param raw_body: ``raw`` only: the exact response body.
    :param content_type: ``Content-Type`` of a ``raw`` fault; an empty string sends none.
    """

    endpoint: str = "any"
    kind: str = "status"
    status: int | None = None
    body: str = "abp"
    retry_after: float | str | None = None
    delay: float = 0.0
    when: str = "before"
    count: int | None = 1
    model_id: str | None = None
    message: str | None = None
    location: str | None = None
    endless: bool = False
    value: str | None = None
    raw_body: str | None = None
    content_type: str = "application/json"

    def __post_init__(self) -> None:
        _require(self.endpoint in FAULT_ENDPOINTS, f"fault endpoint must be one of {FAULT_ENDPOINTS}")
        _require(self.kind in FAULT_KINDS, f"fault kind must be one of {FAULT_KINDS}")
        if self.status is None:
            # Resolved here, so the dict form and every reader see the status actually sent.
            self.status = FAULT_DEFAULT_STATUS.get(self.kind, 503)
        _require(self.body in FAULT_BODIES, f"fault body must be one of {FAULT_BODIES}")
        _require(self.when in FAULT_WHEN, f"fault 'when' must be one of {FAULT_WHEN}")
        _require(
            isinstance(self.status, int) and not isinstance(self.status, bool) and 200 <= self.status <= 599,
            # A 1xx is an interim response: sent as the answer, the client waits for a final one forever.
            "fault status must be a final HTTP status code (200-599)",
        )
        _require(
            self.count is None or (isinstance(self.count, int) and self.count >= 1), "fault count must be >= 1 or None"
        )
        _require(isinstance(self.delay, int | float) and self.delay >= 0, "fault delay must be >= 0")
        _require(self.kind != "delay" or self.delay > 0, "a 'delay' fault needs delay > 0")
        _require(
            self.retry_after is None or isinstance(self.retry_after, int | float | str),
            "fault retry_after must be a number of seconds or an HTTP date",
        )
        _require(
            not isinstance(self.retry_after, str) or _header_safe(self.retry_after),
            "fault retry_after must not contain control characters",
        )
        self._check_new_kinds()

    def _check_new_kinds(self) -> None:
        kind = self.kind
        for name in ("message", "location", "retry_after", "value", "raw_body", "content_type"):
            _require(_encodable(getattr(self, name)), f"fault {name} must be encodable as UTF-8")
        _require(
            kind != "redirect" or self.status in FAULT_REDIRECT_STATUSES,
            f"a 'redirect' fault needs a status of {FAULT_REDIRECT_STATUSES}",
        )
        _require(self.location is None or kind == "redirect", "only a 'redirect' fault takes a location")
        _require(
            self.location is None or (isinstance(self.location, str) and bool(self.location)),
            "fault location must be a non-empty string",
        )
        _require(
            self.location is None or _header_safe(self.location), "fault location must not contain control characters"
        )
        _require(isinstance(self.endless, bool), "fault endless must be a boolean")
        _require(not self.endless or kind == "drip", "only a 'drip' fault can be endless")
        _require(kind != "drip" or self.delay > 0, "a 'drip' fault needs delay > 0 (seconds between bytes)")
        _require(self.value is None or kind in ("odd_token", "non_finite"), "only odd_token/non_finite take a value")
        if kind == "odd_token":
            _require(isinstance(self.value, str), "an 'odd_token' fault needs a string value (the access token)")
            _require(self.endpoint == "token", "an 'odd_token' fault needs endpoint='token'")
        if kind == "non_finite":
            _require(self.value in FAULT_NON_FINITE, f"a 'non_finite' fault needs a value of {FAULT_NON_FINITE}")
            _require(self.endpoint == "progress", "a 'non_finite' fault needs endpoint='progress'")
        _require(self.raw_body is None or kind == "raw", "only a 'raw' fault takes a raw_body")
        _require(kind != "raw" or isinstance(self.raw_body, str), "a 'raw' fault needs a string raw_body")
        _require(
            isinstance(self.content_type, str) and _header_safe(self.content_type),
            "fault content_type must be a string without control characters",
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the fault as a JSON-compatible dict (the admin endpoint's format)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """
        Build a fault from its dict form, rejecting unknown keys so typos do not silently match everything.

        :param data: the dict, e.g. parsed from ``POST /_emulator/faults``.
        """
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        _require(not unknown, f"unknown fault field(s): {sorted(unknown)}")
        return cls(**data)


@dataclass(frozen=True, slots=True)
class ReceivedFile:
    """
    One file part of a multipart upload, as streamed to disk.

    :param field: the form field name of the part (``dataFiles`` for a well-behaved client).
    :param filename: the file name the client sent.
    :param content_type: the part's ``Content-Type`` or ``None``.
    :param size: bytes received.
    :param sha256: hex digest of the bytes received.
    :param path: where the bytes were written; removed again when the training was rejected.
    """

    field: str
    filename: str
    content_type: str | None
    size: int
    sha256: str
    path: str

    def to_dict(self) -> dict[str, Any]:
        """Return the file description as a JSON-compatible dict."""
        return asdict(self)


@dataclass(slots=True, eq=False)
class RecordedRequest:
    """
    One request the fake API received (admin requests are never recorded).

    :param method: HTTP method.
    :param path: the URL path, without the query string.
    :param endpoint: ``token``, ``train``, ``progress``, ``inference`` or ``other``.
    :param headers: request headers as sent (``Authorization`` included).
    :param time: arrival time, epoch seconds.
    :param query: the raw query string.
    :param status: the response code; ``None`` while in flight or when no response was sent.
    :param form: non-file form fields (multipart or urlencoded), values as given.
    :param files: file parts received.
    :param json: the parsed JSON body, or ``None``.
    :param model_id: the model id the request is about, when known.
    :param body_size: request body bytes received.
    :param fault: ``"<kind>:<when>"`` of the fault delivered instead of the normal answer.
    :param error: why the exchange broke off (client disconnect, malformed framing).
    :param client_port: the client's TCP port: requests sharing it came over one kept-alive connection.
    """

    method: str
    path: str
    endpoint: str
    headers: dict[str, str]
    time: float
    query: str = ""
    status: int | None = None
    form: dict[str, list[str]] = field(default_factory=dict)
    files: list[ReceivedFile] = field(default_factory=list)
    json: Any = None
    model_id: str | None = None
    body_size: int = 0
    fault: str | None = None
    error: str | None = None
    client_port: int = 0

    def header(self, name: str) -> str | None:
        """
        Look a header up case-insensitively.

        :param name: the header name.
        """
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None

    def to_dict(self) -> dict[str, Any]:
        """Return the request as a JSON-compatible dict (the ``/_emulator/requests`` format)."""
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "endpoint": self.endpoint,
            "status": self.status,
            "headers": dict(self.headers),
            "time": self.time,
            "form": {k: list(v) for k, v in self.form.items()},
            "files": [f.to_dict() for f in self.files],
            "json": self.json,
            "model_id": self.model_id,
            "body_size": self.body_size,
            "fault": self.fault,
            "error": self.error,
            "client_port": self.client_port,
        }


@dataclass(frozen=True, slots=True)
class CallbackInfo:
    """
    The callback fields of a training request.

    :param address: ``callbackAddress``.
    :param identity_address: ``callbackIdentityAddress``.
    :param client_id: ``callbackClientId``.
    :param client_secret: ``callbackClientSecret``.
    """

    address: str
    identity_address: str | None
    client_id: str | None
    client_secret: str | None


@dataclass(frozen=True, slots=True)
class CallbackAttempt:
    """
    One callback the emulator tried to deliver.

    :param model_id: the model the callback is about.
    :param event: ``TrainSuccess`` or ``TrainFailed``.
    :param address: where it was POSTed.
    :param status: the receiver's HTTP status, ``None`` when no response came.
    :param error: what went wrong, ``None`` on success.
    :param authenticated: whether a token was obtained and sent.
    :param time: when the attempt finished, epoch seconds.
    """

    model_id: str
    event: str
    address: str
    status: int | None
    error: str | None
    authenticated: bool
    time: float


@dataclass(frozen=True, slots=True)
class Training:
    """
    A snapshot of the latest training of one model id.

    :param model_id: the model id.
    :param project_name: ``projectName`` of the latest training request.
    :param status: the training status the next progress call will report.
    :param percent: the percentage the next progress call will report.
    :param inference_status: the current inference status: ``None`` until a progress call after the
        first ``Completed`` answer triggers deployment, then ``Pending`` and ``Running`` (one per call).
    :param generation: 0 for the first training of the model id, +1 per retrain.
    :param files: files of the latest training request.
    :param urls: ``dataUrls`` of the latest training request.
    :param callback: callback fields, when given.
    :param created_at: when the latest training was accepted (UTC).
    :param experiment_id: the ``id`` returned by the train call.
    :param project_id: the ``projectId`` returned by the train call.
    :param published: whether some generation of the model is deployed and answers inference calls.
    :param deployed_generation: the generation inference calls are answered from.
    :param polls: progress calls received for the latest training.
    """

    model_id: str
    project_name: str
    status: str
    percent: int
    inference_status: str | None
    generation: int
    files: tuple[ReceivedFile, ...]
    urls: tuple[str, ...]
    callback: CallbackInfo | None
    created_at: dt.datetime
    experiment_id: str
    project_id: str
    published: bool
    deployed_generation: int | None
    polls: int

    @property
    def terminal(self) -> bool:
        """Whether the latest training ended (``Completed`` or ``Failed``, any case)."""
        return self.status.lower() in ("completed", "failed")

    def to_dict(self) -> dict[str, Any]:
        """Return the snapshot as a JSON-compatible dict (without callback secrets)."""
        return {
            "model_id": self.model_id,
            "project_name": self.project_name,
            "status": self.status,
            "percent": self.percent,
            "inference_status": self.inference_status,
            "generation": self.generation,
            "files": [f.to_dict() for f in self.files],
            "urls": list(self.urls),
            "callback_address": self.callback.address if self.callback else None,
            "created_at": self.created_at.isoformat(),
            "experiment_id": self.experiment_id,
            "project_id": self.project_id,
            "published": self.published,
            "deployed_generation": self.deployed_generation,
            "polls": self.polls,
        }


def zero_counters() -> dict[str, int]:
    """The emulator's counters before any request: every name :attr:`SestekEmulator.counters` reports."""
    return {
        "token_requests": 0,
        "trainings_created": 0,
        "bytes_received": 0,
        "progress_polls": 0,
        "inference_requests": 0,
        "callbacks_sent": 0,
        "callbacks_failed": 0,
    }
