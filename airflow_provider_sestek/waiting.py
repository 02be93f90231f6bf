"""
The waiting rules shared by the sync operator, the sensor and the deferrable trigger (no I/O).

One :class:`ProgressWatcher` decides, from each poll result or error, whether to go on, succeed,
fail, give up or time out; the three waiters only differ in how they poll and sleep. Keeping the
rules here means a poke, a sync wait and a trigger can never disagree about what "done" means.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Literal

from airflow_provider_sestek.api import TrainingProgress, TrainingStatus
from airflow_provider_sestek.exceptions import (
    SestekApiError,
    SestekError,
    SestekTimeout,
    SestekTrainingFailed,
    SestekTransportError,
)

EventStatus = Literal["success", "failed", "timeout", "error"]
EVENT_STATUSES: tuple[EventStatus, ...] = ("success", "failed", "timeout", "error")

#: Consecutive failed polls tolerated before a waiter gives up (each poll already retries inside the hook).
DEFAULT_MAX_CONSECUTIVE_FAILURES = 10

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WaitOutcome:
    """
    How a wait ended.

    :param status: one of ``success``, ``failed``, ``timeout``, ``error``.
    :param message: human text for logs and exceptions.
    :param progress: the last progress seen, if any.
    """

    status: EventStatus
    message: str
    progress: TrainingProgress | None

    def to_event(self, model_id: str) -> dict[str, Any]:
        """
        The trigger event payload: everything ``execute_complete`` needs (``dag.test()`` drops defer kwargs).

        :param model_id: the model waited for.
        """
        return {
            "status": self.status,
            "model_id": model_id,
            "message": self.message,
            "progress": self.progress.to_dict() if self.progress else None,
        }


def is_transient(exc: BaseException) -> bool:
    """
    Whether a failed poll is worth another one: network trouble, throttling, 5xx, an unreadable answer,
    or a 404 (a training just submitted may not be visible yet). Auth, config and validation errors and
    other 4xx are not.

    :param exc: what the poll raised.
    """
    if isinstance(exc, SestekTransportError):
        return True
    if isinstance(exc, SestekApiError):
        return exc.status in (404, 408, 429) or exc.status >= 500 or 200 <= exc.status < 300
    return False


class ProgressWatcher:
    """
    Decide the fate of a wait from successive polls.

    :param model_id: the model waited for.
    :param wait_for_inference: after ``Completed`` also wait until the inference endpoint is Running.
    :param poll_interval: seconds between polls.
    :param end_time: absolute wall-clock deadline (epoch seconds) or ``None``.
    :param max_consecutive_failures: transient failures in a row tolerated before giving up.
    :param logger: where status changes are logged.
    """

    def __init__(
        self,
        model_id: str,
        *,
        wait_for_inference: bool,
        poll_interval: float,
        end_time: float | None,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
        logger: logging.Logger | Any = None,
    ) -> None:
        self.model_id = model_id
        self.wait_for_inference = wait_for_inference
        self.poll_interval = poll_interval
        self.end_time = end_time
        self.max_consecutive_failures = max_consecutive_failures
        self.log = logger or log
        self.last: TrainingProgress | None = None
        self.failures = 0
        self.started = time.time()

    def on_progress(self, progress: TrainingProgress) -> WaitOutcome | None:
        """
        Record a poll result; return an outcome when the wait is over.

        :param progress: what the progress endpoint said.
        """
        self.failures = 0
        if self.last is None or progress.describe() != self.last.describe():
            self.log.info("%s: %s", self.model_id, progress.describe())
            if progress.training_status is TrainingStatus.UNKNOWN:
                self.log.warning(
                    "%s: unknown training status %r, treated as still running",
                    self.model_id,
                    progress.raw_training_status,
                )
        self.last = progress
        if progress.training_status is TrainingStatus.FAILED:
            return WaitOutcome("failed", str(SestekTrainingFailed(self.model_id, "Failed", progress.percent)), progress)
        if progress.is_done(self.wait_for_inference):
            what = "trained and published" if self.wait_for_inference else "trained"
            return WaitOutcome("success", f"Sestek model {self.model_id!r} is {what}", progress)
        return None

    def on_error(self, exc: BaseException) -> WaitOutcome | None:
        """
        Record a failed poll; return an ``error`` outcome when it is fatal or one too many.

        :param exc: what the poll raised.
        """
        if not is_transient(exc):
            return WaitOutcome("error", f"Polling Sestek model {self.model_id!r} failed: {exc}", self.last)
        self.failures += 1
        if self.failures >= self.max_consecutive_failures:
            return WaitOutcome(
                "error",
                f"Polling Sestek model {self.model_id!r} failed {self.failures} times in a row; last error: {exc}",
                self.last,
            )
        self.log.warning(
            "%s: poll failed (%d/%d in a row), will retry: %s",
            self.model_id,
            self.failures,
            self.max_consecutive_failures,
            exc,
        )
        return None

    def check_deadline(self, now: float | None = None) -> WaitOutcome | None:
        """
        A ``timeout`` outcome once the absolute deadline has passed.

        :param now: current wall-clock time.
        """
        now = time.time() if now is None else now
        if self.end_time is not None and now >= self.end_time:
            exc = SestekTimeout(self.model_id, self.last_status(), now - self.started)
            return WaitOutcome("timeout", str(exc), self.last)
        return None

    def sleep_seconds(self, now: float | None = None) -> float:
        """
        How long to sleep before the next poll: the interval with +-10% jitter (so thousands of waits
        started together do not poll in lockstep), never past the deadline.

        :param now: current wall-clock time.
        """
        now = time.time() if now is None else now
        delay = self.poll_interval * random.uniform(0.9, 1.1)
        if self.end_time is not None:
            delay = min(delay, max(self.end_time - now, 0.0))
        return max(delay, 0.0)

    def last_status(self) -> str:
        """The last status seen, in words."""
        return self.last.describe() if self.last else "no status received yet"


def raise_for_outcome(model_id: str, event: Any) -> dict[str, Any]:
    """
    Validate a trigger event and turn it into the task result or the right exception.

    :param model_id: the model the task waited for (the event must be about it).
    :param event: the event payload from the trigger.
    :return: the small result dict of the task.
    """
    if not isinstance(event, dict) or event.get("status") not in EVENT_STATUSES:
        raise SestekError(f"Unexpected trigger event for Sestek model {model_id!r}: {event!r:.200}")
    if event.get("model_id") != model_id:
        raise SestekError(f"Trigger event is about model {event.get('model_id')!r}, expected {model_id!r}")
    raw_progress = event.get("progress")
    if raw_progress and not isinstance(raw_progress, dict):
        raise SestekError(
            f"Trigger event for Sestek model {model_id!r} has an unreadable progress: {raw_progress!r:.100}"
        )
    progress = TrainingProgress.from_dict(raw_progress) if raw_progress else None
    status = event["status"]
    if status == "success" and progress is not None:
        if progress.training_status is not TrainingStatus.COMPLETED:
            # Only a corrupted or forged event gets here: never report an unfinished training as done.
            raise SestekError(
                f"Trigger event for Sestek model {model_id!r} says success, but its progress is {progress.describe()}"
            )
        return result_dict(model_id, progress)
    if status == "failed":
        percent = progress.percent if progress else None
        raise SestekTrainingFailed(model_id, progress.raw_training_status if progress else "Failed", percent)
    if status == "timeout":
        raise SestekTimeout(model_id, progress.describe() if progress else "no status received yet")
    raise SestekError(str(event.get("message") or f"Waiting for Sestek model {model_id!r} failed"))


def result_dict(model_id: str, progress: TrainingProgress | None) -> dict[str, Any]:
    """
    The small dict a task returns (and pushes to XCom).

    :param model_id: the model.
    :param progress: the last progress, if any.
    """
    data = progress.to_dict() if progress else {"percent": None, "training_status": None, "inference_status": None}
    return {"model_id": model_id, **data}
