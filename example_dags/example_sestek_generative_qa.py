"""
Train a Generative-QA model on a small FAQ, wait (deferred) until it is published, then ask it a question.

Run it offline against the embedded emulator with ``make demo``. Against a real Sestek platform, set the
``sestek_default`` connection and, optionally, ``SESTEK_EXAMPLE_POLL_INTERVAL`` (seconds, default 30).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_sestek.operators.sestek import SestekQuestionAnsweringOperator, SestekTrainOperator

DATA_DIR = Path(__file__).parent / "data"
POLL_INTERVAL = float(os.environ.get("SESTEK_EXAMPLE_POLL_INTERVAL", "30"))

with DAG(
    dag_id="example_sestek_generative_qa",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "sestek"],
    doc_md=__doc__,
) as dag:
    train = SestekTrainOperator(
        task_id="train",
        model_id="acme-faq-bot",
        project_name="Acme customer FAQ",
        data_files=[str(DATA_DIR / "faq.txt"), str(DATA_DIR / "shipping-policy.txt")],
        deferrable=True,
        wait_for_inference=True,
        poll_interval=POLL_INTERVAL,
        timeout=timedelta(hours=6),
    )

    ask = SestekQuestionAnsweringOperator(
        task_id="ask",
        model_id="{{ ti.xcom_pull(task_ids='train', key='model_id') }}",
        query="How do I reset my password?",
        prompt="Answer in one or two sentences, using only the training documents.",
    )

    train >> ask


if __name__ == "__main__":
    dag.test()
