"""The one wait rule (``waiting.py``), with its clock injected: decisions after a submit and in watch mode."""

from __future__ import annotations

import logging

from airflow_provider_sestek import api
from airflow_provider_sestek.exceptions import SestekApiError
from airflow_provider_sestek.waiting import ProgressWatcher, WaitSpec

QUIET = logging.getLogger("tests.waiting")
QUIET.setLevel(logging.CRITICAL)
T0 = 1_800_000_000.0


def progress(training: str, inference: str | None = None, percent: int = 100) -> api.TrainingProgress:
    return api.parse_progress({"percent": percent, "trainingStatus": training, "inferenceStatus": inference})


def test_the_previous_trainings_final_status_right_after_a_submit_is_polled_again() -> None:
    rule = WaitSpec("faq-bot", poll_interval=1.0, max_consecutive_failures=5, submitted_at=T0).watcher(QUIET)
    assert rule.step(progress("Completed", "Running"), now=T0 + 1).outcome is None
    assert rule.step(progress("Failed"), now=T0 + 2).outcome is None
    assert rule.step(progress("Training", percent=50), now=T0 + 3).outcome is None
    done = rule.step(progress("Completed", "Running"), now=T0 + 4).outcome
    assert done is not None and done.status == "success" and not done.restarted


def test_a_training_that_never_shows_running_is_taken_after_the_window_without_a_claim() -> None:
    rule = WaitSpec("faq-bot", poll_interval=1.0, max_consecutive_failures=3, submitted_at=T0).watcher(QUIET)
    assert rule.step(progress("Completed", "Running"), now=T0 + 1).outcome is None
    done = rule.step(progress("Completed", "Running"), now=T0 + 3.5).outcome
    assert done is not None and done.status == "success" and done.restarted


def test_an_attached_wait_takes_a_final_status_at_once() -> None:
    rule = WaitSpec("faq-bot", poll_interval=1.0).watcher(QUIET)
    done = rule.step(progress("Completed", "Running"), now=T0).outcome
    assert done is not None and done.status == "success" and not done.restarted


def test_a_completed_training_that_runs_again_is_a_restart() -> None:
    rule = WaitSpec("faq-bot", poll_interval=1.0).watcher(QUIET)
    assert rule.step(progress("Completed", "Pending"), now=T0).outcome is None
    assert rule.step(progress("Training", percent=10), now=T0 + 1).outcome is None
    done = rule.step(progress("Completed", "Running"), now=T0 + 2).outcome
    assert done is not None and done.status == "success" and done.restarted


def watch(mark: dict[str, object] | None = None) -> ProgressWatcher:
    return ProgressWatcher(
        "faq-bot", wait_for_inference=True, poll_interval=1.0, end_time=None, logger=QUIET, watch=True, mark=mark
    )


def test_the_watcher_fires_after_a_running_training_only() -> None:
    rule = watch()
    not_found = SestekApiError(method="GET", endpoint="progress", status=404, message="no training")
    assert rule.step(not_found, now=T0).publication is None and rule.mark is None
    assert rule.step(progress("Completed", "Running"), now=T0 + 1).publication is None  # starting point
    assert rule.step(progress("Completed", "Pending"), now=T0 + 2).publication is None
    assert rule.step(progress("Completed", "Running"), now=T0 + 3).publication is None  # no training in between
    assert rule.step(progress("Training", percent=40), now=T0 + 4).publication is None
    assert rule.step(not_found, now=T0 + 5).publication is None
    assert rule.step(progress("Completed", "Running"), now=T0 + 6).publication == 1
    assert rule.step(progress("Completed", "Running"), now=T0 + 7).publication is None
    assert rule.mark == {"published": True, "publications": 1, "training": False}


def test_errors_never_end_a_watch() -> None:
    rule = watch({"published": False, "publications": 0, "training": True})
    for status in (400, 401, 404, 500):
        decision = rule.step(SestekApiError(method="GET", endpoint="progress", status=status, message="x"), now=T0)
        assert decision.outcome is None and decision.publication is None and decision.delay > 0
    assert rule.step(progress("Completed", "Running"), now=T0 + 1).publication == 1
