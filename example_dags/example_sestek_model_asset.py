"""
Data-aware scheduling on the trained model: one DAG trains it, another runs when it is published.

``SestekTrainOperator`` emits an asset event for the model once it is trained *and published*: on Airflow 3
``Asset(name="sestek-model:sestek_default/acme-asset-bot", uri="sestek://{api host[:port]}{/base/path}/{tenant}/
acme-asset-bot")``. The consumer DAG is scheduled on it with ``model_asset`` (never by hand): on Airflow 3 a
reference by that name, so parsing this file reads no connection. On Airflow 2.11 it is the Dataset of the URI,
which needs the ``sestek_default`` connection's host and tenant when the file is parsed.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_sestek.assets import model_asset
from airflow_provider_sestek.operators.sestek import SestekQuestionAnsweringOperator, SestekTrainOperator

DATA_DIR = Path(__file__).parent / "data"
POLL_INTERVAL = float(os.environ.get("SESTEK_EXAMPLE_POLL_INTERVAL", "30"))
MODEL_ID = "acme-asset-bot"

with DAG(
    dag_id="example_sestek_model_producer",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "sestek", "assets"],
    doc_md=__doc__,
) as producer:
    SestekTrainOperator(
        task_id="train",
        model_id=MODEL_ID,
        project_name="Acme FAQ (asset example)",
        data_files=[str(DATA_DIR / "faq.txt")],
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=timedelta(hours=6),
    )

with DAG(
    dag_id="example_sestek_model_consumer",
    # Runs each time the producer (or any SestekTrainOperator on this connection) publishes the model.
    schedule=[model_asset(MODEL_ID, sestek_conn_id="sestek_default")],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "sestek", "assets"],
    doc_md=__doc__,
) as consumer:
    SestekQuestionAnsweringOperator(
        task_id="ask_fresh_model",
        model_id=MODEL_ID,
        query="How do I reset my password?",
        prompt="Answer in one or two sentences, using only the training documents.",
    )

# `python example_sestek_model_asset.py` runs both, one after the other (dag.test() ignores schedules).
if __name__ == "__main__":
    producer.test()
    consumer.test()
