"""
An S3 URL without a bucket, or with a bucket name S3 cannot have, is refused by the rule before any request:
not botocore's "Parameter validation failed" with its regex, nor a lookup of "bucket ''". moto's S3 server
on 127.0.0.1 and the emulator over loopback, no mocks.
"""

from __future__ import annotations

import pytest

from airflow_provider_sestek.exceptions import SestekValidationError
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.testing import SestekEmulator
from tests._moto import CONN_ID, S3


@pytest.mark.parametrize(
    ("url", "shown", "rule"),
    [
        ("s3://", "s3://", "names no bucket; write it as s3://CONN_ID@bucket/key"),
        ("s3:///faq/faq.txt", "s3:///faq/faq.txt", "names no bucket"),
        (f"s3://{CONN_ID}@", "s3://", "names no bucket"),
        (f"s3://{CONN_ID}@/faq/faq.txt", "s3:///faq/faq.txt", "names no bucket"),
        (
            f"s3://{CONN_ID}@Bad_Bucket!/faq/faq.txt",
            "s3://Bad_Bucket!/faq/faq.txt",
            "'Bad_Bucket!' is not a valid S3 bucket name: letters, digits, '.', '-' and '_' only",
        ),
        (f"s3a://{CONN_ID}@büçket/faq.txt", "s3a://büçket/faq.txt", "'büçket' is not a valid S3 bucket name"),
    ],
    ids=["bare-scheme", "empty-bucket", "conn-only", "conn-empty-bucket", "punctuation", "non-ascii"],
)
def test_missing_or_impossible_bucket_is_refused_by_its_rule(
    s3: S3, sestek_conn: SestekEmulator, url: str, shown: str, rule: str
) -> None:
    with pytest.raises(SestekValidationError) as info:
        SestekHook().submit_training("faq-bot", "FAQ", data_files=[url])
    message = str(info.value)
    assert info.value.field == "data_files[0]"
    assert info.value.value == shown
    assert rule in message
    assert "Parameter validation failed" not in message and "regex" not in message
    assert "bucket ''" not in message
    assert sestek_conn.requests == []
