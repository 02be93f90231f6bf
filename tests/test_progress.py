"""
Progress in the task log, as pure rules with injected clocks: the wait's heartbeat, the success summary, the
failure's context, and the progress lines of a large upload.
"""

from __future__ import annotations

import io
import logging
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_sestek import api
from airflow_provider_sestek.exceptions import SestekError, SestekTimeout, SestekTrainingFailed
from airflow_provider_sestek.hooks import upload_progress
from airflow_provider_sestek.hooks.upload import MultipartBody
from airflow_provider_sestek.operators._common import raise_for_outcome, success_summary
from airflow_provider_sestek.waiting import ProgressWatcher, WaitSpec, human_duration
from airflow_provider_sestek.waiting_args import check_heartbeat_interval

QUIET = logging.getLogger("tests.progress")
QUIET.setLevel(logging.CRITICAL)
T0 = 1_800_000_000.0
MIB = 1024 * 1024


def progress(training: str, inference: str | None = None, percent: int = 50) -> api.TrainingProgress:
    return api.parse_progress({"percent": percent, "trainingStatus": training, "inferenceStatus": inference})


# --- the heartbeat of a wait -------------------------------------------------------------------------------


def rule(**kwargs: Any) -> ProgressWatcher:
    spec = WaitSpec("faq-bot", poll_interval=30.0, started_at=T0, **kwargs)
    return spec.watcher(QUIET)


def test_a_heartbeat_once_per_interval_with_status_elapsed_and_time_left() -> None:
    watcher = rule(heartbeat_interval=300.0, end_time=T0 + 6 * 3600)
    assert watcher.step(progress("Training"), now=T0 + 30).heartbeat is None
    assert watcher.step(progress("Training"), now=T0 + 299).heartbeat is None
    beat = watcher.step(progress("Training"), now=T0 + 2 * 3600 + 600).heartbeat
    assert beat == "Still waiting for model faq-bot: Training 50%, 2h10m elapsed, 3h50m left before the deadline"
    assert watcher.step(progress("Training"), now=T0 + 2 * 3600 + 899).heartbeat is None  # 299 s after it
    assert watcher.step(progress("Training"), now=T0 + 2 * 3600 + 900).heartbeat is not None


def test_a_heartbeat_without_deadline_or_status_and_after_failed_polls() -> None:
    watcher = rule(heartbeat_interval=60.0)
    timeout = api_error(503)
    beat = watcher.step(timeout, now=T0 + 61).heartbeat
    assert beat == "Still waiting for model faq-bot: no status received yet, 1m01s elapsed, 1 failed poll(s) in a row"


def test_no_heartbeat_with_an_outcome_and_none_in_watch_mode() -> None:
    watcher = rule(heartbeat_interval=1.0)
    done = watcher.step(progress("Completed", "Running", 100), now=T0 + 3600)
    assert done.outcome is not None and done.heartbeat is None
    assert done.outcome.started_at == T0 and done.outcome.to_event("faq-bot")["started_at"] == T0
    watch = ProgressWatcher(
        "faq-bot", wait_for_inference=True, poll_interval=1, end_time=None, logger=QUIET, watch=True, started=T0
    )
    assert watch.step(progress("Training"), now=T0 + 10_000).heartbeat is None


def test_the_heartbeat_changes_no_other_field_of_the_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("random.uniform", lambda a, b: 1.0)
    beating, silent = rule(heartbeat_interval=1.0), rule(heartbeat_interval=1e9)
    for second, seen in enumerate([progress("Training"), api_error(500), progress("Completed", "Pending", 100)]):
        a, b = beating.step(seen, now=T0 + 10 * second + 5), silent.step(seen, now=T0 + 10 * second + 5)
        assert a.heartbeat and b.heartbeat is None
        assert (a.delay, a.outcome, a.publication) == (b.delay, b.outcome, b.publication)


def api_error(status: int) -> Exception:
    from airflow_provider_sestek.exceptions import SestekApiError

    return SestekApiError(method="GET", endpoint="progress", status=status, message="x")


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), True, "300", None, timedelta(0)])
def test_heartbeat_interval_is_finite_and_positive(value: Any) -> None:
    with pytest.raises(SestekError, match="Invalid heartbeat_interval"):
        check_heartbeat_interval(value)


def test_heartbeat_interval_takes_seconds_or_a_timedelta() -> None:
    assert check_heartbeat_interval(5) == 5.0 and check_heartbeat_interval(timedelta(minutes=2)) == 120.0


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (45.9, "45s"), (252, "4m12s"), (7800, "2h10m"), (3 * 86400 + 4 * 3600, "3d04h")]
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


# --- the end of a wait in the task -------------------------------------------------------------------------


def result(training: str = "Completed", inference: str | None = "Running") -> dict[str, Any]:
    return {"model_id": "faq-bot", "percent": 100, "training_status": training, "inference_status": inference}


