"""The model asset URI: the helper, the ``sestek`` scheme's normalizer, one naming with OpenLineage."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from airflow_provider_sestek.assets import model_asset, model_asset_uri, model_identity, sanitize_uri
from airflow_provider_sestek.exceptions import SestekError, SestekValidationError
from airflow_provider_sestek.get_provider_info import get_provider_info
from airflow_provider_sestek.testing import SestekEmulator


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("https://ai.example.com", "sestek://ai.example.com/acme/faq-bot"),
        ("ai.example.com", "sestek://ai.example.com/acme/faq-bot"),
        ("https://AI.Example.com:443/", "sestek://ai.example.com/acme/faq-bot"),
        ("http://ai.example.com:80", "sestek://ai.example.com/acme/faq-bot"),
        ("http://127.0.0.1:8080", "sestek://127.0.0.1:8080/acme/faq-bot"),
        ("https://[::1]:8443", "sestek://[::1]:8443/acme/faq-bot"),
    ],
)
def test_uri_from_host_and_tenant(host: str, expected: str) -> None:
    assert model_asset_uri("faq-bot", host=host, tenant="acme") == expected


def test_uri_from_a_connection(sestek_conn: SestekEmulator) -> None:
    port = urlsplit(sestek_conn.url).port
    assert model_asset_uri("faq-bot") == f"sestek://127.0.0.1:{port}/acme/faq-bot"
    assert model_asset_uri("faq-bot", sestek_conn_id="sestek_default", tenant="other") == (
        f"sestek://127.0.0.1:{port}/other/faq-bot"
    )


def test_same_naming_as_openlineage() -> None:
    namespace, name = model_identity("https://ai.example.com:8443", "acme", "faq-bot")
    assert f"{namespace}/{name}" == model_asset_uri("faq-bot", host="https://ai.example.com:8443", tenant="acme")


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"model_id": "FAQ_Bot", "host": "h", "tenant": "acme"}, "model_id", "lowercase"),
        ({"model_id": "", "host": "h", "tenant": "acme"}, "model_id", "empty"),
        ({"model_id": "faq-bot", "host": "h", "tenant": None}, "tenant", "required"),
        ({"model_id": "faq-bot", "host": "h", "tenant": "a/b"}, "tenant", "letters"),
        ({"model_id": "faq-bot", "host": "h", "tenant": "a b"}, "tenant", "letters"),
        ({"model_id": "faq-bot", "host": "ftp://h", "tenant": "acme"}, "host", "http(s)"),
        ({"model_id": "faq-bot", "host": "https://u:SECRET@h", "tenant": "acme"}, "host", "user:password"),
        ({"model_id": "faq-bot", "host": "https://h?x=1", "tenant": "acme"}, "host", "query"),
        ({"model_id": "faq-bot", "host": "h", "sestek_conn_id": "c", "tenant": "t"}, "sestek_conn_id", "not both"),
    ],
)
def test_helper_refuses_bad_input(kwargs: dict[str, object], field: str, words: str) -> None:
    model_id = kwargs.pop("model_id")
    with pytest.raises(SestekValidationError) as info:
        model_asset_uri(model_id, **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field and words in str(info.value), str(info.value)
    assert isinstance(info.value, SestekError) and "SECRET" not in str(info.value)


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("sestek://h/acme", "path /{tenant}/{model_id}"),
        ("sestek://h/acme/faq-bot/x", "path /{tenant}/{model_id}"),
        ("sestek://h//faq-bot", "path /{tenant}/{model_id}"),
        ("sestek://h", "path /{tenant}/{model_id}"),
        ("sestek:///acme/faq-bot", "host"),
        ("sestek://h/acme/faq-bot?token=SECRET", "query"),
        ("sestek://h/acme/faq-bot#frag", "fragment"),
        ("sestek://user@h/acme/faq-bot", "user information"),
        ("sestek://h:0/acme/faq-bot", "port"),
        ("sestek://h:99999/acme/faq-bot", "host and port"),
        ("sestek://h/acme/Faq_Bot", "model id"),
        ("sestek://h/-acme/faq-bot", "tenant"),
        ("s3://h/acme/faq-bot", "scheme"),
    ],
)
def test_normalizer_refuses_malformed(uri: str, words: str) -> None:
    with pytest.raises(SestekValidationError) as info:
        sanitize_uri(urlsplit(uri))
    assert words in str(info.value) and "SECRET" not in str(info.value), str(info.value)
    assert isinstance(info.value, ValueError)  # what Airflow expects of a handler


def test_normalizer_lowercases_the_host() -> None:
    assert sanitize_uri(urlsplit("sestek://AI.Example.COM:8443/Acme/faq-bot")).geturl() == (
        "sestek://ai.example.com:8443/Acme/faq-bot"
    )


def test_registered_with_airflow() -> None:
    info = get_provider_info()
    for key in ("asset-uris", "dataset-uris"):
        (entry,) = info[key]
        assert entry["schemes"] == ["sestek"]
        assert entry["handler"] == "airflow_provider_sestek.assets.sestek.sanitize_uri"
    # Airflow calls the handler on every Asset("sestek://..."): a malformed URI cannot even be declared.
    from airflow.providers.common.compat.sdk import Asset

    assert model_asset("faq-bot", host="https://AI.example.com", tenant="acme").uri == (
        "sestek://ai.example.com/acme/faq-bot"
    )
    if int(__import__("airflow").__version__.split(".")[0]) >= 3:
        with pytest.raises(ValueError, match="path"):
            Asset("sestek://ai.example.com/acme")
        assert Asset("sestek://AI.example.com/acme/faq-bot/").uri == "sestek://ai.example.com/acme/faq-bot"
    else:  # 2.11 warns (an error with [core] strict_dataset_uri_validation), as for every provider's scheme
        with pytest.warns(UserWarning, match="path"):
            Asset("sestek://ai.example.com/acme")
