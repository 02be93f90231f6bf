"""``execute_complete`` validates the trigger event: an ill-formed one is a clear ``SestekError``, never a success."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_sestek.exceptions import SestekError
from airflow_provider_sestek.operators.sestek import SestekTrainOperator
from airflow_provider_sestek.sensors.sestek import SestekTrainingSensor


def _operators() -> list[Any]:
    return [
        SestekTrainOperator(task_id="t", model_id="faq-bot", project_name="p", data_urls=["https://x.example.com/a"]),
        SestekTrainingSensor(task_id="s", model_id="faq-bot"),
    ]


@pytest.mark.parametrize(
    "event",
    [
        {"status": "success", "model_id": "faq-bot", "progress": "Completed"},
        {"status": "success", "model_id": "faq-bot", "progress": ["Completed", 100]},
    ],
    ids=["progress-str", "progress-list"],
)
@pytest.mark.parametrize("which", [0, 1], ids=["operator", "sensor"])
def test_ill_typed_progress_is_a_clear_sestek_error(sestek_conn: Any, event: dict[str, Any], which: int) -> None:
    op = _operators()[which]
    with pytest.raises(SestekError, match="faq-bot"):
        op.execute_complete({}, event)


@pytest.mark.parametrize("which", [0, 1], ids=["operator", "sensor"])
def test_success_event_whose_progress_failed_is_not_a_success(sestek_conn: Any, which: int) -> None:
    event = {
        "status": "success",
        "model_id": "faq-bot",
        "message": "",
        "progress": {"percent": 3, "training_status": "Failed", "inference_status": None},
    }
    with pytest.raises(SestekError):
        _operators()[which].execute_complete({}, event)
