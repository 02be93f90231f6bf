"""
The model asset event of a training in the runs people make: a templated ``model_id`` run, then cleared and run
again (``dag.test()`` twice on the same DAG run), and a mapped training, ``partial(...).expand(model_id=[...])``.
The rendered id names the asset; each run trains anew and emits its own event with its own experiment id; each
map index emits its own model's event through the alias, with its own ids in the extra, and no secret.
"""

from __future__ import annotations

import json
from typing import Any

import pendulum
import pytest

from airflow_provider_sestek.assets import model_asset_uri
from airflow_provider_sestek.testing import SestekEmulator
from tests._assets import AIRFLOW_3, asset_events, register_alias
from tests.dag_runner import run_dag_file, run_task
from tests.operators.test_train import train

pytestmark = pytest.mark.usefixtures("airflow_db")


@pytest.mark.skipif(not AIRFLOW_3, reason="2.11 records alias events only for a DAG its processor parsed")
def test_templated_model_id_clear_and_rerun_emits_twice(sestek_conn: SestekEmulator, faq: str) -> None:
    register_alias()
    uri = model_asset_uri("tmpl-bot", host=sestek_conn.url, tenant=sestek_conn.tenant)
    before = len(asset_events(uri))
    kwargs: dict[str, Any] = {
        "dag_id": "asset_clear_rerun",
        "dag_kwargs": {"params": {"model": "tmpl-bot"}},
        "test_kwargs": {"logical_date": pendulum.datetime(2026, 2, 1, tz="UTC")},
    }
    first = run_task(lambda: train(faq, model_id="{{ params.model }}"), **kwargs)
    assert first.state == "success", first
    experiment_1 = sestek_conn.trainings["tmpl-bot"].experiment_id
    second = run_task(lambda: train(faq, model_id="{{ params.model }}"), **kwargs)
    assert second.state == "success", second
    experiment_2 = sestek_conn.trainings["tmpl-bot"].experiment_id
    assert experiment_1 != experiment_2
    events = asset_events(uri)
    assert len(events) == before + 2
    assert [e["extra"]["experiment_id"] for e in events[-2:]] == [experiment_1, experiment_2]
    assert {e["extra"]["model_id"] for e in events[-2:]} == {"tmpl-bot"}


pytestmark = pytest.mark.usefixtures("airflow_db")


@pytest.mark.skipif(not AIRFLOW_3, reason="2.11 records alias events only for a DAG its processor parsed")
def test_each_map_index_emits_its_own_model(sestek_conn: SestekEmulator, faq: str) -> None:
    register_alias()
    ids = ["a-bot", "b-bot", "c-bot"]
    uris = {m: model_asset_uri(m, host=sestek_conn.url, tenant=sestek_conn.tenant) for m in ids}
    before = {m: len(asset_events(u)) for m, u in uris.items()}

    def build() -> object:
        import pendulum
        from airflow.providers.common.compat.sdk import DAG

        from airflow_provider_sestek.operators.sestek import SestekTrainOperator

        with DAG("asset_mapped_training", schedule=None, start_date=pendulum.datetime(2024, 1, 1)) as dag:
            SestekTrainOperator.partial(
                task_id="train", project_name="FAQ", data_files=[faq], poll_interval=0.05, deferrable=False
            ).expand(model_id=ids)
        return dag

    run = run_dag_file("asset_mapped_training", build)
    assert str(getattr(run, "state", "")).endswith("success"), run
    for model_id, uri in uris.items():
        events = asset_events(uri)
        assert len(events) == before[model_id] + 1, model_id
        extra = events[-1]["extra"]
        assert extra["model_id"] == model_id
        assert extra["experiment_id"] == sestek_conn.trainings[model_id].experiment_id
        text = json.dumps(events[-1], default=str)
        for secret in (sestek_conn.train_client[1], sestek_conn.inference_client[1]):
            assert secret not in text
