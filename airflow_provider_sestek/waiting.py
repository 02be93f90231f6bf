"""
The one rule of every wait on a Sestek training (no I/O).

Four waiters poll a training's progress: the sync operator (``time.sleep``), the deferrable trigger
(``asyncio.sleep``), the sensor (one poll per poke or reschedule) and the publication watcher
(``AssetWatcher``, one rule per model). Each only carries out what :meth:`ProgressWatcher.step` answers for
the last poll's progress or error: "poll again after N s", ``success``, ``failed``, ``timeout``, ``error``
or "publication seen". The exception policy (:func:`observe` / :func:`aobserve`: any ``Exception`` is an
observation, cancellation is not), the 404 policy (:func:`is_transient`: a 404 is a failed poll, never a
status) and the building of the rule (:class:`WaitSpec`) are written here once, so the waiters cannot
drift apart about what "done" or "failed" means.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_sestek.api import TrainingProgress, TrainingStatus
from airflow_provider_sestek.exceptions import (
    SestekApiError,
    SestekError,
    SestekTimeout,
    SestekTrainingFailed,
    SestekTransportError,
)

# Re-exported: the publication trigger imports these from here.
from airflow_provider_sestek.waiting_args import (
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_MAX_CONSECUTIVE_FAILURES,
    check_failures,
    check_poll_interval,
)

# Re-exported: ``short`` is imported from here by the durable record.
from airflow_provider_sestek.waiting_outcomes import Decision, WaitOutcome, human_duration, short

log = logging.getLogger(__name__)

#: What one poll produced: the progress, or the exception the poll raised.
Observation = TrainingProgress | BaseException


# --- the exception and 404 policy -----------------------------------------------------------------------------


def is_transient(exc: BaseException) -> bool:
    """
    Whether a failed poll is worth another one: network trouble, throttling, 5xx, an unreadable answer,
    or a 404 (a training just submitted may not be visible yet; a gateway restarting answers 404 too). Auth,
    config and validation errors, other 4xx and any non-Sestek exception are not.

    :param exc: what the poll raised.
    """
    if isinstance(exc, SestekTransportError):
        return True
    if isinstance(exc, SestekApiError):
        return exc.status in (404, 408, 429) or exc.status >= 500 or 200 <= exc.status < 300
    return False


def observe(poll: Callable[[], TrainingProgress]) -> Observation:
    """
    Run one sync poll: its progress, or the ``Exception`` it raised (``KeyboardInterrupt`` and the like go on).

    :param poll: the poll.
    """
    try:
        return poll()
    except Exception as exc:
        return exc


async def aobserve(poll: Awaitable[TrainingProgress]) -> Observation:
    """
    Await one async poll: its progress, or the ``Exception`` it raised. ``CancelledError`` (a triggerer
    shutdown, a user's clear) is not an ``Exception`` and goes on: the remote training has nothing to undo.

    :param poll: the poll.
    """
    try:
        return await poll
    except Exception as exc:
        return exc


@dataclass(frozen=True)
class WaitSpec:
    """
    The parameters of a wait: the one place a waiter's rule is built from (the trigger's kwargs too).

    :param model_id: the model waited for.
    :param wait_for_inference: after ``Completed`` also wait until the inference endpoint is Running.
    :param poll_interval: seconds between polls.
    :param end_time: absolute wall-clock deadline (epoch seconds) or ``None``.
    :param max_consecutive_failures: transient failures in a row tolerated before giving up.
    :param submitted_at: when this task's train POST was answered (epoch seconds), ``None`` when it attached to a
        training: see :attr:`ProgressWatcher.stale_window`.
    :param initial_failures: failed polls already in a row when this wait starts.
    :param heartbeat_interval: seconds between two "still waiting" lines in the task log.
    :param started_at: when the wait started (epoch seconds; the submit when known), ``None`` for "now": the
        heartbeat's elapsed time and the task's duration count from it.
    """

    model_id: str
    wait_for_inference: bool = True
    poll_interval: float = 30.0
    end_time: float | None = None
    max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES
    submitted_at: float | None = None
    #: Failed polls already in a row when the wait starts (a sensor's first poke, before it deferred).
    initial_failures: int = 0
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    started_at: float | None = None

    def watcher(self, logger: logging.Logger | Any = None, known: TrainingProgress | None = None) -> ProgressWatcher:
        """
        The rule of this wait.

        :param logger: where status changes are logged.
        :param known: the status already known (e.g. what the submit answered), should no poll fit in.
        """
        rule = ProgressWatcher(
            self.model_id,
            wait_for_inference=self.wait_for_inference,
            poll_interval=self.poll_interval,
            end_time=self.end_time,
            max_consecutive_failures=self.max_consecutive_failures,
            logger=logger,
            submitted_at=self.submitted_at,
            heartbeat_interval=self.heartbeat_interval,
            started=self.started_at,
        )
        rule.last = known
        rule.failures = self.initial_failures
        return rule


class ProgressWatcher:
    """
    The rule of one wait: :meth:`step` decides from each poll's progress or error.

    In *watch* mode (the publication watcher) the wait never ends: errors are logged and polled again, and
    :meth:`step` reports a publication when the model is published after a real answer showed a training
    running (a documented status before ``Completed``) since its last publication. A 404 or any other failed
    poll is no observation: it changes nothing; nor is an inference endpoint that restarts, or an unknown status.

    :param model_id: the model waited for.
    :param wait_for_inference: after ``Completed`` also wait until the inference endpoint is Running.
    :param poll_interval: seconds between polls.
    :param end_time: absolute wall-clock deadline (epoch seconds) or ``None``.
    :param max_consecutive_failures: transient failures in a row tolerated before giving up (watch mode: before
        they are logged as errors).
    :param logger: where status changes are logged.
    :param watch: watch mode, for the publication watcher.
    :param mark: watch mode: what was seen of the model before, ``{"published": bool, "publications": int}``.
    :param fire_on_start: watch mode: a model already published when first seen counts as a publication.
    :param submitted_at: when the train POST of the training waited for was answered (epoch seconds), or ``None``.
        Right after a retrain is submitted the progress endpoint may still show the previous training's final
        status (as it may answer 404 for a new model): within :attr:`stale_window` of the submit, ``Completed``
        or ``Failed`` seen before any running status is taken as that previous training's, and polled again.
    :param heartbeat_interval: seconds between two heartbeats (:attr:`Decision.heartbeat`); not in watch mode.
    :param started: when the wait started (epoch seconds), ``None`` for now.
    """

    def __init__(
        self,
        model_id: str,
        *,
        wait_for_inference: bool,
        poll_interval: float,
        end_time: float | None,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
        logger: logging.Logger | Any = None,
        watch: bool = False,
        mark: Mapping[str, Any] | None = None,
        fire_on_start: bool = False,
        submitted_at: float | None = None,
        heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
        started: float | None = None,
    ) -> None:
        self.model_id = model_id
        self.wait_for_inference = wait_for_inference
        self.poll_interval = poll_interval
        self.end_time = end_time
        self.max_consecutive_failures = max_consecutive_failures
        self.log = logger or log
        self.last: TrainingProgress | None = None
        self.failures = 0
        self.started = time.time() if started is None else started
        self.heartbeat_interval = heartbeat_interval
        #: When the last heartbeat was due (the start, before the first).
        self.heartbeat_at = self.started
        #: A ``Completed`` was seen, then a running status: the training now running is not the one waited for.
        self.restarted = False
        self._completed_seen = False
        self.watch = watch
        self.fire_on_start = fire_on_start
        self.mark: dict[str, Any] | None = dict(mark) if mark is not None else None
        self.submitted_at = submitted_at
        #: Final statuses seen after the submit, before the new training showed (see ``submitted_at``).
        self.stale = 0
        self._seen_running = submitted_at is None

    @property
    def stale_window(self) -> float:
        """Seconds after the submit during which a final status seen first is the previous training's."""
        return self.max_consecutive_failures * self.poll_interval

    # --- the decision ----------------------------------------------------------------------------------------

    def step(self, observation: Observation, now: float | None = None) -> Decision:
        """
        The one decision after a poll: what the waiter does next.

        :param observation: the poll's progress, or the exception it raised.
        :param now: current wall-clock time (injected by tests).
        """
        now = time.time() if now is None else now
        if self.watch:
            return self._watch_step(observation, now)
        if isinstance(observation, TrainingProgress):
            outcome = self.on_progress(observation, now)
        else:
            outcome = self.on_error(observation)
        outcome = outcome or self.check_deadline(now)
        if outcome is not None:
            return Decision(0.0, dataclasses.replace(outcome, started_at=self.started))
        return Decision(self.sleep_seconds(now), heartbeat=self.heartbeat(now))

    def heartbeat(self, now: float) -> str | None:
        """
        The "still waiting" line, once ``heartbeat_interval`` has passed since the last one (or the start).

        :param now: current wall-clock time.
        """
        if now - self.heartbeat_at < self.heartbeat_interval:
            return None
        self.heartbeat_at = now
        elapsed = human_duration(now - self.started)
        text = f"Still waiting for model {self.model_id}: {self.last_status()}, {elapsed} elapsed"
        if self.end_time is not None:
            text += f", {human_duration(self.end_time - now)} left before the deadline"
        if self.failures:
            text += f", {self.failures} failed poll(s) in a row"
        return text

    def _watch_step(self, observation: Observation, now: float) -> Decision:
        delay = self.poll_interval * random.uniform(0.9, 1.1)
        if not isinstance(observation, TrainingProgress):
            self._watch_failed(observation)
            return Decision(delay)
        self.failures = 0
        if self.last is None or observation.describe() != self.last.describe():
            self.log.info("%s: %s", self.model_id, observation.describe())
        self.last = observation
        published = observation.is_published
        # A real training shows a documented running status: only after one does "published" count as a new
        # publication (an inference endpoint restarting, or an unknown status, is no training).
        training = observation.is_active and observation.training_status is not TrainingStatus.UNKNOWN
        if self.mark is None:
            # First real sight: the starting point, a publication only if the user asked for it.
            fire = published and self.fire_on_start
            self.mark = {"published": published, "publications": 0, "training": training}
        else:
            fire = published and not self.mark["published"] and bool(self.mark.get("training"))
            self.mark["published"] = published
            self.mark["training"] = bool(self.mark.get("training")) or training
        if not fire:
            return Decision(delay)
        self.mark["publications"] += 1
        self.mark["training"] = False
        return Decision(delay, publication=int(self.mark["publications"]))

    def _watch_failed(self, exc: BaseException) -> None:
        self.failures += 1
        if isinstance(exc, SestekApiError) and exc.status == 404:
            # A model never trained answers 404 at every poll: said once per run of them, never an error.
            if self.failures == 1:
                self.log.info("Watching Sestek model %s: not known to the server (404), polling on", self.model_id)
        elif not is_transient(exc):
            self.log.error(
                "Watching Sestek model %s: %s (polling again in %ss)", self.model_id, exc, self.poll_interval
            )
        elif self.failures >= self.max_consecutive_failures:
            self.log.error("Watching Sestek model %s: %d failed polls in a row: %s", self.model_id, self.failures, exc)
        else:
            self.log.warning("Watching Sestek model %s: poll failed, will retry: %s", self.model_id, exc)

    # --- the parts of the decision (pure; ``step`` is what waiters call) -------------------------------------

    def on_progress(self, progress: TrainingProgress, now: float | None = None) -> WaitOutcome | None:
        """
        Record a poll result; return an outcome when the wait is over.

        :param progress: what the progress endpoint said.
        :param now: current wall-clock time.
        """
        self.failures = 0
        if progress.is_active:
            self._seen_running = True
        elif not self._seen_running and self._within_stale_window(time.time() if now is None else now):
            self.stale += 1
            if self.stale == 1:
                self.log.info(
                    "%s: still shows %s right after the submit: the previous training's status; waiting for the new "
                    "training to show",
                    self.model_id,
                    progress.describe(),
                )
            return None
        elif not self._seen_running and self.stale and not self.restarted:
            self.restarted = True  # the new training never showed: its result cannot be told from the old one's
            self.log.warning(
                "%s: the training submitted never showed as running; taking %s as its result, without claiming it",
                self.model_id,
                progress.describe(),
            )
        if self.last is None or progress.describe() != self.last.describe():
            self.log.info("%s: %s", self.model_id, progress.describe())
            if progress.training_status is TrainingStatus.UNKNOWN:
                self.log.warning(
                    "%s: unknown training status %r, treated as still running",
                    self.model_id,
                    short(progress.raw_training_status, 100),
                )
        if progress.training_status is TrainingStatus.COMPLETED:
            self._completed_seen = True
        elif self._completed_seen and progress.is_active and not self.restarted:
            self.restarted = True
            self.log.warning(
                "%s: the training had completed and the model is now %s: a new training of this model id was "
                "started (another pipeline or the Sestek UI); the wait follows it, and its result is not "
                "claimed as the training waited for",
                self.model_id,
                progress.describe(),
            )
        self.last = progress
        if progress.training_status is TrainingStatus.FAILED:
            failed = SestekTrainingFailed(self.model_id, "Failed", progress.percent)
            return WaitOutcome("failed", str(failed), progress, self.restarted)
        if progress.is_done(self.wait_for_inference):
            what = "trained and published" if self.wait_for_inference else "trained"
            return WaitOutcome("success", f"Sestek model {self.model_id!r} is {what}", progress, self.restarted)
        return None

    def _within_stale_window(self, now: float) -> bool:
        return self.submitted_at is not None and now < self.submitted_at + self.stale_window

    def on_error(self, exc: BaseException) -> WaitOutcome | None:
        """
        Record a failed poll; return an ``error`` outcome when it is fatal or one too many.

        :param exc: what the poll raised.
        """
        if not is_transient(exc):
            what = exc if isinstance(exc, SestekError) else f"{type(exc).__name__}: {exc}"
            return WaitOutcome("error", f"Polling Sestek model {self.model_id!r} failed: {what}", self.last)
        self.failures += 1
        if self.failures >= self.max_consecutive_failures:
            return WaitOutcome(
                "error",
                f"Polling Sestek model {self.model_id!r} failed {self.failures} times in a row; last error: {exc}",
                self.last,
            )
        self.log.warning(
            "%s: poll failed (%d/%d in a row), will retry: %s",
            self.model_id,
            self.failures,
            self.max_consecutive_failures,
            exc,
        )
        return None

    def check_deadline(self, now: float | None = None) -> WaitOutcome | None:
        """
        A ``timeout`` outcome once the absolute deadline has passed.

        :param now: current wall-clock time.
        """
        now = time.time() if now is None else now
        if self.end_time is not None and now >= self.end_time:
            exc = SestekTimeout(self.model_id, self.last_status(), now - self.started)
            return WaitOutcome("timeout", str(exc), self.last, self.restarted)
        return None

    def sleep_seconds(self, now: float | None = None) -> float:
        """
        How long to sleep before the next poll: the interval with +-10% jitter (so thousands of waits
        started together do not poll in lockstep), never past the deadline.

        :param now: current wall-clock time.
        """
        now = time.time() if now is None else now
        delay = self.poll_interval * random.uniform(0.9, 1.1)
        if self.end_time is not None:
            delay = min(delay, max(self.end_time - now, 0.0))
        return max(delay, 0.0)

    def last_status(self) -> str:
        """The last status seen, in words."""
        return self.last.describe() if self.last else "no status received yet"


__all__ = [
    "DEFAULT_HEARTBEAT_INTERVAL",
    "DEFAULT_MAX_CONSECUTIVE_FAILURES",
    "Decision",
    "Observation",
    "ProgressWatcher",
    "WaitOutcome",
    "WaitSpec",
    "aobserve",
    "check_failures",
    "check_poll_interval",
    "human_duration",
    "is_transient",
    "observe",
    "short",
]
