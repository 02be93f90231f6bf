"""SestekEvaluateModelOperator through dag.test() against the emulator: the gate, its report, its asset event."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sestek.assets import model_asset_uri
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.operators.sestek import SestekEvaluateModelOperator
from airflow_provider_sestek.testing import SestekEmulator
from tests._assets import asset_events, register_alias
from tests._moto import S3
from tests.dag_runner import run_task

pytestmark = pytest.mark.usefixtures("airflow_db")

FAQ = (
    "Q: When are you open?\nA: From 9 to 17 on weekdays.\n\n"
    "Q: Do you ship abroad?\nA: Yes, to the UK and Norway within 8 days.\n\n"
    "Q: How do I reset my password?\nA: Use the Forgot password link on the sign-in page.\n"
)
GOOD = [
    {"id": "hours", "query": "When are you open?", "expect_all": ["9 to 17", "weekdays"]},
    {"id": "ship", "query": "Do you ship abroad?", "expect_any": ["UK", "Norway"], "expect_sources": "faq.txt"},
    {"id": "pw", "query": "How do I reset my password?", "expect_regex": r"(?i)forgot\s+password", "forbid": "call"},
]
BAD = {"id": "sundays", "query": "When are you open?", "expect_all": "sundays"}


def publish(tmp_path: Path, model_id: str = "faq-bot") -> None:
    data = tmp_path / "faq.txt"
    data.write_text(FAQ)
    hook = SestekHook()
    hook.submit_training(model_id, "FAQ", data_files=[str(data)])
    while not hook.get_training_progress(model_id).is_published:
        pass


def evaluate(**kwargs: Any) -> Any:
    kwargs.setdefault("model_id", "faq-bot")
    return run_task(lambda: SestekEvaluateModelOperator(task_id="under_test", **kwargs))


def inference_requests(emu: SestekEmulator) -> list[Any]:
    return [r for r in emu.requests if r.endpoint == "inference"]


def test_a_model_that_answers_its_golden_set_passes(sestek_conn: SestekEmulator, tmp_path: Path, capsys) -> None:
    publish(tmp_path)
    result = evaluate(cases=GOOD, batch_size=2)
    assert result.state == "success", "".join(capsys.readouterr())
    summary = result.value
    assert {k: summary[k] for k in ("model_id", "cases", "passed", "failed", "pass_rate", "source_hit_rate")} == {
        "model_id": "faq-bot",
        "cases": 3,
        "passed": 3,
        "failed": 0,
        "pass_rate": 1.0,
        "source_hit_rate": 1.0,
    }
    assert summary["latency_p50_ms"] > 0 and summary["latency_p95_ms"] >= summary["latency_p50_ms"]
    # Two requests of at most two cases, the cache off: an evaluation measures the model.
    requests = inference_requests(sestek_conn)
    assert [len(r.json["inputs"]) for r in requests] == [2, 1]
    assert all(item["use_semantic_cache"] is False for r in requests for item in r.json["inputs"])
    text = "".join(capsys.readouterr())
    assert "Evaluated 3 of 3 cases: 3 passed" in text
    assert "Model faq-bot: 3 of 3 cases passed (100.0%; required 100.0%)" in text


def test_below_min_pass_rate_the_task_fails_listing_the_failing_cases(
    sestek_conn: SestekEmulator, tmp_path: Path, capsys
) -> None:
    publish(tmp_path)
    result = evaluate(cases=[*GOOD, BAD], min_pass_rate=0.8)
    assert result.state == "failed"
    text = "".join(capsys.readouterr())
    assert "passed 3 of 4 cases (75.0%), below min_pass_rate 80.0%" in text
    assert "sundays | When are you open? | expect_all: missing 'sundays' | answer: 'From 9 to 17 on weekdays.'" in text


def test_at_min_pass_rate_the_gate_opens(sestek_conn: SestekEmulator, tmp_path: Path, capsys) -> None:
    publish(tmp_path)
    result = evaluate(cases=[*GOOD, BAD], min_pass_rate=0.75)
    assert result.state == "success"
    assert result.value["failed"] == 1
    text = "".join(capsys.readouterr())
    # The log ends with the failures as a table, then the summary line.
    assert text.index("Failing cases (1):") < text.index("Model faq-bot: 3 of 4 cases passed")


def test_each_case_sends_its_own_chat_history(sestek_conn: SestekEmulator, tmp_path: Path) -> None:
    publish(tmp_path)
    history = [[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]]
    result = evaluate(cases=[{**GOOD[0], "chat_history": history}, GOOD[1]], prompt="Be brief.")
    assert result.state == "success"
    (request,) = inference_requests(sestek_conn)
    assert [item["chat_history"] for item in request.json["inputs"]] == [history, []]
    assert request.json["prompt"] == "Be brief."


def test_the_report_holds_every_case_and_is_written_when_the_gate_fails(
    sestek_conn: SestekEmulator, tmp_path: Path
) -> None:
    publish(tmp_path)
    report = tmp_path / "reports" / "faq-bot.json"
    report.parent.mkdir()
    result = evaluate(cases=[*GOOD, BAD], report_path=str(report))
    assert result.state == "failed"
    written = json.loads(report.read_text())
    assert written["model_id"] == "faq-bot" and written["summary"]["failed"] == 1
    assert written["summary"]["report_path"] == str(report)
    assert [(c["id"], c["passed"]) for c in written["cases"]] == [
        ("hours", True),
        ("ship", True),
        ("pw", True),
        ("sundays", False),
    ]
    ship = written["cases"][1]
    assert ship["sources"] == ["faq.txt"] and "Norway" in ship["answer"] and ship["latency_ms"] > 0
    assert ship["checks"] == [
        {"check": "expect_any", "passed": True, "detail": ""},
        {"check": "expect_sources", "passed": True, "detail": ""},
    ]
    assert list(report.parent.iterdir()) == [report]  # no temporary file left beside it


def test_cases_and_report_in_object_storage(sestek_conn: SestekEmulator, s3: S3, tmp_path: Path) -> None:
    publish(tmp_path)
    s3.put("golden/faq.jsonl", "".join(json.dumps(c) + "\n" for c in GOOD).encode())
    result = evaluate(cases=s3.url("golden/faq.jsonl"), report_path=s3.url("reports/faq-bot.json"))
    assert result.state == "success"
    # The report's location as logs show URLs: without the user-info part (here the connection id).
    assert result.value["report_path"] == s3.url("reports/faq-bot.json", conn_id=None)
    body = s3.server.client().get_object(Bucket=s3.bucket, Key="reports/faq-bot.json")["Body"].read()
    assert json.loads(body)["summary"]["passed"] == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cases": [{"id": "x"}]}, "Invalid cases[0].query"),
        ({"cases": [{"query": "q", "expect_regex": "(["}]}, "Invalid cases[0].expect_regex[0]"),
        ({"cases": [{"query": "q", "expected": "x"}]}, "Invalid cases[0].expected"),
        ({"cases": GOOD, "min_pass_rate": 1.5}, "Invalid min_pass_rate = 1.5"),
        ({"cases": GOOD, "batch_size": 0}, "Invalid batch_size = 0"),
        ({"cases": GOOD, "use_semantic_cache": "false"}, "Invalid use_semantic_cache"),
        ({"cases": GOOD, "report_path": "/nonexistent/dir/r.json"}, "Invalid report_path"),
        ({"cases": GOOD, "report_path": "https://example.com/r.json"}, "is a web URL"),
        ({"cases": "/nonexistent/golden.jsonl"}, "Invalid cases"),
        ({"cases": GOOD, "model_id": "Bad_Id"}, "Invalid model_id"),
    ],
)
def test_bad_input_fails_before_any_request(sestek_conn: SestekEmulator, capsys, kwargs: dict, message: str) -> None:
    result = evaluate(**kwargs)
    assert result.state == "failed"
    assert message in "".join(capsys.readouterr())
    assert sestek_conn.requests == []


def test_a_report_in_a_missing_bucket_fails_before_any_request(sestek_conn: SestekEmulator, s3: S3, capsys) -> None:
    result = evaluate(cases=GOOD, report_path=s3.url("r.json").replace(s3.bucket, "no-such-bucket-here"))
    assert result.state == "failed"
    assert "its bucket 'no-such-bucket-here' does not exist" in "".join(capsys.readouterr())
    assert sestek_conn.requests == []


def test_a_report_over_the_cases_file_is_refused(sestek_conn: SestekEmulator, tmp_path: Path, capsys) -> None:
    path = tmp_path / "golden.jsonl"
    golden = "".join(json.dumps(c) + "\n" for c in GOOD)
    path.write_text(golden)
    result = evaluate(cases=str(path), report_path=str(tmp_path / "." / "golden.jsonl"))
    assert result.state == "failed"
    assert "is the cases file; the report would replace it" in "".join(capsys.readouterr())
    assert sestek_conn.requests == [] and path.read_text() == golden


def test_a_published_model_whose_endpoint_does_not_answer_says_so(
    sestek_conn: SestekEmulator, tmp_path: Path, capsys, fast_retries: None
) -> None:
    from airflow_provider_sestek.testing import Fault

    publish(tmp_path)
    sestek_conn.add_fault(Fault(endpoint="inference", kind="status", status=503, count=None))
    result = evaluate(cases=GOOD)
    assert result.state == "failed"
    text = "".join(capsys.readouterr())
    assert "model 'faq-bot' is published (training progress: Completed 100% (inference Running))" in text
    assert "did not answer (HTTP 503); retry later" in text and "'faq-bot' is not published" not in text


def test_a_bad_case_late_in_a_file_fails_before_any_request(
    sestek_conn: SestekEmulator, tmp_path: Path, capsys
) -> None:
    path = tmp_path / "golden.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in [*GOOD] * 10) + '{"query": ""}\n')
    result = evaluate(cases=str(path))
    assert result.state == "failed"
    assert "Invalid golden.jsonl line 31, field query" in "".join(capsys.readouterr())
    assert sestek_conn.requests == []


def test_a_model_that_is_not_published_is_named(sestek_conn: SestekEmulator, tmp_path: Path, capsys) -> None:
    data = tmp_path / "faq.txt"
    data.write_text(FAQ)
    SestekHook().submit_training("faq-bot", "FAQ", data_files=[str(data)])
    result = evaluate(cases=GOOD)
    assert result.state == "failed"
    text = "".join(capsys.readouterr())
    assert "SestekModelNotPublished" in text and "model 'faq-bot' is not published" in text


def test_answers_that_do_not_match_the_questions_fail(sestek_conn: SestekEmulator, tmp_path: Path, capsys) -> None:
    from airflow_provider_sestek.testing import Fault

    publish(tmp_path)
    body = json.dumps({"result": [{"answer": "one", "docs": []}]})
    sestek_conn.add_fault(Fault(endpoint="inference", kind="raw", raw_body=body, content_type="application/json"))
    result = evaluate(cases=GOOD)
    assert result.state == "failed"
    assert "inference answered 1 result(s) for 3 question(s)" in "".join(capsys.readouterr())


def test_a_passing_evaluation_emits_the_model_asset_event_with_its_summary(
    sestek_conn: SestekEmulator, tmp_path: Path
) -> None:
    register_alias()
    publish(tmp_path)
    uri = model_asset_uri("faq-bot")
    before = len(asset_events(uri))
    assert evaluate(cases=[*GOOD, BAD]).state == "failed"
    assert len(asset_events(uri)) == before  # a failed gate publishes nothing
    result = evaluate(cases=GOOD)
    assert result.state == "success"
    events = asset_events(uri)
    assert len(events) == before + 1
    extra = events[-1]["extra"]
    assert extra == {**result.value, "min_pass_rate": 1.0}
    assert extra["model_id"] == "faq-bot" and extra["pass_rate"] == 1.0


def test_mapped_over_models_each_emits_its_model_asset_event(sestek_conn: SestekEmulator, tmp_path: Path) -> None:
    import pendulum
    from airflow.providers.common.compat.sdk import DAG

    from tests.dag_runner import run_dag_file

    register_alias()
    publish(tmp_path, "faq-bot")
    publish(tmp_path, "faq-bot-two")
    uris = [model_asset_uri("faq-bot"), model_asset_uri("faq-bot-two")]
    before = [len(asset_events(uri)) for uri in uris]

    def build() -> Any:
        with DAG("sestek_evaluate_mapped", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
            SestekEvaluateModelOperator.partial(task_id="evaluate", cases=GOOD).expand(
                model_id=["faq-bot", "faq-bot-two"]
            )
        return dag

    run = run_dag_file("sestek_evaluate_mapped", build)
    states = sorted(str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances())
    assert states == ["success", "success"]
    segments = sorted(r.model_id for r in inference_requests(sestek_conn))
    assert segments == ["faq-bot", "faq-bot-two"]
    # Each mapped instance declares the model alias (its __init__ runs when it is unmapped) and emits its event.
    assert [len(asset_events(uri)) for uri in uris] == [n + 1 for n in before]


def test_openlineage_reports_one_assertion_per_check_kind(sestek_conn: SestekEmulator, tmp_path: Path) -> None:
    pytest.importorskip("airflow.providers.openlineage")
    publish(tmp_path)
    cases = tmp_path / "golden.jsonl"
    cases.write_text("".join(json.dumps(c) + "\n" for c in [*GOOD, BAD]))
    op = SestekEvaluateModelOperator(
        task_id="evaluate",
        model_id="faq-bot",
        cases=str(cases),
        min_pass_rate=0.5,
        report_path=str(tmp_path / "r.json"),
    )
    op.execute({})
    lineage = op.get_openlineage_facets_on_complete(None)
    model, cases_in = lineage.inputs
    host = sestek_conn.url.split("://", 1)[1]
    assert (model.namespace, model.name) == (f"sestek://{host}", f"{sestek_conn.tenant}/faq-bot")
    assertions = {a.assertion: a.success for a in model.inputFacets["dataQualityAssertions"].assertions}
    assert assertions == {
        "expect_all": False,
        "expect_any": True,
        "expect_regex": True,
        "expect_sources": True,
        "forbid": True,
    }
    assert cases_in.name == str(cases)
    assert [d.name for d in lineage.outputs] == [str(tmp_path / "r.json")]
