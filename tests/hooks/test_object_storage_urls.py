"""
An object-storage URL is refused by its rule before any request, naming the field, and never echoes a secret:
``user:password@`` in it (an access key and its secret pasted into the URL instead of an Airflow connection id),
a Sestek connection used as object-store credentials, a missing bucket or one S3 cannot have (not botocore's
"Parameter validation failed" with its regex, nor a lookup of "bucket ''"). URL schemes are case-insensitive
(RFC 3986): ``S3://`` reads the same object as ``s3://`` on every supported Airflow (on 2.11 it was "s3:// needs
a filesystem package: Install s3fs" with s3fs installed). moto's S3 server on 127.0.0.1 and the emulator over
loopback, no mocks.
"""

from __future__ import annotations

import logging

import pytest

from airflow_provider_sestek.exceptions import SestekValidationError
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.testing import SestekEmulator
from tests._moto import CONN_ID, S3

KEY = "AKIAPASTEDINURL00001"
SECRETS = ("sup3rSecretPastedInUrl", "sup3r/Secret+Pasted/InUrl")


@pytest.mark.parametrize("secret", SECRETS, ids=["plain", "with-slashes"])
def test_credentials_in_an_s3_url_are_refused_without_echoing_them(
    s3: S3, sestek_conn: SestekEmulator, caplog: pytest.LogCaptureFixture, secret: str
) -> None:
    s3.put("faq/faq.txt", b"Q: here?\nA: yes\n")
    url = f"s3://{KEY}:{secret}@{s3.bucket}/faq/faq.txt"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SestekValidationError) as info:
        SestekHook().submit_training("faq-bot", "FAQ", data_files=[url])
    message = str(info.value)
    assert info.value.field == "data_files[0]"
    assert info.value.value == f"s3://{s3.bucket}/faq/faq.txt"
    assert "Airflow connection" in message
    for fragment in (secret, *secret.split("/")):
        assert fragment not in message
        assert fragment not in caplog.text
    assert sestek_conn.requests == []


def test_a_sestek_connection_is_not_used_as_object_store_credentials(s3: S3, sestek_conn: SestekEmulator) -> None:
    # s3://sestek_default@bucket/key would make the amazon provider sign with the Sestek client id and secret
    # and send that client id to the object store: a Sestek credential leaving for another host.
    s3.put("faq/faq.txt", b"Q: here?\nA: yes\n")
    url = f"s3://sestek_default@{s3.bucket}/faq/faq.txt"
    with pytest.raises(SestekValidationError) as info:
        SestekHook().submit_training("faq-bot", "FAQ", data_files=[url])
    message = str(info.value)
    assert info.value.field == "data_files[0]"
    assert "'sestek_default' is a Sestek connection" in message, message
    assert sestek_conn.train_client[1] not in message
    assert sestek_conn.requests == []


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


def test_upper_case_scheme_reads_the_object(s3: S3, sestek_conn: SestekEmulator) -> None:
    digest = s3.put("faq/faq.txt", b"Q: here?\nA: yes\n")
    SestekHook().submit_training("faq-bot", "FAQ", data_files=[f"S3://{CONN_ID}@{s3.bucket}/faq/faq.txt"])
    (train,) = [r for r in sestek_conn.requests if r.endpoint == "train"]
    assert [(f.filename, f.size, f.sha256) for f in train.files] == [("faq.txt", 16, digest)]
