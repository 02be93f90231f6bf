"""
What a hostile server sends back is bounded before it reaches an exception, a log line or an XCom: the ABP
error envelope of a 4xx answer (message, details, code, validation errors), and an answer's ``docs``
(typed strictly: a list of documents whose ``source`` is a string). Over loopback HTTP, against the
emulator's raw fault; each case quoted megabytes, or passed odd types through, before.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_sestek import api
from airflow_provider_sestek.exceptions import SestekApiError, SestekConfigError
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.testing import Fault, SestekEmulator
from tests.conftest import connection_json

BIG = "A" * 1_000_000
FAST = {"retry_limit": 0, "retry_delay": 0.01, "retry_max_delay": 0.05}


def _answer(emu: SestekEmulator, endpoint: str, status: int, body: Any) -> None:
    emu.add_fault(
        Fault(endpoint=endpoint, kind="raw", status=status, raw_body=json.dumps(body), content_type="application/json")
    )


def _train_error(emu: SestekEmulator, faq: str, error: dict[str, Any], status: int = 400) -> SestekApiError:
    _answer(emu, "train", status, {"error": error})
    with pytest.raises(SestekApiError) as info:
        SestekHook(**FAST).submit_training("big-bot", "p", data_files=[faq])
    return info.value


@pytest.mark.parametrize("status", [400, 409])
def test_a_huge_abp_message_and_details_are_cut_in_the_error(
    sestek_conn: SestekEmulator, faq: str, status: int
) -> None:
    error = _train_error(sestek_conn, faq, {"code": "E", "message": BIG, "details": BIG}, status)
    assert len(error.message) <= 500 and error.message.endswith("...")
    assert error.details is not None and len(error.details) <= 500 and error.details.endswith("...")
    assert len(str(error)) < 1_300


def test_a_huge_abp_code_is_cut_in_the_error(sestek_conn: SestekEmulator, faq: str) -> None:
    error = _train_error(sestek_conn, faq, {"code": BIG, "message": "m"})
    assert error.code is not None and len(error.code) <= 100
    assert len(str(error)) < 600


def test_thousands_of_validation_errors_keep_twenty_and_say_how_many_more(
    sestek_conn: SestekEmulator, faq: str
) -> None:
    # About 2 MB (the client reads up to 16 MiB): a member longer than the cut, more members than kept.
    item = {"message": "v" * 300, "members": ["f" + "x" * 250] + [f"f{i}" for i in range(29)]}
    error = _train_error(sestek_conn, faq, {"code": "E", "message": "m", "validationErrors": [item] * 2000})
    kept, tail = error.validation_errors[:20], error.validation_errors[20:]
    assert tail == [("(1980 more validation errors)", [])]
    for message, members in kept:
        assert len(message) <= 200
        assert len(members) == 11 and members[-1] == "(20 more)"
        assert all(len(member) <= 200 for member in members)
    assert len(str(error)) < 60_000


def test_a_secret_echoed_in_a_huge_abp_message_is_redacted_before_the_cut(
    sestek_conn: SestekEmulator, faq: str
) -> None:
    secret = sestek_conn.train_client[1]
    # The secret straddles the 500-character cut: cut first, its head would stay.
    error = _train_error(sestek_conn, faq, {"code": "E", "message": "x" * 490 + secret + BIG})
    assert secret[:4] not in error.message and "***" in error.message
    assert len(error.message) <= 500


def test_a_non_text_abp_message_is_cut_in_the_error(sestek_conn: SestekEmulator, faq: str) -> None:
    error = _train_error(sestek_conn, faq, {"code": "E", "message": {"x": BIG}})
    assert len(error.message) <= 500


def _ask_with_docs(emu: SestekEmulator, docs: Any) -> dict[str, Any]:
    _answer(emu, "inference", 200, {"result": [{"answer": "ok", "docs": docs}]})
    return SestekHook(**FAST).ask("faq-bot", "q")


@pytest.mark.parametrize(
    ("docs", "what"),
    [
        (5, "'docs' that is not a list"),
        ({"source": "a.txt"}, "'docs' that is not a list"),
        (["odd"], "a document 0 that is not an object"),
        ([{"source": "a.txt"}, {"source": {"k": BIG}}], "a document 1 whose 'source' is not a string"),
        ([{"source": 5}], "a document 0 whose 'source' is not a string"),
    ],
)
def test_answer_docs_of_the_wrong_type_are_an_error_naming_the_result(
    sestek_conn: SestekEmulator, docs: Any, what: str
) -> None:
    with pytest.raises(SestekApiError, match=f"inference result 0 has {what}") as info:
        _ask_with_docs(sestek_conn, docs)
    assert len(str(info.value)) < 500


def test_answer_docs_without_a_source_or_null_docs_are_accepted(sestek_conn: SestekEmulator) -> None:
    response = _ask_with_docs(sestek_conn, [{"name": "n"}, {"source": None}, {"source": "a.txt"}])
    assert api.answer_sources(response["result"][0]) == (["a.txt"], 0)
    _answer(sestek_conn, "inference", 200, {"result": [{"answer": "ok", "docs": None}]})
    assert api.answer_sources(SestekHook(**FAST).ask("faq-bot", "q")["result"][0]) == ([], 0)


def test_answer_sources_keep_fifty_each_cut_to_three_hundred(sestek_conn: SestekEmulator) -> None:
    response = _ask_with_docs(sestek_conn, [{"source": "n" * 1000 + str(i)} for i in range(5000)])
    sources, more = api.answer_sources(response["result"][0])
    assert len(sources) == 50 and more == 4950
    assert all(len(source) == 300 and source.endswith("...") for source in sources)


# --- the tenant extra ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("tenant", ["a/b", "a b", "..", ["a"], "a?x=1", "a%2Fb", 123, "-a", "a" + "/" * 1000])
def test_a_tenant_breaking_the_rule_is_refused_before_any_request(
    emulator: SestekEmulator, monkeypatch: pytest.MonkeyPatch, tenant: Any
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emulator, tenant=tenant))
    with pytest.raises(SestekConfigError) as info:
        SestekHook(**FAST).ask("faq-bot", "q")
    assert info.value.field == "tenant" and api.TENANT_RULE in str(info.value)
    assert len(str(info.value)) < 300
    assert emulator.requests == []


@pytest.mark.parametrize("tenant", ["acme", "ACME", "a.b_c-1", "7"])
def test_a_tenant_keeping_the_rule_is_read(
    emulator: SestekEmulator, monkeypatch: pytest.MonkeyPatch, tenant: str
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emulator, tenant=tenant))
    assert SestekHook(**FAST).config.tenant == tenant


def test_the_asset_tenant_rule_is_the_connection_rule() -> None:
    from airflow_provider_sestek.assets import sestek as assets

    assert assets.validate_tenant is api.validate_tenant and assets.TENANT_PATTERN is api.TENANT_PATTERN
