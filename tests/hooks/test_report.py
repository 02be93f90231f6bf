"""An evaluation's report: checked before any request, written whole or not at all, locally or to object storage."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from airflow_provider_sestek.exceptions import SestekError, SestekValidationError
from airflow_provider_sestek.hooks.report import check_report_path
from airflow_provider_sestek.testing import SestekEmulator
from tests._moto import S3


def write(location: object, cases: list[dict]) -> str:
    writer = check_report_path(location)
    assert writer is not None
    writer.open({"model_id": "m"})
    for case in cases:
        writer.write(case)
    return writer.finish({"cases": len(cases)})


def test_a_local_report_is_one_json_document(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    assert write(str(path), [{"id": "1"}, {"id": "2"}]) == str(path)
    assert json.loads(path.read_text()) == {
        "model_id": "m",
        "cases": [{"id": "1"}, {"id": "2"}],
        "summary": {"cases": 2},
    }
    assert write(f"file://{path}", []) == str(path)
    assert json.loads(path.read_text())["cases"] == []
    assert os.listdir(tmp_path) == ["report.json"]


def test_an_unfinished_report_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text("the previous report")
    writer = check_report_path(str(path))
    assert writer is not None
    writer.open({"model_id": "m"})
    writer.write({"id": "1"})
    writer.discard()  # the evaluation failed before its end
    assert os.listdir(tmp_path) == ["report.json"] and path.read_text() == "the previous report"


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("/nonexistent/folder/report.json", "does not exist or is not writable"),
        ("https://example.com/report.json", "is a web URL"),
        ("s3://key:secret@bucket/report.json", "has credentials"),
        ("nofs://bucket/report.json", "report_path"),
        (42, "must be a file path"),
        ("file://otherhost/tmp/report.json", "its host must be empty or localhost"),
    ],
)
def test_a_bad_report_path_is_refused_before_anything_runs(location: object, message: str) -> None:
    with pytest.raises(SestekValidationError, match=message) as info:
        check_report_path(location)
    assert "secret" not in str(info.value)


def test_a_folder_is_not_a_report_path(tmp_path: Path) -> None:
    with pytest.raises(SestekValidationError, match="is a folder"):
        check_report_path(str(tmp_path))


def test_no_report_path_is_no_report() -> None:
    assert check_report_path(None) is None and check_report_path("") is None


def test_a_report_in_object_storage(s3: S3) -> None:
    assert write(s3.url("reports/r.json"), [{"id": "1"}]) == s3.url("reports/r.json", conn_id=None)
    body = s3.server.client().get_object(Bucket=s3.bucket, Key="reports/r.json")["Body"].read()
    assert json.loads(body)["cases"] == [{"id": "1"}]


def test_a_report_in_a_bucket_that_does_not_exist_is_refused_before_anything_runs(s3: S3) -> None:
    with pytest.raises(SestekValidationError, match=r"its bucket 'no-such-bucket-here' does not exist"):
        check_report_path(s3.url("r.json").replace(s3.bucket, "no-such-bucket-here"))


def test_a_store_that_refuses_the_write_is_a_clear_error(s3: S3) -> None:
    writer = check_report_path(s3.url("r.json"))
    assert writer is not None
    writer.open({"model_id": "m"})
    s3.server.client().delete_bucket(Bucket=s3.bucket)  # gone while the evaluation ran
    with pytest.raises(SestekError, match=rf"The report 's3://{s3.bucket}/r.json' could not be written"):
        writer.finish({"cases": 0})


def test_a_report_through_an_unknown_or_a_sestek_connection_is_refused(s3: S3, sestek_conn: SestekEmulator) -> None:
    # An unknown connection would fall back to anonymous access; a Sestek one would sign with its client secret.
    with pytest.raises(SestekValidationError, match="names the Airflow connection 'aws_nope', which cannot be used"):
        check_report_path(s3.url("r.json", conn_id="aws_nope"))
    with pytest.raises(SestekValidationError, match="'sestek_default' is a Sestek connection") as info:
        check_report_path(s3.url("r.json", conn_id="sestek_default"))
    assert sestek_conn.train_client[1] not in str(info.value)
