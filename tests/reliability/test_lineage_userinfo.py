"""OpenLineage output must carry no credentials from data URLs (README: "Any user:password@ is stripped")."""

from __future__ import annotations

import pytest

from airflow_provider_sestek.operators.sestek import SestekTrainOperator
from airflow_provider_sestek.testing import SestekEmulator
from tests.conftest import connection_json


@pytest.mark.parametrize(
    ("kwargs", "secret"),
    [
        # An AWS secret access key routinely contains "/" (and users paste it unencoded).
        ({"data_files": ["s3://AKIAEXAMPLEKEY:wJalrXUtnFEMI/K7MDENG@bucket/faq.txt"]}, "wJalrXUtnFEMI"),
        ({"data_urls": ["https://reader:pa#ss-SECRET@data.example.com/faq.txt"]}, "pa"),
        ({"data_urls": ["https://reader:pa?ss-SECRET@data.example.com/faq.txt"]}, "pa"),
    ],
    ids=["s3-slash-in-secret", "https-hash-in-password", "https-question-in-password"],
)
def test_lineage_has_no_userinfo(
    emulator: SestekEmulator, monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, list[str]], secret: str
) -> None:
    pytest.importorskip("airflow.providers.openlineage")
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emulator))
    op = SestekTrainOperator(task_id="t", model_id="faq-bot", project_name="FAQ", **kwargs)
    lineage = op.get_openlineage_facets_on_complete(None)
    text = repr([(d.namespace, d.name) for d in lineage.inputs + lineage.outputs])
    assert "AKIAEXAMPLEKEY" not in text and "reader" not in text and secret not in text, text
