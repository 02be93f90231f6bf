"""``callback_client_secret`` must never reach the serialized DAG (README: "not serialized")."""

from __future__ import annotations

import json
from typing import Any

import pendulum
import pytest

from airflow_provider_sestek.operators.sestek import SestekTrainOperator

SECRET = "SECRET-attack10-defaults"


def _serialized(dag: Any) -> str:
    try:
        from airflow.serialization.serialized_objects import DagSerialization

        return json.dumps(DagSerialization.to_dict(dag), default=str)
    except ImportError:  # Airflow 2.11
        from airflow.serialization.serialized_objects import SerializedDAG

        return json.dumps(SerializedDAG.to_dict(dag), default=str)


@pytest.mark.parametrize("mapped", [False, True], ids=["plain", "mapped"])
def test_secret_through_dag_default_args_is_refused_or_not_serialized(mapped: bool) -> None:
    """
    ``default_args`` feed operator arguments like ``partial()`` does, and the serialized DAG stores them in
    full: the secret given there must be refused (as in ``partial()``) or kept out of the serialized form.
    """
    from airflow.providers.common.compat.sdk import DAG

    try:
        with DAG(
            "secret_defaults",
            schedule=None,
            start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
            default_args={"callback_client_secret": SECRET, "callback_address": "https://cb.example.com/hook"},
        ) as dag:
            if mapped:
                SestekTrainOperator.partial(
                    task_id="t", project_name="p", data_urls=["https://docs.example.com/faq.txt"]
                ).expand(model_id=["a", "b"])
            else:
                SestekTrainOperator(
                    task_id="t", model_id="a", project_name="p", data_urls=["https://docs.example.com/faq.txt"]
                )
    except TypeError as refused:
        assert SECRET not in str(refused)
        return
    assert SECRET not in _serialized(dag)
