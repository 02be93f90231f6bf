"""
The published-model watcher fires exactly once per publication, and only for a model that really serves.

A model whose training goes Completed but whose inference never reaches Running (Pending, Stopped, Failed) does
not fire; when inference does come up Running, it fires exactly once. The token expiring mid-watch (401 on a
progress poll) and a slow server: the watcher gets a new token, fires exactly once for the publication, and no
secret reaches its logs or events.
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
def test_completed_without_running_inference_does_not_fire(sestek_conn: SestekEmulator) -> None:
    training = {"percent": 50, "trainingStatus": "Training", "inferenceStatus": None}
    sestek_conn.add_fault(
        Fault(endpoint="progress", kind="raw", raw_body=json.dumps(training), content_type="application/json")
    )
    for status in ("Pending", "Stopped", "Failed", None):
        body = {"percent": 100, "trainingStatus": "Completed", "inferenceStatus": status}
        sestek_conn.add_fault(
            Fault(endpoint="progress", kind="raw", raw_body=json.dumps(body), content_type="application/json", count=3)
        )
    running = {"percent": 100, "trainingStatus": "Completed", "inferenceStatus": "Running"}
    sestek_conn.add_fault(
        Fault(endpoint="progress", kind="raw", raw_body=json.dumps(running), content_type="application/json")
    )

    async def scenario() -> list[dict[str, Any]]:
        async with watching(trigger("ghost-bot")) as events:
            await polls(sestek_conn, "ghost-bot", 10)  # 13 non-Running answers queued
            assert events == []
            await until(lambda: len(events) == 1)
            await polls(sestek_conn, "ghost-bot", 10)
            return events

    events = asyncio.run(scenario())
    assert [(e["model_id"], e["publication"], e["inference_status"]) for e in events] == [("ghost-bot", 1, "Running")]


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
