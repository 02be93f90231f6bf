"""
The defer backstop (deadline + one poll interval + one request deadline) must outlast any wait of the
trigger: "the trigger ends within one request deadline plus one poll interval whatever the server does".

That holds because no request starts after the wait's deadline: a poll begun just before it ends within the one
request deadline of the request in flight, however many requests it would have needed (a token, then the
progress). The test proves that rule on the emulator's request log instead of timing the trigger against the
backstop on the wall clock (which a loaded machine makes pass or fail by seconds of scheduling).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from airflow_provider_sestek.hooks.sestek import SestekHook, clear_token_cache
from airflow_provider_sestek.operators._common import defer_timeout
from airflow_provider_sestek.testing import Fault, SestekEmulator
from airflow_provider_sestek.triggers.sestek import SestekTrainingTrigger
from tests.conftest import connection_json

# The token answer is held back longer than the wait lasts, within one request deadline: it arrives after the
# deadline by construction (it cannot come before the request is sent, WAIT seconds before the deadline at most).
REQUEST_DEADLINE = 4.0
TOKEN_DELAY = REQUEST_DEADLINE - 0.3
POLL = 2.0
WAIT = 2.0


def test_trigger_in_a_fresh_triggerer_sends_no_request_after_its_deadline(
    sestek_conn: SestekEmulator, faq: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A fresh triggerer process has no token: its poll is a token request AND a progress request, each allowed
    one request deadline. A slow (but answering, within the deadline) token service and progress endpoint
    would make one poll last two request deadlines, past the backstop Airflow uses to kill the task with a bare
    ``TaskDeferralTimeout`` (no execute_complete, no clear message). The token answer comes after the deadline:
    the progress request must then not be sent, and the trigger ends with its own ``timeout`` event.
    """
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(sestek_conn, timeout=REQUEST_DEADLINE))
    SestekHook().submit_training("faq-bot", "FAQ", data_files=[faq])
    clear_token_cache()  # the triggerer is another process
    sestek_conn.add_fault(Fault(endpoint="token", kind="delay", delay=TOKEN_DELAY, count=1))
    sestek_conn.add_fault(Fault(endpoint="progress", kind="delay", delay=REQUEST_DEADLINE - 0.3, count=1))
    before = len(sestek_conn.requests)

    end_time = time.time() + WAIT
    backstop = defer_timeout(end_time, POLL, REQUEST_DEADLINE)
    assert backstop is not None
    # The backstop leaves the poll in flight at the deadline one request deadline, and one poll interval more.
    assert backstop.total_seconds() >= POLL + REQUEST_DEADLINE
    trigger = SestekTrainingTrigger("faq-bot", poll_interval=POLL, end_time=end_time, max_consecutive_failures=100)

    async def first_event() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    event = asyncio.run(asyncio.wait_for(first_event(), timeout=60))
    sent = sestek_conn.requests[before:]
    # The trigger's own event, not Airflow's backstop: a timeout that says so.
    assert event["status"] == "timeout", event
    # The scenario ran: the token request went out before the deadline and was held past it...
    assert [r.endpoint for r in sent] == ["token"], [(r.endpoint, r.time - end_time) for r in sent]
    assert sent[0].time < end_time and sent[0].fault is not None
    # ...and after its answer, past the deadline, no progress request started (the delay meant for it is unused).
    assert [f.endpoint for f in sestek_conn.faults] == ["progress"]
