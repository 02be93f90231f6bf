"""
The arguments of a wait, checked before any request (no I/O): durations, ``poll_interval``,
``heartbeat_interval`` and ``max_consecutive_failures``, with their defaults and limits.

Every waiter (the operators, the sensor, the triggers) checks its arguments with these functions, so the
rules and the wording of their errors are written once.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from airflow_provider_sestek.exceptions import SestekValidationError

#: Consecutive failed polls tolerated before a waiter gives up (each poll already retries inside the hook).
DEFAULT_MAX_CONSECUTIVE_FAILURES = 10
#: Seconds between two "still waiting" lines in the task log.
DEFAULT_HEARTBEAT_INTERVAL = 300.0
#: The longest duration (``timeout``, ``heartbeat_interval``) accepted: ten years.
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


def check_poll_interval(value: Any, field: str = "poll_interval") -> float:
    """
    :param value: the ``poll_interval`` argument.
    :param field: the parameter name, for the error.
    :return: it as a float.
    """
    if not _within(value, zero_allowed=False, most=MAX_POLL_INTERVAL):
        raise SestekValidationError(
            field, value, f"must be a positive number of seconds, at most {MAX_POLL_INTERVAL:g} (one day)"
        )
    return float(value)


def check_heartbeat_interval(value: Any, field: str = "heartbeat_interval") -> float:
    """
    :param value: the ``heartbeat_interval`` argument (seconds or a timedelta).
    :param field: the parameter name, for the error.
    :return: it in seconds, as a float.
    """
    number = value.total_seconds() if isinstance(value, timedelta) else value
    if not _within(number, zero_allowed=False, most=MAX_DURATION):
        raise SestekValidationError(
            field, value, f"must be a positive number of seconds or a timedelta, at most {MAX_DURATION:g} (ten years)"
        )
    return float(number)


def check_failures(value: Any, field: str = "max_consecutive_failures") -> int:
    """
    :param value: the ``max_consecutive_failures`` argument.
    :param field: the parameter name, for the error.
    :return: it.
    :raises SestekValidationError: not a whole number of at least 1 (0 would fail on the first blip).
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SestekValidationError(field, value, "must be a whole number of at least 1")
    return value
