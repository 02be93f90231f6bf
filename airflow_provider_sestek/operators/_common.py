"""Helpers shared by the Sestek operators and the sensor: defaults, argument checks, the sync wait loop."""

from __future__ import annotations

import math
import time
from datetime import timedelta
from typing import Any

from airflow.providers.common.compat.sdk import conf

from airflow_provider_sestek.exceptions import SestekError, SestekValidationError
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.waiting import ProgressWatcher, raise_for_outcome


def default_deferrable() -> bool:
    """``[operators] default_deferrable`` (False when unset)."""
    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))


#: The longest duration (``timeout``) accepted: ten years.
MAX_DURATION = 3650 * 86400.0
#: The longest ``poll_interval`` accepted: one day.
MAX_POLL_INTERVAL = 86400.0


def _within(value: Any, *, zero_allowed: bool, most: float) -> bool:
    """
    ``value`` is a real number of seconds (not a bool) in range. NaN passes ``< 0``, and infinity or a huge
    number overflows the deferral's timedelta after the submit: both are refused here, before any request.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    return (0 <= value if zero_allowed else 0 < value) and value <= most


def seconds(value: float | timedelta | None, field: str) -> float | None:
    """
    A duration in seconds, or ``None``.

    :param value: seconds or a timedelta.
    :param field: the parameter name, for the error.
    """
    if value is None:
        return None
    number = value.total_seconds() if isinstance(value, timedelta) else value
    if not _within(number, zero_allowed=True, most=MAX_DURATION):
        raise SestekValidationError(
            field,
            value,
            f"must be a non-negative number of seconds or a timedelta, at most {MAX_DURATION:g} (ten years)",
        )
    return float(number)


def check_poll_interval(value: Any) -> float:
    """
    :param value: the ``poll_interval`` argument.
    :return: it as a float.
    """
    if not _within(value, zero_allowed=False, most=MAX_POLL_INTERVAL):
        raise SestekValidationError(
            "poll_interval", value, f"must be a positive number of seconds, at most {MAX_POLL_INTERVAL:g} (one day)"
        )
    return float(value)


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
    Poll in the worker until the watcher decides (the sync twin of the trigger's loop).

    :param hook: the hook to poll with.
    :param watcher: the waiting rules.
    """
    while True:
        try:
            outcome = watcher.on_progress(hook.get_training_progress(watcher.model_id, stop_at=watcher.end_time))
        except SestekError as exc:
            outcome = watcher.on_error(exc)
        outcome = outcome or watcher.check_deadline()
        if outcome is not None:
            return raise_for_outcome(watcher.model_id, outcome.to_event(watcher.model_id))
        time.sleep(watcher.sleep_seconds())


def defer_wait(
    task: Any,
    *,
    model_id: str,
    sestek_conn_id: str,
    poll_interval: float,
    end_time: float | None,
    wait_for_inference: bool,
    max_consecutive_failures: int,
    request_deadline: float,
) -> None:
    """
    Hand a wait to the triggerer, with Airflow's backstop timeout; resumes in ``execute_complete``.

    :param task: the operator or sensor deferring.
    :param model_id: the model waited for.
    :param sestek_conn_id: the Sestek connection.
    :param poll_interval: seconds between polls.
    :param end_time: absolute deadline (epoch seconds) or ``None``.
    :param wait_for_inference: also wait until the model is published.
    :param max_consecutive_failures: failed polls in a row tolerated.
    :param request_deadline: the connection's request deadline (see :func:`defer_timeout`).
    """
    from airflow_provider_sestek.triggers.sestek import SestekTrainingTrigger

    task.defer(
        trigger=SestekTrainingTrigger(
            model_id=model_id,
            sestek_conn_id=sestek_conn_id,
            poll_interval=poll_interval,
            end_time=end_time,
            wait_for_inference=wait_for_inference,
            max_consecutive_failures=max_consecutive_failures,
        ),
        method_name="execute_complete",
        timeout=defer_timeout(end_time, poll_interval, request_deadline),
    )
