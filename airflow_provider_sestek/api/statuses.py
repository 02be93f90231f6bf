"""
What a training reports: its statuses (compared case-insensitively, unknown ones count as running),
its progress (and how a progress object is read, which the trigger events need too), and an access token
with its expiry.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

#: The longest status text kept from a progress answer.
MAX_STATUS_TEXT = 100


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
        # A server's words are kept for logs, XCom and events: bounded, whatever it sends.
        raw_training_status=str(raw_training)[:MAX_STATUS_TEXT] if raw_training is not None else "",
        raw_inference_status=str(raw_inference)[:MAX_STATUS_TEXT] if raw_inference not in (None, "") else None,
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
