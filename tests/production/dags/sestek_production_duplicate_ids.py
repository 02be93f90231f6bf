"""
A mapped training over a list that names one model id twice (written by hand, not through the example's
variable): the two instances run at the same time on the two Celery workers.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_sestek.operators.sestek import SestekTrainOperator

DATA_PREFIX = os.environ["SESTEK_EXAMPLE_DATA_PREFIX"].rstrip("/")

with DAG(
    dag_id="sestek_production_duplicate_ids",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["sestek", "test"],
) as dag:
    SestekTrainOperator.partial(
        task_id="train",
        project_name="Acme duplicates",
        data_files=[f"{DATA_PREFIX}/faq.txt"],
        deferrable=True,
        poll_interval=1,
        timeout=timedelta(minutes=10),
        retries=1,
        retry_delay=timedelta(seconds=5),
    ).expand(model_id=["acme-dup", "acme-dup", "acme-dup-other"])
