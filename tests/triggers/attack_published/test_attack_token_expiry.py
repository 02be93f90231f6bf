"""
Attack (held): the token expires mid-watch (401 on a progress poll) and the server is slow: the watcher
gets a new token, fires exactly once for the publication, and no secret reaches its logs or events.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sestek.testing import Fault, SestekEmulator
from tests.triggers.test_published import data, needs_airflow_3, polls, submit, trigger, until, watching

__all__ = ["data"]  # the fixture


@needs_airflow_3
def test_token_expiry_and_slow_server_fire_once_without_secrets(
    sestek_conn: SestekEmulator, data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")

    async def scenario() -> list[dict[str, Any]]:
        async with watching(trigger("faq-bot")) as events:
            await polls(sestek_conn, "faq-bot", 2)
            sestek_conn.add_fault(Fault(endpoint="progress", kind="status", status=401, count=2))
            sestek_conn.add_fault(Fault(endpoint="progress", kind="delay", delay=0.3, count=2))
            await asyncio.to_thread(submit, "faq-bot", data)
            await until(lambda: len(events) == 1, timeout=60)
            await polls(sestek_conn, "faq-bot", 10)
            return events

    events = asyncio.run(scenario())
    assert [(e["model_id"], e["publication"]) for e in events] == [("faq-bot", 1)]
    text = caplog.text + json.dumps(events)
    for secret in (sestek_conn.train_client[1], sestek_conn.inference_client[1]):
        assert secret not in text
