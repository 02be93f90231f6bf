"""
Train, wait and ask with the synchronous hook (requests): the end-to-end path where the emulator is
driven by a client that is not aiohttp.

The emulator serves with aiohttp.web and the async hook talks aiohttp, so a quirk both sides of
aiohttp share could hide a wire bug there. This path keeps an independent client in the loop: it
refuses to let any aiohttp client session be created while it runs.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.testing import SestekEmulator


def test_sync_hook_trains_waits_and_asks_without_any_aiohttp_client(
    sestek_conn: SestekEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the sync path must not use an aiohttp client")

    monkeypatch.setattr(aiohttp.ClientSession, "__init__", refuse)
    data = tmp_path / "store.txt"
    data.write_text("Our store opens at 9 and closes at 18 on weekdays.\n\nParking is free for customers.\n")
    hook = SestekHook()
    hook.submit_training("store-bot", "Store", data_files=[str(data)])
    polls = 0
    while not (progress := hook.get_training_progress("store-bot")).is_published:
        polls += 1
        assert polls < 50, progress
    [result] = hook.ask("store-bot", ["When do you close?"])["result"]
    assert result["answer"] == "Our store opens at 9 and closes at 18 on weekdays."
    assert result["docs"][0]["source"] == "store.txt"
    endpoints = [r.endpoint for r in sestek_conn.requests]
    assert endpoints[0] == "token" and "train" in endpoints and endpoints[-1] == "inference"
    assert sestek_conn.counters["trainings_created"] == 1
    (upload,) = [r for r in sestek_conn.requests if r.endpoint == "train"]
    assert [(f.filename, f.size) for f in upload.files] == [("store.txt", data.stat().st_size)]
