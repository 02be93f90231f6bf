"""Deferrable wait for a Sestek training: polls progress in the triggerer until trained and published."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.waiting import DEFAULT_MAX_CONSECUTIVE_FAILURES, ProgressWatcher, WaitOutcome


def __getattr__(name: str) -> Any:
    # The watcher's module imports this one: loaded on first use, so either can be imported first.
    if name == "SestekModelPublishedTrigger":
        from airflow_provider_sestek.triggers.published import SestekModelPublishedTrigger

        return SestekModelPublishedTrigger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def poll_retry_deadline(poll_interval: float) -> float:
    """
    How long the trigger's in-poll retries may go on (the hook's ``retry_deadline``); never past the wait's
    own deadline, which each poll passes as ``stop_at``.

    :param poll_interval: seconds between polls.
    """
    return max(30.0, float(poll_interval))


def polling_hook(sestek_conn_id: str, poll_interval: float) -> SestekHook:
    """
    The hook a polling trigger uses: short in-poll retries, as the poll loop itself is the long-term retry.

    :param sestek_conn_id: the Sestek connection id.
    :param poll_interval: seconds between polls.
    """
    return SestekHook(
        sestek_conn_id,
        retry_limit=2,
        retry_delay=min(1.0, poll_interval),
        retry_max_delay=10.0,
        retry_deadline=poll_retry_deadline(poll_interval),
    )


class SestekTrainingTrigger(BaseTrigger):
    """
    Poll a training's progress until it is trained (and, by default, published), failed or past its deadline.

    Only ids, numbers and flags are serialized: never a token or secret (trigger kwargs are stored in the
    metadata database). Re-created from its kwargs, as after a triggerer restart, it simply continues with
    the same absolute deadline. Polling goes on after ``Completed`` while ``wait_for_inference`` is set,
    because the progress call is what publishes the model.

    Transient failures (network errors, timeouts, 429, 5xx, a 404 right after submit) are retried with
    backoff inside each poll and tolerated for ``max_consecutive_failures`` polls in a row; auth and
    validation errors end the wait at once. The trigger yields exactly one event whose ``status`` is
    ``success``, ``failed``, ``timeout`` or ``error``, with ``message``, ``model_id`` and the last
    ``progress``.

    :param model_id: the model to wait for.
    :param sestek_conn_id: the Sestek connection id.
    :param poll_interval: seconds between polls.
    :param end_time: absolute deadline in epoch seconds, or ``None`` to wait forever.
    :param wait_for_inference: after ``Completed`` keep polling until ``inferenceStatus`` is Running.
    :param max_consecutive_failures: failed polls in a row before the wait gives up.
    """

    def __init__(
        self,
        model_id: str,
        sestek_conn_id: str = SestekHook.default_conn_name,
        poll_interval: float = 30.0,
        end_time: float | None = None,
        wait_for_inference: bool = True,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
    ) -> None:
        super().__init__()
        self.model_id = model_id
        self.sestek_conn_id = sestek_conn_id
        self.poll_interval = float(poll_interval)
        self.end_time = float(end_time) if end_time is not None else None
        self.wait_for_inference = bool(wait_for_inference)
        self.max_consecutive_failures = int(max_consecutive_failures)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and kwargs; ids and numbers only."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "model_id": self.model_id,
                "sestek_conn_id": self.sestek_conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "wait_for_inference": self.wait_for_inference,
                "max_consecutive_failures": self.max_consecutive_failures,
            },
        )

    def _hook(self) -> SestekHook:
        return polling_hook(self.sestek_conn_id, self.poll_interval)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until one outcome; yields exactly one event."""
        hook = self._hook()
        watcher = ProgressWatcher(
            self.model_id,
            wait_for_inference=self.wait_for_inference,
            poll_interval=self.poll_interval,
            end_time=self.end_time,
            max_consecutive_failures=self.max_consecutive_failures,
            logger=self.log,
        )
        async with hook.async_session():
            outcome = await self._poll(hook, watcher)
        yield TriggerEvent(outcome.to_event(self.model_id))

    async def _poll(self, hook: SestekHook, watcher: ProgressWatcher) -> WaitOutcome:
        while True:
            try:
                outcome = watcher.on_progress(await hook.aget_training_progress(self.model_id, stop_at=self.end_time))
            except asyncio.CancelledError:
                # Triggerer shutdown or user action: the remote training goes on; nothing to undo.
                raise
            except Exception as exc:
                outcome = watcher.on_error(exc)
            outcome = outcome or watcher.check_deadline()
            if outcome is not None:
                return outcome
            await asyncio.sleep(watcher.sleep_seconds())
