"""The rules of a golden-set evaluation: what a case is, how each check grades an answer, what is counted."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_sestek.api.evaluation import (
    ANSWERED,
    CaseResult,
    Scoreboard,
    grade,
    parse_case,
    validate_batch_size,
    validate_pass_rate,
)
from airflow_provider_sestek.exceptions import SestekValidationError

ANSWER = "We are open From 9  to 17 on weekdays; closed on Sundays."


def checks(raw: dict, answer: str = ANSWER, sources: tuple[str, ...] = ("faq.txt",)) -> dict[str, tuple[bool, str]]:
    case = parse_case({"query": "When are you open?", **raw}, "cases[0]", 1)
    return {c.check: (c.passed, c.detail) for c in grade(case, answer, list(sources))}


def test_expect_all_needs_every_string_case_and_space_insensitively() -> None:
    assert checks({"expect_all": ["from 9 to 17", "WEEKDAYS"]}) == {"expect_all": (True, "")}
    assert checks({"expect_all": ["9 to 17", "holidays"]}) == {"expect_all": (False, "missing 'holidays'")}


def test_expect_any_needs_one_string() -> None:
    assert checks({"expect_any": ["holidays", "sundays"]})["expect_any"][0] is True
    assert checks({"expect_any": "holidays"}) == {"expect_any": (False, "none of 'holidays'")}


def test_expect_regex_needs_every_pattern_to_match_as_written() -> None:
    assert checks({"expect_regex": [r"\b9\b.*\b17\b", r"(?i)SUNDAYS"]})["expect_regex"][0] is True
    passed, detail = checks({"expect_regex": [r"\b9\b", "SUNDAYS"]})["expect_regex"]
    assert not passed and detail == "no match for 'SUNDAYS'"


def test_expect_sources_needs_every_document_among_the_answer_sources() -> None:
    assert checks({"expect_sources": "faq.txt"}, sources=("faq.txt", "b.txt"))["expect_sources"][0] is True
    assert checks({"expect_sources": ["faq.txt", "shipping.txt"]})["expect_sources"] == (
        False,
        "sources lack 'shipping.txt'",
    )


def test_forbid_fails_on_any_string_present() -> None:
    assert checks({"forbid": ["saturday"]})["forbid"][0] is True
    assert checks({"forbid": ["CLOSED", "never"]})["forbid"] == (False, "contains 'CLOSED'")


def test_a_case_without_checks_passes_on_a_non_empty_answer_only() -> None:
    assert checks({}) == {ANSWERED: (True, "")}
    assert checks({}, answer="  ") == {ANSWERED: (False, "the answer is empty")}


def test_checks_are_applied_in_one_order_whatever_the_case_says() -> None:
    raw = {"forbid": "x", "expect_regex": "9", "expect_all": "9"}
    assert list(checks(raw)) == ["expect_all", "expect_regex", "forbid"]


@pytest.mark.parametrize(
    ("raw", "field", "rule"),
    [
        ({}, "cases[4].query", "is required"),
        ({"query": "  "}, "cases[4].query", "is required"),
        ({"query": "q", "expect_al": "x"}, "cases[4].expect_al", "unknown field"),
        ({"query": "q", "expect_regex": ["ok", "(["]}, "cases[4].expect_regex[1]", "not a valid regular expression"),
        ({"query": "q", "expect_all": []}, "cases[4].expect_all", "non-empty list of strings"),
        ({"query": "q", "expect_any": ["a", 3]}, "cases[4].expect_any[1]", "non-empty string"),
        ({"query": "q", "id": 1.5}, "cases[4].id", "string or an integer"),
        ({"query": "q", "chat_history": [["hi"]]}, "cases[4].chat_history[0]", "pair"),
    ],
)
def test_a_bad_case_names_where_the_field_and_the_rule(raw: dict, field: str, rule: str) -> None:
    with pytest.raises(SestekValidationError) as info:
        parse_case(raw, "cases[4]", 5)
    assert info.value.field == field and rule in info.value.rule


def test_a_case_from_a_file_names_the_file_and_line() -> None:
    with pytest.raises(SestekValidationError, match=r"Invalid golden.jsonl line 7, field query"):
        parse_case({"id": "x"}, "golden.jsonl line 7", 3)
    with pytest.raises(SestekValidationError, match="a case must be an object"):
        parse_case(["q"], "golden.jsonl line 7", 3)


def test_a_case_id_defaults_to_its_number() -> None:
    assert parse_case({"query": "q"}, "cases[2]", 3).id == "3"
    assert parse_case({"query": "q", "id": 7}, "cases[2]", 3).id == "7"


@pytest.mark.parametrize("value", [-0.1, 1.01, math.nan, math.inf, True, "0.9", None])
def test_min_pass_rate_is_a_number_from_0_to_1(value: object) -> None:
    with pytest.raises(SestekValidationError, match="min_pass_rate"):
        validate_pass_rate(value)
    assert validate_pass_rate(0) == 0.0 and validate_pass_rate(1) == 1.0


@pytest.mark.parametrize("value", [0, 101, 2.0, True, "5"])
def test_batch_size_is_an_integer_from_1_to_100(value: object) -> None:
    with pytest.raises(SestekValidationError, match="batch_size"):
        validate_batch_size(value)


def _result(number: int, passed: bool, latency: float, with_sources: bool = False) -> CaseResult:
    raw = {"query": f"q{number}", "expect_all": "yes"}
    if with_sources:
        raw["expect_sources"] = "faq.txt"
    case = parse_case(raw, f"cases[{number}]", number + 1)
    answer = "yes" if passed else "no"
    sources = ["faq.txt"] if passed else []
    return CaseResult(case, answer, sources, grade(case, answer, sources), latency)


def test_the_scoreboard_counts_rates_and_keeps_the_first_failures() -> None:
    board = Scoreboard(keep_failures=2)
    for i, passed in enumerate([True, False, False, True, False]):
        board.add(_result(i, passed, 10.0, with_sources=i < 2))
    board.add_request(10.0, 5)
    summary = board.summary("m", None)
    assert summary == {
        "model_id": "m",
        "cases": 5,
        "passed": 2,
        "failed": 3,
        "pass_rate": 0.4,
        "source_hit_rate": 0.5,
        "latency_p50_ms": 10.0,
        "latency_p95_ms": 10.0,
        "report_path": None,
    }
    assert [f.case.id for f in board.failures] == ["2", "3"]
    assert board.by_check == {"expect_all": [2, 3], "expect_sources": [1, 1]}


def test_no_case_with_expect_sources_has_no_source_hit_rate() -> None:
    board = Scoreboard()
    board.add(_result(0, True, 1.0))
    assert board.summary("m", None)["source_hit_rate"] is None


@given(st.lists(st.tuples(st.floats(0, 1e6), st.integers(1, 50)), min_size=1, max_size=30), st.floats(0.01, 1))
def test_a_latency_percentile_is_the_nearest_rank_over_cases(requests: list[tuple[float, int]], q: float) -> None:
    board = Scoreboard()
    for latency, cases in requests:
        board.add_request(latency, cases)
    every_case = sorted(latency for latency, cases in requests for _ in range(cases))
    expected = every_case[max(1, math.ceil(q * len(every_case))) - 1]
    assert board.percentile(q) == round(expected, 3)


def test_a_catastrophic_regex_gives_up_in_bounded_time_and_fails_the_check() -> None:
    case = parse_case({"query": "q", "expect_regex": ["(a|a)+$", "a"]}, "cases[0]", 1)
    (check,) = grade(case, "a" * 28 + "!", [])
    assert not check.passed
    # The regex module cannot finish (a|a)+$ on this answer within the limit: the check says it gave up.
    assert check.detail == "gave up after 1 s on '(a|a)+$'"


def test_an_empty_answer_fails_every_case_even_one_with_only_forbid() -> None:
    assert checks({"forbid": "closed"}, answer="") == {ANSWERED: (False, "the answer is empty"), "forbid": (True, "")}
    assert checks({"forbid": "closed"}, answer="open") == {"forbid": (True, "")}
