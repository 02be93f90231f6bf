"""SestekTrainingTrigger: the async wait, run in an event loop as the triggerer runs it."""

from __future__ import annotations

import asyncio
import gc
import json
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.testing import Fault, SestekEmulator
from airflow_provider_sestek.triggers.sestek import SestekTrainingTrigger
from tests.conftest import connection_json


@pytest.fixture
def submitted(sestek_conn: SestekEmulator, tmp_path: Path) -> SestekEmulator:
    faq = tmp_path / "faq.txt"
    faq.write_text("Q: Hours?\nA: 9 to 17.\n")
    SestekHook().submit_training("faq-bot", "FAQ", data_files=[str(faq)])
    return sestek_conn


async def events_of(trigger: SestekTrainingTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


def run(trigger: SestekTrainingTrigger) -> list[dict[str, Any]]:
    return asyncio.run(asyncio.wait_for(events_of(trigger), timeout=60))


def test_serializes_ids_and_numbers_only(sestek_conn: SestekEmulator) -> None:
    trigger = SestekTrainingTrigger("faq-bot", poll_interval=5, end_time=1_900_000_000.0, submitted_at=1.8e9)
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_sestek.triggers.sestek.SestekTrainingTrigger"
    assert kwargs == {
        "model_id": "faq-bot",
        "sestek_conn_id": "sestek_default",
        "poll_interval": 5.0,
        "end_time": 1_900_000_000.0,
        "wait_for_inference": True,
        "max_consecutive_failures": 10,
        "submitted_at": 1.8e9,
        "initial_failures": 0,
        "heartbeat_interval": 300.0,
        "started_at": None,
    }
    json.dumps(kwargs)  # stored as plain JSON in the metadata DB
    text = json.dumps(kwargs) + repr(trigger)
    for secret in (*sestek_conn.train_client[1:], *sestek_conn.inference_client[1:]):
        assert secret not in text
    assert SestekTrainingTrigger(**kwargs).serialize() == (path, kwargs)


def test_a_trigger_serialized_by_an_older_version_loads(sestek_conn: SestekEmulator) -> None:
    older = {"model_id": "faq-bot", "sestek_conn_id": "sestek_default", "poll_interval": 5.0, "end_time": None}
    trigger = SestekTrainingTrigger(**older)
    assert trigger.spec.heartbeat_interval == 300.0 and trigger.spec.started_at is None
    again = SestekTrainingTrigger(**{**older, "heartbeat_interval": 60, "started_at": 1.8e9}).serialize()[1]
    assert again["heartbeat_interval"] == 60.0 and again["started_at"] == 1.8e9


def test_waits_until_published(submitted: SestekEmulator) -> None:
    (event,) = run(SestekTrainingTrigger("faq-bot", poll_interval=0.01))
    assert event["status"] == "success" and event["model_id"] == "faq-bot"
    assert event["progress"] == {"percent": 100, "training_status": "Completed", "inference_status": "Running"}
    assert submitted.trainings["faq-bot"].inference_status == "Running"


def test_stops_at_completed_without_inference_wait(submitted: SestekEmulator) -> None:
    (event,) = run(SestekTrainingTrigger("faq-bot", poll_interval=0.01, wait_for_inference=False))
    assert event["status"] == "success"
    assert event["progress"]["inference_status"] is None


def test_recreated_from_kwargs_continues(submitted: SestekEmulator) -> None:
    end_time = time.time() + 60
    first = SestekTrainingTrigger("faq-bot", poll_interval=0.05, end_time=end_time)

    async def interrupted() -> None:
        task = asyncio.ensure_future(events_of(first))
        await asyncio.sleep(0.2)
        task.cancel()  # as a triggerer shutdown does
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(interrupted())
    polls_before = submitted.counters["progress_polls"]
    assert 0 < polls_before < 11
    _, kwargs = first.serialize()
    (event,) = run(SestekTrainingTrigger(**kwargs))
    assert event["status"] == "success"
    assert kwargs["end_time"] == end_time
    assert submitted.counters["trainings_created"] == 1


def test_tolerates_transient_faults(submitted: SestekEmulator) -> None:
    for fault in (
        Fault(endpoint="progress", kind="status", status=503, retry_after=0, count=3),
        Fault(endpoint="progress", kind="drop", count=2),
        Fault(endpoint="progress", kind="malformed", count=1),
        Fault(endpoint="progress", kind="status", status=404, body="abp", count=2),
    ):
        submitted.add_fault(fault)
    trigger = SestekTrainingTrigger("faq-bot", poll_interval=0.01)
    (event,) = run(trigger)
    assert event["status"] == "success"


def test_gives_up_after_consecutive_failures(submitted: SestekEmulator) -> None:
    submitted.add_fault(Fault(endpoint="progress", kind="status", status=500, count=1000))
    (event,) = run(SestekTrainingTrigger("faq-bot", poll_interval=0.01, max_consecutive_failures=2))
    assert event["status"] == "error"
    assert "failed 2 times in a row" in event["message"] and "500" in event["message"]


def test_auth_error_fails_fast(emulator: SestekEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = json.loads(connection_json(emulator))
    conn["password"] = "wrong-secret-777"
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", json.dumps(conn))
    (event,) = run(SestekTrainingTrigger("faq-bot", poll_interval=0.01))
    assert event["status"] == "error" and "invalid_client" in event["message"]
    assert "wrong-secret-777" not in json.dumps(event)
    assert emulator.counters["token_requests"] == 1


def test_failed_training(emulator_factory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    emu = emulator_factory(fail_models=("faq-bot",))
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emu))
    (tmp_path / "f.txt").write_text("x")
    SestekHook().submit_training("faq-bot", "p", data_files=[str(tmp_path / "f.txt")])
    (event,) = run(SestekTrainingTrigger("faq-bot", poll_interval=0.01))
    assert event["status"] == "failed" and "failed" in event["message"]
    assert event["progress"]["training_status"] == "Failed"


def test_absolute_deadline(emulator_factory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    emu = emulator_factory(advance="time", seconds_per_step=3600)
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emu))
    (tmp_path / "f.txt").write_text("x")
    SestekHook().submit_training("faq-bot", "p", data_files=[str(tmp_path / "f.txt")])
    (event,) = run(SestekTrainingTrigger("faq-bot", poll_interval=0.05, end_time=time.time() + 0.3))
    assert event["status"] == "timeout"
    assert "last status: Initialized 0%" in event["message"]
    # A trigger re-created after its deadline passed (triggerer down for a while) times out at once.
    (event,) = run(SestekTrainingTrigger("faq-bot", poll_interval=60, end_time=time.time() - 1))
    assert event["status"] == "timeout"


