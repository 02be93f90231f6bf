"""The model asset: URI and name helpers, the ``sestek`` scheme's normalizer, one naming with OpenLineage."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from airflow_provider_sestek.assets import (
    model_asset,
    model_asset_name,
    model_asset_uri,
    model_identity,
    normalize_host,
    sanitize_uri,
)
from airflow_provider_sestek.assets.sestek import convert_asset_to_openlineage, create_asset
from airflow_provider_sestek.exceptions import SestekConfigError, SestekError, SestekValidationError
from airflow_provider_sestek.get_provider_info import get_provider_info
from airflow_provider_sestek.testing import SestekEmulator
from tests._assets import AIRFLOW_3


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("https://ai.example.com", "sestek://ai.example.com/acme/faq-bot"),
        ("ai.example.com", "sestek://ai.example.com/acme/faq-bot"),
        ("https://AI.Example.com:443/", "sestek://ai.example.com/acme/faq-bot"),
        ("http://ai.example.com:80", "sestek://ai.example.com/acme/faq-bot"),
        ("http://127.0.0.1:8080", "sestek://127.0.0.1:8080/acme/faq-bot"),
        ("https://[::1]:8443", "sestek://[::1]:8443/acme/faq-bot"),
        # One host, one spelling: trailing dot, IPv6 forms, IDN U-label and A-label, upper case, default port.
        ("https://ai.example.com.", "sestek://ai.example.com/acme/faq-bot"),
        ("https://AI.EXAMPLE.COM.:443", "sestek://ai.example.com/acme/faq-bot"),
        ("https://[0:0:0:0:0:0:0:1]:8443", "sestek://[::1]:8443/acme/faq-bot"),
        ("https://[2001:DB8:0:0:0:0:0:1]", "sestek://[2001:db8::1]/acme/faq-bot"),
        ("http://[2001:db8::1]:80", "sestek://[2001:db8::1]/acme/faq-bot"),
        ("https://bücher.example", "sestek://xn--bcher-kva.example/acme/faq-bot"),
        ("https://BÜCHER.example", "sestek://xn--bcher-kva.example/acme/faq-bot"),
        ("https://xn--bcher-kva.example", "sestek://xn--bcher-kva.example/acme/faq-bot"),
        ("https://XN--BCHER-KVA.example", "sestek://xn--bcher-kva.example/acme/faq-bot"),
        # The base path of the API URL is part of the name (trailing slash and empty segments are not).
        ("https://proxy.example.com/sestek-prod", "sestek://proxy.example.com/sestek-prod/acme/faq-bot"),
        ("https://Proxy.example.com:443/sestek-prod/", "sestek://proxy.example.com/sestek-prod/acme/faq-bot"),
        ("https://proxy.example.com//a//b/", "sestek://proxy.example.com/a/b/acme/faq-bot"),
        ("https://proxy.example.com/%7eteam/api", "sestek://proxy.example.com/~team/api/acme/faq-bot"),
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


def test_two_deployments_behind_one_proxy_are_two_models() -> None:
    prod = model_asset_uri("faq-bot", host="https://proxy.example.com/sestek-prod", tenant="acme")
    test = model_asset_uri("faq-bot", host="https://proxy.example.com/sestek-test", tenant="acme")
    assert prod != test
    assert prod == model_asset_uri("faq-bot", host="HTTPS://PROXY.example.com./sestek-prod/", tenant="acme")


@pytest.mark.parametrize(
    ("hostname", "expected"),
    [
        ("AI.Example.COM.", "ai.example.com"),
        ("[0:0:0:0:0:0:0:1]", "[::1]"),
        ("0:0:0:0:0:0:0:1", "[::1]"),
        ("::FFFF:7F00:1", "[::ffff:7f00:1]"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("my_host.internal", "my_host.internal"),  # IDNA 2008 refuses '_'; an ASCII host is only lower-cased
        ("127.0.0.1", "127.0.0.1"),
    ],
)
def test_one_spelling_per_host(hostname: str, expected: str) -> None:
    assert normalize_host(hostname) == expected


@pytest.mark.parametrize(
    ("base_url", "tenant", "namespace", "name"),
    [
        ("https://ai.example.com:8443", "acme", "sestek://ai.example.com:8443", "acme/faq-bot"),
        (
            "https://proxy.example.com/sestek-prod/v1",
            "acme",
            "sestek://proxy.example.com",
            "sestek-prod/v1/acme/faq-bot",
        ),
        ("https://proxy.example.com/sestek-prod", None, "sestek://proxy.example.com", "sestek-prod/faq-bot"),
    ],
)
def test_same_naming_as_openlineage(base_url: str, tenant: str | None, namespace: str, name: str) -> None:
    assert model_identity(base_url, tenant, "faq-bot") == (namespace, name)
    if tenant:
        uri = model_asset_uri("faq-bot", host=base_url, tenant=tenant)
        assert f"{namespace}/{name}" == uri
        # The asset-uris converter names the asset as the training's lineage names its output.
        converted = convert_asset_to_openlineage(create_asset(host=base_url, tenant=tenant, model_id="faq-bot"), None)
        assert (converted.namespace, converted.name) == (namespace, name)


def test_asset_name_needs_no_connection() -> None:
    assert model_asset_name("faq-bot") == "sestek-model:sestek_default/faq-bot"
    assert model_asset_name("faq-bot", "sestek_prod") == "sestek-model:sestek_prod/faq-bot"


@pytest.mark.parametrize(
    ("model_id", "conn_id", "field", "words"),
    [
        ("FAQ_Bot", "sestek_default", "model_id", "lowercase"),
        ("faq-bot", "", "sestek_conn_id", "non-empty"),
        ("faq-bot", None, "sestek_conn_id", "non-empty"),
        ("faq-bot", "my conn", "sestek_conn_id", "white space"),
        ("faq-bot", "c\n", "sestek_conn_id", "control"),
    ],
)
def test_asset_name_refuses_bad_input(model_id: str, conn_id: str, field: str, words: str) -> None:
    with pytest.raises(SestekValidationError) as info:
        model_asset_name(model_id, conn_id)
    assert info.value.field == field and words in str(info.value), str(info.value)


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
        ("sestek://h/acme", "path {/base/path}/{tenant}/{model_id}"),
        ("sestek://h//faq-bot", "path {/base/path}/{tenant}/{model_id}"),
        ("sestek://h/base//acme/faq-bot", "no segment empty"),
        ("sestek://h/base/../acme/faq-bot", "'..'"),
        ("sestek://h/./acme/faq-bot", "'.'"),
        ("sestek://h", "path {/base/path}/{tenant}/{model_id}"),
        ("sestek://h/base/-acme/faq-bot", "tenant"),
        ("sestek://h/base/acme/Faq_Bot", "model id"),
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


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sestek://AI.Example.COM:8443/Acme/faq-bot", "sestek://ai.example.com:8443/Acme/faq-bot"),
        ("sestek://ai.example.com./acme/faq-bot", "sestek://ai.example.com/acme/faq-bot"),
        ("sestek://[0:0:0:0:0:0:0:1]:8443/acme/faq-bot", "sestek://[::1]:8443/acme/faq-bot"),
        ("sestek://XN--BCHER-KVA.example/acme/faq-bot", "sestek://xn--bcher-kva.example/acme/faq-bot"),
        ("sestek://bücher.example/acme/faq-bot", "sestek://xn--bcher-kva.example/acme/faq-bot"),
        # Two segments or more: the last two are the tenant and the model id, the ones before the base path.
        ("sestek://h/acme/faq-bot/x", "sestek://h/acme/faq-bot/x"),
        ("sestek://Proxy/sestek-prod/v1/acme/faq-bot", "sestek://proxy/sestek-prod/v1/acme/faq-bot"),
        ("sestek://proxy/%7eteam/acme/faq-bot", "sestek://proxy/~team/acme/faq-bot"),
    ],
)
def test_normalizer_spells_the_host_as_the_helper(uri: str, expected: str) -> None:
    assert sanitize_uri(urlsplit(uri)).geturl() == expected


def test_normalizer_accepts_what_the_helper_builds() -> None:
    for host in ("https://proxy.example.com/sestek-prod", "https://[::1]:8443", "https://bücher.example"):
        uri = model_asset_uri("faq-bot", host=host, tenant="acme")
        assert sanitize_uri(urlsplit(uri)).geturl() == uri


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
    # The factory builds a concrete asset (a Dataset on 2.11), whose name on Airflow 3 is its URI.
    made = create_asset(host="https://AI.example.com/sestek-prod", tenant="acme", model_id="faq-bot", extra={"k": 1})
    assert type(made) is Asset and made.uri == "sestek://ai.example.com/sestek-prod/acme/faq-bot"
    assert made.extra == {"k": 1}
    if AIRFLOW_3:
        assert made.name == made.uri
        with pytest.raises(ValueError, match="path"):
            Asset("sestek://ai.example.com/acme")
        assert Asset("sestek://AI.example.com/acme/faq-bot/").uri == "sestek://ai.example.com/acme/faq-bot"
        assert Asset("sestek://[0:0:0:0:0:0:0:1]/p/acme/faq-bot").uri == "sestek://[::1]/p/acme/faq-bot"
    else:  # 2.11 warns (an error with [core] strict_dataset_uri_validation), as for every provider's scheme
        with pytest.warns(UserWarning, match="path"):
            Asset("sestek://ai.example.com/acme")


@pytest.fixture
def no_connection_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``sestek_default`` anywhere, and any connection lookup fails the test."""
    from airflow_provider_sestek.hooks.sestek import SestekHook

    monkeypatch.delenv("AIRFLOW_CONN_SESTEK_DEFAULT", raising=False)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a connection was looked up")

    monkeypatch.setattr(SestekHook, "get_connection", refuse)


