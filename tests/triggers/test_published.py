"""SestekModelPublishedTrigger: the watcher's firing rules, run in an event loop against the emulator."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sestek.exceptions import SestekUnsupported, SestekValidationError
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.testing import Fault, SestekEmulator

AIRFLOW_3 = int(__import__("airflow").__version__.split(".")[0]) >= 3
needs_airflow_3 = pytest.mark.skipif(not AIRFLOW_3, reason="AssetWatcher (event triggers) needs Airflow 3")
POLL = 0.02


def trigger(model_ids: Any, **kwargs: Any) -> Any:
    from airflow_provider_sestek.triggers.published import SestekModelPublishedTrigger

    return SestekModelPublishedTrigger(model_ids, poll_interval=kwargs.pop("poll_interval", POLL), **kwargs)


class MemoryStore:
    """
    Stands in for the accessor Airflow 3.3's triggerer injects as ``asset_state_store`` (JSON values by key;
    the real one is exercised by the real-Airflow test).
    """

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return json.loads(json.dumps(self.values.get(key, default)))

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = json.loads(json.dumps(value))


@contextlib.asynccontextmanager
async def watching(watcher: Any, store: MemoryStore | None = None) -> AsyncIterator[list[dict[str, Any]]]:
    """Run the trigger as the triggerer does, collecting its events until the block ends (then cancel it)."""
    if store is not None:
        watcher.asset_state_store = store
    events: list[dict[str, Any]] = []

    async def consume() -> None:
        async for event in watcher.run():
            events.append(event.payload)

    task = asyncio.create_task(consume())
    try:
        yield events
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def polls(emu: SestekEmulator, model_id: str, count: int) -> None:
    """Let the watcher poll ``model_id`` ``count`` more times."""
    start = sum(1 for r in emu.requests if r.endpoint == "progress" and model_id in r.path)
    await until(
        lambda: sum(1 for r in emu.requests if r.endpoint == "progress" and model_id in r.path) >= start + count
    )


def submit(model_id: str, data: Path) -> None:
    """A training started elsewhere (the Sestek UI, another pipeline): straight to the API."""
    SestekHook().submit_training(model_id, "Elsewhere", data_files=[str(data)])


def publish(model_id: str, data: Path) -> None:
    """Train and poll until published, as another reader would."""
    submit(model_id, data)
    while not SestekHook().get_training_progress(model_id).is_published:
        time.sleep(0.005)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "faq.txt"
    path.write_text("Q: Hours?\nA: 9 to 17.\n")
    return path


@needs_airflow_3
def test_serializes_ids_and_numbers_only_deterministically(sestek_conn: SestekEmulator) -> None:
    path, kwargs = trigger(["b-bot", "a-bot", "b-bot"], poll_interval=5).serialize()
    assert path == "airflow_provider_sestek.triggers.published.SestekModelPublishedTrigger"
    assert kwargs == {
        "model_ids": ["a-bot", "b-bot"],
        "sestek_conn_id": "sestek_default",
        "poll_interval": 5.0,
        "fire_on_start": False,
        "max_consecutive_failures": 10,
    }
    # Trigger identity is a hash of the kwargs: the same models in any order are the same watcher.
    assert trigger(["a-bot", "b-bot"], poll_interval=5).serialize() == (path, kwargs)
    text = json.dumps(kwargs) + repr(trigger("a-bot"))
    for secret in (sestek_conn.train_client[1], sestek_conn.inference_client[1]):
        assert secret not in text
    from airflow.triggers.base import BaseEventTrigger

    assert isinstance(trigger("a-bot"), BaseEventTrigger)
    from airflow_provider_sestek.triggers.sestek import SestekModelPublishedTrigger

    assert isinstance(trigger("a-bot"), SestekModelPublishedTrigger)


@needs_airflow_3
@pytest.mark.parametrize(
    ("model_ids", "kwargs", "field"),
    [([], {}, "model_ids"), (["Bad_Id"], {}, "model_ids[0]"), ("a-bot", {"poll_interval": 0}, "poll_interval")],
)
def test_refuses_bad_arguments(model_ids: Any, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(SestekValidationError) as info:
        trigger(model_ids, **kwargs)
    assert info.value.field == field


@pytest.mark.skipif(AIRFLOW_3, reason="Airflow 2 only")
def test_refused_on_airflow_2() -> None:
    with pytest.raises(SestekUnsupported, match="needs Airflow 3"):
        trigger("a-bot")


@needs_airflow_3
def test_already_published_does_not_fire_then_a_new_publication_fires_once(
    sestek_conn: SestekEmulator, data: Path
) -> None:
    publish("faq-bot", data)

    async def scenario() -> list[dict[str, Any]]:
        async with watching(trigger("faq-bot")) as events:
            await polls(sestek_conn, "faq-bot", 5)
            assert events == []  # published before the watcher started: not new
            await asyncio.to_thread(submit, "faq-bot", data)  # a retrain from elsewhere
            await until(lambda: len(events) == 1)
            await polls(sestek_conn, "faq-bot", 5)
            return events

    (event,) = asyncio.run(scenario())
    assert event == {
        "model_id": "faq-bot",
        "publication": 1,
        "percent": 100,
        "training_status": "Completed",
        "inference_status": "Running",
    }
    assert sestek_conn.trainings["faq-bot"].generation == 1


@needs_airflow_3
def test_fire_on_start(sestek_conn: SestekEmulator, data: Path) -> None:
    publish("faq-bot", data)

    async def scenario() -> list[dict[str, Any]]:
        async with watching(trigger("faq-bot", fire_on_start=True)) as events:
            await polls(sestek_conn, "faq-bot", 5)
            return events

    assert [e["publication"] for e in asyncio.run(scenario())] == [1]


@needs_airflow_3
def test_unknown_model_then_first_publication_and_two_models(sestek_conn: SestekEmulator, data: Path) -> None:
    async def scenario() -> list[dict[str, Any]]:
        async with watching(trigger(["a-bot", "b-bot"])) as events:
            await polls(sestek_conn, "b-bot", 2)  # both unknown (404): not published
            await asyncio.to_thread(submit, "a-bot", data)
            await asyncio.to_thread(submit, "b-bot", data)
            await until(lambda: len(events) == 2)
            await polls(sestek_conn, "a-bot", 5)
            return events

    events = asyncio.run(scenario())
    assert sorted((e["model_id"], e["publication"]) for e in events) == [("a-bot", 1), ("b-bot", 1)]


@needs_airflow_3
def test_failed_training_does_not_fire(sestek_conn: SestekEmulator, data: Path) -> None:
    sestek_conn.fail_model("bad-bot")

    async def scenario() -> list[dict[str, Any]]:
        async with watching(trigger("bad-bot")) as events:
            await asyncio.to_thread(submit, "bad-bot", data)
            await until(lambda: sestek_conn.trainings["bad-bot"].status == "Failed")
            await polls(sestek_conn, "bad-bot", 5)
            return events

    assert asyncio.run(scenario()) == []


@needs_airflow_3
def test_transient_errors_tolerated(sestek_conn: SestekEmulator, data: Path) -> None:
    async def scenario() -> list[dict[str, Any]]:
        async with watching(trigger("faq-bot", max_consecutive_failures=2)) as events:
            await asyncio.to_thread(submit, "faq-bot", data)
            await polls(sestek_conn, "faq-bot", 3)
            # 503s and dropped connections, more polls in a row than max_consecutive_failures: logged, not fatal.
            sestek_conn.add_fault(Fault(endpoint="progress", kind="status", status=503, count=8))
            sestek_conn.add_fault(Fault(endpoint="progress", kind="drop", count=2))
            await until(lambda: len(events) == 1, timeout=60)
            await polls(sestek_conn, "faq-bot", 5)
            return events

    assert [e["publication"] for e in asyncio.run(scenario())] == [1]


@needs_airflow_3
def test_restart_with_the_stored_watermark_does_not_fire_again(sestek_conn: SestekEmulator, data: Path) -> None:
    store = MemoryStore()

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with watching(trigger("faq-bot"), store) as first:
            await asyncio.to_thread(submit, "faq-bot", data)
            await until(lambda: len(first) == 1)
            await until(
                lambda: (
                    store.values.get("sestek_publications:sestek_default", {}).get("faq-bot", {}).get("published")
                    is True
                )
            )
        # The triggerer restarts: the trigger is re-created from its kwargs, the store still holds the watermark.
        async with watching(trigger("faq-bot", fire_on_start=True), store) as second:
            await polls(sestek_conn, "faq-bot", 5)
        return first, second

    first, second = asyncio.run(scenario())
    assert [e["publication"] for e in first] == [1] and second == []
    stored = store.values["sestek_publications:sestek_default"]
    assert stored == {"faq-bot": {"published": True, "publications": 1, "training": False}}


@needs_airflow_3
def test_publication_while_the_triggerer_was_down_fires_once(sestek_conn: SestekEmulator, data: Path) -> None:
    store = MemoryStore()

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        await asyncio.to_thread(submit, "faq-bot", data)
        async with watching(trigger("faq-bot"), store) as first:
            await polls(sestek_conn, "faq-bot", 1)  # seen training, not published
            await until(lambda: "faq-bot" in store.values.get("sestek_publications:sestek_default", {}))
        await asyncio.to_thread(lambda: SestekHook().get_training_progress("faq-bot"))  # someone else polls
        while not (await asyncio.to_thread(lambda: SestekHook().get_training_progress("faq-bot"))).is_published:
            pass
        async with watching(trigger("faq-bot"), store) as second:
            await until(lambda: len(second) == 1)
            await polls(sestek_conn, "faq-bot", 5)
        return first, second

    first, second = asyncio.run(scenario())
    assert first == [] and [e["publication"] for e in second] == [1]


@needs_airflow_3
def test_a_404_between_two_published_answers_is_no_publication(sestek_conn: SestekEmulator, data: Path) -> None:
    """A gateway restart answers one 404 for a published model: no training happened, so nothing fires."""
    publish("faq-bot", data)

    async def scenario() -> list[dict[str, Any]]:
        async with watching(trigger("faq-bot")) as events:
            await polls(sestek_conn, "faq-bot", 2)  # published: the starting point
            sestek_conn.add_fault(Fault(endpoint="progress", kind="status", status=404, count=1))
            await polls(sestek_conn, "faq-bot", 5)
            return events

    assert asyncio.run(scenario()) == []
    assert sestek_conn.counters["trainings_created"] == 1


@needs_airflow_3
def test_a_model_first_seen_after_404s_is_a_starting_point(sestek_conn: SestekEmulator, data: Path) -> None:
    """404s are no observation: a model published between two polls after them is not taken as a new publication."""
    store = MemoryStore()

    async def scenario() -> list[dict[str, Any]]:
        async with watching(trigger("faq-bot"), store):
            await polls(sestek_conn, "faq-bot", 3)  # unknown model: 404, 404, 404
        assert store.values == {}  # nothing was observed, nothing stored
        await asyncio.to_thread(publish, "faq-bot", data)
        async with watching(trigger("faq-bot"), store) as events:
            await polls(sestek_conn, "faq-bot", 3)
            return events

    assert asyncio.run(scenario()) == []


def _answer(training: str, inference: str | None) -> Fault:
    body = json.dumps({"percent": 100, "trainingStatus": training, "inferenceStatus": inference})
    return Fault(endpoint="progress", kind="raw", raw_body=body, content_type="application/json", count=1)


@needs_airflow_3
@pytest.mark.parametrize(
    ("training", "inference"),
    [("Completed", "Pending"), ("Completed", None), ("Deploying", None)],
    ids=["inference-restarts", "inference-unset", "unknown-status"],
)
def test_no_training_between_two_published_answers_is_no_publication(
    sestek_conn: SestekEmulator, data: Path, training: str, inference: str | None
) -> None:
    """The inference endpoint restarting, or a status nobody documented, is not a retrain: nothing fires."""
    publish("faq-bot", data)

    async def scenario() -> list[dict[str, Any]]:
        async with watching(trigger("faq-bot")) as events:
            await polls(sestek_conn, "faq-bot", 2)  # published: the starting point
            sestek_conn.add_fault(_answer(training, inference))
            await polls(sestek_conn, "faq-bot", 4)
            return events

    assert asyncio.run(scenario()) == []
