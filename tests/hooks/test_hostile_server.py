"""
The hook against a hostile or odd server, in both transports (issue 9): redirects to another origin,
answers that drip, odd tokens, non-finite numbers, unusual success codes. Each case went wrong before.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from airflow_provider_sestek.api import TrainingStatus
from airflow_provider_sestek.exceptions import SestekApiError, SestekAuthError, SestekError, SestekTransportError
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.testing import Fault, SestekEmulator
from tests.conftest import connection_json
from tests.hooks._sides import both_sides

FAST = {"retry_delay": 0.01, "retry_max_delay": 0.05}


PROGRESS, TOKEN = both_sides(FAST)


@pytest.fixture
def trained(sestek_conn: SestekEmulator, faq: str) -> str:
    SestekHook(**FAST).submit_training("faq-bot", "p", data_files=[faq])
    return "faq-bot"


# --- redirects ------------------------------------------------------------------------------------


@pytest.mark.parametrize("side", ["sync", "async"])
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_token_redirect_to_another_origin_sends_nothing_there(
    sestek_conn: SestekEmulator, side: str, status: int
) -> None:
    sestek_conn.add_fault(Fault(endpoint="token", kind="redirect", status=status, count=None))
    with pytest.raises(SestekApiError) as info:
        TOKEN[side]()
    foreign = sestek_conn.foreign_url
    assert sestek_conn.foreign_requests == []  # the client secret never left for the other host
    assert info.value.status == status
    assert f"redirected to {foreign}" in str(info.value) and "not followed" in str(info.value)
    assert sestek_conn.train_client[1] not in str(info.value)
    assert len([r for r in sestek_conn.requests if r.endpoint == "token"]) == 1  # not retried either


@pytest.mark.parametrize("side", ["sync", "async"])
def test_progress_redirect_is_an_error_not_a_foreign_answer(
    trained: str, sestek_conn: SestekEmulator, side: str
) -> None:
    sestek_conn.add_fault(Fault(endpoint="progress", kind="redirect", count=None))
    with pytest.raises(SestekApiError, match="redirected to") as info:
        PROGRESS[side](trained)
    assert sestek_conn.foreign_requests == []  # the foreign "Completed" was never read as our progress
    assert "emu-tok-" not in str(info.value)


@pytest.mark.parametrize("side", ["sync", "async"])
def test_redirect_location_credentials_and_path_are_not_shown(sestek_conn: SestekEmulator, side: str) -> None:
    sestek_conn.add_fault(
        Fault(endpoint="token", kind="redirect", location="https://spy:pa55@evil.example:8443/steal?x=1", count=None)
    )
    with pytest.raises(SestekApiError) as info:
        TOKEN[side]()
    text = str(info.value)
    assert "https://evil.example:8443" in text
    assert "pa55" not in text and "spy" not in text and "/steal" not in text


# --- a total deadline -----------------------------------------------------------------------------


@pytest.mark.parametrize("side", ["sync", "async"])
@pytest.mark.parametrize("endless", [False, True])
def test_dripping_progress_answer_is_cut_at_the_deadline(
    trained: str, sestek_conn: SestekEmulator, monkeypatch: pytest.MonkeyPatch, side: str, endless: bool
) -> None:
    # One byte every 0.3 s never trips a between-bytes read timeout of 1 s; only a total deadline ends it.
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(sestek_conn, timeout=1.5))
    sestek_conn.add_fault(Fault(endpoint="progress", kind="drip", delay=0.3, endless=endless, count=None))
    started = time.monotonic()
    with pytest.raises(SestekTransportError, match="request deadline"):
        PROGRESS[side](trained, retry_limit=0)
    # Deadline 1.5 s; generous room for a loaded machine, far below "for ever" (an endless drip).
    assert time.monotonic() - started < 20


@pytest.mark.parametrize("side", ["sync", "async"])
def test_dripping_token_answer_is_cut_at_the_deadline(
    sestek_conn: SestekEmulator, monkeypatch: pytest.MonkeyPatch, side: str
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(sestek_conn, timeout=1.5))
    sestek_conn.add_fault(Fault(endpoint="token", kind="drip", delay=0.3, endless=True, count=None))
    with pytest.raises(SestekTransportError, match="request deadline"):
        TOKEN[side](retry_limit=0)


def test_a_slow_token_answer_holds_other_waiters_for_one_deadline_only(
    sestek_conn: SestekEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token lock is released when the request deadline cuts the slow answer off; waiters then go on."""
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(sestek_conn, timeout=1.5))
    sestek_conn.add_fault(Fault(endpoint="token", kind="drip", delay=0.3, endless=True, count=1))

    async def many() -> list[Any]:
        hooks = [SestekHook(**FAST) for _ in range(20)]
        return await asyncio.gather(*(h.aget_token() for h in hooks), return_exceptions=True)

    results = asyncio.run(many())
    tokens = {r for r in results if isinstance(r, str)}
    assert len(tokens) == 1  # after the dripping answer was cut off, one real token served everybody
    assert sestek_conn.counters["token_requests"] == 2


def test_upload_body_is_not_cut_by_the_deadline(
    sestek_conn: SestekEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """A body that takes longer to send than the request deadline is fine: while sending, stalls count."""
    from airflow_provider_sestek.hooks import upload

    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(sestek_conn, timeout=0.5))
    big = tmp_path / "big.txt"
    big.write_bytes(b"Q: big?\nA: yes\n" * 400_000)  # 6 MB: 12 blocks
    read = upload.MultipartBody.read

    def slow_read(self: Any, size: int = -1) -> bytes:
        # Nothing real makes a local disk slow on demand: each block takes 0.1 s, the body about 1.2 s.
        time.sleep(0.1)
        return read(self, size)

    monkeypatch.setattr(upload.MultipartBody, "read", slow_read)
    started = time.monotonic()
    experiment = SestekHook(**FAST).submit_training("big-bot", "p", data_files=[big])
    assert time.monotonic() - started > 1.0  # longer than the 0.5 s deadline
    assert experiment["name"] == "big-bot"
    (train,) = [r for r in sestek_conn.requests if r.endpoint == "train"]
    assert train.files[0].size == big.stat().st_size


