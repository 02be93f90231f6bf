"""
A local data file that is not on this worker: the error names the path, the host Airflow records for the task
(``[core] hostname_callable``), the working directory a relative path was resolved against, and the way out
(object storage), before any Sestek request; hostile working directories, ``hostname_callable`` values and
path spellings still give that message.
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
    sestek_conn: SestekEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
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
    assert sestek_conn.requests == [], "nothing may be sent, not even a token request"


def test_absolute_path_names_host_only(sestek_conn: SestekEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
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


def test_relative_path_on_a_worker_whose_working_directory_was_deleted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """
    A Celery worker whose working directory was removed under it (a redeploy replaced the release folder, a
    tmp cleaner ran): a relative data path must still fail with the validation error naming the path and the
    host, not with a bare ``FileNotFoundError`` from ``os.getcwd()`` that names neither.
    """
    monkeypatch.setenv("AIRFLOW__CORE__HOSTNAME_CALLABLE", f"{__name__}.worker_b_hostname")
    gone = tmp_path / "release-41"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    with pytest.raises(SestekValidationError) as info:
        check_data_file("training/faq.txt", 0)
    message = str(info.value)
    assert "Invalid data_files[0] = 'training/faq.txt': file does not exist" in message
    assert "on host 'worker-b.celery.internal'" in message
    assert "working directory" in message
    assert "object storage" in message


def none_hostname() -> None:
    return None


def empty_hostname() -> str:
    return ""


@pytest.mark.parametrize("callable_name", ["none_hostname", "empty_hostname"])
def test_a_hostname_callable_without_a_name_falls_back_to_the_fqdn(
    monkeypatch: pytest.MonkeyPatch, callable_name: str
) -> None:
    """
    A ``hostname_callable`` that returns ``None`` or ``""`` names no host: the message must not say
    ``on host 'None'`` / ``on host ''`` (the broken-callable case already falls back to the FQDN).
    """
    import socket

    monkeypatch.setenv("AIRFLOW__CORE__HOSTNAME_CALLABLE", f"{__name__}.{callable_name}")
    with pytest.raises(SestekValidationError) as info:
        check_data_file("/srv/missing.txt", 0)
    assert f"on host {socket.getfqdn()!r}" in str(info.value)


def odd_hostname() -> str:
    return "worker-b\nERROR fake log line"


def test_an_odd_hostname_is_quoted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host name with a newline cannot forge a log line: it is shown with repr()."""
    monkeypatch.setenv("AIRFLOW__CORE__HOSTNAME_CALLABLE", f"{__name__}.odd_hostname")
    with pytest.raises(SestekValidationError) as info:
        check_data_file("/srv/missing.txt", 0)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("entry", "shown"),
    [
        ("~/sestek-missing-data-file.txt", os.path.expanduser("~/sestek-missing-data-file.txt")),
        ("file:///srv/caf%C3%A9/faq.txt", "/srv/café/faq.txt"),
        ("file://localhost/srv/a%0Ab.txt", "/srv/a\nb.txt"),
        ("données/faq.txt", "données/faq.txt"),
    ],
)
def test_odd_local_paths_are_named(monkeypatch: pytest.MonkeyPatch, entry: str, shown: str) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__HOSTNAME_CALLABLE", f"{__name__}.worker_b_hostname")
    with pytest.raises(SestekValidationError) as info:
        check_data_file(entry, 0)
    message = str(info.value)
    assert f"= {shown!r}: file does not exist on host 'worker-b.celery.internal'" in message
    assert ("working directory" in message) == (not os.path.isabs(shown))
    assert "\n" not in message
