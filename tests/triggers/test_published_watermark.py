"""
The published-model watcher's stored watermark survives what the asset state store may hold and who else writes
it: a trigger only ever updates its own models in it, and a mark it cannot read is dropped, never the end of the
watch.

Two watchers of one asset (``Asset(..., watchers=[AssetWatcher(...a-bot...), AssetWatcher(...b-bot...)])``) on
the same connection share the asset's state store, and so the one watermark key. Each trigger saved its whole
in-memory watermark under that key: the last writer erased the other's models. After a triggerer restart the
erased model was seen "for the first time" again, so a publication that happened while the triggerer was down
(documented to fire once on restart) was taken as the starting point and lost.

The asset state store is writable by any task with the asset in its inlets or outlets (and by the REST API), so
the stored value may be anything JSON. A non-numeric ``publications`` made ``int()`` raise in ``run()`` before
the first poll: the watcher died at every (re)start and never fired again. That model now starts afresh.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.testing import SestekEmulator
from tests.triggers.test_published import MemoryStore, data, needs_airflow_3, polls, submit, trigger, until, watching

__all__ = ["data"]  # the fixture


def published(model_id: str) -> None:
    """Poll as another reader would until the training started is published."""
    while not SestekHook().get_training_progress(model_id).is_published:
        pass


@needs_airflow_3
def test_two_watchers_sharing_a_store_each_keep_their_watermark(sestek_conn: SestekEmulator, data: Path) -> None:
    store = MemoryStore()

    async def scenario() -> list[dict[str, Any]]:
        # Both models training: each watcher records "not published" as its starting point (a 404 would not
        # count: it is no observation).
        await asyncio.to_thread(submit, "a-bot", data)
        await asyncio.to_thread(submit, "b-bot", data)
        async with watching(trigger("a-bot"), store), watching(trigger("b-bot"), store):
            await until(lambda: sorted(next(iter(store.values.values()), {})) == ["a-bot", "b-bot"])
        # The triggerer is down: both models get published meanwhile.
        await asyncio.to_thread(published, "a-bot")
        await asyncio.to_thread(published, "b-bot")
        # It comes back: both triggers re-created from their kwargs, the same store.
        async with watching(trigger("a-bot"), store) as a, watching(trigger("b-bot"), store) as b:
            await polls(sestek_conn, "a-bot", 5)
            await polls(sestek_conn, "b-bot", 5)
            return a + b

    events = asyncio.run(scenario())
    assert sorted((e["model_id"], e["publication"]) for e in events) == [("a-bot", 1), ("b-bot", 1)]
    (stored,) = store.values.values()
    assert sorted(stored) == ["a-bot", "b-bot"]


@needs_airflow_3
def test_unreadable_stored_mark_does_not_kill_the_watcher(sestek_conn: SestekEmulator, data: Path) -> None:
    store = MemoryStore()
    store.values["sestek_publications:sestek_default"] = {
        "faq-bot": {"published": False, "publications": "many"},
        "b-bot": {"published": True, "publications": [1]},
    }

    async def scenario() -> list[dict[str, Any]]:
        async with watching(trigger(["faq-bot", "b-bot"]), store) as events:
            await polls(sestek_conn, "faq-bot", 2)
            await asyncio.to_thread(submit, "faq-bot", data)
            await polls(sestek_conn, "faq-bot", 30)
            return events

    events = asyncio.run(scenario())
    assert [(e["model_id"], e["publication"]) for e in events] == [("faq-bot", 1)]
