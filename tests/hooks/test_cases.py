"""Reading a golden set: lists, JSONL, JSON, YAML and CSV files, local or in object storage; bad ones refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_sestek.exceptions import SestekValidationError
from airflow_provider_sestek.hooks.cases import case_source
from tests._moto import S3

CASES = [
    {"id": "open", "query": "When are you open?", "expect_all": ["9", "17"]},
    {"query": "Do you ship abroad?", "expect_any": ["UK", "Norway"], "expect_sources": "faq.txt"},
]


def read(cases: object) -> list[tuple[str, str, tuple]]:
    source = case_source(cases)
    assert source.count() == len(list(source.cases()))
    return [(c.id, c.query, c.checks) for c in source.cases()]


EXPECTED = [
    ("open", "When are you open?", (("expect_all", ("9", "17")),)),
    ("2", "Do you ship abroad?", (("expect_any", ("UK", "Norway")), ("expect_sources", ("faq.txt",)))),
]


def test_a_list_of_cases(tmp_path: Path) -> None:
    assert read(CASES) == EXPECTED


def test_a_list_of_cases_as_json_text_as_a_template_renders_it() -> None:
    assert read(json.dumps(CASES)) == EXPECTED
    with pytest.raises(SestekValidationError, match="given as JSON text it must be a list of cases"):
        case_source("[{broken")


def test_a_jsonl_file_skips_blank_lines_and_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "golden.jsonl"
    path.write_text("\ufeff" + json.dumps(CASES[0]) + "\n\n" + json.dumps(CASES[1]) + "\n", encoding="utf-8")
    assert read(str(path)) == EXPECTED
    assert read(path) == EXPECTED  # os.PathLike


def test_json_and_yaml_files_hold_a_list_or_a_cases_object(tmp_path: Path) -> None:
    (tmp_path / "golden.json").write_text(json.dumps({"cases": CASES}))
    (tmp_path / "golden.yaml").write_text(
        "- id: open\n  query: When are you open?\n  expect_all: ['9', '17']\n"
        "- query: Do you ship abroad?\n  expect_any: [UK, Norway]\n  expect_sources: faq.txt\n"
    )
    assert read(str(tmp_path / "golden.json")) == EXPECTED
    assert read(f"file://{tmp_path / 'golden.yaml'}") == EXPECTED


def test_a_csv_file_takes_lists_as_json_or_one_string(tmp_path: Path) -> None:
    path = tmp_path / "golden.csv"
    path.write_text(
        "id,query,expect_all,expect_any,expect_sources,chat_history\n"
        'open,When are you open?,"[""9"", ""17""]",,,\n'
        ',Do you ship abroad?,,"[""UK"", ""Norway""]",faq.txt,"[[{""role"": ""user"", ""content"": ""hi""}, '
        '{""role"": ""assistant"", ""content"": ""hello""}]]"\n'
    )
    assert read(str(path)) == EXPECTED
    second = list(case_source(str(path)).cases())[1]
    assert second.chat_history == [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("golden.jsonl", "", "holds no cases"),
        ("golden.jsonl", '{"query": "a"}\n{"query": "b"\n', "golden.jsonl line 2: is not a JSON object"),
        ("golden.jsonl", '{"query": "a"}\n{"id": 3}\n', "golden.jsonl line 2, field query"),
        ("golden.jsonl", '{"query": "a", "expect_regex": "(["}\n', "golden.jsonl line 1, field expect_regex[0]"),
        ("golden.jsonl", '{"query": "a", "must": "x"}\n', "golden.jsonl line 1, field must"),
        ("golden.json", '{"query": "a"}', "must hold a list of cases"),
        ("golden.json", "[{", "is not valid JSON"),
        ("golden.yaml", "- query: [unclosed\n", "is not valid YAML"),
        ("golden.csv", "question\nhi\n", "needs a 'query' column"),
        ("golden.csv", "query,expect\nhi,x\n", "unknown column 'expect'"),
        ("golden.csv", 'query,forbid\nhi,"[bad"\n', "golden.csv line 2, field forbid"),
        ("golden.csv", "query\nhi,extra\n", "golden.csv line 2: has more cells"),
        ("golden.csv", "query,query\nhi,ho\n", "golden.csv line 1: the header names column 'query' twice"),
        ("golden.csv", "query\nok\n" + "x" * 140_000 + "\n", "golden.csv line 3: is not valid CSV (field larger"),
        ("golden.txt", "query\n", "must be a .jsonl"),
    ],
)
def test_a_bad_cases_file_names_the_file_the_line_and_the_field(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SestekValidationError, match=message.replace("[", r"\[").replace("(", r"\(")):
        case_source(str(path)).count()


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "golden.jsonl"
    path.write_bytes(b'{"query": "caf\xe9"}\n')
    with pytest.raises(SestekValidationError, match="is not UTF-8 text"):
        case_source(str(path)).count()


@pytest.mark.parametrize(
    ("cases", "message"),
    [
        ([], "holds no cases"),
        ("https://example.com/golden.jsonl", "is a web URL"),
        ("/nonexistent/golden.jsonl", "file does not exist"),
        (42, "must be a list of cases or a file path"),
        ([{"query": "ok"}, "not a case"], r"cases\[1\]: a case must be an object"),
    ],
)
def test_bad_cases_arguments_are_refused(cases: object, message: str) -> None:
    with pytest.raises(SestekValidationError, match=message):
        case_source(cases).count()


def test_cases_in_object_storage_are_read_like_data_files(s3: S3) -> None:
    s3.put("golden/cases.jsonl", "".join(json.dumps(c) + "\n" for c in CASES).encode())
    assert read(s3.url("golden/cases.jsonl")) == EXPECTED
    with pytest.raises(SestekValidationError, match="cases"):
        case_source(s3.url("golden/missing.jsonl"))


def test_a_jsonl_file_is_read_as_a_stream(tmp_path: Path) -> None:
    """The first case comes before the reader reaches a bad line further on: nothing is read whole."""
    path = tmp_path / "golden.jsonl"
    path.write_text(json.dumps(CASES[0]) + "\n" + "{broken\n")
    cases = case_source(str(path)).cases()
    assert next(cases).id == "open"
    with pytest.raises(SestekValidationError, match="line 2"):
        next(cases)
