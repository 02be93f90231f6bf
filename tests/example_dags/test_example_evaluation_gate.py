"""The evaluation-gate example: the consumers of a model hear of it only after it passed its golden set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_sestek.assets import model_asset_uri
from airflow_provider_sestek.testing import SestekEmulator
from tests._assets import asset_events, register_alias
from tests.dag_runner import run_dag_file
from tests.example_dags.test_example_dags import EXAMPLES, load_example

pytestmark = pytest.mark.usefixtures("airflow_db")

MODULE = "example_sestek_evaluation_gate"


def states(run: object) -> dict[str, str]:
    return {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}  # type: ignore[attr-defined]


@pytest.fixture
def example_env(sestek_conn: SestekEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("SESTEK_EXAMPLE_POLL_INTERVAL", "0.05")
    monkeypatch.setenv("SESTEK_EXAMPLE_REPORTS", str(tmp_path))
    register_alias()
    return tmp_path


def test_a_model_that_passes_is_announced_once_by_the_evaluation(
    sestek_conn: SestekEmulator, example_env: Path
) -> None:
    uri = model_asset_uri("acme-gated-bot")
    before = len(asset_events(uri))
    run = run_dag_file("example_sestek_evaluation_gate", lambda: load_example(MODULE).gate)
    assert states(run) == {"train": "success", "evaluate": "success"}
    events = asset_events(uri)[before:]
    # The train task emitted nothing (emit_model_asset=False): the one event is the evaluation's.
    assert [e["source_task_id"] for e in events] == ["evaluate"]
    assert events[0]["extra"]["passed"] == 4 and events[0]["extra"]["cases"] == 4
    (report,) = example_env.glob("sestek-evaluate-*.json")
    assert [c["id"] for c in json.loads(report.read_text())["cases"]] == [
        "support-hours",
        "password",
        "refunds",
        "saturdays",
    ]
    consumed = run_dag_file("example_sestek_evaluated_model_consumer", lambda: load_example(MODULE).consumer)
    assert states(consumed) == {"ask_evaluated_model": "success"}


def test_a_model_that_fails_its_golden_set_is_not_announced(
    sestek_conn: SestekEmulator, example_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    golden = example_env / "stricter.jsonl"
    lines = (EXAMPLES / "data" / "faq-golden.jsonl").read_text()
    golden.write_text(
        lines + json.dumps({"id": "sundays", "query": "Are you open on Sundays?", "expect_all": "yes"}) + "\n"
    )
    monkeypatch.setenv("SESTEK_EXAMPLE_GOLDEN_SET", str(golden))
    uri = model_asset_uri("acme-gated-bot")
    before = len(asset_events(uri))
    run = run_dag_file("example_sestek_evaluation_gate", lambda: load_example(MODULE).gate)
    assert states(run) == {"train": "success", "evaluate": "failed"}
    assert asset_events(uri)[before:] == []
    (report,) = example_env.glob("sestek-evaluate-*.json")
    assert json.loads(report.read_text())["summary"]["failed"] == 1
