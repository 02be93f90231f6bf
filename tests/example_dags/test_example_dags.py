"""The example DAGs are tests too: each runs end to end on the emulator through dag.test()."""

from __future__ import annotations

import importlib

import pytest

from airflow_provider_sestek.testing import SestekEmulator
from tests.dag_runner import run_dag_file

pytestmark = pytest.mark.usefixtures("airflow_db")


@pytest.mark.parametrize(
    ("module", "model_id"),
    [("example_sestek_generative_qa", "acme-faq-bot"), ("example_sestek_sensor", "acme-shipping-bot")],
)
def test_example_dag_runs(
    sestek_conn: SestekEmulator, monkeypatch: pytest.MonkeyPatch, module: str, model_id: str
) -> None:
    monkeypatch.setenv("SESTEK_EXAMPLE_POLL_INTERVAL", "0.05")
    mod = importlib.reload(importlib.import_module(f"airflow_provider_sestek.example_dags.{module}"))
    dag_run = run_dag_file(mod.dag.dag_id, lambda: importlib.reload(mod).dag)
    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()}
    assert set(states.values()) == {"success"}, states
    assert sestek_conn.counters["trainings_created"] == 1
    assert sestek_conn.trainings[model_id].inference_status == "Running"
    assert sestek_conn.counters["inference_requests"] == 1
