"""Helpers shared by the Sestek operators and the sensor: the default of ``deferrable``, the sync wait, deferral."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from airflow.providers.common.compat.sdk import conf

from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.waiting import ProgressWatcher, WaitSpec, observe, raise_for_outcome


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


def wait_sync(hook: SestekHook, watcher: ProgressWatcher) -> dict[str, Any]:
    """
    Poll in the worker until the rule decides: the sync driver of :meth:`ProgressWatcher.step`.

    :param hook: the hook to poll with.
    :param watcher: the rule of this wait.
    """
    while True:
        decision = watcher.step(observe(lambda: hook.get_training_progress(watcher.model_id, stop_at=watcher.end_time)))
        if decision.outcome is not None:
            return raise_for_outcome(watcher.model_id, decision.outcome.to_event(watcher.model_id))
        time.sleep(decision.delay)


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
