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
import random
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.providers.common.compat.triggers import BaseEventTrigger
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS
from airflow.triggers.base import TriggerEvent

from airflow_provider_sestek import api
from airflow_provider_sestek.exceptions import SestekApiError, SestekUnsupported, SestekValidationError
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.operators._common import check_poll_interval
from airflow_provider_sestek.triggers.sestek import polling_hook
from airflow_provider_sestek.waiting import DEFAULT_MAX_CONSECUTIVE_FAILURES, is_transient

#: Prefix of the asset state store key; the connection id completes it (one watermark per API).
STATE_KEY_PREFIX = "sestek_publications"


class PublicationWatermark:
    """
    What the trigger has seen of each model, and the rule of when to fire (no I/O).

    :param fire_on_start: whether a model already published the first time it is seen counts as new.
    :param state: a stored watermark, ``{model_id: {"published": bool, "publications": int}}``.
    """

    def __init__(self, fire_on_start: bool, state: Any = None) -> None:
        self.fire_on_start = fire_on_start
        self.state: dict[str, dict[str, Any]] = {}
        if isinstance(state, dict):
            for model_id, mark in state.items():
                # Any task writing the asset's store may have put anything here: an unreadable mark is dropped.
                if not isinstance(mark, dict) or not isinstance(mark.get("published"), bool):
                    continue
                publications = mark.get("publications") or 0
                if isinstance(publications, int) and not isinstance(publications, bool) and publications >= 0:
                    self.state[str(model_id)] = {"published": mark["published"], "publications": publications}

    def observe(self, model_id: str, published: bool) -> int | None:
        """
        Record one observation; return the publication's number when it is a new publication.

        :param model_id: the model polled.
        :param published: whether it is Completed with inference Running now.
        """
        mark = self.state.get(model_id)
        if mark is None:
            # First sight ever: the starting point, a publication only if the user asked for it.
            fire = published and self.fire_on_start
            self.state[model_id] = {"published": published, "publications": 1 if fire else 0}
            return 1 if fire else None
        fire = published and not mark["published"]
        mark["published"] = published
        if fire:
            mark["publications"] += 1
            return int(mark["publications"])
        return None


class SestekModelPublishedTrigger(BaseEventTrigger):
    """
    Fire once per new publication of a Sestek model, for ``AssetWatcher`` (event-driven scheduling).

    Polls each model's progress every ``poll_interval`` seconds with the hook's async call (same token
    cache, connection pool and in-poll retries as :class:`SestekTrainingTrigger`) and yields one event each
    time a model goes from anything else into "Completed and inference Running". A model already published
    when the trigger first sees it does not fire unless ``fire_on_start``. A model the server does not know
    (404) counts as not published, so its first publication fires. A failed training never fires.

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
        if isinstance(max_consecutive_failures, bool) or not isinstance(max_consecutive_failures, int):
            raise SestekValidationError("max_consecutive_failures", max_consecutive_failures, "must be a whole number")
        self.max_consecutive_failures = max(1, max_consecutive_failures)

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

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll forever; yield one event per new publication."""
        hook = polling_hook(self.sestek_conn_id, self.poll_interval)
        watermark = PublicationWatermark(self.fire_on_start, await self._load())
        failures = dict.fromkeys(self.model_ids, 0)
        async with hook.async_session():
            while True:
                started = time.time()
                before = repr(watermark.state)
                for model_id in self.model_ids:
                    progress = await self._poll(hook, model_id, failures)
                    if progress is None:
                        continue  # a failed poll is no observation: the watermark stays
                    number = watermark.observe(model_id, progress.is_published)
                    if number is not None:
                        self.log.info("Model %s published (publication %d): firing", model_id, number)
                        yield TriggerEvent({"model_id": model_id, "publication": number, **progress.to_dict()})
                # Saved after the events were handed over: a crash in between may fire one publication again
                # on restart (at least once), never lose it.
                if repr(watermark.state) != before:
                    await self._save(watermark.state)
                elapsed = time.time() - started
                await asyncio.sleep(max(self.poll_interval * random.uniform(0.9, 1.1) - elapsed, 0.0))

    async def _poll(self, hook: SestekHook, model_id: str, failures: dict[str, int]) -> api.TrainingProgress | None:
        """One model's progress; a 404 (unknown model) is "not published"; ``None`` after a failure."""
        try:
            progress = await hook.aget_training_progress(model_id)
        except asyncio.CancelledError:
            raise  # triggerer shutdown or the watcher removed: nothing to undo
        except SestekApiError as exc:
            if exc.status == 404:
                failures[model_id] = 0
                return api.parse_progress({"percent": 0, "trainingStatus": None})
            self._failed(model_id, exc, failures)
            return None
        except Exception as exc:
            self._failed(model_id, exc, failures)
            return None
        failures[model_id] = 0
        return progress

    def _failed(self, model_id: str, exc: BaseException, failures: dict[str, int]) -> None:
        failures[model_id] += 1
        if not is_transient(exc):
            self.log.error("Watching Sestek model %s: %s (polling again in %ss)", model_id, exc, self.poll_interval)
        elif failures[model_id] >= self.max_consecutive_failures:
            self.log.error("Watching Sestek model %s: %d failed polls in a row: %s", model_id, failures[model_id], exc)
        else:
            self.log.warning("Watching Sestek model %s: poll failed, will retry: %s", model_id, exc)

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
