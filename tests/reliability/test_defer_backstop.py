"""
The defer backstop (deadline + one poll interval + one request deadline) must outlast any wait of the
trigger: "the trigger ends within one request deadline plus one poll interval whatever the server does".
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.operators._common import defer_timeout
from airflow_provider_sestek.testing import Fault, SestekEmulator
from airflow_provider_sestek.triggers.sestek import SestekTrainingTrigger
from tests.conftest import connection_json

# Sized so both sides have seconds of slack on a loaded machine: a trigger that keeps to its budget ends by
# WAIT + REQUEST_DEADLINE (7 s), the backstop is WAIT + POLL + REQUEST_DEADLINE (9 s), and a poll that took two
# request deadlines (token, then progress: 2 x 5.7 s) would end at 11.4 s.
REQUEST_DEADLINE = 6.0
POLL = 2.0
WAIT = 1.0


def test_trigger_in_a_fresh_triggerer_ends_before_the_defer_backstop(
    sestek_conn: SestekEmulator, faq: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A fresh triggerer process has no token: its poll is a token request AND a progress request, each allowed
    one request deadline. A slow (but answering, within the deadline) token service and progress endpoint
    make one poll last two request deadlines, past the backstop Airflow uses to kill the task.
    """
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(sestek_conn, timeout=REQUEST_DEADLINE))
    SestekHook().submit_training("faq-bot", "FAQ", data_files=[faq])
    from airflow_provider_sestek.hooks.sestek import clear_token_cache

    clear_token_cache()  # the triggerer is another process
    sestek_conn.add_fault(Fault(endpoint="token", kind="delay", delay=REQUEST_DEADLINE - 0.3, count=1))
    sestek_conn.add_fault(Fault(endpoint="progress", kind="delay", delay=REQUEST_DEADLINE - 0.3, count=1))

    started = time.time()
    end_time = started + WAIT
    backstop = defer_timeout(end_time, POLL, REQUEST_DEADLINE)
    assert backstop is not None
    trigger = SestekTrainingTrigger("faq-bot", poll_interval=POLL, end_time=end_time, max_consecutive_failures=100)

    async def first_event() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    event = asyncio.run(asyncio.wait_for(first_event(), timeout=60))
    took = time.time() - started
    # Airflow fails the deferred task with a bare TaskDeferralTimeout (no execute_complete, no clear message)
    # once the backstop passes: the trigger's own event must come first.
    assert took < backstop.total_seconds(), (took, backstop.total_seconds(), event)
