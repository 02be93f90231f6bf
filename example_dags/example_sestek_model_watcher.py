"""
Event-driven scheduling (Airflow 3): run a DAG each time a model is published, whoever trained it.

An ``AssetWatcher`` runs ``SestekModelPublishedTrigger`` in the triggerer: it polls the model's progress and
fires once per new publication (a training started from the Sestek UI, another team's pipeline or a
``SestekTrainOperator``). A model already published when the watcher starts does not fire (pass
``fire_on_start=True`` to change that). On Airflow 3.3 the trigger keeps its watermark in the asset state
store, so a triggerer restart does not fire again for the same publication.

The watched asset is the DAG's own, ``sestek-published:sestek_default/acme-watched-bot``: a name, no URI to
build, so parsing this file reads no connection (the trigger reads ``sestek_default`` in the triggerer).

Guard: asset watchers do not exist on Airflow 2, where this file defines no DAG (it parses, empty).
"""

from __future__ import annotations

import os

import pendulum
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

POLL_INTERVAL = float(os.environ.get("SESTEK_EXAMPLE_POLL_INTERVAL", "30"))
MODEL_ID = "acme-watched-bot"

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import DAG, Asset, AssetWatcher

    from airflow_provider_sestek.operators.sestek import SestekQuestionAnsweringOperator
    from airflow_provider_sestek.triggers.published import SestekModelPublishedTrigger

    published = Asset(
        name=f"sestek-published:sestek_default/{MODEL_ID}",
        watchers=[
            AssetWatcher(
                name="sestek_acme_watched_bot_published",
                trigger=SestekModelPublishedTrigger([MODEL_ID], poll_interval=POLL_INTERVAL),
            )
        ],
    )

    with DAG(
        dag_id="example_sestek_model_watcher",
        schedule=[published],
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        tags=["example", "sestek", "assets"],
        doc_md=__doc__,
    ) as dag:
        SestekQuestionAnsweringOperator(
            task_id="ask_published_model",
            model_id=MODEL_ID,
            query="How do I reset my password?",
        )

    if __name__ == "__main__":
        dag.test()
