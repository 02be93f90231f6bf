"""
A DAG of the real-Airflow secrets test: a deferrable training with a callback whose credentials come from the
``sestek_callback`` connection, a question to the published model, and a question to a model that does not
exist (fails on purpose, so an exception text is in the logs too).
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
    dag_id="sestek_reliability_secrets",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["sestek", "test"],
) as dag:
    train = SestekTrainOperator(
        task_id="train",
        model_id="secrets-bot",
        project_name="Secrets",
        data_files=[str(DATA_DIR / "faq.txt")],
        callback_conn_id="sestek_callback",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=timedelta(minutes=30),
    )
    ask = SestekQuestionAnsweringOperator(task_id="ask", model_id="secrets-bot", query="How do I reset my password?")
    ask_unknown = SestekQuestionAnsweringOperator(
        task_id="ask_unknown_model", model_id="no-such-model", query="Anyone there?", retries=0
    )
    train >> [ask, ask_unknown]
