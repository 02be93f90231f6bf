"""
Operators for Sestek AI Generative-QA: train a model (and wait until published), ask it questions.

The import path of both operators; they live in :mod:`.train` and :mod:`.question_answering`.
"""

from __future__ import annotations

from airflow_provider_sestek.operators._common import default_deferrable, wait_sync
from airflow_provider_sestek.operators._durable import STATE_KEY
from airflow_provider_sestek.operators._lineage import lineage_name
from airflow_provider_sestek.operators.question_answering import SestekQuestionAnsweringOperator
from airflow_provider_sestek.operators.train import SestekTrainOperator

__all__ = [
    "STATE_KEY",
    "SestekQuestionAnsweringOperator",
    "SestekTrainOperator",
    "default_deferrable",
    "lineage_name",
    "wait_sync",
]
