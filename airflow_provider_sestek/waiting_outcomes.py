"""
What a wait answers (no I/O): the outcome of a wait and its trigger event, the decision after one poll, the
task's small result dict, and the bounded texts they carry. :mod:`airflow_provider_sestek.waiting` builds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from airflow_provider_sestek.api import TrainingProgress

EventStatus = Literal["success", "failed", "timeout", "error"]
EVENT_STATUSES: tuple[EventStatus, ...] = ("success", "failed", "timeout", "error")

#: The longest text taken from a server into an event, XCom or log line.
MAX_TEXT = 500


def short(text: Any, limit: int = MAX_TEXT) -> str:
    """``text`` as a string of at most ``limit`` characters (a server's words are not stored unbounded)."""
    value = str(text)
    return value if len(value) <= limit else value[: limit - 3] + "..."


def human_duration(value: float) -> str:
    """A duration for a log line: ``45s``, ``4m12s``, ``2h10m``, ``3d04h`` (rounded down)."""
    total = max(int(value), 0)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


# --- outcomes and decisions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WaitOutcome:
    """
    How a wait ended.

    :param status: one of ``success``, ``failed``, ``timeout``, ``error``.
    :param message: human text for logs and exceptions.
    :param progress: the last progress seen, if any.
    :param restarted: the model's training went from ``Completed`` back to running during the wait: the result
        may be of a later training of the same model id (started elsewhere), not of the one waited for.
    :param started_at: when the wait started (epoch seconds; the submit, when known): the task reports the
        duration from it.
    """

    status: EventStatus
    message: str
    progress: TrainingProgress | None
    restarted: bool = False
    started_at: float | None = None

    def to_event(self, model_id: str) -> dict[str, Any]:
        """
        The trigger event payload: everything ``execute_complete`` needs (``dag.test()`` drops defer kwargs).

        :param model_id: the model waited for.
        """
        return {
            "status": self.status,
            "model_id": model_id,
            "message": short(self.message),
            "progress": self.progress.to_dict() if self.progress else None,
            "restarted": self.restarted,
            "started_at": self.started_at,
        }


@dataclass(frozen=True)
class Decision:
    """
    What a waiter does after one poll.

    :param delay: seconds to sleep before the next poll (when the wait goes on).
    :param outcome: set when the wait is over.
    :param publication: watch mode only: the number of the publication just seen (fire one event).
    :param heartbeat: a "still waiting" line for the task log, at most one per ``heartbeat_interval``: the
        waiter logs it, and it changes nothing else.
    """

    delay: float
    outcome: WaitOutcome | None = None
    publication: int | None = None
    heartbeat: str | None = None


def result_dict(model_id: str, progress: TrainingProgress | None) -> dict[str, Any]:
    """
    The small dict a task returns (and pushes to XCom).

    :param model_id: the model.
    :param progress: the last progress, if any.
    """
    data = progress.to_dict() if progress else {"percent": None, "training_status": None, "inference_status": None}
    return {"model_id": model_id, **data}
