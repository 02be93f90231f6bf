"""Inference answers are checked: a result that is no answer at all must not become a successful task."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_sestek.operators.sestek import SestekQuestionAnsweringOperator
from tests.dag_runner import run_task
from tests.reliability.test_lifecycle import fake_inference  # noqa: F401  (a real HTTP server fixture)

pytestmark = pytest.mark.usefixtures("airflow_db", "fast_retries")


@pytest.mark.parametrize("result", [None, ["a", "b"], 5], ids=["null", "list", "number"])
def test_a_result_that_is_not_an_answer_fails(fake_inference: Any, result: Any, capsys: Any) -> None:  # noqa: F811
    """The API answers one result object per input; ``null`` (or a list, a number) is not an answer."""
    fake_inference["results"] = [result]
    outcome = run_task(
        lambda: SestekQuestionAnsweringOperator(task_id="under_test", model_id="faq-bot", query="When are you open?")
    )
    assert outcome.task_states["under_test"] == "failed", outcome.xcom
    out = "".join(capsys.readouterr())
    # The provider's own refusal, not any line that happens to contain the word "result".
    assert "inference result 0 is not an answer" in out, out[-3000:]
