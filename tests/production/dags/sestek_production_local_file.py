"""
A training given a *local* path that exists only on worker A (relative to its working directory), sent to
worker B's queue: it must fail there with the path and worker B's host named, before any Sestek request.
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_sestek.operators.sestek import SestekTrainOperator

with DAG(
    dag_id="sestek_production_local_file",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["sestek", "test"],
) as dag:
    SestekTrainOperator(
        task_id="train",
        model_id="acme-local-bot",
        project_name="Acme local",
        data_files=["training/faq.txt"],
        queue="worker_b",
        retries=0,
    )
