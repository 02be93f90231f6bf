"""
Helpers shared by the Sestek operators and the sensor: the default of ``deferrable``, the sync wait, deferral,
and the end of a wait in the task (its result or exception, and the summary line of a success).
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from airflow.providers.common.compat.sdk import conf

from airflow_provider_sestek.api import TrainingProgress, TrainingStatus
from airflow_provider_sestek.exceptions import SestekError, SestekTimeout, SestekTrainingFailed, where_to_look
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.waiting import ProgressWatcher, WaitSpec, human_duration, observe, short
from airflow_provider_sestek.waiting_outcomes import EVENT_STATUSES, result_dict


def default_deferrable() -> bool:
    """``[operators] default_deferrable`` (False when unset)."""
    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))


def defer_timeout(end_time: float | None, poll_interval: float, request_deadline: float) -> timedelta | None:
    """
    The backstop ``defer(timeout=...)``: Airflow fails the task if the trigger has not answered by the
    deadline plus one poll interval plus one request deadline (the trigger sends its own ``timeout`` event
    at the deadline, with a clear message; this only catches a stuck trigger).

    :param end_time: absolute deadline (epoch seconds) or ``None`` (no backstop).
    :param poll_interval: seconds between polls.
    :param request_deadline: longest time one request may take (the connection's ``timeout``): a poll
        started before the deadline starts no retry after it, so it ends within one request deadline.
    """
    if end_time is None:
        return None
    return timedelta(seconds=max(end_time - time.time(), 0.0) + poll_interval + request_deadline)


def wait_sync(
    hook: SestekHook,
    watcher: ProgressWatcher,
    *,
    experiment_id: str | None = None,
    portal_url: str | None = None,
) -> dict[str, Any]:
    """
    Poll in the worker until the rule decides: the sync driver of :meth:`ProgressWatcher.step`.

    :param hook: the hook to poll with.
    :param watcher: the rule of this wait.
    :param experiment_id: the experiment id of the training, named in a failure (see :func:`raise_for_outcome`).
    :param portal_url: the model's portal page, named in a failure.
    """
    while True:
        decision = watcher.step(observe(lambda: hook.get_training_progress(watcher.model_id, stop_at=watcher.end_time)))
        if decision.outcome is not None:
            event = decision.outcome.to_event(watcher.model_id)
            return raise_for_outcome(watcher.model_id, event, experiment_id=experiment_id, portal_url=portal_url)
        if decision.heartbeat:
            watcher.log.info("%s", decision.heartbeat)
        time.sleep(decision.delay)


def raise_for_outcome(
    model_id: str,
    event: Any,
    *,
    experiment_id: str | None = None,
    portal_url: str | None = None,
) -> dict[str, Any]:
    """
    Validate a trigger event and turn it into the task result or the right exception.

    :param model_id: the model the task waited for (the event must be about it).
    :param event: the event payload from the trigger.
    :param experiment_id: the experiment id of the training, when known: named in the exception.
    :param portal_url: the model's portal page, when the connection has ``portal_url``: named in the exception.
    :return: the small result dict of the task.
    """
    if not isinstance(event, dict) or event.get("status") not in EVENT_STATUSES:
        raise SestekError(f"Unexpected trigger event for Sestek model {model_id!r}: {event!r:.200}")
    if event.get("model_id") != model_id:
        raise SestekError(f"Trigger event is about model {short(event.get('model_id'), 100)!r}, expected {model_id!r}")
    raw_progress = event.get("progress")
    if raw_progress and not isinstance(raw_progress, dict):
        raise SestekError(
            f"Trigger event for Sestek model {model_id!r} has an unreadable progress: {raw_progress!r:.100}"
        )
    progress = TrainingProgress.from_dict(raw_progress) if raw_progress else None
    status = event["status"]
    context: dict[str, Any] = {"experiment_id": experiment_id, "portal_url": portal_url}
    if status == "success" and progress is not None:
        if progress.training_status is not TrainingStatus.COMPLETED:
            # Only a corrupted or forged event gets here: never report an unfinished training as done.
            raise SestekError(
                f"Trigger event for Sestek model {model_id!r} says success, but its progress is {progress.describe()}"
            )
        return result_dict(model_id, progress)
    if status == "failed":
        percent = progress.percent if progress else None
        status_text = progress.raw_training_status if progress else "Failed"
        raise SestekTrainingFailed(model_id, status_text, percent, **context)
    if status == "timeout":
        started_at = event.get("started_at")
        waited = time.time() - started_at if isinstance(started_at, int | float) else None
        raise SestekTimeout(model_id, progress.describe() if progress else "no status received yet", waited, **context)
    message = short(event.get("message") or f"Waiting for Sestek model {model_id!r} failed")
    raise SestekError(message + where_to_look(experiment_id, portal_url))


def success_summary(
    result: dict[str, Any],
    experiment_id: str | None,
    started_at: Any,
    *,
    since_submit: bool = True,
    now: float | None = None,
) -> str | None:
    """
    The closing line of a training task that waited for a trained model, ``None`` for other results:
    ``Model faq-bot published: experiment 3fa8..., trained in 4m12s, Training Completed / Inference Running``.

    :param result: the task's result dict.
    :param experiment_id: the experiment id the task reports, when known.
    :param started_at: when the submit was answered or the wait started (epoch seconds), when known (it may
        come from a trigger event: anything but a number is ignored).
    :param since_submit: ``started_at`` is the submit ("trained in"), not the start of a wait for a training
        attached to ("waited").
    :param now: current wall-clock time (injected by tests).
    """
    progress = TrainingProgress.from_dict(result)
    if progress.training_status is not TrainingStatus.COMPLETED:
        return None
    parts = [f"experiment {experiment_id}"] if experiment_id else []
    if isinstance(started_at, int | float) and not isinstance(started_at, bool):
        took = human_duration((time.time() if now is None else now) - started_at)
        parts.append(f"trained in {took}" if since_submit else f"waited {took}")
    inference = short(result.get("inference_status") or "not started", 100)
    parts.append(f"Training {short(result.get('training_status'), 100)} / Inference {inference}")
    what = "published" if progress.is_published else "trained"
    return f"Model {result.get('model_id')} {what}: {', '.join(parts)}"


def defer_wait(task: Any, spec: WaitSpec, *, sestek_conn_id: str, request_deadline: float) -> None:
    """
    Hand a wait to the triggerer, with Airflow's backstop timeout; resumes in ``execute_complete``.

    :param task: the operator or sensor deferring.
    :param spec: the wait.
    :param sestek_conn_id: the Sestek connection.
    :param request_deadline: the connection's request deadline (see :func:`defer_timeout`).
    """
    # Imported here, not at the top: only a deferring task needs the trigger (and Airflow's trigger module).
    from airflow_provider_sestek.triggers.sestek import SestekTrainingTrigger

    task.defer(
        trigger=SestekTrainingTrigger.from_spec(spec, sestek_conn_id),
        method_name="execute_complete",
        timeout=defer_timeout(spec.end_time, spec.poll_interval, request_deadline),
    )
