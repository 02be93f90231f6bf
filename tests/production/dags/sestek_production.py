"""
The one-task training DAGs of the production-shaped tests (``tests/production``), each named for what the test
does to it:

- ``sestek_production_sync_train``: waits in the worker (sync mode) with one retry; its Celery worker is
  SIGKILLed mid-wait and the retry, on the other worker, must attach to the same training;
- ``sestek_production_submit_crash``: the first training of a model, not waiting for the inference endpoint;
  its worker is SIGKILLed while the train POST's answer is held back (the durable record says ``submitting``);
- ``sestek_production_submit_crash_waiting``: the same, waiting for the inference endpoint
  (``test_production_lifecycle.py``);
- ``sestek_production_local_file``: a *local* path that exists only on worker A (relative to its working
  directory), sent to worker B's queue: it must fail there naming the path and worker B's host.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_sestek.operators.sestek import SestekTrainOperator

DATA_FILES = [os.environ["SESTEK_EXAMPLE_DATA_PREFIX"].rstrip("/") + "/faq.txt"]
#: A training that waits in the worker, polling every second, retried a second after a failure.
SYNC: dict[str, Any] = {
    "deferrable": False,
    "poll_interval": 1,
    "timeout": timedelta(minutes=10),
    "retry_delay": timedelta(seconds=1),
}


def _training_dag(dag_id: str, **train: Any) -> DAG:
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        tags=["sestek", "test"],
    ) as dag:
        SestekTrainOperator(task_id="train", **train)
    return dag


sync_train = _training_dag(
    "sestek_production_sync_train",
    model_id="acme-sync-bot",
    project_name="Acme sync",
    data_files=DATA_FILES,
    retries=1,
    **SYNC,
)
submit_crash = _training_dag(
    "sestek_production_submit_crash",
    model_id="acme-submit-crash",
    project_name="Acme submit crash",
    data_files=DATA_FILES,
    wait_for_inference=False,
    retries=1,
    **SYNC,
)
submit_crash_waiting = _training_dag(
    "sestek_production_submit_crash_waiting",
    model_id="acme-submit-crash-waiting",
    project_name="Acme submit crash",
    data_files=DATA_FILES,
    retries=1,
    **SYNC,
)
local_file = _training_dag(
    "sestek_production_local_file",
    model_id="acme-local-bot",
    project_name="Acme local",
    data_files=["training/faq.txt"],
    queue="worker_b",
    retries=0,
)
