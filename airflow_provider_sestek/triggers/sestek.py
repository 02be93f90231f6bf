"""Deferrable wait for a Sestek training: polls progress in the triggerer until trained and published."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.triggers._polling import polling_hook
from airflow_provider_sestek.triggers.published import SestekModelPublishedTrigger
from airflow_provider_sestek.waiting import WaitSpec, aobserve
from airflow_provider_sestek.waiting_args import (
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_MAX_CONSECUTIVE_FAILURES,
    check_heartbeat_interval,
)
from airflow_provider_sestek.waiting_outcomes import WaitOutcome


class SestekTrainingTrigger(BaseTrigger):
    """
    Poll a training's progress until it is trained (and, by default, published), failed or past its deadline.

    Only ids, numbers and flags are serialized: never a token or secret (trigger kwargs are stored in the
    metadata database). Re-created from its kwargs, as after a triggerer restart, it simply continues with
    the same absolute deadline. Polling goes on after ``Completed`` while ``wait_for_inference`` is set,
    because the progress call is what publishes the model.

    Every poll is judged by the one wait rule (:meth:`~airflow_provider_sestek.waiting.ProgressWatcher.step`),
    as in the sync operator and the sensor: transient failures (network errors, timeouts, 429, 5xx, a 404)
    are retried with backoff inside each poll and tolerated for ``max_consecutive_failures`` polls in a row;
    auth and validation errors end the wait at once. The trigger yields exactly one event whose ``status``
    is ``success``, ``failed``, ``timeout`` or ``error``, with ``message``, ``model_id``, the last
    ``progress`` and ``restarted`` (the model was retrained by someone else during the wait).

    :param model_id: the model to wait for.
    :param sestek_conn_id: the Sestek connection id.
    :param poll_interval: seconds between polls.
    :param end_time: absolute deadline in epoch seconds, or ``None`` to wait forever.
    :param wait_for_inference: after ``Completed`` keep polling until ``inferenceStatus`` is Running.
    :param max_consecutive_failures: failed polls in a row before the wait gives up.
    :param submitted_at: when the task's train POST was answered (epoch seconds; ``None`` for a training it
        attached to): right after it, the previous training's final status is not taken for the new one's.
    :param initial_failures: failed polls already in a row when the wait starts (a sensor's first poke).
    :param heartbeat_interval: seconds between two "Still waiting for model ..." lines in the triggerer's log
        of the task (from the polls' answers: no extra request).
    :param started_at: when the task's wait started (epoch seconds; the submit when known), ``None`` for when
        this trigger starts: the heartbeat's elapsed time and the task's "trained in" count from it. Both have
        defaults, so a trigger serialized by an older version loads.
    """

    def __init__(
        self,
        model_id: str,
        sestek_conn_id: str = SestekHook.default_conn_name,
        poll_interval: float = 30.0,
        end_time: float | None = None,
        wait_for_inference: bool = True,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
        submitted_at: float | None = None,
        initial_failures: int = 0,
        heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
        started_at: float | None = None,
    ) -> None:
        super().__init__()
        self.model_id = model_id
        self.sestek_conn_id = sestek_conn_id
        self.spec = WaitSpec(
            model_id,
            wait_for_inference=bool(wait_for_inference),
            poll_interval=float(poll_interval),
            end_time=float(end_time) if end_time is not None else None,
            max_consecutive_failures=int(max_consecutive_failures),
            submitted_at=float(submitted_at) if submitted_at is not None else None,
            initial_failures=int(initial_failures),
            heartbeat_interval=check_heartbeat_interval(heartbeat_interval),
            started_at=float(started_at) if started_at is not None else None,
        )

    @classmethod
    def from_spec(cls, spec: WaitSpec, sestek_conn_id: str) -> SestekTrainingTrigger:
        """
        The trigger of a wait.

        :param spec: the wait.
        :param sestek_conn_id: the Sestek connection id.
        """
        return cls(
            spec.model_id,
            sestek_conn_id,
            poll_interval=spec.poll_interval,
            end_time=spec.end_time,
            wait_for_inference=spec.wait_for_inference,
            max_consecutive_failures=spec.max_consecutive_failures,
            submitted_at=spec.submitted_at,
            initial_failures=spec.initial_failures,
            heartbeat_interval=spec.heartbeat_interval,
            started_at=spec.started_at,
        )

    @property
    def poll_interval(self) -> float:
        """Seconds between polls."""
        return self.spec.poll_interval

    @property
    def end_time(self) -> float | None:
        """The absolute deadline (epoch seconds)."""
        return self.spec.end_time

    @property
    def wait_for_inference(self) -> bool:
        """Whether the wait goes on until the model is published."""
        return self.spec.wait_for_inference

    @property
    def max_consecutive_failures(self) -> int:
        """Failed polls in a row tolerated."""
        return self.spec.max_consecutive_failures

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
                "submitted_at": self.spec.submitted_at,
                "initial_failures": self.spec.initial_failures,
                "heartbeat_interval": self.spec.heartbeat_interval,
                "started_at": self.spec.started_at,
            },
        )

    def _hook(self) -> SestekHook:
        return polling_hook(self.sestek_conn_id, self.poll_interval)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until one outcome; yields exactly one event."""
        hook = self._hook()
        async with hook.async_session():
            outcome = await self._poll(hook)
        yield TriggerEvent(outcome.to_event(self.model_id))

    async def _poll(self, hook: SestekHook) -> WaitOutcome:
        """The async driver of the wait rule: poll, let the rule decide, sleep what it says."""
        watcher = self.spec.watcher(self.log)
        while True:
            decision = watcher.step(await aobserve(hook.aget_training_progress(self.model_id, stop_at=self.end_time)))
            if decision.outcome is not None:
                return decision.outcome
            if decision.heartbeat:
                self.log.info("%s", decision.heartbeat)
            await asyncio.sleep(decision.delay)


__all__ = ["SestekModelPublishedTrigger", "SestekTrainingTrigger"]
