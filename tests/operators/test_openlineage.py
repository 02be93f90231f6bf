"""OpenLineage: inputs are the training data, the output is the trained model."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from airflow_provider_sestek.operators.sestek import SestekTrainOperator
from airflow_provider_sestek.testing import SestekEmulator

pytest.importorskip("airflow.providers.openlineage")


def test_facets_on_complete(sestek_conn: SestekEmulator, tmp_path: Path) -> None:
    data = tmp_path / "faq.txt"
    data.write_text("x")
    op = SestekTrainOperator(
        task_id="train",
        model_id="faq-bot",
        project_name="FAQ",
        data_files=[str(data), "s3://acme-data/faq/more.txt"],
        data_urls="https://docs.example.com/faq.html",
    )
    lineage = op.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.inputs] == [
        (f"file://{socket.getfqdn()}", str(data)),
        ("s3://acme-data", "faq/more.txt"),
        ("https://docs.example.com", "/faq.html"),
    ]
    host = sestek_conn.url.split("://", 1)[1]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [(f"sestek://{host}", f"{sestek_conn.tenant}/faq-bot")]


def test_openlineage_uses_the_operator_method() -> None:
    from airflow.providers.openlineage.extractors.base import DefaultExtractor
    from airflow.providers.openlineage.extractors.manager import ExtractorManager

    op = SestekTrainOperator(task_id="train", model_id="m", project_name="p", data_urls="https://x/y")
    assert ExtractorManager().get_extractor_class(op) is DefaultExtractor
