"""
A local data file that is not on this worker: the error names the path, the host Airflow records for the task
(``[core] hostname_callable``), the working directory a relative path was resolved against, and the way out
(object storage), before any Sestek request.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from airflow_provider_sestek.exceptions import SestekValidationError
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.hooks.upload import check_data_file
from airflow_provider_sestek.testing import SestekEmulator


def worker_b_hostname() -> str:
    return "worker-b.celery.internal"


def broken_hostname() -> str:
    raise RuntimeError("the hostname service is down")


def test_relative_path_names_host_and_working_directory(
    sestek_connection: SestekEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__HOSTNAME_CALLABLE", f"{__name__}.worker_b_hostname")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SestekValidationError) as info:
        SestekHook().submit_training("acme-bot", "Acme", data_files=["training/faq.txt"])
    message = str(info.value)
    assert "Invalid data_files[0] = 'training/faq.txt': file does not exist" in message
    assert "on host 'worker-b.celery.internal'" in message
    assert f"relative to the working directory {os.fspath(tmp_path)!r}" in message
    assert "object storage" in message
    assert info.value.field == "data_files[0]"
    assert sestek_connection.requests == [], "nothing may be sent, not even a token request"


def test_absolute_path_names_host_only(sestek_connection: SestekEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__HOSTNAME_CALLABLE", f"{__name__}.worker_b_hostname")
    with pytest.raises(SestekValidationError) as info:
        SestekHook().submit_training("acme-bot", "Acme", data_files=["/srv/only-on-worker-a/faq.txt"])
    message = str(info.value)
    assert "'/srv/only-on-worker-a/faq.txt': file does not exist on host 'worker-b.celery.internal';" in message
    assert "working directory" not in message


def test_a_broken_hostname_callable_does_not_hide_the_missing_file(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    monkeypatch.setenv("AIRFLOW__CORE__HOSTNAME_CALLABLE", f"{__name__}.broken_hostname")
    with pytest.raises(SestekValidationError, match="file does not exist on host") as info:
        check_data_file("/srv/missing.txt", 0)
    assert repr(socket.getfqdn()) in str(info.value)
