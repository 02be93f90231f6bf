"""
Odd input through the hook's public methods: a clear Sestek error before any request, never a raw one
(issue 9, item 7). Each case reached the user as a TypeError, ValueError, ImportError or OSError before.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from airflow_provider_sestek.exceptions import SestekConfigError, SestekError, SestekValidationError
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.testing import SestekEmulator
from tests.conftest import connection_json

FAST = {"retry_delay": 0.01, "retry_max_delay": 0.05}


def trainings(emu: SestekEmulator) -> int:
    return emu.counters["trainings_created"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"data_files": 5}, "data_files"),
        ({"data_urls": 5}, "data_urls"),
        ({"data_files": {"a": "b"}}, "data_files"),
        ({"data_urls": ["https://[::1"]}, "data_urls[0]"),
        ({"data_urls": [7]}, "data_urls[0]"),
        ({"data_files": ["foo://x/y.txt"]}, "data_files[0]"),
        ({"data_files": ["file://otherhost/etc/hosts"]}, "data_files[0]"),
    ],
)
def test_bad_data_arguments_fail_before_any_request(sestek_conn: SestekEmulator, kwargs: dict, field: str) -> None:
    before = len(sestek_conn.requests)
    with pytest.raises(SestekValidationError) as info:
        SestekHook(**FAST).submit_training("faq-bot", "p", **kwargs)
    assert info.value.field == field
    assert len(sestek_conn.requests) == before  # not even a token request


def test_unknown_scheme_is_named(sestek_conn: SestekEmulator) -> None:
    with pytest.raises(SestekValidationError, match=r"no filesystem is known for foo://"):
        SestekHook().prepare_training("faq-bot", "p", data_files=["foo://x/y.txt"])


def test_file_urls_and_home_paths_are_local_files(
    sestek_conn: SestekEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spaced = tmp_path / "a b.txt"
    spaced.write_text("Q: spaced?\nA: yes\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    hook = SestekHook(**FAST)
    for entry in (f"file://localhost{spaced}", "file://" + str(spaced).replace(" ", "%20"), "~/a b.txt"):
        (data_file,) = hook.prepare_training("faq-bot", "p", data_files=[entry]).data_files
        assert data_file.location == str(spaced), entry
        assert data_file.name == "a b.txt"
    hook.submit_training("faq-bot", "p", data_files=[f"file://localhost{spaced}"])
    (train,) = [r for r in sestek_conn.requests if r.endpoint == "train"]
    assert train.files[0].filename == "a b.txt" and train.files[0].size == spaced.stat().st_size


@pytest.mark.parametrize("timeout", ["nan", "inf", "-inf", "0", "-3", "soon"])
def test_connection_timeout_must_be_finite_and_positive(
    monkeypatch: pytest.MonkeyPatch, emulator: SestekEmulator, timeout: str
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emulator, timeout=timeout))
    with pytest.raises(SestekConfigError, match="'timeout'"):
        SestekHook().config  # noqa: B018
    assert emulator.requests == []


@pytest.mark.parametrize("host", ["https://[::1", "https://ai.example.com:99999", "ftp://ai.example.com"])
def test_malformed_host_is_a_config_error(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    conn = {"conn_type": "sestek", "host": host, "login": "id", "password": "s3cr3t-value"}
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", json.dumps(conn))
    with pytest.raises(SestekConfigError, match="'host'"):
        SestekHook().config  # noqa: B018


@pytest.mark.parametrize("field", ["host", "identity_url"])
def test_credentials_in_a_url_are_refused_and_never_printed(monkeypatch: pytest.MonkeyPatch, field: str) -> None:
    url = "https://someone:hunter2-secret@ai.example.com"
    conn: dict = {"conn_type": "sestek", "host": "https://ai.example.com", "login": "id", "password": "pw"}
    if field == "host":
        conn["host"] = url
    else:
        conn["extra"] = {"identity_url": url}
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", json.dumps(conn))
    with pytest.raises(SestekConfigError) as info:
        SestekHook().config  # noqa: B018
    assert info.value.field == field
    assert "hunter2-secret" not in str(info.value) and "someone" not in str(info.value)


def test_data_url_credentials_not_echoed(sestek_conn: SestekEmulator) -> None:
    with pytest.raises(SestekValidationError) as info:
        SestekHook().prepare_training("faq-bot", "p", data_urls=["https://user:pa55word@[::1/x"])
    assert "pa55word" not in str(info.value)


def test_file_deleted_before_upload_is_a_sestek_error(sestek_conn: SestekEmulator, tmp_path: Path) -> None:
    doomed = tmp_path / "doomed.txt"
    doomed.write_text("Q: here?\nA: not for long\n")
    hook = SestekHook(**FAST)
    request = hook.prepare_training("faq-bot", "p", data_files=[doomed])
    doomed.unlink()
    with pytest.raises(SestekError, match=r"doomed\.txt") as info:
        hook.submit_training(request)
    assert not isinstance(info.value, OSError)
    assert trainings(sestek_conn) == 0  # the body was cut off: nothing half-submitted


@pytest.mark.parametrize("change", ["shrink", "grow"])
def test_file_changed_during_upload_names_the_file(sestek_conn: SestekEmulator, tmp_path: Path, change: str) -> None:
    other = tmp_path / "first.txt"
    other.write_text("Q: first?\nA: yes\n")
    moving = tmp_path / "moving.txt"
    moving.write_bytes(b"x" * 100_000)
    hook = SestekHook(**FAST)
    request = hook.prepare_training("faq-bot", "p", data_files=[other, moving])
    moving.write_bytes(b"x" * (10 if change == "shrink" else 200_000))
    with pytest.raises(SestekError, match=r"'moving.txt'.*changed during the upload"):
        hook.submit_training(request)
    assert trainings(sestek_conn) == 0


def test_no_descriptor_is_left_open(sestek_conn: SestekEmulator, tmp_path: Path) -> None:
    files = []
    for i in range(20):
        path = tmp_path / f"f{i}.txt"
        path.write_text(f"Q: {i}?\nA: {i}\n")
        files.append(path)
    before = len(os.listdir("/proc/self/fd"))
    SestekHook(**FAST).submit_training("faq-bot", "p", data_files=files)
    assert len(os.listdir("/proc/self/fd")) <= before + 2  # the kept-alive connection at most
