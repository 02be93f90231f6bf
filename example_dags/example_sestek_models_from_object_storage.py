"""
Train one Generative-QA model per team from training data in object storage, as mapped tasks, then ask each.

This is the shape for a distributed executor (Celery, Kubernetes): workers share no disk, so the training data
is read from object storage by whichever worker runs the task. ``train`` is mapped over the model ids
(``expand``) and waits deferred, in the triggerer, so five waits hold no worker slot.

Set ``SESTEK_EXAMPLE_DATA_PREFIX`` to the folder holding ``faq.txt`` and ``shipping-policy.txt`` (default
``s3://aws_default@acme-sestek-training/``: the ``aws_default`` connection, bucket ``acme-sestek-training``),
``SESTEK_EXAMPLE_MODEL_IDS`` to a comma-separated list of model ids, and optionally
``SESTEK_EXAMPLE_POLL_INTERVAL`` (seconds, default 30).
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_sestek.operators.sestek import SestekQuestionAnsweringOperator, SestekTrainOperator

DATA_PREFIX = os.environ.get("SESTEK_EXAMPLE_DATA_PREFIX", "s3://aws_default@acme-sestek-training/")
# One mapped instance per model: entries trimmed, empty ones dropped, an id listed twice kept once.
MODEL_IDS = list(
    dict.fromkeys(
        model_id.strip()
        for model_id in os.environ.get(
            "SESTEK_EXAMPLE_MODEL_IDS", "acme-support-en,acme-support-de,acme-support-tr,acme-sales-en,acme-sales-de"
        ).split(",")
        if model_id.strip()
    )
)
POLL_INTERVAL = float(os.environ.get("SESTEK_EXAMPLE_POLL_INTERVAL", "30"))

with DAG(
    dag_id="example_sestek_models_from_object_storage",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "sestek"],
    doc_md=__doc__,
) as dag:
    train = SestekTrainOperator.partial(
        task_id="train",
        project_name="Acme customer FAQ",
        data_files=[f"{DATA_PREFIX.rstrip('/')}/faq.txt", f"{DATA_PREFIX.rstrip('/')}/shipping-policy.txt"],
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=timedelta(hours=6),
        retries=2,
        retry_delay=timedelta(seconds=10),
    ).expand(model_id=MODEL_IDS)

    ask = SestekQuestionAnsweringOperator.partial(
        task_id="ask",
        query="How do I reset my password?",
        prompt="Answer in one or two sentences, using only the training documents.",
    ).expand(model_id=MODEL_IDS)

    train >> ask


if __name__ == "__main__":
    dag.test()
