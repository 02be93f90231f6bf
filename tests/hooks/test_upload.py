"""Data-file and argument edge cases: validation errors before any request; changes during upload."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sestek.exceptions import SestekDataFileError, SestekValidationError
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.testing import SestekEmulator
from tests.hooks._sides import ONE_QUICK_RETRY


@pytest.mark.parametrize("method", ["prepare_training", "submit_training"])
def test_non_utf8_bytes_as_data_files_is_a_validation_error(sestek_conn: SestekEmulator, method: str) -> None:
    # A bytes path inside a list is handled; a bare bytes value raised a raw UnicodeDecodeError.
    with pytest.raises(SestekValidationError, match="data_files"):
        getattr(SestekHook(**ONE_QUICK_RETRY), method)("m", "p", data_files=b"/tmp/\xff\xfe.txt")
    assert sestek_conn.requests == []


def test_non_utf8_bytes_as_query_is_a_validation_error(sestek_conn: SestekEmulator) -> None:
    with pytest.raises(SestekValidationError, match="quer"):
        SestekHook(**ONE_QUICK_RETRY).ask("m", b"\xff\xfe")
    assert sestek_conn.requests == []


def test_file_replaced_by_a_fifo_fails_instead_of_hanging(sestek_conn: SestekEmulator, tmp_path: Path) -> None:
    path = tmp_path / "moving.txt"
    path.write_bytes(b"x" * 100_000)
    hook = SestekHook(**ONE_QUICK_RETRY)
    request = hook.prepare_training("m", "p", data_files=[str(path)])
    path.unlink()
    os.mkfifo(path)  # open() of a FIFO blocks until a writer comes: no deadline covers it
    outcome: dict[str, Any] = {}

    def submit() -> None:
        try:
            outcome["result"] = hook.submit_training(request)
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=submit, daemon=True)
    worker.start()
    worker.join(10)
    hung = worker.is_alive()
    if hung:  # release the blocked open() so the thread ends
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(10)
    assert not hung, "submit_training hung on a data file replaced by a FIFO"
    assert isinstance(outcome.get("error"), SestekDataFileError) and "moving.txt" in str(outcome["error"])
    assert sestek_conn.trainings == {}
