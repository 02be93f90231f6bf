"""The example DAGs are tests too: each runs end to end on the emulator through dag.test()."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from airflow_provider_sestek.testing import SestekEmulator
from tests.dag_runner import run_dag_file

pytestmark = pytest.mark.usefixtures("airflow_db")

#: The example DAGs live at the top of the repository (beside pyproject.toml), not in the package.
EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"


def load_example(module: str) -> ModuleType:
    """Import one example DAG file by path, afresh (it reads its environment at import time)."""
    spec = importlib.util.spec_from_file_location(f"sestek_example_{module}", EXAMPLES / f"{module}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize(
    ("module", "model_id"),
    [("example_sestek_generative_qa", "acme-faq-bot"), ("example_sestek_sensor", "acme-shipping-bot")],
)
def test_example_dag_runs(
    sestek_conn: SestekEmulator, monkeypatch: pytest.MonkeyPatch, module: str, model_id: str
) -> None:
    monkeypatch.setenv("SESTEK_EXAMPLE_POLL_INTERVAL", "0.05")
    mod = load_example(module)
    dag_run = run_dag_file(mod.dag.dag_id, lambda: load_example(module).dag)
    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()}
    assert set(states.values()) == {"success"}, states
    assert sestek_conn.counters["trainings_created"] == 1
    assert sestek_conn.trainings[model_id].inference_status == "Running"
    assert sestek_conn.counters["inference_requests"] == 1
