"""
Progress in the task log of real DAG runs (``dag.test()``) against the emulator over HTTP: the heartbeat of a
long wait, the summary of a success, the experiment and portal link of a failure, the progress of an upload.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sestek.hooks import upload_progress
from airflow_provider_sestek.operators.sestek import SestekTrainOperator
from airflow_provider_sestek.sensors.sestek import SestekTrainingSensor
from airflow_provider_sestek.testing import SestekEmulator
from tests.conftest import connection_json
from tests.dag_runner import run_task

pytestmark = pytest.mark.usefixtures("airflow_db")
PORTAL = "https://portal.example.com/models/{model_id}"


def train(faq: str, **kwargs: Any) -> SestekTrainOperator:
    args: dict[str, Any] = {
        "task_id": "under_test",
        "model_id": "faq-bot",
        "project_name": "FAQ",
        "data_files": [faq],
        "poll_interval": 0.05,
        "heartbeat_interval": 0.3,
        "timeout": 120,
        "deferrable": False,
    }
    return SestekTrainOperator(**{**args, **kwargs})


@pytest.fixture
def slow_training(emulator_factory: Any, monkeypatch: pytest.MonkeyPatch) -> SestekEmulator:
    """A training that moves one status every 0.3 s (a couple of seconds in all), with a portal link."""
    emu = emulator_factory(advance="time", seconds_per_step=0.3)
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emu, portal_url=PORTAL))
    return emu


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_a_long_wait_logs_heartbeats_and_ends_with_a_summary(
    slow_training: SestekEmulator, faq: str, deferrable: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_task(lambda: train(faq, deferrable=deferrable))
    assert result.state == "success", result
    text = "".join(capsys.readouterr())
    beats = re.findall(
        r"Still waiting for model faq-bot: [^,\n]+, \d+s elapsed, \d+m\d\ds left before the deadline", text
    )
    assert beats, text[-3000:]
    polls = [r for r in slow_training.requests if r.endpoint == "progress"]
    assert len(beats) < len(polls)  # at most one per interval: no line, and no request, of its own
    summary = re.search(
        r"Model faq-bot published: experiment (\S+), trained in \d+s, Training Completed / Inference Running", text
    )
    assert summary, text[-3000:]
    assert slow_training.counters["trainings_created"] == 1


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_a_failure_names_the_experiment_and_the_portal_link(
    emulator_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    faq: str,
    deferrable: bool,
    capsys: pytest.CaptureFixture[str],
) -> None:
    emu = emulator_factory(fail_models=("faq-bot",))
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emu, portal_url=PORTAL))
    result = run_task(lambda: train(faq, deferrable=deferrable))
    assert result.task_states["under_test"] == "failed"
    text = "".join(capsys.readouterr())
    pattern = r"Sestek training of model 'faq-bot' failed: status Failed, \d+% done \(experiment [^;\s]+; portal "
    assert re.search(pattern + re.escape("https://portal.example.com/models/faq-bot)"), text), text[-3000:]


def test_a_large_upload_logs_its_progress(
    sestek_conn: SestekEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(upload_progress, "PROGRESS_MIN_BYTES", 2 * 1024 * 1024)
    monkeypatch.setattr(upload_progress, "PROGRESS_INTERVAL", 0.0)  # a line per block: 3 MiB, 6 blocks
    data = tmp_path / "big.txt"
    data.write_bytes(b"Q: Hours?\nA: 9 to 17.\n" * (3 * 1024 * 1024 // 22))
    # Standard-library logging (pytest's capsys does not see it under Airflow 3's dag.test(), caplog does).
    with caplog.at_level(logging.INFO, logger=upload_progress.log.name):
        result = run_task(lambda: train(str(data), wait_for_completion=False))
    assert result.state == "success", result
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == upload_progress.log.name)
    assert "Uploading 3.0 MiB of training data (1 file(s))" in text, text
    assert re.search(r"Uploaded 1\.5 MiB of 3\.0 MiB \(49%\), [\d.,]+ MiB/s", text), text
    assert re.search(r"Sent 3\.0 MiB of training data in [\d.]+s \([\d.,]+ MiB/s\); waiting for the server's", text)
    (request,) = [r for r in sestek_conn.requests if r.endpoint == "train"]
    assert request.files[0].filename == "big.txt"


def test_a_small_upload_logs_no_progress(sestek_conn: SestekEmulator, faq: str, caplog: Any) -> None:
    with caplog.at_level(logging.INFO, logger=upload_progress.log.name):
        assert run_task(lambda: train(faq, wait_for_completion=False)).state == "success"
    assert not [r for r in caplog.records if r.name == upload_progress.log.name]


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_the_sensor_logs_heartbeats(
    emulator_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    faq: str,
    deferrable: bool,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from airflow_provider_sestek.hooks.sestek import SestekHook

    # The lifecycle moves one step per poll, so the training is still running whenever the sensor starts
    # (a time-driven one may finish while dag.test() starts up); every poke after the first is past 0.01 s.
    emu = emulator_factory()
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emu))
    SestekHook().submit_training("faq-bot", "FAQ", data_files=[faq])
    sensor = lambda: SestekTrainingSensor(  # noqa: E731 - a new task per DAG parse
        task_id="under_test",
        model_id="faq-bot",
        poke_interval=0.05,
        timeout=60,
        heartbeat_interval=0.01,
        deferrable=deferrable,
    )
    assert run_task(sensor).state == "success"
    assert "Still waiting for model faq-bot: " in "".join(capsys.readouterr())


@pytest.mark.parametrize("value", [0, -5, float("nan"), float("inf")])
def test_a_bad_heartbeat_interval_fails_before_any_request(
    sestek_conn: SestekEmulator, faq: str, value: float, capsys: Any
) -> None:
    result = run_task(lambda: train(faq, heartbeat_interval=value))
    assert result.task_states["under_test"] == "failed"
    assert "Invalid heartbeat_interval" in "".join(capsys.readouterr())
    assert not [r for r in sestek_conn.requests if r.endpoint == "train"]
