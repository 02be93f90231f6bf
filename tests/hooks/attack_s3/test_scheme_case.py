"""
URL schemes are case-insensitive (RFC 3986): ``S3://`` reads the same object as ``s3://`` on every supported
Airflow. On 2.11 it was "s3:// needs a filesystem package: Install s3fs" with s3fs installed. moto's S3 server
on 127.0.0.1 and the emulator over loopback, no mocks.
"""

from __future__ import annotations

from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.testing import SestekEmulator
from tests._moto import CONN_ID, S3


def test_upper_case_scheme_reads_the_object(s3: S3, sestek_conn: SestekEmulator) -> None:
    digest = s3.put("faq/faq.txt", b"Q: here?\nA: yes\n")
    SestekHook().submit_training("faq-bot", "FAQ", data_files=[f"S3://{CONN_ID}@{s3.bucket}/faq/faq.txt"])
    (train,) = [r for r in sestek_conn.requests if r.endpoint == "train"]
    assert [(f.filename, f.size, f.sha256) for f in train.files] == [("faq.txt", 16, digest)]
