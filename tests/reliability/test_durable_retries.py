"""
The durable rule across retries: a training the task's own tries created or attached to is collected by the
next try, never trained a second time.

Three tries: a retry that attached to the stored training owns it, and the try after it collects it. A try whose
train POST created the training but never learnt it (its record stays ``submitting``), for a model id never
trained before: when the retry comes the training has finished. It is the only training this model id ever had,
so it is this task's: the retry collects it. The production-shaped version (the Celery worker SIGKILLed while the
train answer is held back) is
``tests/production/test_production.py::test_worker_killed_mid_submit_retry_collects_the_training``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_sestek.operators.sestek import SestekTrainOperator
from airflow_provider_sestek.testing import Fault
from tests.conftest import connection_json
from tests.dag_runner import run_task

pytestmark = pytest.mark.usefixtures("airflow_db", "fast_retries")

AIRFLOW_3_3 = __import__("airflow.providers.common.compat.version_compat", fromlist=["x"]).AIRFLOW_V_3_3_PLUS


@pytest.mark.skipif(not AIRFLOW_3_3, reason="the task state store arrived in Airflow 3.3")
def test_third_try_collects_the_training_the_second_try_attached_to(
    emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, faq: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    Try 1: the train answer is lost after the server created the training, the progress endpoint says 404
    through every look, the second submit is answered "still in progress" and the 404 goes on: try 1 fails
    (its record stays ``submitting``). Try 2 finds the training running, attaches ("Reconnecting to existing
    job") and times out while it runs on. Try 3 finds it finished: per the rule ("a retry; the stored training
    finished, the task never succeeded with it") it must return its result, not start a second training.
    """
    emu = emulator_factory(advance="time", seconds_per_step=1.0)  # Completed about 8 s after the submit
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emu))
    emu.add_fault(Fault(endpoint="train", kind="drop", when="after", count=1))
    # 1 look before the submit + 3 looks after the lost answer + 2 looks after "still in progress".
    emu.add_fault(Fault(endpoint="progress", kind="status", status=404, body="abp", count=6))
    result = run_task(
        lambda: SestekTrainOperator(
            task_id="under_test",
            model_id="faq-bot",
            project_name="FAQ",
            data_files=[faq],
            poll_interval=0.05,
            deferrable=False,
            wait_for_inference=False,
            max_consecutive_failures=2,
            timeout=3,
            retries=2,
            retry_delay=timedelta(seconds=3),
        )
    )
    out = "".join(capsys.readouterr())
    assert "Reconnecting to existing job" in out  # try 2 attached to the training
    assert emu.counters["trainings_created"] == 1, out[-3000:]
    assert result.state == "success", result


@pytest.mark.skipif(not AIRFLOW_3_3, reason="the task state store arrived in Airflow 3.3")
def test_retry_collects_the_finished_first_training_of_a_new_model(
    emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, faq: str, capsys: pytest.CaptureFixture[str]
) -> None:
    emu = emulator_factory(advance="time", seconds_per_step=0.2)  # Completed about 1 s after the submit
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emu))
    # Try 1: the answer to the POST that created the training is lost; the progress endpoint says 404 through
    # the look before the submit, the 3 looks after the lost answer and the 2 after "still in progress": try 1
    # fails with its record still "submitting" (as when its worker is SIGKILLed mid-POST).
    emu.add_fault(Fault(endpoint="train", kind="drop", when="after", count=1))
    emu.add_fault(Fault(endpoint="progress", kind="status", status=404, body="abp", count=6))
    result = run_task(
        lambda: SestekTrainOperator(
            task_id="under_test",
            model_id="new-bot",
            project_name="FAQ",
            data_files=[faq],
            poll_interval=0.05,
            deferrable=False,
            wait_for_inference=False,
            max_consecutive_failures=2,
            retries=1,
            retry_delay=timedelta(seconds=3),
        )
    )
    out = "".join(capsys.readouterr())
    assert result.state == "success", result
    assert emu.counters["trainings_created"] == 1, out[-3000:]
