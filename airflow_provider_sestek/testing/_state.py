"""
Everything an emulator remembers, behind one lock: trainings, tokens, pending faults, recorded
requests, counters, callbacks and the outbound work they cause.

The routes (:mod:`._api` and its siblings, the admin routes, the fault delivery, the foreign listener)
receive an :class:`EmulatorState` and call its methods; none of them reaches into another's data. The
methods that move a training on send the callbacks that became due themselves, after releasing the
lock, so no caller has to remember to. Standard library only: the facade creates a state without
importing the server.
"""

from __future__ import annotations

import dataclasses
import secrets
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ._answers import Answers
from ._faults import Fault, FaultQueue, FaultWhen
from ._lifecycle import Generation, Observation, Published, TrainingRequest, Trainings
from ._model import CallbackAttempt, RecordedRequest, Training, zero_counters
from ._outbound import Outbound
from ._redaction import Redactor
from ._tokens import Tokens

__all__ = ["EmulatorState", "TrainingConfig"]

_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True, slots=True)
class TrainingConfig:
    """
    How trainings move (validated by the facade).

    :param advance: ``poll`` or ``time``.
    :param steps_per_poll: statuses per progress call in ``poll`` mode.
    :param seconds_per_step: seconds per status in ``time`` mode.
    :param status_case: ``title`` or ``lower``.
    :param fail_models: model ids whose trainings fail at the ``Training`` step.
    """

    advance: str
    steps_per_poll: int
    seconds_per_step: float
    status_case: str
    fail_models: tuple[str, ...]


