"""Sensor that waits for a Sestek training started elsewhere."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowSensorTimeout, BaseSensorOperator, PokeReturnValue

from airflow_provider_sestek import api
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.links.sestek import render_portal_url
from airflow_provider_sestek.operators._common import default_deferrable, defer_wait, raise_for_outcome
from airflow_provider_sestek.waiting import ProgressWatcher, WaitSpec, observe
from airflow_provider_sestek.waiting_args import DEFAULT_HEARTBEAT_INTERVAL, check_failures, check_heartbeat_interval
from airflow_provider_sestek.waiting_outcomes import WaitOutcome

#: Key in the task state store holding the failed polls in a row (survives reschedules on Airflow 3.3+).
FAILURES_KEY = "sestek_sensor_failures"

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class SestekTrainingSensor(BaseSensorOperator):
    """
    Wait until a training is trained (and, by default, published), whoever started it.

    Use it after ``SestekTrainOperator(wait_for_completion=False)``, or for trainings started by another
    system or in the Sestek UI. Works in ``poke``/``reschedule`` mode and deferrable mode (the same
    trigger as the operator); ``poke_interval`` and ``timeout`` mean what they mean for every sensor, and a
    timeout in the triggerer becomes an ``AirflowSensorTimeout`` (so ``soft_fail`` applies).

    :param model_id: the model to wait for. (templated)
    :param sestek_conn_id: the Sestek connection. (templated)
    :param wait_for_inference: after ``Completed`` keep polling until the inference endpoint is Running
        (polling is what publishes the model).
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable``.
    :param max_consecutive_failures: failed polls in a row tolerated before the sensor fails. The count
        survives reschedules: on Airflow 3.3+ it lives in the task state store (per try, so a retry starts
        from zero); on older Airflow a poke in ``reschedule`` mode retries a failing poll itself, up to the
        limit, ``poke_interval`` apart, before it gives the worker slot back. The deferrable mode hands the
        current count to the trigger, whose rule goes on from it (a successful poll resets it, as in every mode).
    :param heartbeat_interval: seconds (or a timedelta) between two "Still waiting for model ..." lines in the
        task log while the sensor waits in ``poke`` or deferrable mode (a ``reschedule`` poke logs its poll
        anyway); no extra request.
    :return: ``{"model_id", "training_status", "inference_status", "percent"}``.
    """

    template_fields: Sequence[str] = ("model_id", "sestek_conn_id")
    ui_color = "#e0e7ff"

    def __init__(
        self,
        *,
        model_id: str,
        sestek_conn_id: str = SestekHook.default_conn_name,
        wait_for_inference: bool = True,
        deferrable: bool | None = None,
        max_consecutive_failures: int = 10,
        heartbeat_interval: float | timedelta = DEFAULT_HEARTBEAT_INTERVAL,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_id = model_id
        self.sestek_conn_id = sestek_conn_id
        self.wait_for_inference = wait_for_inference
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.max_consecutive_failures = max_consecutive_failures
        self.heartbeat_interval = heartbeat_interval

    @cached_property
    def hook(self) -> SestekHook:
        """The hook on ``sestek_conn_id``."""
        return SestekHook(self.sestek_conn_id)

    def _spec(self, end_time: float | None = None) -> WaitSpec:
        return WaitSpec(
            self.model_id,
            wait_for_inference=self.wait_for_inference,
            poll_interval=float(self.poke_interval),
            end_time=end_time,
            max_consecutive_failures=self.max_consecutive_failures,
            heartbeat_interval=check_heartbeat_interval(self.heartbeat_interval),
        )

    @cached_property
    def _watcher(self) -> ProgressWatcher:
        # The sensor's own timeout bounds the wait; the rule only judges each poke.
        return self._spec().watcher(self.log)

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """One progress poll; transient failures count against ``max_consecutive_failures``."""
        counter = _FailureCounter(context, self._watcher)
        outcome = self._poll_once()
        # Reschedule mode builds a new operator (and watcher) for every poke: without a state store to
        # carry the count over, the poke itself retries a failing poll up to the limit.
        while outcome is None and counter.store is None and self.mode == "reschedule" and self._watcher.failures:
            time.sleep(float(self.poke_interval))
            outcome = self._poll_once()
        counter.save()
        if outcome is None:
            return False
        result = raise_for_outcome(self.model_id, outcome.to_event(self.model_id), portal_url=self._portal_url())
        return PokeReturnValue(is_done=True, xcom_value=result)

    def _poll_once(self) -> WaitOutcome | None:
        """One poll, judged by the wait rule (the sensor's driver of :meth:`ProgressWatcher.step`)."""
        decision = self._watcher.step(observe(lambda: self.hook.get_training_progress(self.model_id)))
        if decision.heartbeat:
            self.log.info("%s", decision.heartbeat)
        return decision.outcome

    def _portal_url(self) -> str | None:
        """The model's portal page (named in a failure), or ``None`` when the connection defines none."""
        cfg = self.hook.config
        return render_portal_url(cfg.portal_url, self.model_id, cfg.tenant)

    def execute(self, context: Context) -> Any:
        """Poke (or reschedule) normally; in deferrable mode poke once, then hand the wait to the triggerer."""
        api.validate_model_id(self.model_id)
        check_heartbeat_interval(self.heartbeat_interval)
        check_failures(self.max_consecutive_failures)
        if not self.deferrable:
            return super().execute(context)
        first = self.poke(context)
        if isinstance(first, PokeReturnValue):
            return first.xcom_value
        timeout = float(self.timeout) if self.timeout is not None else None
        spec = self._spec(time.time() + timeout if timeout is not None else None)
        # The failures of the first poke count too: the trigger's rule starts from them (a success resets them).
        spec = dataclasses.replace(
            spec,
            initial_failures=min(self._watcher.failures, self.max_consecutive_failures - 1),
            started_at=self._watcher.started,
        )
        defer_wait(self, spec, sestek_conn_id=self.sestek_conn_id, request_deadline=self.hook.config.timeout)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """
        Resume after the trigger; a trigger timeout becomes a sensor timeout.

        :param context: the task context.
        :param event: the trigger event.
        """
        if isinstance(event, dict) and event.get("status") == "timeout":
            raise AirflowSensorTimeout(str(event.get("message")))
        return raise_for_outcome(self.model_id, event, portal_url=self._portal_url())


class _FailureCounter:
    """
    Carry the watcher's failure count over pokes in the task state store, per try (a retry starts afresh).

    :param context: the task context (``task_state_store`` exists on Airflow 3.3+).
    :param watcher: the sensor's watcher, whose ``failures`` is loaded now and saved by :meth:`save`.
    """

    def __init__(self, context: Context, watcher: ProgressWatcher) -> None:
        self.store = context.get("task_state_store")
        self.watcher = watcher
        ti = context.get("ti")
        self.try_number = int(getattr(ti, "try_number", 0) or 0)
        self.loaded = watcher.failures
        if self.store is not None:
            value = self.store.get(FAILURES_KEY)
            failures = value.get("failures") if isinstance(value, dict) else None
            same_try = isinstance(value, dict) and value.get("try_number") == self.try_number
            self.loaded = failures if same_try and isinstance(failures, int) else 0
            watcher.failures = self.loaded

    def save(self) -> None:
        """Store the count when it changed."""
        if self.store is not None and self.watcher.failures != self.loaded:
            self.store.set(FAILURES_KEY, {"try_number": self.try_number, "failures": self.watcher.failures})


__all__ = ["SestekTrainingSensor"]
