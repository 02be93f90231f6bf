"""
Crash and restart, on real processes:

- a worker process is SIGKILLed after the submit (while it waits, or while the train POST is still in flight
  and the server already created the training); the retry attaches, and Sestek never sees a second training;
- the trigger is re-created from its serialized kwargs (the metadata DB row, encrypted and decrypted as the
  triggerer does) in the middle of a wait: it continues, with the same absolute deadline.

The real-Airflow version (SIGKILL of the triggerer while the task is deferred) is in ``tests/real_airflow``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sestek.operators.sestek import SestekTrainOperator
from airflow_provider_sestek.testing import Fault, SestekEmulator
from airflow_provider_sestek.triggers.sestek import SestekTrainingTrigger
from tests.conftest import REPO, connection_json
from tests.dag_runner import run_task

pytestmark = pytest.mark.usefixtures("airflow_db", "fast_retries")

MODEL = "crash-bot"


def _wait(what: str, check: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def _start_worker(tmp_path: Path, faq: str) -> tuple[subprocess.Popen[bytes], Path]:
    output = tmp_path / "worker.out"
    with output.open("wb") as handle:
        worker = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability._worker", MODEL, faq],
            cwd=REPO,
            env=os.environ.copy(),
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return worker, output


def _kill(worker: subprocess.Popen[bytes]) -> None:
    os.killpg(worker.pid, signal.SIGKILL)
    assert worker.wait(10) == -signal.SIGKILL


def _retry(faq: str, deferrable: bool) -> Any:
    return run_task(
        lambda: SestekTrainOperator(
            task_id="under_test",
            model_id=MODEL,
            project_name="Crash test",
            data_files=[faq],
            deferrable=deferrable,
            poll_interval=0.05,
        )
    )


@pytest.mark.slow
@pytest.mark.parametrize("retry_mode", ["sync", "deferrable"])
def test_worker_killed_while_waiting_retry_attaches(
    emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, faq: str, retry_mode: str, capsys: Any
) -> None:
    # Trainings move on only when polled: the one the dead worker started stays mid-way until the retry polls.
    emu: SestekEmulator = emulator_factory()
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emu))
    worker, output = _start_worker(tmp_path, faq)
    try:
        # Submitted and polled twice (the worker is in its wait loop): now it dies, without any clean-up.
        _wait("the worker to submit and poll", lambda: MODEL in emu.trainings and emu.trainings[MODEL].polls >= 2)
    finally:
        _kill(worker)
    assert "Submitted Sestek training" in output.read_text()
    assert emu.trainings[MODEL].status not in ("Completed", "Failed")

    result = _retry(faq, deferrable=retry_mode == "deferrable")

    assert result.state == "success", result
    assert emu.counters["trainings_created"] == 1
    assert emu.trainings[MODEL].inference_status == "Running"
    assert "instead of submitting a second one" in "".join(capsys.readouterr())


@pytest.mark.slow
def test_worker_killed_during_the_submit_retry_attaches(
    emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, faq: str, capsys: Any
) -> None:
    emu: SestekEmulator = emulator_factory()
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emu))
    # The server creates the training and then takes its time to answer: the worker dies waiting.
    emu.add_fault(Fault(endpoint="train", kind="delay", delay=60, when="after"))
    worker, output = _start_worker(tmp_path, faq)
    try:
        _wait("the server to create the training", lambda: emu.counters["trainings_created"] == 1)
    finally:
        _kill(worker)
    assert "Submitted Sestek training" not in output.read_text()  # it never learnt that it had submitted

    result = _retry(faq, deferrable=False)

    assert result.state == "success", result
    assert emu.counters["trainings_created"] == 1
    assert len([r for r in emu.requests if r.endpoint == "train"]) == 1
    assert "instead of submitting a second one" in "".join(capsys.readouterr())


# --- the trigger, re-created from its stored row -----------------------------------------------------------


class _TaskInstance:
    def xcom_push(self, key: str, value: Any) -> None:
        pass


def _defer(**kwargs: Any) -> SestekTrainingTrigger:
    """Run the operator up to its deferral and return the trigger it hands to the triggerer."""
    from airflow.providers.common.compat.sdk import TaskDeferred

    operator = SestekTrainOperator(
        task_id="train", model_id=MODEL, project_name="Crash test", deferrable=True, **kwargs
    )
    with pytest.raises(TaskDeferred) as info:
        operator.execute({"ti": _TaskInstance()})  # type: ignore[arg-type]
    trigger = info.value.trigger
    assert isinstance(trigger, SestekTrainingTrigger)
    return trigger


def _from_db_row(trigger: SestekTrainingTrigger) -> SestekTrainingTrigger:
    """What a (new) triggerer does: the row holds the encrypted, serde-encoded kwargs; it builds the class anew."""
    from airflow.models.trigger import Trigger

    try:
        from airflow.sdk.module_loading import import_string
    except ImportError:  # Airflow 2
        from airflow.utils.module_loading import import_string

    row = Trigger.from_object(trigger)
    recreated = import_string(row.classpath)(**row.kwargs)
    assert isinstance(recreated, SestekTrainingTrigger)
    return recreated


def _events(trigger: SestekTrainingTrigger, stop_after: float | None = None) -> list[dict[str, Any]]:
    """Run the trigger; with ``stop_after``, cancel it then, as a triggerer shutdown (or crash) does."""

    async def run() -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []

        async def collect() -> None:
            async for event in trigger.run():
                events.append(event.payload)

        task = asyncio.ensure_future(collect())
        if stop_after is None:
            await asyncio.wait_for(task, 60)
        else:
            await asyncio.sleep(stop_after)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        return events

    return asyncio.run(run())


def test_recreated_trigger_continues_the_wait(sestek_conn: SestekEmulator, faq: str) -> None:
    started = time.time()
    first = _defer(data_files=[faq], poll_interval=0.05, timeout=120)
    end_time = first.serialize()[1]["end_time"]
    assert started + 120 <= end_time <= time.time() + 120  # absolute: when the task started + the timeout

    assert _events(first, stop_after=0.25) == []  # the triggerer goes down mid-wait
    polls_before = sestek_conn.trainings[MODEL].polls
    assert 0 < polls_before < 11

    time.sleep(0.5)
    second = _from_db_row(first)
    assert second.serialize() == first.serialize()
    assert second.end_time == end_time  # not "now + timeout": the deadline does not move
    (event,) = _events(second)

    assert event["status"] == "success", event
    assert sestek_conn.counters["trainings_created"] == 1
    # It went on where the first left off: together, exactly one walk through the lifecycle.
    assert sestek_conn.trainings[MODEL].polls == 11


def test_recreated_trigger_keeps_the_absolute_deadline(emulator_factory: Any, monkeypatch: Any, faq: str) -> None:
    emu = emulator_factory(advance="time", seconds_per_step=3600)  # never finishes
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emu))
    # The deadline counts from the task's start, submission included: 5 s leaves room for a slow submit on a
    # loaded machine (1 s once expired before the first wait began, in CI).
    first = _defer(data_files=[faq], poll_interval=0.05, timeout=5.0)
    end_time = first.serialize()[1]["end_time"]
    assert _events(first, stop_after=0.3) == []
    time.sleep(max(0.0, end_time - time.time()) + 0.2)  # the triggerer was down past the deadline

    second = _from_db_row(first)
    polls_before = emu.counters["progress_polls"]
    (event,) = _events(second)

    # A fresh 5 s budget would poll about 100 times more; with the stored deadline already past, no request
    # is even sent (no request starts past a wait's deadline) and the wait ends at once.
    assert emu.counters["progress_polls"] - polls_before == 0
    assert event["status"] == "timeout" and "Timed out waiting for Sestek model 'crash-bot'" in event["message"]
    assert emu.counters["trainings_created"] == 1
