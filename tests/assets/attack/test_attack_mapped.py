"""
Attack (held): a mapped training, ``partial(...).expand(model_id=[...])`` run with ``dag.test()``: each map
index emits its own model's asset event through the alias, with its own ids in the extra, and no secret.
"""

from __future__ import annotations

import json

import pytest

from airflow_provider_sestek.assets import model_asset_uri
from airflow_provider_sestek.testing import SestekEmulator
from tests._assets import AIRFLOW_3, asset_events, register_alias
from tests.dag_runner import run_dag_file

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

        with DAG("attack_mapped_assets", schedule=None, start_date=pendulum.datetime(2024, 1, 1)) as dag:
            SestekTrainOperator.partial(
                task_id="train", project_name="FAQ", data_files=[faq], poll_interval=0.05, deferrable=False
            ).expand(model_id=ids)
        return dag

    run = run_dag_file("attack_mapped_assets", build)
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
