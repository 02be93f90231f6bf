"""
When a failed Sestek call is worth another attempt, and how long to wait before it.

The decision is pure (it sleeps nowhere): the call flow asks :meth:`Retries.after` for a delay and
yields it to whichever transport drives it. The backoff and stop rules are tenacity's strategies; only
the loop around them is ours, so the common path (the first attempt succeeds) builds no retry state at all.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import tenacity

from airflow_provider_sestek import api
from airflow_provider_sestek.exceptions import SestekApiError, SestekError, SestekTransportError

# The strategies read only the call state; it needs a retrying object to belong to, never used to retry.
_RETRYING = tenacity.Retrying()
# Cap on a server-requested Retry-After: a misbehaving gateway must not park a task for an hour.
MAX_RETRY_AFTER = 120.0


def describe_exception(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """
    The text of an exception, without ``secrets`` and then cut to a log-friendly length (a library's error
    may quote what a server answered, an echo of the request included).

    :param exc: the exception.
    :param secrets: the secrets of the request it is about.
    """
    return api.excerpt(str(exc) or type(exc).__name__, 300, secrets)


def is_retryable(exc: BaseException, idempotent: bool) -> bool:
    """
    Whether another attempt of a call may help and cannot do harm.

    :param exc: what the attempt raised.
    :param idempotent: the call may be repeated (everything but the train POST).
    """
    if isinstance(exc, SestekTransportError):
        return idempotent or not exc.maybe_sent
    if isinstance(exc, SestekApiError):
        if 200 <= exc.status < 300:
            # A success answer with an unreadable body (cut off, garbled by a proxy): ask again, unless it
            # was the train POST, which did take effect (the caller checks progress).
            return idempotent
        # 429 is an explicit "not processed": safe to repeat even for the train POST.
        return api.is_retryable_status(exc.status, "GET" if idempotent else "POST") and (
            idempotent or exc.status == 429
        )
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """
    Limits of the retries of one call.

    :param limit: retries after the first attempt.
    :param delay: first backoff delay in seconds (doubles each retry, with up to as much jitter).
    :param max_delay: longest single backoff delay in seconds.
    :param deadline: longest total time, in seconds, spent on one call.
    """

    limit: int = 5
    delay: float = 1.0
    max_delay: float = 30.0
    deadline: float = 300.0

    def wait_strategy(self) -> tenacity.wait.wait_base:
        """
        The backoff: exponential from ``delay``, capped at ``max_delay``, plus jitter that scales with the
        first delay (tenacity's own jitter is a flat second whatever the delay). Built from
        ``wait_exponential + wait_random``: ``wait_exponential_jitter`` renamed its first argument in
        tenacity 9.1, so no spelling of it works across the versions Airflow allows.
        """
        return tenacity.wait_exponential(multiplier=self.delay, max=self.max_delay) + tenacity.wait_random(
            0, self.delay
        )

    def start(self, endpoint: str, idempotent: bool, log: Any, stop_at: float | None = None) -> Retries:
        """
        The retry decisions of one call.

        :param endpoint: ``token``, ``progress``, ``train`` or ``inference`` (for the log).
        :param idempotent: the call may be repeated.
        :param log: where each retry is announced (a ``logging.Logger`` or Airflow's structlog logger).
        :param stop_at: wall-clock time (epoch seconds) after which no attempt starts (a wait's deadline).
        """
        return Retries(self, endpoint, idempotent, log, stop_at)


class Retries:
    """
    The retry decisions of one call, in order of its failures.

    :param policy: the limits.
    :param endpoint: for the log.
    :param idempotent: the call may be repeated.
    :param log: where each retry is announced.
    :param stop_at: wall-clock time after which no attempt starts.
    """

    def __init__(self, policy: RetryPolicy, endpoint: str, idempotent: bool, log: Any, stop_at: float | None) -> None:
        self._policy = policy
        self._endpoint = endpoint
        self._idempotent = idempotent
        self._log = log
        self._stop_at = stop_at
        self._state: tenacity.RetryCallState | None = None
        self._started = time.monotonic()

    def after(self, exc: SestekError) -> float:
        """
        Seconds to wait before the next attempt, or ``exc`` raised again when there is none.

        :param exc: what the attempt raised.
        """
        if not is_retryable(exc, self._idempotent):
            raise exc
        policy = self._policy
        state = self._state
        if state is None:
            state = self._state = tenacity.RetryCallState(_RETRYING, fn=None, args=(), kwargs={})
            state.start_time = self._started
        else:
            state.attempt_number += 1
        state.set_exception((type(exc), exc, exc.__traceback__))
        stop = tenacity.stop_after_attempt(policy.limit + 1) | tenacity.stop_after_delay(policy.deadline)
        if stop(state):
            raise exc
        delay = min(policy.wait_strategy()(state), policy.max_delay)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            delay = max(delay, min(float(retry_after), MAX_RETRY_AFTER))
        if self._stop_at is not None and time.time() + delay >= self._stop_at:
            raise exc
        self._log.warning(
            "Sestek %s: attempt %d failed (%s); retrying in %.1fs",
            self._endpoint,
            state.attempt_number,
            describe_exception(exc),
            delay,
        )
        state.idle_for += delay
        return delay
