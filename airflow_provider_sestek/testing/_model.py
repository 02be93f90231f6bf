"""
Plain data types of the emulator: recorded requests, training snapshots, callbacks and defaults (faults
are in :mod:`._faults`).

This module is shared by the in-process emulator, its HTTP admin client and the CLI, so it must stay
free of anything heavier than the standard library.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
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

#: The ``access_token`` the foreign listener (the target of ``redirect`` faults) hands out.
FOREIGN_TOKEN = "foreign-token"


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
