"""
Attack (held): a templated ``model_id`` run, then cleared and run again (``dag.test()`` twice on the same
DAG run): the rendered id names the asset, and each run trains anew and emits its own event with its own
experiment id.
"""

from __future__ import annotations

from typing import Any

import pendulum
import pytest

from airflow_provider_sestek.assets import model_asset_uri
from airflow_provider_sestek.testing import SestekEmulator
from tests._assets import AIRFLOW_3, asset_events, register_alias
from tests.dag_runner import run_task
from tests.operators.test_train import train

pytestmark = pytest.mark.usefixtures("airflow_db")


@pytest.mark.skipif(not AIRFLOW_3, reason="2.11 records alias events only for a DAG its processor parsed")
def test_templated_model_id_clear_and_rerun_emits_twice(sestek_conn: SestekEmulator, faq: str) -> None:
    register_alias()
    uri = model_asset_uri("tmpl-bot", host=sestek_conn.url, tenant=sestek_conn.tenant)
    before = len(asset_events(uri))
    kwargs: dict[str, Any] = {
        "dag_id": "attack_clear_rerun",
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