def test_upload_answer_is_bounded_by_the_deadline(
    sestek_conn: SestekEmulator, monkeypatch: pytest.MonkeyPatch, faq: str
) -> None:
    """Once the body is sent, the answer has one request deadline; the error says the POST may have landed."""
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(sestek_conn, timeout=1))
    sestek_conn.add_fault(Fault(endpoint="train", kind="drip", delay=0.3, endless=True, when="after", count=1))
    with pytest.raises(SestekTransportError, match="request deadline") as info:
        SestekHook(**FAST).submit_training("faq-bot", "p", data_files=[faq])
    assert info.value.maybe_sent is True  # the operator checks progress and attaches, never re-posts
    assert sestek_conn.counters["trainings_created"] == 1


# --- odd tokens and numbers -----------------------------------------------------------------------


@pytest.mark.parametrize("side", ["sync", "async"])
@pytest.mark.parametrize("odd", ["tok\r\nX-Injected: 1", "tök€n-value", "tok en", "tok\x00en"])
def test_odd_access_token_is_refused_without_echo(
    trained: str, sestek_conn: SestekEmulator, side: str, odd: str
) -> None:
    from airflow_provider_sestek.hooks.sestek import clear_token_cache

    clear_token_cache()
    sestek_conn.add_fault(Fault(endpoint="token", kind="odd_token", value=odd, count=None))
    before = len([r for r in sestek_conn.requests if r.endpoint == "token"])
    with pytest.raises(SestekAuthError, match="cannot be sent as a bearer token") as info:
        PROGRESS[side](trained)
    text = str(info.value) + repr(info.value)
    assert "tok" not in text.replace("token", "")  # no part of the value, escaped or not
    assert len([r for r in sestek_conn.requests if r.endpoint == "token"]) == before + 1  # not retried


@pytest.mark.parametrize("side", ["sync", "async"])
@pytest.mark.parametrize("literal", ["1e999", "Infinity", "-Infinity", "NaN"])
def test_non_finite_percent_is_an_unreadable_answer(
    trained: str, sestek_conn: SestekEmulator, side: str, literal: str
) -> None:
    sestek_conn.add_fault(Fault(endpoint="progress", kind="non_finite", value=literal, count=None))
    with pytest.raises(SestekApiError, match="not a finite number"):
        PROGRESS[side](trained, retry_limit=1)
    # Asked again like any unreadable answer, then named: no raw OverflowError or ValueError.
    assert len([r for r in sestek_conn.requests if r.endpoint == "progress"]) == 2


@pytest.mark.parametrize("side", ["sync", "async"])
def test_non_finite_percent_once_then_a_good_answer(trained: str, sestek_conn: SestekEmulator, side: str) -> None:
    sestek_conn.add_fault(Fault(endpoint="progress", kind="non_finite", value="Infinity", count=1))
    progress = PROGRESS[side](trained)
    assert 0 <= progress.percent <= 100


@pytest.mark.parametrize("side", ["sync", "async"])
@pytest.mark.parametrize("status", [200, 201, 203])
def test_any_2xx_is_success_in_both_transports(
    trained: str, sestek_conn: SestekEmulator, side: str, status: int
) -> None:
    body = json.dumps({"percent": 42, "trainingStatus": "Training", "inferenceStatus": None})
    sestek_conn.add_fault(Fault(endpoint="progress", kind="raw", status=status, raw_body=body, count=1))
    progress = PROGRESS[side](trained)
    assert (progress.percent, progress.training_status) == (42, TrainingStatus.TRAINING)


@pytest.mark.parametrize("side", ["sync", "async"])
def test_huge_answer_is_refused_unread(trained: str, sestek_conn: SestekEmulator, side: str) -> None:
    sestek_conn.add_fault(Fault(endpoint="progress", kind="raw", status=200, raw_body=" " * 100_000, count=None))

    def run() -> Any:
        hook = SestekHook(**FAST, retry_limit=0)
        hook.max_response_bytes = 10_000
        if side == "sync":
            return hook.get_training_progress(trained)
        return asyncio.run(hook.aget_training_progress(trained))

    with pytest.raises(SestekApiError, match="larger than 10,000 bytes"):
        run()


@pytest.mark.parametrize("side", ["sync", "async"])
def test_token_answer_that_is_not_json_is_not_quoted(sestek_conn: SestekEmulator, side: str) -> None:
    leaked = "access_token=sekrit-looking-value"
    sestek_conn.add_fault(Fault(endpoint="token", kind="raw", status=200, raw_body=leaked, count=None))
    with pytest.raises(SestekError) as info:
        TOKEN[side](retry_limit=0)
    assert "sekrit" not in str(info.value)


def test_wait_deadline_stops_retries(trained: str, sestek_conn: SestekEmulator) -> None:
    """A poll given its wait's deadline (stop_at) starts no retry past it, whatever the backoff."""
    sestek_conn.add_fault(Fault(endpoint="progress", kind="status", status=503, retry_after=30, count=None))
    started = time.monotonic()
    with pytest.raises(SestekApiError, match="503"):
        SestekHook(**FAST).get_training_progress(trained, stop_at=time.time() + 2)
    assert time.monotonic() - started < 10  # not the 30 s Retry-After
    assert len([r for r in sestek_conn.requests if r.endpoint == "progress"]) == 1
