"""The connection's ``portal_url`` template is checked when the connection is read, before any request."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_sestek.exceptions import SestekConfigError
from airflow_provider_sestek.hooks.config import SestekConnectionConfig
from airflow_provider_sestek.links.sestek import render_portal_url
from airflow_provider_sestek.testing import SestekEmulator
from tests.conftest import connection_json
from tests.dag_runner import run_task
from tests.operators.test_train import train


def config(portal_url: Any) -> SestekConnectionConfig:
    return SestekConnectionConfig.from_connection(
        "c", "https://ai.example.com", "id", "s3cr3t", {"portal_url": portal_url}
    )


@pytest.mark.parametrize(
    "template",
    [
        "https://portal.example.com/models/{model_id}",
        "https://portal.example.com/{tenant}/models/{model_id}",
        "  https://portal.example.com/static  ",
        "https://portal.example.com/?q={{literal}}&m={model_id}",
    ],
)
def test_a_template_that_renders_a_link_is_kept(template: str) -> None:
    cfg = config(template)
    assert cfg.portal_url == template.strip()
    assert render_portal_url(cfg.portal_url, "faq-bot", "acme")


@pytest.mark.parametrize(
    ("template", "says"),
    [
        ("https://portal.example.com/{model}", "{model}"),
        ("https://portal.example.com/{0}", "{0}"),
        ("https://portal.example.com/{model_id.__class__}", "is not allowed"),
        ("https://portal.example.com/{model_id[0]}", "is not allowed"),
        ("https://portal.example.com/{model_id:>999999999}", "no format"),
        ("https://portal.example.com/{model_id!r}", "no format"),
        ("https://portal.example.com/{model_id", "not a valid template"),
        ("portal.example.com/{model_id}", "absolute http"),
        ("javascript:alert({model_id})", "absolute http"),
        ("https://portal.example.com/" + "x" * 3000, "longer than"),
        (42, "non-empty URL template"),
    ],
)
def test_a_template_that_would_not_render_a_link_is_refused(template: Any, says: str) -> None:
    with pytest.raises(SestekConfigError, match="portal_url") as refused:
        config(template)
    assert says in str(refused.value)
    assert "s3cr3t" not in str(refused.value)


@pytest.mark.usefixtures("airflow_db")
def test_a_bad_portal_template_fails_the_task_before_any_request(
    emulator: SestekEmulator, monkeypatch: pytest.MonkeyPatch, faq: str
) -> None:
    """Before, the template was rendered after the submit and silently dropped: the training ran, with no link."""
    conn = connection_json(emulator, portal_url="https://portal.example.com/{model_id:>99999999}")
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", conn)
    result = run_task(lambda: train(faq))
    assert result.task_states["under_test"] == "failed", result
    assert emulator.requests == []
