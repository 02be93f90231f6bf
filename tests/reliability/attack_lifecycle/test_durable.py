"""The durable rule across three tries: a retry that attached to the stored training owns it."""

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