def test_refreshes_tokens_during_a_long_wait(emulator_factory, monkeypatch, tmp_path: Path) -> None:
    # Lifetimes of 3 s (0.3 s refresh margin) rather than 1 s: a loaded CI machine can stall a client for
    # more than 0.1 s between the cache check and the request, and the server rightly answers 401 then.
    emu = emulator_factory(token_lifetime=3, advance="time", seconds_per_step=0.5)
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emu))
    (tmp_path / "f.txt").write_text("x")
    SestekHook().submit_training("faq-bot", "p", data_files=[str(tmp_path / "f.txt")])
    (event,) = run(SestekTrainingTrigger("faq-bot", poll_interval=0.1))
    assert event["status"] == "success"
    assert emu.counters["token_requests"] >= 2  # the submit's token, then a refresh during the wait
    assert not [r for r in emu.requests if r.endpoint == "progress" and r.status == 401]


def test_many_triggers_share_one_token(submitted: SestekEmulator) -> None:
    async def many() -> list[list[dict[str, Any]]]:
        return await asyncio.gather(
            *(events_of(SestekTrainingTrigger("faq-bot", poll_interval=0.01)) for _ in range(30))
        )

    results = asyncio.run(many())
    assert all(len(events) == 1 and events[0]["status"] == "success" for events in results)
    # The token fetched for the submit above serves all 30 triggers too (one process-wide cache).
    assert submitted.counters["token_requests"] == 1


def test_closes_its_connections_when_the_wait_ends(submitted: SestekEmulator) -> None:
    # dag.test() and asyncio.run close the loop right after the event: a pool left open then can never be
    # closed (aiohttp reports it as unclosed at exit) and its sockets stay open until the process ends.
    run(SestekTrainingTrigger("faq-bot", poll_interval=0.01))
    assert asyncio.run(SestekHook().aget_training_progress("faq-bot")).inference_status == "Running"
    gc.collect()
    deadline = time.monotonic() + 3
    while submitted.open_connections and time.monotonic() < deadline:
        time.sleep(0.05)
    assert submitted.open_connections == 0


def test_keeps_one_connection_for_its_whole_wait(submitted: SestekEmulator) -> None:
    run(SestekTrainingTrigger("faq-bot", poll_interval=0.01))
    progress = [r for r in submitted.requests if r.endpoint == "progress"]
    assert len(progress) >= 3
    # One kept-alive connection for every poll, not a new connection (and TLS handshake) per poll.
    assert len({r.client_port for r in progress}) == 1
