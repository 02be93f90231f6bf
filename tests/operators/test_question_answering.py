"""SestekQuestionAnsweringOperator through dag.test() against the emulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.operators.sestek import SestekQuestionAnsweringOperator
from airflow_provider_sestek.testing import SestekEmulator
from tests.dag_runner import run_task

pytestmark = pytest.mark.usefixtures("airflow_db")


def publish(tmp_path: Path) -> None:
    data = tmp_path / "faq.txt"
    data.write_text(
        "Q: When are you open?\nA: From 9 to 17 on weekdays.\n\n"
        "Q: Do you ship abroad?\nA: Yes, to the UK and Norway within 8 days.\n"
    )
    hook = SestekHook()
    hook.submit_training("faq-bot", "FAQ", data_files=[str(data)])
    while not hook.get_training_progress("faq-bot").is_published:
        pass


def test_answers_questions(sestek_conn: SestekEmulator, tmp_path: Path) -> None:
    publish(tmp_path)
    result = run_task(
        lambda: SestekQuestionAnsweringOperator(
            task_id="under_test",
            model_id="faq-bot",
            query="When are you open?",
            queries=["Do you ship abroad?"],
            prompt="Be brief.",
            use_semantic_cache=True,
        )
    )
    assert result.state == "success"
    first, second = result.value
    assert first["query"] == "When are you open?" and "9 to 17" in first["answer"]
    assert "Norway" in second["answer"] and second["sources"] == ["faq.txt"]
    (request,) = [r for r in sestek_conn.requests if r.endpoint == "inference"]
    assert request.json["prompt"] == "Be brief." and len(request.json["inputs"]) == 2


def test_an_answer_without_sources_is_logged_without_an_empty_list(
    sestek_conn: SestekEmulator, tmp_path: Path, capsys
) -> None:
    publish(tmp_path)
    result = run_task(
        lambda: SestekQuestionAnsweringOperator(
            task_id="under_test", model_id="faq-bot", queries=["Do you ship abroad?", "zzzz qqqq"]
        )
    )
    assert result.state == "success"
    shipped, nothing = result.value
    assert shipped["sources"] == ["faq.txt"]
    assert nothing["sources"] == [] and nothing["answer"]
    text = "".join(capsys.readouterr())
    assert "(sources: faq.txt)" in text and "(sources: )" not in text
    assert f"A: {nothing['answer']}" in text


def test_not_published_is_explained(sestek_conn: SestekEmulator, tmp_path: Path, capsys) -> None:
    data = tmp_path / "faq.txt"
    data.write_text("x")
    SestekHook().submit_training("faq-bot", "FAQ", data_files=[str(data)])
    result = run_task(lambda: SestekQuestionAnsweringOperator(task_id="under_test", model_id="faq-bot", query="Hi?"))
    assert result.task_states["under_test"] == "failed"
    text = "".join(capsys.readouterr())
    assert "model 'faq-bot' is not published" in text and "wait_for_inference=True" in text


def test_needs_a_question(sestek_conn: SestekEmulator, capsys) -> None:
    result = run_task(lambda: SestekQuestionAnsweringOperator(task_id="under_test", model_id="faq-bot"))
    assert result.task_states["under_test"] == "failed"
    assert "give query or queries" in "".join(capsys.readouterr())
    assert sestek_conn.requests == []
