"""
Operators for Sestek AI Generative-QA: train a model (and wait until published), ask it questions, evaluate it
on a golden set.

The import path of the operators; they live in :mod:`.train`, :mod:`.question_answering` and :mod:`.evaluate`.
"""

from __future__ import annotations

from airflow_provider_sestek.operators._common import default_deferrable, wait_sync
from airflow_provider_sestek.operators._durable import STATE_KEY
from airflow_provider_sestek.operators._lineage import lineage_name
from airflow_provider_sestek.operators.evaluate import SestekEvaluateModelOperator
from airflow_provider_sestek.operators.question_answering import SestekQuestionAnsweringOperator
from airflow_provider_sestek.operators.train import SestekTrainOperator

__all__ = [
    "STATE_KEY",
    "SestekEvaluateModelOperator",
    "SestekQuestionAnsweringOperator",
    "SestekTrainOperator",
    "default_deferrable",
    "lineage_name",
    "wait_sync",
]
