"""Sensor that waits for a Sestek training started elsewhere."""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowSensorTimeout, BaseSensorOperator, PokeReturnValue

from airflow_provider_sestek.exceptions import SestekError
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.operators.sestek import default_deferrable
from airflow_provider_sestek.waiting import ProgressWatcher, raise_for_outcome

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
    :param max_consecutive_failures: failed polls in a row tolerated before the sensor fails.
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_id = model_id
        self.sestek_conn_id = sestek_conn_id
        self.wait_for_inference = wait_for_inference
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.max_consecutive_failures = max_consecutive_failures

    @cached_property
    def hook(self) -> SestekHook:
        """The hook on ``sestek_conn_id``."""
        return SestekHook(self.sestek_conn_id)

    @cached_property
    def _watcher(self) -> ProgressWatcher:
        # The sensor's own timeout bounds the wait; the watcher only judges each poke.
        return ProgressWatcher(
            self.model_id,
            wait_for_inference=self.wait_for_inference,
            poll_interval=float(self.poke_interval),
            end_time=None,
            max_consecutive_failures=self.max_consecutive_failures,
            logger=self.log,
        )

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """One progress poll; transient failures count against ``max_consecutive_failures``."""
        try:
            outcome = self._watcher.on_progress(self.hook.get_training_progress(self.model_id))
        except SestekError as exc:
            outcome = self._watcher.on_error(exc)
        if outcome is None:
            return False
        return PokeReturnValue(
            is_done=True, xcom_value=raise_for_outcome(self.model_id, outcome.to_event(self.model_id))
        )

    def execute(self, context: Context) -> Any:
        """Poke (or reschedule) normally; in deferrable mode poke once, then hand the wait to the triggerer."""
        from airflow_provider_sestek import api

        api.validate_model_id(self.model_id)
        if not self.deferrable:
            return super().execute(context)
        first = self.poke(context)
        if isinstance(first, PokeReturnValue):
            return first.xcom_value
        from airflow_provider_sestek.triggers.sestek import SestekTrainingTrigger

        timeout = float(self.timeout) if self.timeout is not None else None
        self.defer(
            trigger=SestekTrainingTrigger(
                model_id=self.model_id,
                sestek_conn_id=self.sestek_conn_id,
                poll_interval=float(self.poke_interval),
                end_time=time.time() + timeout if timeout is not None else None,
                wait_for_inference=self.wait_for_inference,
                max_consecutive_failures=self.max_consecutive_failures,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """
        Resume after the trigger; a trigger timeout becomes a sensor timeout.

        :param context: the task context.
        :param event: the trigger event.
        """
        if isinstance(event, dict) and event.get("status") == "timeout":
            raise AirflowSensorTimeout(str(event.get("message")))
        return raise_for_outcome(self.model_id, event)


__all__ = ["SestekTrainingSensor"]