class EmulatorState:
    """
    The emulator's memory; every method is safe to call from any thread.

    :param tenant: the tenant inference paths start with.
    :param tokens: the token service's clients and tokens.
    :param training: how trainings move.
    :param max_recorded_requests: how many API requests to keep (``None``: all).
    :param record_secrets: keep credentials in recorded requests and snapshots instead of markers.
    """

    def __init__(
        self,
        tenant: str,
        tokens: Tokens,
        training: TrainingConfig,
        max_recorded_requests: int | None,
        record_secrets: bool,
    ) -> None:
        self.tenant = tenant
        self.tokens = tokens
        self.redactor = Redactor(keep=record_secrets)
        #: The ``id`` every training answer reports as its module version.
        self.module_version_id = str(uuid.uuid4())
        #: Set while the emulator stops: waits (faults, fetches, the clock) end within a slice of it.
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._trainings = Trainings(
            training.advance,
            training.steps_per_poll,
            training.seconds_per_step,
            training.status_case,
            training.fail_models,
        )
        self._faults = FaultQueue()
        self._requests: deque[RecordedRequest] = deque(maxlen=max_recorded_requests)
        self._foreign_requests: list[RecordedRequest] = []
        self._callback_attempts: list[CallbackAttempt] = []
        self._counters = zero_counters()
        self._upload_dirs: list[str] = []
        self._data_dir: Path | None = None
        self._outbound = Outbound(self.stopping, self._on_callback, self.redactor.url)
        self.answers = Answers(self._outbound.documents)
        self._clock: threading.Thread | None = None

    # ------------------------------------------------------------------ running

    def attach(self, data_dir: Path) -> None:
        """
        The emulator started: uploads go under ``data_dir``; in ``time`` mode the clock starts.

        :param data_dir: the data directory.
        """
        self._data_dir = data_dir
        self.stopping.clear()
        if self._trainings.advance == "time":
            self._clock = threading.Thread(target=self._run_clock, name="sestek-emulator-clock", daemon=True)
            self._clock.start()

    def detach(self) -> None:
        """The emulator stopped: waits end and the clock stops."""
        self.stopping.set()
        if self._clock is not None:
            self._clock.join(timeout=1)
            self._clock = None

    def _run_clock(self) -> None:
        # Time mode needs a clock even when nobody polls: a failed training must still call back.
        # At most 10 ticks a second and at least 1000: a step of 1e-9 s must not spin a core.
        interval = max(0.001, min(0.1, self._trainings.seconds_per_step / 2))
        while not self.stopping.wait(interval):
            self._move(lambda trainings, now: trainings.tick(now))

    def _move(self, step: Callable[[Trainings, float], _T]) -> _T:
        """
        Run ``step`` on the lifecycle under the lock, then send the callbacks it made due (outside it).

        :param step: what to do, given the lifecycle and the clock's ``now``.
        """
        with self._lock:
            result = step(self._trainings, time.monotonic())
            events = self._trainings.take_events()
        self._outbound.fire(events)
        return result

    def new_upload_dir(self) -> str:
        """A fresh directory path (not created) for one upload."""
        if self._data_dir is None:
            raise RuntimeError("the emulator is not running")
        return str(self._data_dir / "uploads" / f"{time.time_ns()}-{secrets.token_hex(4)}")

    # ------------------------------------------------------------------ requests and counters

    def record(self, record: RecordedRequest, counter: str | None = None) -> None:
        """
        Keep an arriving API request (and count it).

        :param record: its record, already redacted.
        :param counter: the counter an arrival raises, if any.
        """
        with self._lock:
            self._requests.append(record)
            if counter:
                self._counters[counter] += 1

    def record_foreign(self, record: RecordedRequest) -> None:
        """
        Keep a request that reached the foreign listener.

        :param record: its record, already redacted.
        """
        with self._lock:
            self._foreign_requests.append(record)

    def count(self, counter: str, amount: int = 1) -> None:
        """
        Raise a counter.

        :param counter: its name (see :func:`._model.zero_counters`).
        :param amount: by how much.
        """
        with self._lock:
            self._counters[counter] += amount

    def requests(self) -> list[RecordedRequest]:
        """The recorded API requests, oldest first."""
        with self._lock:
            return list(self._requests)

    def foreign_requests(self) -> list[RecordedRequest]:
        """The requests that reached the foreign listener, oldest first."""
        with self._lock:
            return list(self._foreign_requests)

    def counters(self) -> dict[str, int]:
        """A copy of the counters."""
        with self._lock:
            return dict(self._counters)

    def callback_attempts(self) -> list[CallbackAttempt]:
        """The callbacks tried, oldest first."""
        with self._lock:
            return list(self._callback_attempts)

    def _on_callback(self, attempt: CallbackAttempt, succeeded: bool) -> None:
        attempt = dataclasses.replace(attempt, address=self.redactor.url(attempt.address))
        with self._lock:
            self._callback_attempts.append(attempt)
            self._counters["callbacks_sent" if succeeded else "callbacks_failed"] += 1

    # ------------------------------------------------------------------ faults

    def add_fault(self, fault: Fault) -> None:
        """
        Queue a fault.

        :param fault: the fault.
        """
        with self._lock:
            self._faults.add(fault)

    def take_fault(self, endpoint: str, model_id: str | None, when: FaultWhen, filtered: bool | None) -> Fault | None:
        """
        Use up the first pending fault matching a request (see :meth:`FaultQueue.take`).

        :param endpoint: the request's endpoint.
        :param model_id: the model it is about, if known.
        :param when: ``before`` or ``after``.
        :param filtered: only faults with (``True``) or without (``False``) a model filter.
        """
        with self._lock:
            return self._faults.take(endpoint, model_id, when, filtered)

    def faults(self) -> list[Fault]:
        """The pending faults, oldest first."""
        with self._lock:
            return self._faults.faults()

    def clear_faults(self) -> None:
        """Forget every pending fault."""
        with self._lock:
            self._faults.clear()

    # ------------------------------------------------------------------ trainings

    def case(self, status: str) -> str:
        """
        A status in the configured case.

        :param status: the status as documented.
        """
        return self._trainings.case(status) or ""

    def progress(self, model_id: str) -> Observation | None:
        """
        Answer a progress call (moving the training on); ``None`` for an unknown model.

        :param model_id: the model id.
        """
        return self._move(lambda trainings, now: trainings.poll(model_id, now))

    def observe(self, model_id: str) -> Observation | None:
        """
        What a progress call would report now, without moving the training on.

        :param model_id: the model id.
        """
        return self._move(lambda trainings, now: trainings.peek(model_id, now))

    def create_training(self, request: TrainingRequest, fetch_urls: list[str]) -> Generation | None:
        """
        Start a training; ``None`` while the model's previous one has not ended.

        :param request: the valid train call (its upload directory is removed by :meth:`reset`).
        :param fetch_urls: data URLs to fetch for the answer index (loopback ones).
        """

        def create(trainings: Trainings, now: float) -> Generation | None:
            gen = trainings.create(request, now)
            if gen is not None:  # counted under the same lock as the training itself
                self._counters["trainings_created"] += 1
                self._upload_dirs.append(request.upload_dir)
            return gen

        gen = self._move(create)
        if gen is not None and fetch_urls:
            self._outbound.fetch(gen.experiment_id, fetch_urls, request.upload_dir)
        return gen

    def published(self, model_id: str) -> Published | None:
        """
        What inference on ``model_id`` can use; ``None`` for a model never trained.

        :param model_id: the model id.
        """
        return self._move(lambda trainings, now: trainings.published(model_id, now))

    def trainings(self) -> dict[str, Training]:
        """A snapshot of the latest training of every model id (callback secrets redacted)."""
        snapshots = self._move(lambda trainings, now: trainings.snapshots(now))
        if self.redactor.keep:
            return snapshots
        return {model_id: self._redacted(training) for model_id, training in snapshots.items()}

    def _redacted(self, training: Training) -> Training:
        redact = self.redactor
        urls = tuple(redact.url(url) for url in training.urls)
        callback = training.callback
        if callback is not None:
            secret = None if callback.client_secret is None else redact.marker(callback.client_secret)
            callback = dataclasses.replace(
                callback,
                address=redact.url(callback.address),
                identity_address=None if callback.identity_address is None else redact.url(callback.identity_address),
                client_secret=secret,
            )
        return dataclasses.replace(training, urls=urls, callback=callback)

    def set_lifecycle(self, model_id: str | None, statuses: Sequence[str] | None) -> None:
        """
        Override the status sequence of one model or of all.

        :param model_id: the model, or ``None`` for every model without its own.
        :param statuses: the sequence, or ``None`` to remove the override.
        :raises ValueError: ``statuses`` is empty or holds something but non-empty strings.
        """
        sequence = None
        if statuses is not None:
            sequence = tuple(statuses)
            if not sequence or not all(isinstance(s, str) and s for s in sequence):
                raise ValueError("statuses must be a non-empty list of non-empty strings")
        with self._lock:
            self._trainings.set_lifecycle(model_id, sequence)

    def fail_model(self, model_id: str, fail: bool) -> None:
        """
        Add ``model_id`` to the failing set, or remove it.

        :param model_id: the model id.
        :param fail: add (``True``) or remove.
        """
        with self._lock:
            self._trainings.fail_model(model_id, fail)

    def inference_model_id(self, segment: str) -> str | None:
        """
        The model id of a ``/published/{tenant}-{modelId}`` path segment; ``None`` for another tenant.

        :param segment: the segment.
        """
        # Tenants may contain hyphens themselves, so the split is by the known tenant, not the first "-".
        prefix = self.tenant + "-"
        if segment.startswith(prefix) and len(segment) > len(prefix):
            return segment[len(prefix) :]
        return None

    # ------------------------------------------------------------------ the whole

    def reset(self) -> None:
        """Forget trainings, faults, recorded requests (foreign too), callbacks, counters and uploads."""
        with self._lock:
            upload_dirs, self._upload_dirs = self._upload_dirs, []
            self._trainings.reset()
            self._faults.clear()
            self._requests.clear()
            self._foreign_requests.clear()
            self._callback_attempts.clear()
            self._counters = zero_counters()
        self._outbound.forget()
        self.answers.clear()
        for directory in upload_dirs:
            shutil.rmtree(directory, ignore_errors=True)

    def describe(self, url: str | None, foreign_url: str | None) -> dict[str, Any]:
        """
        Everything ``GET /_emulator/state`` reports.

        :param url: the API's base URL while serving.
        :param foreign_url: the foreign listener's, once started.
        """
        trainings = self.trainings()
        with self._lock:
            return {
                "url": url,
                "foreign_url": foreign_url,
                "foreign_requests": [r.to_dict() for r in self._foreign_requests],
                "tenant": self.tenant,
                "counters": dict(self._counters),
                "request_count": len(self._requests),
                "trainings": {model_id: t.to_dict() for model_id, t in trainings.items()},
                "faults": [f.to_dict() for f in self._faults.faults()],
                "callbacks": [_callback_dict(a) for a in self._callback_attempts],
                "fail_models": sorted(self._trainings.fail_models),
                "config": {
                    "advance": self._trainings.advance,
                    "steps_per_poll": self._trainings.steps_per_poll,
                    "seconds_per_step": self._trainings.seconds_per_step,
                    "status_case": self._trainings.status_case,
                    "token_lifetime": self.tokens.lifetime,
                    "token_prefix": self.tokens.prefix,
                    "record_secrets": self.redactor.keep,
                },
            }


def _callback_dict(attempt: CallbackAttempt) -> dict[str, Any]:
    return {
        "model_id": attempt.model_id,
        "event": attempt.event,
        "address": attempt.address,
        "status": attempt.status,
        "error": attempt.error,
        "authenticated": attempt.authenticated,
        "time": attempt.time,
    }
