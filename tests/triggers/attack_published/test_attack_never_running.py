"""
Attack (held): a model in training that goes Completed but whose inference never reaches Running (Pending,
Stopped, Failed) does not fire; when inference does come up Running, it fires exactly once.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from airflow_provider_sestek.testing import Fault, SestekEmulator
from tests.triggers.test_published import needs_airflow_3, polls, until, watching


@needs_airflow_3
def test_completed_without_running_inference_does_not_fire(sestek_conn: SestekEmulator) -> None:
    from tests.triggers.test_published import trigger

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
