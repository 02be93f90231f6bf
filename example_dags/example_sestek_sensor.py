"""
Submit a training without waiting, then wait for it with the sensor (deferrable), then ask the model.

The sensor also fits trainings started elsewhere: by another DAG, another system or the Sestek UI.
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_sestek.operators.sestek import SestekQuestionAnsweringOperator, SestekTrainOperator
from airflow_provider_sestek.sensors.sestek import SestekTrainingSensor

DATA_DIR = Path(__file__).parent / "data"
POLL_INTERVAL = float(os.environ.get("SESTEK_EXAMPLE_POLL_INTERVAL", "30"))

with DAG(
    dag_id="example_sestek_sensor",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "sestek"],
    doc_md=__doc__,
) as dag:
    submit = SestekTrainOperator(
        task_id="submit",
        model_id="acme-shipping-bot",
        project_name="Acme shipping policy",
        data_files=str(DATA_DIR / "shipping-policy.txt"),
        wait_for_completion=False,
    )

    wait = SestekTrainingSensor(
        task_id="wait_until_published",
        model_id="{{ ti.xcom_pull(task_ids='submit', key='model_id') }}",
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=6 * 60 * 60,
    )

    ask = SestekQuestionAnsweringOperator(
        task_id="ask",
        model_id="acme-shipping-bot",
        queries=["How long does express shipping take?", "Can I return an item?"],
    )

    submit >> wait >> ask


if __name__ == "__main__":
    dag.test()