@pytest.mark.skipif(not AIRFLOW_3, reason="asset references are Airflow 3")
@pytest.mark.usefixtures("no_connection_lookup")
def test_model_asset_reads_no_connection_on_airflow_3() -> None:
    from airflow.sdk import Asset

    assert model_asset("faq-bot") == Asset.ref(name="sestek-model:sestek_default/faq-bot")
    assert model_asset("faq-bot", sestek_conn_id="prod") == Asset.ref(name=model_asset_name("faq-bot", "prod"))
    by_uri = model_asset("faq-bot", host="https://Proxy.example.com/sestek-prod/", tenant="acme")
    uri = "sestek://proxy.example.com/sestek-prod/acme/faq-bot"
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_3_PLUS

    if AIRFLOW_V_3_3_PLUS:
        assert by_uri == Asset.ref(uri=uri)
    else:  # the asset itself: before 3.3 only an asset a DAG names becomes active (see model_asset)
        assert by_uri == Asset(name="sestek-model:sestek_default/faq-bot", uri=uri)
        host = "https://proxy.example.com/sestek-prod"
        prod = model_asset("faq-bot", sestek_conn_id="prod", host=host, tenant="acme")
        assert prod == Asset(name=model_asset_name("faq-bot", "prod"), uri=uri)


@pytest.mark.skipif(not AIRFLOW_3, reason="asset references are Airflow 3")
def test_model_asset_by_name_warns_where_airflow_cannot_resolve_it(caplog: pytest.LogCaptureFixture) -> None:
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_3_PLUS

    with caplog.at_level("WARNING", logger="airflow_provider_sestek.assets.sestek"):
        model_asset("faq-bot")
    warned = [r.getMessage() for r in caplog.records if "apache/airflow#58058" in r.getMessage()]
    assert len(warned) == (0 if AIRFLOW_V_3_3_PLUS else 1)


