"""
The training lifecycle: models, their generations, status sequences, publishing and the events that
trigger callbacks.

This is a plain state machine without HTTP or threads. Its owner serialises every call (the emulator
holds one lock around each), and sends the returned :class:`Event` objects out after releasing it.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._model import FAILED_STATUS, TRAINING_STATUSES, CallbackInfo, ReceivedFile, Training
from ._retrieval import PassageIndex

__all__ = ["Event", "Generation", "Model", "Trainings"]

_PERCENTS = {
    "initialized": 0,
    "pendingtraining": 5,
    "datasetuploading": 10,
    "dataprocessing": 20,
    "trainingstarted": 30,
    "training": 50,
    "trained": 80,
    "modeluploading": 90,
    "completed": 100,
}
_INFERENCE_STAGES: tuple[str | None, ...] = (None, "Pending", "Running")


@dataclass(frozen=True, slots=True)
class _Sequence:
    statuses: tuple[str, ...]
    percents: tuple[int, ...]
    outcome: str | None  # "completed", "failed" or None when the sequence never terminates

    @property
    def last(self) -> int:
        return len(self.statuses) - 1

    @classmethod
    def build(cls, statuses: Sequence[str]) -> _Sequence:
        percents: list[int] = []
        previous = 0
        for status in statuses:
            lowered = status.lower()
            if lowered == "completed":
                value = 100
            elif lowered == "failed":
                value = previous  # a failed training freezes where it stopped
            else:
                value = max(previous, _PERCENTS.get(lowered, previous))
            percents.append(value)
            previous = value
        final = statuses[-1].lower()
        outcome = final if final in ("completed", "failed") else None
        return cls(tuple(statuses), tuple(percents), outcome)


def _failing(statuses: Sequence[str]) -> list[str]:
    """The sequence a model in ``fail_models`` goes through: it dies at the Training step."""
    lowered = [s.lower() for s in statuses]
    if "training" in lowered:
        return [*statuses[: lowered.index("training") + 1], FAILED_STATUS]
    base = list(statuses[:-1]) if lowered[-1] in ("completed", "failed") else list(statuses)
    return [*base, FAILED_STATUS]


@dataclass(eq=False)
class Generation:
    """One training request of a model id (the first one or a retrain)."""

    number: int
    project_name: str
    files: tuple[ReceivedFile, ...]
    urls: tuple[str, ...]
    callback: CallbackInfo | None
    upload_dir: str | None
    project_id: str
    created_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    created_mono: float = field(default_factory=time.monotonic)
    experiment_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    step: int = 0
    publish_stage: int = 0
    completed_seen: bool = False
    polls: int = 0
    notified: bool = False
    url_documents: dict[str, str] = field(default_factory=dict)
    fetcher: threading.Thread | None = None
    index: PassageIndex | None = None
    index_lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(eq=False)
class Model:
    """A model id: its latest generation and the one inference answers from."""

    model_id: str
    current: Generation
    deployed: Generation | None = None
    semantic_cache: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Event:
    """A callback to send: a training ended (``TrainFailed``) or its model was deployed (``TrainSuccess``)."""

    model_id: str
    event: str
    training_status: str
    inference_status: str | None
    percent: int
    callback: CallbackInfo


class Trainings:
    """
    Every model id and where its training stands.

    :param advance: ``poll`` or ``time`` (see :class:`SestekEmulator`).
    :param steps_per_poll: statuses per progress call in ``poll`` mode.
    :param seconds_per_step: seconds per status in ``time`` mode.
    :param status_case: ``title`` or ``lower``.
    :param fail_models: model ids whose trainings fail at the ``Training`` step.
    """

    def __init__(
        self, advance: str, steps_per_poll: int, seconds_per_step: float, status_case: str, fail_models: Iterable[str]
    ) -> None:
        self.advance = advance
        self.steps_per_poll = steps_per_poll
        self.seconds_per_step = seconds_per_step
        self.status_case = status_case
        self._initial_fail_models = frozenset(fail_models)
        self.models: dict[str, Model] = {}
        self.fail_models: set[str] = set(self._initial_fail_models)
        self._global: tuple[str, ...] | None = None
        self._per_model: dict[str, tuple[str, ...]] = {}
        self._cache: dict[str, _Sequence] = {}

    def reset(self) -> None:
        """Forget every model and override; keep the configuration."""
        self.models.clear()
        self.fail_models = set(self._initial_fail_models)
        self._global = None
        self._per_model.clear()
        self._cache.clear()

    def set_lifecycle(self, model_id: str | None, statuses: tuple[str, ...] | None) -> None:
        """
        Override the status sequence of one model, or of all (``model_id=None``).

        :param model_id: the model, or ``None``.
        :param statuses: the sequence, or ``None`` to remove the override.
        """
        if model_id is None:
            self._global = statuses
        elif statuses is None:
            self._per_model.pop(model_id, None)
        else:
            self._per_model[model_id] = statuses
        self._cache.clear()

    def fail_model(self, model_id: str, fail: bool) -> None:
        """
        Add ``model_id`` to the failing set, or remove it.

        :param model_id: the model id.
        :param fail: add (``True``) or remove.
        """
        if fail:
            self.fail_models.add(model_id)
        else:
            self.fail_models.discard(model_id)
        self._cache.clear()

    def case(self, status: str | None) -> str | None:
        """
        A status in the configured case.

        :param status: the status as documented.
        """
        if status is None or self.status_case == "title":
            return status
        return status.lower()

    def _sequence(self, model_id: str) -> _Sequence:
        cached = self._cache.get(model_id)
        if cached is not None:
            return cached
        statuses: Sequence[str]
        if model_id in self._per_model:
            statuses = self._per_model[model_id]
        else:
            statuses = self._global or TRAINING_STATUSES
            if model_id in self.fail_models:
                statuses = _failing(statuses)
        sequence = _Sequence.build(statuses)
        self._cache[model_id] = sequence
        return sequence

    def sync(self, model: Model, now: float) -> list[Event]:
        """
        Bring the current generation up to date with the clock (time mode) and the sequence.

        :param model: the model.
        :param now: ``time.monotonic()``.
        """
        gen = model.current
        sequence = self._sequence(model.model_id)
        if self.advance == "time":
            target = int((now - gen.created_mono) / self.seconds_per_step)
            gen.step = max(gen.step, min(target, sequence.last))
        gen.step = min(gen.step, sequence.last)
        return self._failure_events(model, sequence)

    def tick(self, now: float) -> list[Event]:
        """
        Advance the models a failure callback is still due for (time mode needs a clock nobody polls).

        :param now: ``time.monotonic()``.
        """
        events: list[Event] = []
        for model in self.models.values():
            if model.current.callback is not None and not model.current.notified:
                events.extend(self.sync(model, now))
        return events

    def _failure_events(self, model: Model, sequence: _Sequence) -> list[Event]:
        gen = model.current
        if gen.step != sequence.last or sequence.outcome != "failed" or gen.notified:
            return []
        gen.notified = True
        if gen.callback is None:
            return []
        status = self.case(sequence.statuses[gen.step]) or ""
        return [Event(model.model_id, "TrainFailed", status, None, sequence.percents[gen.step], gen.callback)]

    def observe(self, model: Model) -> tuple[str, int, str | None, bool]:
        """
        What a progress call reports now: status, percent, inference status, whether terminal.

        :param model: the model.
        """
        gen = model.current
        sequence = self._sequence(model.model_id)
        at_end = gen.step == sequence.last and sequence.outcome is not None
        inference = None
        if at_end and sequence.outcome == "completed":
            inference = _INFERENCE_STAGES[gen.publish_stage]
        status = self.case(sequence.statuses[gen.step]) or ""
        return status, sequence.percents[gen.step], self.case(inference), at_end

    def poll(self, model_id: str) -> tuple[dict[str, Any] | None, list[Event]]:
        """
        Answer a progress call and move the training on; ``None`` for an unknown model.

        :param model_id: the model id.
        """
        model = self.models.get(model_id)
        if model is None:
            return None, []
        events = self.sync(model, time.monotonic())
        gen = model.current
        gen.polls += 1
        sequence = self._sequence(model.model_id)
        finished = gen.step == sequence.last and sequence.outcome == "completed"
        if finished:
            # The documented quirk: for API trainings the progress call *after* completion deploys the
            # model, so publishing moves one stage per poll that follows the first Completed answer.
            # The stage changes before answering: the status a client sees is the real one, and a
            # model it saw as Pending really is not answerable yet.
            if not gen.completed_seen:
                gen.completed_seen = True
            elif gen.publish_stage < len(_INFERENCE_STAGES) - 1:
                gen.publish_stage += 1
                if gen.publish_stage == len(_INFERENCE_STAGES) - 1:
                    events.extend(self._deploy(model))
        status, percent, inference, _ = self.observe(model)
        answer = {"percent": percent, "trainingStatus": status, "inferenceStatus": inference}
        if not finished and self.advance == "poll" and gen.step < sequence.last:
            gen.step = min(gen.step + self.steps_per_poll, sequence.last)
            events.extend(self._failure_events(model, sequence))
        return answer, events

    def _deploy(self, model: Model) -> list[Event]:
        gen = model.current
        model.deployed = gen
        model.semantic_cache.clear()
        if gen.notified or gen.callback is None:
            return []
        gen.notified = True
        completed, running = self.case("Completed") or "", self.case("Running")
        return [Event(model.model_id, "TrainSuccess", completed, running, 100, gen.callback)]

    def create(
        self,
        model_id: str,
        project_name: str,
        files: Sequence[ReceivedFile],
        urls: Sequence[str],
        callback: CallbackInfo | None,
        upload_dir: str,
    ) -> tuple[Generation | None, list[Event]]:
        """
        Start a training; ``None`` when the model's previous training has not ended yet.

        :param model_id: the model id.
        :param project_name: ``projectName``.
        :param files: the uploaded data files.
        :param urls: the ``dataUrls``.
        :param callback: the callback fields.
        :param upload_dir: where the files are.
        """
        model = self.models.get(model_id)
        events: list[Event] = []
        if model is not None:
            events = self.sync(model, time.monotonic())
            if not self.observe(model)[3]:
                return None, events
        gen = Generation(
            number=0 if model is None else model.current.number + 1,
            project_name=project_name,
            files=tuple(files),
            urls=tuple(urls),
            callback=callback,
            upload_dir=upload_dir,
            project_id=str(uuid.uuid4()) if model is None else model.current.project_id,
        )
        if model is None:
            self.models[model_id] = Model(model_id, gen)
        else:
            model.current = gen
        return gen, events

    def published(self, model_id: str) -> tuple[Model | None, Generation | None, bool, list[Event]]:
        """
        What inference on ``model_id`` can use: the model, its deployed generation, whether it is trained.

        :param model_id: the model id.
        """
        model = self.models.get(model_id)
        if model is None:
            return None, None, False, []
        events = self.sync(model, time.monotonic())
        status, _, _, terminal = self.observe(model)
        return model, model.deployed, terminal and status.lower() == "completed", events

    def snapshots(self, now: float) -> tuple[dict[str, Training], list[Event]]:
        """
        A :class:`Training` per model id, brought up to date first.

        :param now: ``time.monotonic()``.
        """
        events: list[Event] = []
        snapshots = {}
        for model in self.models.values():
            events.extend(self.sync(model, now))
            gen = model.current
            status, percent, inference, _ = self.observe(model)
            snapshots[model.model_id] = Training(
                model_id=model.model_id,
                project_name=gen.project_name,
                status=status,
                percent=percent,
                inference_status=inference,
                generation=gen.number,
                files=gen.files,
                urls=gen.urls,
                callback=gen.callback,
                created_at=gen.created_at,
                experiment_id=gen.experiment_id,
                project_id=gen.project_id,
                published=model.deployed is not None,
                deployed_generation=None if model.deployed is None else model.deployed.number,
                polls=gen.polls,
            )
        return snapshots, events