def test_the_success_summary() -> None:
    assert (
        success_summary(result(), "exp-1", T0, now=T0 + 252)
        == "Model faq-bot published: experiment exp-1, trained in 4m12s, Training Completed / Inference Running"
    )
    assert (
        success_summary(result(inference=None), None, T0, since_submit=False, now=T0 + 5)
        == "Model faq-bot trained: waited 5s, Training Completed / Inference not started"
    )
    assert success_summary(result(), None, "forged", now=T0) == (
        "Model faq-bot published: Training Completed / Inference Running"
    )
    assert success_summary(result("Initialized", None), "exp-1", T0) is None  # submitted, not waited for


def event(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "status": status,
        "model_id": "faq-bot",
        "message": "Polling Sestek model 'faq-bot' failed: HTTP 401",
        "progress": {"percent": 50, "training_status": "Failed", "inference_status": None},
        **extra,
    }


def test_a_failure_names_the_experiment_and_the_portal() -> None:
    context = {"experiment_id": "exp-7", "portal_url": "https://portal.example.com/models/faq-bot"}
    with pytest.raises(SestekTrainingFailed) as failed:
        raise_for_outcome("faq-bot", event("failed"), **context)
    assert str(failed.value) == (
        "Sestek training of model 'faq-bot' failed: status Failed, 50% done "
        "(experiment exp-7; portal https://portal.example.com/models/faq-bot)"
    )
    assert failed.value.experiment_id == "exp-7" and failed.value.portal_url == context["portal_url"]
    with pytest.raises(SestekTimeout, match=r"last status: Failed 50% \(experiment exp-7; portal https://"):
        raise_for_outcome("faq-bot", event("timeout", started_at=T0), **context)
    with pytest.raises(SestekError, match=r"HTTP 401 \(experiment exp-7; portal https://"):
        raise_for_outcome("faq-bot", event("error"), **context)
    with pytest.raises(SestekTrainingFailed) as bare:  # nothing known: the message of before
        raise_for_outcome("faq-bot", event("failed"))
    assert str(bare.value).endswith("status Failed, 50% done")


# --- the progress of a large upload ------------------------------------------------------------------------


class Clock:
    """A monotonic clock that moves ``step`` seconds at every read."""

    def __init__(self, step: float) -> None:
        self.now, self.step, self.reads = 100.0, step, 0

    def __call__(self) -> float:
        self.now += self.step
        self.reads += 1
        return self.now


def body(size: int, clock: Clock, **kwargs: Any) -> MultipartBody:
    data = io.BytesIO(b"x" * size)
    return MultipartBody(
        [("modelId", "faq-bot"), ("dataFiles", ("faq.txt", data, "text/plain"))], clock=clock, **kwargs
    )


def drain(multipart: MultipartBody) -> int:
    blocks = 0
    while multipart.read(16 * 1024):
        blocks += 1
    return blocks


def test_a_large_upload_logs_its_total_then_progress_by_the_clock_then_a_closing_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock(step=2.0)  # 512 KiB blocks, 2 s apart: 0.25 MiB/s
    multipart = body(8 * MIB, clock, progress_min_bytes=4 * MIB, progress_interval=10.0)
    with caplog.at_level(logging.INFO, logger=upload_progress.log.name):
        blocks = drain(multipart)
    lines = [r.getMessage() for r in caplog.records if r.name == upload_progress.log.name]
    assert blocks == 17 and clock.reads == blocks  # one clock read per block (the last one: the closing boundary)
    assert lines == [
        "Uploading 8.0 MiB of training data (1 file(s))",
        "Uploaded 3.0 MiB of 8.0 MiB (37%), 0.3 MiB/s",  # 10 s later: 5 more blocks of 512 KiB
        "Uploaded 5.5 MiB of 8.0 MiB (68%), 0.2 MiB/s",
        "Uploaded 8.0 MiB of 8.0 MiB (99%), 0.2 MiB/s",  # the multipart headers are the last 1%
        "Sent 8.0 MiB of training data in 32.0s (0.3 MiB/s); waiting for the server's answer",
    ]


def test_an_upload_in_one_block_logs_its_total_and_its_closing_line(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(step=1.0)
    with caplog.at_level(logging.INFO, logger=upload_progress.log.name):
        body(MIB, clock, progress_min_bytes=1).read()
    lines = [r.getMessage() for r in caplog.records if r.name == upload_progress.log.name]
    assert lines[0] == "Uploading 1.0 MiB of training data (1 file(s))" and lines[1].startswith("Sent 1.0 MiB")


def test_a_small_upload_logs_nothing_and_reads_no_clock(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(step=100.0)
    with caplog.at_level(logging.INFO, logger=upload_progress.log.name):
        drain(body(2 * MIB, clock))  # below the 64 MiB default
    assert clock.reads == 0 and not [r for r in caplog.records if r.name == upload_progress.log.name]
