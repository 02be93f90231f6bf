"""
An object-storage URL with ``user:password@`` in it (an access key and its secret pasted into the URL instead
of an Airflow connection id) is refused without echoing the secret: moto's S3 server on 127.0.0.1, the
emulator over loopback, no mocks.
"""

from __future__ import annotations

import logging

import pytest

from airflow_provider_sestek.exceptions import SestekValidationError
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.testing import SestekEmulator
from tests._moto import S3

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
