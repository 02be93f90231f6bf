"""
Event-driven scheduling on published models: a watcher trigger for ``AssetWatcher`` (Airflow 3).

``SestekModelPublishedTrigger`` polls the progress of one or more models and fires once per new publication,
a transition into "Completed and inference Running", whoever started the training: the Sestek UI, another
pipeline or ``SestekTrainOperator``. The public API has no event feed and no publication id, so the trigger
sees only what its polls see: two trainings that finish between two polls count as one publication, and
a whole retrain started and finished while the trigger was not running (triggerer down) is not seen.

It remembers what it saw per model (the *watermark*: published or not, and how many publications it has
reported). On Airflow 3.3 the watermark lives in the asset state store the triggerer injects into event
triggers, so a triggerer restart or a re-created trigger does not fire again for the same publication, and
a publication that happened while the triggerer was down fires once when it comes back. On 3.0 - 3.2 there
is no such store: the watermark lives in memory, and a restart takes the models' state as it finds it as
the new starting point (it fires again only with ``fire_on_start``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.providers.common.compat.triggers import BaseEventTrigger
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS
from airflow.triggers.base import TriggerEvent

from airflow_provider_sestek import api
from airflow_provider_sestek.exceptions import SestekUnsupported, SestekValidationError
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.triggers._polling import polling_hook
from airflow_provider_sestek.waiting import (
    DEFAULT_MAX_CONSECUTIVE_FAILURES,
    ProgressWatcher,
    aobserve,
    check_failures,
    check_poll_interval,
)

#: Prefix of the asset state store key; the connection id completes it (one watermark per API).
STATE_KEY_PREFIX = "sestek_publications"


class PublicationWatermark:
    """
    What the trigger has seen of each model: the marks its rules start from and the form they are stored in.

    :param state: a stored watermark, ``{model_id: {"published": bool, "publications": int, "training": bool}}``
        (``training``: a running training was seen since the last publication).
    """

    def __init__(self, state: Any = None) -> None:
        self.state: dict[str, dict[str, Any]] = {}
        if isinstance(state, dict):
            for model_id, mark in state.items():
                # Any task writing the asset's store may have put anything here: an unreadable mark is dropped.
                if not isinstance(mark, dict) or not isinstance(mark.get("published"), bool):
                    continue
                publications = mark.get("publications") or 0
                if isinstance(publications, int) and not isinstance(publications, bool) and publications >= 0:
                    # Marks stored before "training" existed: a not-published one was a real observation then.
                    training = mark["training"] if isinstance(mark.get("training"), bool) else not mark["published"]
                    self.state[str(model_id)] = {
                        "published": mark["published"],
                        "publications": publications,
                        "training": training,
                    }


class SestekModelPublishedTrigger(BaseEventTrigger):
    """
    Fire once per new publication of a Sestek model, for ``AssetWatcher`` (event-driven scheduling).

    Polls each model's progress every ``poll_interval`` seconds with the hook's async call (same token
    cache, connection pool and in-poll retries as :class:`SestekTrainingTrigger`) and yields one event each
    time a real answer of the progress endpoint that is not "Completed and inference Running" is followed by one
    that is. A model already published when the trigger first sees it does not fire unless ``fire_on_start``.
    A failed poll is no observation: a 404 (an unknown model, or a gateway restarting), a timeout or a 5xx
    never fires and never counts as "not published", so a model first seen published after a run of 404s
    is a starting point, not a publication. A failed training never fires.

    Failures never fire and never end the watch: transient ones (network, 429, 5xx) are logged and the
    model is polled again next time, an error after ``max_consecutive_failures`` in a row; auth and
    configuration errors are logged as errors at every poll until fixed. (A task's wait ends on them; a
    watcher that ended would be started again at once by the triggerer.)

    Only ids and numbers are serialized (the trigger's identity is a hash of them): never a token or secret.
    Needs Airflow 3 (``AssetWatcher``); on 2.11 constructing it raises :class:`SestekUnsupported`.

    :param model_ids: one model id or several.
    :param sestek_conn_id: the Sestek connection id.
    :param poll_interval: seconds between two polls of every model.
    :param fire_on_start: also fire for a model already published when first seen.
    :param max_consecutive_failures: failed polls of one model in a row before they are logged as errors.
    :event: ``{"model_id", "publication", "percent", "training_status", "inference_status"}``; ``publication``
        counts the publications this watermark has seen of the model (1, 2, ...).
    """

    def __init__(
        self,
        model_ids: str | Sequence[str],
        sestek_conn_id: str = SestekHook.default_conn_name,
        poll_interval: float = 60.0,
        fire_on_start: bool = False,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
    ) -> None:
        if not AIRFLOW_V_3_0_PLUS:
            raise SestekUnsupported(
                "SestekModelPublishedTrigger",
                "event-driven scheduling (AssetWatcher) needs Airflow 3.0 or later; on Airflow 2 schedule a DAG "
                "on the model's Dataset (SestekTrainOperator emits it) or wait with SestekTrainingSensor",
            )
        super().__init__()
        ids = [model_ids] if isinstance(model_ids, str) else list(model_ids)
        if not ids:
            raise SestekValidationError("model_ids", model_ids, "give at least one model id")
        # Sorted and unique: the same models in another order are the same trigger (its identity is a hash).
        self.model_ids = sorted({api.validate_model_id(m, f"model_ids[{i}]") for i, m in enumerate(ids)})
        if not isinstance(sestek_conn_id, str) or not sestek_conn_id:
            raise SestekValidationError("sestek_conn_id", sestek_conn_id, "must be a non-empty connection id")
        self.sestek_conn_id = sestek_conn_id
        self.poll_interval = check_poll_interval(poll_interval)
        if not isinstance(fire_on_start, bool):  # bool("false") is True: never guess
            raise SestekValidationError("fire_on_start", fire_on_start, "must be True or False")
        self.fire_on_start = fire_on_start
        self.max_consecutive_failures = check_failures(max_consecutive_failures)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and kwargs: ids and numbers only, always in the same order."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "model_ids": list(self.model_ids),
                "sestek_conn_id": self.sestek_conn_id,
                "poll_interval": self.poll_interval,
                "fire_on_start": self.fire_on_start,
                "max_consecutive_failures": self.max_consecutive_failures,
            },
        )

    @property
    def state_key(self) -> str:
        """The asset state store key of this trigger's watermark."""
        return f"{STATE_KEY_PREFIX}:{self.sestek_conn_id}"

    def rules(self, watermark: PublicationWatermark) -> dict[str, ProgressWatcher]:
        """
        One wait rule per model, in watch mode, starting from the stored marks.

        :param watermark: what was seen before.
        """
        return {
            model_id: ProgressWatcher(
                model_id,
                wait_for_inference=True,
                poll_interval=self.poll_interval,
                end_time=None,
                max_consecutive_failures=self.max_consecutive_failures,
                logger=self.log,
                watch=True,
                mark=watermark.state.get(model_id),
                fire_on_start=self.fire_on_start,
            )
            for model_id in self.model_ids
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll forever; yield one event per new publication (the rule decides, this loop only polls)."""
        hook = polling_hook(self.sestek_conn_id, self.poll_interval)
        rules = self.rules(PublicationWatermark(await self._load()))
        async with hook.async_session():
            while True:
                started = time.time()
                before = repr(self._marks(rules))
                delay = self.poll_interval
                for model_id, rule in rules.items():
                    decision = rule.step(await aobserve(hook.aget_training_progress(model_id)))
                    delay = decision.delay
                    if decision.publication is not None and rule.last is not None:
                        self.log.info("Model %s published (publication %d): firing", model_id, decision.publication)
                        event = {"model_id": model_id, "publication": decision.publication, **rule.last.to_dict()}
                        yield TriggerEvent(event)
                # Saved after the events were handed over: a crash in between may fire one publication again
                # on restart (at least once), never lose it.
                marks = self._marks(rules)
                if repr(marks) != before:
                    await self._save(marks)
                await asyncio.sleep(max(delay - (time.time() - started), 0.0))

    @staticmethod
    def _marks(rules: dict[str, ProgressWatcher]) -> dict[str, dict[str, Any]]:
        """The watermark to store: the marks of the models seen at least once."""
        return {model_id: dict(rule.mark) for model_id, rule in rules.items() if rule.mark is not None}

    # --- the watermark in the asset state store (Airflow 3.3+) ---------------------------------------------

    def _store(self) -> Any:
        # Injected by the 3.3 triggerer into event triggers that watch assets; absent before 3.3.
        return getattr(self, "asset_state_store", None)

    async def _load(self) -> Any:
        store = self._store()
        if store is None:
            self.log.info("No asset state store (Airflow < 3.3 or not run by a watcher): watermark kept in memory")
            return None
        try:
            return await store.aget(self.state_key)
        except Exception as exc:  # several assets sharing this trigger, or the store unreachable
            self.log.warning("Could not read the watermark from the asset state store, starting afresh: %s", exc)
            return None

    async def _save(self, state: dict[str, dict[str, Any]]) -> None:
        store = self._store()
        if store is None:
            return
        try:
            # Other watchers of the same asset and connection share the key: update only this trigger's models.
            stored = await store.aget(self.state_key)
            merged = dict(stored) if isinstance(stored, dict) else {}
            merged.update({m: state[m] for m in self.model_ids if m in state})
            await store.aset(self.state_key, merged)
        except Exception as exc:
            self.log.warning("Could not save the watermark to the asset state store: %s", exc)
