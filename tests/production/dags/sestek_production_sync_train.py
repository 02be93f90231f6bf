"""
A training that waits in the worker (sync mode, not deferred) with one retry: the production test SIGKILLs the
Celery worker running it mid-wait, and the retry, on the other worker, must attach to the same training.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_sestek.operators.sestek import SestekTrainOperator

DATA_PREFIX = os.environ["SESTEK_EXAMPLE_DATA_PREFIX"].rstrip("/")

with DAG(
    dag_id="sestek_production_sync_train",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["sestek", "test"],
) as dag:
    SestekTrainOperator(
        task_id="train",
        model_id="acme-sync-bot",
        project_name="Acme sync",
        data_files=[f"{DATA_PREFIX}/faq.txt"],
        deferrable=False,
        poll_interval=1,
        timeout=timedelta(minutes=10),
        retries=1,
        retry_delay=timedelta(seconds=1),
    )
