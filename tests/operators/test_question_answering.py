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


def _serve_answer(emu: SestekEmulator, result: dict) -> None:
    import json

    from airflow_provider_sestek.testing import Fault

    body = json.dumps({"result": [result]})
    emu.add_fault(Fault(endpoint="inference", kind="raw", status=200, raw_body=body, content_type="application/json"))


def test_thousands_of_long_sources_return_fifty_cut_and_the_log_line_says_how_many_more(
    sestek_conn: SestekEmulator, capsys
) -> None:
    answer = "B" * 100_000
    docs = [{"source": "n" * 1000 + str(i)} for i in range(3000)] + [{"source": "A" * 1_000_000}]
    _serve_answer(sestek_conn, {"answer": answer, "docs": docs})
    result = run_task(lambda: SestekQuestionAnsweringOperator(task_id="under_test", model_id="faq-bot", query="q"))
    assert result.state == "success"
    (only,) = result.value
    assert len(only["sources"]) == 50 and all(len(s) == 300 for s in only["sources"])
    assert only["answer"] == answer  # the XCom keeps the answer whole
    text = "".join(capsys.readouterr())
    assert "(2951 more)" in text
    # the answer's log line is cut (Airflow 3.0's dag.test() echoes each request of the task at DEBUG, the
    # XCom with the whole answer included: its line, not the provider's)
    ours = [line for line in text.splitlines() if "Sending request" not in line and "task runner" not in line]
    assert max(len(line) for line in ours) < 1_300


def test_a_source_that_is_not_text_fails_the_task_naming_the_result(sestek_conn: SestekEmulator, capsys) -> None:
    _serve_answer(sestek_conn, {"answer": "ok", "docs": [{"source": {"k": "A" * 1_000_000}}]})
    result = run_task(lambda: SestekQuestionAnsweringOperator(task_id="under_test", model_id="faq-bot", query="q"))
    assert result.task_states["under_test"] == "failed"
    text = "".join(capsys.readouterr())
    assert "inference result 0 has a document 0 whose 'source' is not a string" in text
    # the message is short; Airflow 3.0's dag.test() draws the traceback in a rich box with every frame's
    # local variables, the answer's body included (its box, not the provider's text)
    assert len("\n".join(line for line in text.splitlines() if not line.startswith(("│", "╭", "╰")))) < 100_000


def test_docs_that_are_not_a_list_fail_the_task_with_an_api_error_not_a_type_error(
    sestek_conn: SestekEmulator, capsys
) -> None:
    _serve_answer(sestek_conn, {"answer": "ok", "docs": 5})
    result = run_task(lambda: SestekQuestionAnsweringOperator(task_id="under_test", model_id="faq-bot", query="q"))
    assert result.task_states["under_test"] == "failed"
    text = "".join(capsys.readouterr())
    assert "inference result 0 has 'docs' that is not a list: 5" in text and "TypeError" not in text


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"prompt": 5}, "Invalid prompt = 5: must be a string, not int"),
        ({"use_semantic_cache": "yes"}, "Invalid use_semantic_cache = 'yes': must be True or False"),
        ({"semantic_cache_threshold": "0.5"}, "Invalid semantic_cache_threshold = '0.5': must be a number between"),
        ({"semantic_cache_threshold": True}, "Invalid semantic_cache_threshold = True"),
        ({"semantic_cache_threshold": 1.5}, "Invalid semantic_cache_threshold = 1.5"),
    ],
)
def test_ill_typed_arguments_fail_before_any_request(sestek_conn: SestekEmulator, kwargs: dict, needle: str) -> None:
    from airflow_provider_sestek.exceptions import SestekValidationError

    operator = SestekQuestionAnsweringOperator(task_id="ask", model_id="faq-bot", query="q", **kwargs)
    with pytest.raises(SestekValidationError) as info:
        operator.execute({})  # type: ignore[arg-type]
    assert needle in str(info.value)
    assert sestek_conn.requests == []
