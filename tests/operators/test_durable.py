"""
The durable rule of ``SestekTrainOperator`` (``operators/_durable.py``) through ``dag.test()`` against the emulator:
a try that fails after ``execute()`` returned is a retry, not a re-run; a retry that attaches to a training it
cannot tell from a later one reports no experiment id as its own.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sestek.assets import model_asset_uri
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.testing import SestekEmulator
from tests._assets import asset_events, register_alias
from tests.conftest import connection_json
from tests.dag_runner import fails_once, run_task
from tests.operators.test_train import train

pytestmark = pytest.mark.usefixtures("airflow_db")

AIRFLOW_3_3 = __import__("airflow.providers.common.compat.version_compat", fromlist=["x"]).AIRFLOW_V_3_3_PLUS
needs_state_store = pytest.mark.skipif(not AIRFLOW_3_3, reason="the task state store arrived in Airflow 3.3")
MODES = pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])


@needs_state_store
@MODES
def test_a_try_failing_after_execute_returned_is_retried_without_a_second_training(
    sestek_conn: SestekEmulator, faq: str, deferrable: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_task(
        lambda: train(
            faq,
            deferrable=deferrable,
            retries=1,
            retry_delay=timedelta(seconds=0),
            post_execute=fails_once(),
        )
    )
    out = "".join(capsys.readouterr())
    assert result.state == "success", result
    assert sestek_conn.counters["trainings_created"] == 1, out[-3000:]
    assert "Job already completed successfully, skipping resubmission" in out
    assert "submitting a new training" not in out
    assert result.value == {
        "model_id": "faq-bot",
        "training_status": "Completed",
        "inference_status": "Running",
        "percent": 100,
    }


@needs_state_store
def test_the_try_after_a_failure_past_execute_sends_no_request(sestek_conn: SestekEmulator, faq: str) -> None:
    """The retry returns what ``execute`` returned; it does not even read the progress again."""
    seen: list[int] = []

    def post_execute(context: Any, result: Any = None) -> None:
        seen.append(len(sestek_conn.requests))
        if len(seen) == 1:
            raise RuntimeError("the return-value XCom could not be pushed")

    result = run_task(lambda: train(faq, retries=1, retry_delay=timedelta(seconds=0), post_execute=post_execute))
    assert result.state == "success", result
    before_try_2, after_try_2 = seen
    sent = [r.endpoint for r in sestek_conn.requests[before_try_2:after_try_2]]
    assert "train" not in sent and "progress" not in sent, sent


@needs_state_store
def test_a_retry_attached_to_a_model_retrained_elsewhere_claims_no_experiment_id(
    emulator: SestekEmulator, monkeypatch: pytest.MonkeyPatch, faq: str, tmp_path: Path, capsys: Any
) -> None:
    """
    Try 1 submits E1 and times out; E1 finishes and another pipeline retrains the model id (E2, other data);
    try 2 finds the model trained again and returns it without a third training. It cannot tell E2 from E1:
    the asset event claims no experiment id, names E1 as ``submitted_experiment_id``, and a warning says why.

    The emulator moves one status per poll, so the order is fixed whatever the machine's load: try 1 polls at
    most twice in its 0.3 s (the lifecycle needs more), and the other pipeline runs in try 2's ``pre_execute``.
    """
    register_alias()
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emulator))
    other = tmp_path / "other.txt"
    other.write_text("Q: Other?\nA: Data of another pipeline.\n")
    ids: dict[str, str] = {}

    def until_published(hook: SestekHook) -> None:
        for _ in range(50):  # every poll is one step of the lifecycle
            if hook.get_training_progress("faq-bot").is_published:
                return
        raise AssertionError(emulator.trainings["faq-bot"])

    def other_pipeline(context: Any) -> None:
        if context["ti"].try_number < 2:
            return
        hook = SestekHook()
        ids["e1"] = emulator.trainings["faq-bot"].experiment_id
        until_published(hook)
        ids["e2"] = hook.submit_training("faq-bot", "Other", data_files=[str(other)])["id"]
        until_published(hook)

    result = run_task(
        lambda: train(
            faq,
            timeout=0.3,
            poll_interval=1.0,
            retries=1,
            retry_delay=timedelta(seconds=0),
            pre_execute=other_pipeline,
        )
    )
    out = "".join(capsys.readouterr())
    assert result.state == "success", out[-4000:]
    assert ids.get("e2") and ids["e1"] != ids["e2"], ids
    assert emulator.counters["trainings_created"] == 2  # E1 (this task) and E2 (the other pipeline): never a third
    assert "does not say which training it reports" in out
    uri = model_asset_uri("faq-bot", host=emulator.url, tenant=emulator.tenant)
    extra = asset_events(uri)[-1]["extra"]
    assert extra["experiment_id"] is None
    assert extra["submitted_experiment_id"] == ids["e1"]