@pytest.mark.skipif(not AIRFLOW_3, reason="asset references are Airflow 3")
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"tenant": "other"}, "tenant"), ({"extra": {"k": 1}}, "extra"), ({"sestek_conn_id": ""}, "sestek_conn_id")],
)
def test_model_asset_refuses_what_a_reference_cannot_say(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(SestekValidationError) as info:
        model_asset("faq-bot", **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


@pytest.mark.skipif(AIRFLOW_3, reason="Airflow 2.11 only: no asset references, the Dataset needs the URI")
def test_model_asset_missing_connection_on_airflow_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_SESTEK_DEFAULT", raising=False)
    with pytest.raises(SestekConfigError) as info:
        model_asset("faq-bot", sestek_conn_id="sestek_default")
    message = str(info.value)
    assert "'sestek_default' is not defined" in message and "host=" in message and "tenant=" in message, message
    assert model_asset("faq-bot", host="https://ai.example.com", tenant="acme").uri == (
        "sestek://ai.example.com/acme/faq-bot"
    )


def test_asset_uri_lookup_of_a_missing_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """model_asset_uri(sestek_conn_id=...) reads the connection (run time): a missing one names the fix."""
    monkeypatch.delenv("AIRFLOW_CONN_NOPE", raising=False)
    with pytest.raises(SestekConfigError, match=r"'nope' is not defined.*host="):
        model_asset_uri("faq-bot", sestek_conn_id="nope")


def test_uri_of_a_connection_with_a_base_path(emulator: SestekEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from tests.conftest import connection_json

    conn = json.loads(connection_json(emulator))
    conn["host"] = emulator.url + "/sestek-prod/"
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_PROD", json.dumps(conn))
    port = urlsplit(emulator.url).port
    assert (
        model_asset_uri("faq-bot", sestek_conn_id="sestek_prod")
        == f"sestek://127.0.0.1:{port}/sestek-prod/acme/faq-bot"
    )
