"""
Attack: a stored watermark the trigger did not write as it expects.

The asset state store is writable by any task with the asset in its inlets or outlets (and by the REST API),
so the stored value may be anything JSON. A non-numeric ``publications`` made ``int()`` raise in ``run()``
before the first poll: the watcher died at every (re)start and never fired again. A mark it cannot read must
be dropped (that model starts afresh), never end the watch.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from airflow_provider_sestek.testing import SestekEmulator
from tests.triggers.test_published import MemoryStore, data, needs_airflow_3, polls, submit, trigger, watching

__all__ = ["data"]  # the fixture


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
