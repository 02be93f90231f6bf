"""
The durable rule of a training task, as one state machine over its record in Airflow 3.3's task state store.

A record moves through four phases::

    (none) --before the POST--> submitting --answered / running--> submitted --execute returned--> completed
       ^                                                                                               |
       +--------------------- a later run retrains <-- succeeded <--Airflow recorded success-----------+

- ``submitting``: the train POST is in flight; its outcome is unknown until it answers.
- ``submitted``: the task waits for this training.
- ``completed``: ``execute()`` / ``execute_complete()`` returned with this result, but Airflow has not
  recorded the task's success yet (the return-value XCom, outlet events or the worker itself may still fail).
- ``succeeded``: Airflow recorded the success (the task's success callback ran): a later run of the task is a
  clear or a re-run, and trains anew.

:class:`DurableTraining` is the only code that reads or writes the record, logs the rule's lines and emits the
``resumable_job.*`` metrics; :class:`SestekTrainOperator` calls it at named points (:meth:`begin`,
:meth:`after_look`, :meth:`submitting`, :meth:`submitted`, :meth:`attached`, :meth:`completed`) and Airflow
calls :func:`record_success`.

It mirrors ``ResumableJobMixin``: the same ``durable`` flag, log lines and metrics. The mixin itself is not
used: its ``execute_resumable`` polls synchronously (no deferral), treats a finished job as "already done"
even after the task succeeded with it (so a clear would never retrain), and stores the id with the store's
default retention (which may expire during a long wait).

The progress endpoint names no training: a retry that finds a training of the model cannot tell the one an
earlier try submitted from a later one started elsewhere. Only the try that got the POST's answer, and a
wait that saw no restart, claims the experiment id; a later try never does (the result says the id is
unknown, and names the experiment the earlier try submitted).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from enum import StrEnum
from typing import Any, Literal

from airflow.providers.common.compat.sdk import conf

from airflow_provider_sestek import api
from airflow_provider_sestek.exceptions import SestekApiError
from airflow_provider_sestek.waiting import short

#: Key in the task state store. Renaming it breaks the retries of tasks in flight.
STATE_KEY = "sestek_training"

Phase = Literal["submitting", "submitted", "completed", "succeeded"]
_PHASES: tuple[Phase, ...] = ("submitting", "submitted", "completed", "succeeded")


@dataclass(frozen=True)
class DurableRecord:
    """
    What the task state store remembers about this task's training.

    :param model_id: the model trained.
    :param phase: see the module docstring.
    :param experiment_id: the experiment id the train POST answered, when known.
    :param first_training: ``submitting`` only: the server knew no training of this model id before the POST
        (its progress was "not found"), so a finished training found later can only be this task's.
    :param try_number: the try that wrote the record.
    :param verified: the training followed is the one ``experiment_id`` names (true only in the try whose POST
        was answered, while its wait saw no restart of the model's training).
    :param result: ``completed`` only: what ``execute`` returned.
    """

    model_id: str
    phase: Phase
    experiment_id: str | None = None
    first_training: bool = False
    try_number: int | None = None
    verified: bool = False
    result: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The stored value (JSON)."""
        return {
            "model_id": self.model_id,
            "phase": self.phase,
            "experiment_id": self.experiment_id,
            "succeeded": self.phase == "succeeded",
            "first_training": self.first_training,
            "try_number": self.try_number,
            "verified": self.verified,
            "result": self.result,
        }

    @classmethod
    def from_json(cls, value: Any, model_id: str) -> DurableRecord | None:
        """
        The record stored for ``model_id`` (``None`` for none, an unreadable one, or another model id).

        :param value: the stored value.
        :param model_id: the model this run trains (a record of another id, after an edit of the DAG, is ignored).
        """
        if not isinstance(value, dict) or value.get("model_id") != model_id:
            return None
        stored = value.get("phase")
        # Records written before the phase existed: a stored training, consumed only if marked so.
        phase: Phase = stored if stored in _PHASES else ("succeeded" if value.get("succeeded") else "submitted")
        experiment_id = value.get("experiment_id")
        try_number = value.get("try_number")
        result = value.get("result")
        if phase == "completed" and not _is_result(result, model_id):
            phase = "submitted"  # a completed record without a readable result: look the training up again
        return cls(
            model_id,
            phase,
            short(experiment_id, 200) if experiment_id else None,
            value.get("first_training") is True,
            try_number if isinstance(try_number, int) and not isinstance(try_number, bool) else None,
            value.get("verified") is True,
            dict(result) if phase == "completed" and isinstance(result, dict) else None,
        )


def _is_result(value: Any, model_id: str) -> bool:
    return isinstance(value, dict) and value.get("model_id") == model_id and "training_status" in value


class Action(StrEnum):
    """What the operator does next."""

    #: Submit a new training (after the pre-submit look for a running one).
    SUBMIT = "submit"
    #: Read the model's progress, then call :meth:`DurableTraining.after_look`.
    LOOK = "look"
    #: Attach to the running training and wait for it.
    ATTACH = "attach"
    #: The training is finished: return its result, no new training.
    COLLECT = "collect"


@dataclass(frozen=True)
class Step:
    """
    One answer of the durable rule.

    :param action: what to do.
    :param progress: the progress to attach to or collect.
    :param result: a result already returned by an earlier try (``COLLECT`` of a ``completed`` record).
    """

    action: Action
    progress: api.TrainingProgress | None = None
    result: dict[str, Any] | None = field(default=None)


class DurableTraining:
    """
    The durable rule of one run of a training task: its record, transitions, log lines and metrics.

    Without a store (``durable=False``, Airflow before 3.3) every transition is a no-op and :meth:`begin`
    answers ``SUBMIT``.

    :param operator: the operator (its ``log``, ``model_id``, ``wait_for_inference`` and class name are used).
    :param store: ``context["task_state_store"]`` or ``None``.
    :param try_number: the running try.
    :param end_time: the task's absolute deadline (epoch seconds) or ``None``: the record outlives it.
    """

    def __init__(self, operator: Any, store: Any, try_number: int | None, end_time: float | None) -> None:
        self.operator = operator
        self.log = operator.log
        self.model_id: str = operator.model_id
        self.store = store
        self.try_number = try_number
        self.end_time = end_time
        self.record = DurableRecord.from_json(store.get(STATE_KEY), self.model_id) if store is not None else None

    @classmethod
    def of(cls, operator: Any, context: Mapping[str, Any], end_time: float | None) -> DurableTraining:
        """
        The rule for this run: the store only when the operator is ``durable``.

        :param operator: the training operator.
        :param context: the task context.
        :param end_time: the task's absolute deadline or ``None``.
        """
        store = context.get("task_state_store") if operator.durable else None
        ti = context.get("ti")
        number = getattr(ti, "try_number", None)
        return cls(operator, store, number if isinstance(number, int) else None, end_time)

    def resumed(self, pushed_experiment_id: Any) -> None:
        """
        Resuming after a deferral without a store (Airflow before 3.3, ``durable=False``): the experiment id this
        try pushed to XCom after its POST was answered (XCom is cleared when a try starts) stands for the record.

        :param pushed_experiment_id: the task's ``experiment_id`` XCom, or ``None``.
        """
        if (
            self.store is None
            and self.record is None
            and isinstance(pushed_experiment_id, str)
            and pushed_experiment_id
        ):
            self.record = DurableRecord(
                self.model_id, "submitted", short(pushed_experiment_id, 200), False, self.try_number, True
            )

    # --- what the record says -----------------------------------------------------------------------------------

    @property
    def claimed_experiment_id(self) -> str | None:
        """The experiment id the task may report as its training's."""
        record = self.record
        # Only the try whose POST was answered: a later try cannot tell whether the model was retrained since
        # (even a result an earlier try returned may no longer be what the model serves).
        if record is None or not record.verified or record.try_number != self.try_number:
            return None
        return record.experiment_id

    @property
    def submitted_experiment_id(self) -> str | None:
        """The experiment id an earlier try's POST answered, claimed or not."""
        return self.record.experiment_id if self.record else None

    # --- transitions -----------------------------------------------------------------------------------------------

    def begin(self) -> Step:
        """The first decision of ``execute``: from the stored record alone."""
        if self.store is None:
            if self.operator.durable:
                self.log.warning("task_state_store not available in context, crash recovery is disabled for this run")
            return Step(Action.SUBMIT)
        record = self.record
        if record is None or record.phase == "succeeded":
            if record is not None:
                self.log.info(
                    "This task already succeeded with the training of model %s (experiment %s) and runs again "
                    "(a clear or a re-run): submitting a new training with the current data",
                    self.model_id,
                    record.experiment_id,
                )
            self._incr("fresh_submit")
            return Step(Action.SUBMIT)
        if record.phase == "completed":
            self._incr("already_succeeded")
            self.log.info(
                "Job already completed successfully, skipping resubmission: model %s, experiment %s: an earlier "
                "try (%s) returned this result but the task did not succeed after it; returning it again",
                self.model_id,
                record.experiment_id,
                record.try_number,
            )
            return Step(Action.COLLECT, result=record.result)
        self._incr("reconnect_attempt")
        return Step(Action.LOOK)

    def after_look(self, progress: api.TrainingProgress | None) -> Step:
        """
        The decision after reading the progress of the stored training (``LOOK``).

        :param progress: the model's progress, ``None`` when the server does not know it.
        """
        record = self.record
        assert record is not None  # LOOK is only answered for a stored record
        if progress is None and record.phase == "submitted":
            # The server confirmed this training before: "not found" on every look is the gateway (a restart
            # answers 404), not proof it is gone, and a second submit would train twice once it has finished.
            self._incr("recorded_not_found")
            raise SestekApiError(
                method="GET",
                endpoint=f"progress of model {self.model_id!r}",
                status=404,
                message=(
                    f"the training this task recorded (experiment {record.experiment_id}) was not found on any "
                    "look; not submitting a second one. A retry looks again; if the training was deleted on the "
                    "Sestek side, run the task once with durable=False to train anew"
                ),
            )
        if progress is None or progress.training_status is api.TrainingStatus.FAILED:
            self._incr("terminal_resubmit")
            self.log.warning(
                "Prior job in terminal state, resubmitting fresh: model %s, experiment %s, status %s",
                self.model_id,
                record.experiment_id,
                progress.describe() if progress else "not found",
            )
            return Step(Action.SUBMIT)
        if progress.is_done(self.operator.wait_for_inference):
            if record.phase == "submitting" and not record.first_training:
                # The POST of the earlier try may never have arrived: this may be an older training. (Of a model
                # with no training before that POST, the finished training can only be the earlier try's.)
                self.log.info("The earlier try's submit of %s never got an answer; submitting", self.model_id)
                return Step(Action.SUBMIT)
            self._incr("already_succeeded")
            self.log.info(
                "Job already completed successfully, skipping resubmission: model %s, experiment %s (%s)",
                self.model_id,
                record.experiment_id,
                progress.describe(),
            )
            self._warn_unverified(progress)
            return Step(Action.COLLECT, progress)
        self._incr("reconnect_success")
        self.log.info("Reconnecting to existing job: model %s, experiment %s", self.model_id, record.experiment_id)
        self._warn_unverified(progress)
        # Running after the earlier try's submit: it is this task's training, whatever the POST's answer was.
        # Recorded, so that a later retry which finds it finished collects it instead of retraining.
        self._write(replace(record, phase="submitted", try_number=self.try_number, verified=False))
        return Step(Action.ATTACH, progress)

    def _warn_unverified(self, progress: api.TrainingProgress) -> None:
        if self.claimed_experiment_id is not None:
            return
        self.log.warning(
            "Model %s is %s. The progress endpoint does not say which training it reports: it is the one an "
            "earlier try of this task submitted (experiment %s), or a later training of the same model id started "
            "elsewhere (another pipeline, the Sestek UI). The result is reported with experiment_id unknown.",
            self.model_id,
            progress.describe(),
            self.submitted_experiment_id or "unknown",
        )

    def submitting(self, first_training: bool) -> None:
        """
        Before the POST: a worker that dies while it is in flight leaves a record the retry checks.

        :param first_training: the server knew no training of the model before the POST.
        """
        self._write(DurableRecord(self.model_id, "submitting", None, first_training, self.try_number))

    def submitted(self, experiment_id: str | None) -> None:
        """
        The POST was answered: this try waits for the training it created.

        :param experiment_id: the experiment id of the answer.
        """
        self._write(DurableRecord(self.model_id, "submitted", experiment_id, False, self.try_number, True))

    def attached(self) -> None:
        """This try attached to a running training it did not submit (a training of this model id was running)."""
        self._write(DurableRecord(self.model_id, "submitted", None, False, self.try_number, False))

    def completed(self, result: dict[str, Any], restarted: bool) -> str | None:
        """
        ``execute`` is returning ``result``; the task has not succeeded yet (see :func:`record_success`).

        :param result: what ``execute`` returns.
        :param restarted: the wait saw the model's training restart (its result may be another training's).
        :return: the experiment id the task may claim for this result.
        """
        if restarted and self.claimed_experiment_id is not None:
            self.log.warning(
                "Model %s was retrained during the wait: the result is reported with experiment_id unknown "
                "(this task submitted experiment %s)",
                self.model_id,
                self.submitted_experiment_id,
            )
        claimed = None if restarted else self.claimed_experiment_id
        if self.record is not None and self.record.phase == "completed":
            return claimed  # collected again: the record already holds it
        self._write(
            DurableRecord(
                self.model_id,
                "completed",
                self.submitted_experiment_id,
                False,
                self.try_number,
                claimed is not None,
                result,
            )
        )
        return claimed

    # --- the record ------------------------------------------------------------------------------------------------

    def _write(self, record: DurableRecord) -> None:
        """
        Store ``record``. A training being waited for must outlive the wait: its record expires only after the
        task's deadline plus the store's usual retention (never, without a deadline).

        :param record: the new record.
        """
        self.record = record
        if self.store is None:
            return
        if record.phase in ("completed", "succeeded"):
            # A finished training needs no more than the store's usual retention.
            self.store.set(STATE_KEY, record.to_json())
            return
        self.store.set(STATE_KEY, record.to_json(), retention=_retention(self.end_time))

    def _incr(self, metric: str) -> None:
        incr(metric, self.operator)


def record_success(context: Mapping[str, Any]) -> None:
    """
    The training task's success callback: Airflow has recorded the success, so a later run of the task is a
    clear or a re-run and trains anew. (Before it, a ``completed`` record makes a retry return the result.)

    :param context: the task context.
    """
    task = context.get("task")
    store = context.get("task_state_store")
    if task is None or store is None or not getattr(task, "durable", False):
        return
    record = DurableRecord.from_json(store.get(STATE_KEY), task.model_id)
    if record is None or record.phase != "completed":
        return
    store.set(STATE_KEY, replace(record, phase="succeeded", result=None).to_json())


def with_success_callback(callbacks: Any) -> list[Any]:
    """
    The task's success callbacks with :func:`record_success` first (once; Airflow runs each in turn and a
    user's callback that raises does not stop the others).

    :param callbacks: the user's ``on_success_callback`` (``None``, one callable or a list).
    """
    if callbacks is None:
        given: list[Any] = []
    elif callable(callbacks):
        given = [callbacks]
    else:
        given = list(callbacks)
    return [record_success, *[c for c in given if c is not record_success]]


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
