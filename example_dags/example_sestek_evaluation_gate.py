"""
A quality gate between training a model and relying on it: train, evaluate on a golden set, and only then
tell the DAGs that use the model.

``SestekTrainOperator(emit_model_asset=False)`` trains and publishes without announcing it;
``SestekEvaluateModelOperator`` asks the model every case of ``data/faq-golden.jsonl`` and, only when at least
``min_pass_rate`` of them pass, emits the model's asset event (the one the train task would have emitted, with
the evaluation's summary as its ``extra``). The consumer DAG is scheduled on ``model_asset(...)`` as
usual: it never runs for a model that failed its golden set. The failing cases are in the task log and in
the JSON report (``report_path``, here a local file; an ``s3://CONN_ID@bucket/key`` URL works the same).
"""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_sestek.assets import model_asset
from airflow_provider_sestek.operators.sestek import (
    SestekEvaluateModelOperator,
    SestekQuestionAnsweringOperator,
    SestekTrainOperator,
)

DATA_DIR = Path(__file__).parent / "data"
POLL_INTERVAL = float(os.environ.get("SESTEK_EXAMPLE_POLL_INTERVAL", "30"))
GOLDEN_SET = os.environ.get("SESTEK_EXAMPLE_GOLDEN_SET", str(DATA_DIR / "faq-golden.jsonl"))
REPORTS = os.environ.get("SESTEK_EXAMPLE_REPORTS", tempfile.gettempdir())
MODEL_ID = "acme-gated-bot"

with DAG(
    dag_id="example_sestek_evaluation_gate",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "sestek", "evaluation"],
    doc_md=__doc__,
) as gate:
    train = SestekTrainOperator(
        task_id="train",
        model_id=MODEL_ID,
        project_name="Acme FAQ (evaluation gate example)",
        data_files=[str(DATA_DIR / "faq.txt")],
        poll_interval=POLL_INTERVAL,
        timeout=timedelta(hours=6),
        emit_model_asset=False,  # the evaluation announces the model, and only if it passes
    )
    evaluate = SestekEvaluateModelOperator(
        task_id="evaluate",
        model_id=MODEL_ID,
        cases=GOLDEN_SET,
        min_pass_rate=1.0,
        batch_size=20,
        report_path=os.path.join(REPORTS, "sestek-{{ ti.task_id }}-{{ run_id | replace(':', '_') }}.json"),
    )
    train >> evaluate

with DAG(
    dag_id="example_sestek_evaluated_model_consumer",
    schedule=[model_asset(MODEL_ID, sestek_conn_id="sestek_default")],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "sestek", "evaluation"],
    doc_md=__doc__,
) as consumer:
    SestekQuestionAnsweringOperator(
        task_id="ask_evaluated_model",
        model_id=MODEL_ID,
        query="How do I reset my password?",
    )

if __name__ == "__main__":
    gate.test()
    consumer.test()
