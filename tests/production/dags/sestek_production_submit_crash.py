"""
A sync-mode training (not waiting for the inference endpoint) of a model id never trained before: the attack
SIGKILLs its Celery worker after the train POST created the training but before the answer came back (so
before the durable record says ``submitted``).
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_sestek.operators.sestek import SestekTrainOperator

DATA_PREFIX = os.environ["SESTEK_EXAMPLE_DATA_PREFIX"].rstrip("/")

with DAG(
    dag_id="sestek_production_submit_crash",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["sestek", "test"],
) as dag:
    SestekTrainOperator(
        task_id="train",
        model_id="acme-submit-crash",
        project_name="Acme submit crash",
        data_files=[f"{DATA_PREFIX}/faq.txt"],
        deferrable=False,
        poll_interval=1,
        timeout=timedelta(minutes=10),
        wait_for_inference=False,
        retries=1,
        retry_delay=timedelta(seconds=1),
    )
