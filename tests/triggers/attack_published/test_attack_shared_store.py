"""
Attack: two watchers of one asset (``Asset(..., watchers=[AssetWatcher(...a-bot...), AssetWatcher(...b-bot...)])``)
on the same connection share the asset's state store, and so the one watermark key.

Each trigger saved its whole in-memory watermark under that key: the last writer erased the other's models.
After a triggerer restart the erased model was seen "for the first time" again, so a publication that happened
while the triggerer was down (documented to fire once on restart) was taken as the starting point and lost.
A trigger must only ever update its own models in the stored watermark.
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
