"""
The durable record of a training task (Airflow 3.3's task state store): which training the task is
waiting for, and whether the task already succeeded with it.

The record is what tells the cases of the durable rule apart (see :class:`SestekTrainOperator`): a retry
finds a record that is not ``succeeded`` and attaches to (or collects) its training; a clear or a re-run of a
task that succeeded finds a ``succeeded`` record and submits a new training with the current data.

It mirrors ``ResumableJobMixin``: the same ``durable`` flag, the same log lines and ``resumable_job.*``
metrics. The mixin itself is not used: its ``execute_resumable`` polls synchronously (no deferral), treats a
finished job as "already done" even after the task succeeded with it (so a clear would never retrain), and
stores the id with the store's default retention (which may expire during a long wait).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from airflow.providers.common.compat.sdk import conf

#: Key in the task state store. Renaming it breaks the retries of tasks in flight.
STATE_KEY = "sestek_training"

#: ``submitting``: the train POST was sent, its outcome unknown yet; ``submitted``: the task waits for this
#: training; ``succeeded``: the task succeeded with it (a later run of the task is a clear or a re-run).
Phase = Literal["submitting", "submitted", "succeeded"]
_PHASES: tuple[Phase, ...] = ("submitting", "submitted", "succeeded")


@dataclass(frozen=True)
class DurableRecord:
    """
    What the task state store remembers about this task's training.

    :param model_id: the model trained.
    :param phase: ``submitting``, ``submitted`` or ``succeeded``.
    :param experiment_id: the experiment id the train POST answered, when known.
    :param first_training: ``submitting`` only: the server knew no training of this model id before the POST
        (its progress was "not found"), so a finished training found later can only be this task's.
    """

    model_id: str
    phase: Phase
    experiment_id: str | None = None
    first_training: bool = False

    def to_json(self) -> dict[str, Any]:
        """The stored value (JSON)."""
        return {
            "model_id": self.model_id,
            "phase": self.phase,
            "experiment_id": self.experiment_id,
            "succeeded": self.phase == "succeeded",
            "first_training": self.first_training,
        }


def read(store: Any, model_id: str) -> DurableRecord | None:
    """
    The stored record for ``model_id`` (``None`` without a store, a record, or for another model id).

    :param store: ``context["task_state_store"]`` or ``None``.
    :param model_id: the model this run trains (a record of another id, after an edit of the DAG, is ignored).
    """
    if store is None:
        return None
    value = store.get(STATE_KEY)
    if not isinstance(value, dict) or value.get("model_id") != model_id:
        return None
    stored = value.get("phase")
    # Records written before the phase existed: a stored training, consumed only if marked so.
    phase: Phase = stored if stored in _PHASES else ("succeeded" if value.get("succeeded") else "submitted")
    experiment_id = value.get("experiment_id")
    first = value.get("first_training") is True
    return DurableRecord(model_id, phase, str(experiment_id) if experiment_id else None, first)


def write(store: Any, record: DurableRecord, end_time: float | None) -> None:
    """
    Store ``record``. A training being waited for must outlive the wait: its record expires only after the
    task's deadline plus the store's usual retention (never, without a deadline). A consumed record keeps the
    store's default retention.

    :param store: ``context["task_state_store"]`` or ``None`` (then nothing is stored).
    :param record: what to store.
    :param end_time: the task's absolute deadline (epoch seconds) or ``None``.
    """
    if store is None:
        return
    if record.phase == "succeeded":
        store.set(STATE_KEY, record.to_json())
        return
    store.set(STATE_KEY, record.to_json(), retention=_retention(end_time))


def _retention(end_time: float | None) -> timedelta:
    # The store, and this constant (a lazy attribute mypy cannot see), exist from Airflow 3.3 on.
    from airflow.sdk import NEVER_EXPIRE  # type: ignore[attr-defined,unused-ignore]

    if end_time is None:
        never: timedelta = NEVER_EXPIRE
        return never
    days = conf.getint("state_store", "default_retention_days", fallback=30)
    return timedelta(seconds=max(end_time - time.time(), 0.0)) + timedelta(days=max(days, 1))


def incr(metric: str, operator: Any) -> None:
    """
    ``resumable_job.<metric>``, tagged like ``ResumableJobMixin`` does; a metrics failure never fails a task.

    :param metric: ``fresh_submit``, ``reconnect_attempt``, ``reconnect_success``, ``already_succeeded``,
        ``terminal_resubmit``.
    :param operator: the operator (its class name is the ``operator`` tag).
    """
    try:
        from airflow.providers.common.compat.sdk import Stats

        Stats.incr(f"resumable_job.{metric}", tags={"operator": type(operator).__name__})
    except Exception:  # metrics are best effort
        operator.log.debug("Could not emit metric resumable_job.%s", metric, exc_info=True)
