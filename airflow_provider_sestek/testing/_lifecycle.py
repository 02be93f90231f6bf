"""
The training lifecycle: models, their generations, status sequences, publishing and the events that
trigger callbacks.

A plain state machine: no HTTP, no threads, no clock of its own (every call that moves time is given
``now``). Its owner serialises the calls (the emulator's state holds one lock around each), collects
the callbacks due with :meth:`Trainings.take_events` and sends them after releasing the lock. What
inference builds from a deployed generation (answer index, semantic cache) and the data-URL fetches
live with those concerns, keyed by :attr:`Generation.experiment_id`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ._model import FAILED_STATUS, TRAINING_STATUSES, CallbackInfo, ReceivedFile, Training

__all__ = ["Event", "Generation", "Model", "Observation", "Published", "TrainingRequest", "Trainings"]

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
    #: ``now`` of the :meth:`Trainings.create` call (the owner's monotonic clock).
    created_mono: float
    created_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    experiment_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    step: int = 0
    publish_stage: int = 0
    completed_seen: bool = False
    polls: int = 0
    notified: bool = False


@dataclass(eq=False)
class Model:
    """A model id: its latest generation and the one inference answers from."""

    model_id: str
    current: Generation
    deployed: Generation | None = None


@dataclass(frozen=True, slots=True)
class TrainingRequest:
    """
    A train call the API accepted as valid.

    :param model_id: ``modelId``.
    :param project_name: ``projectName``.
    :param files: the uploaded data files.
    :param urls: the ``dataUrls``.
    :param callback: the callback fields, when given.
    :param upload_dir: where the files are.
    """

    model_id: str
    project_name: str
    files: tuple[ReceivedFile, ...]
    urls: tuple[str, ...]
    callback: CallbackInfo | None
    upload_dir: str


@dataclass(frozen=True, slots=True)
class Observation:
    """
    What a progress call reports about a model's latest training.

    :param status: the training status, in the configured case.
    :param percent: the percentage.
    :param inference_status: ``None`` until deployment starts, then ``Pending`` and ``Running``.
    :param terminal: whether the training ended (``Completed`` or ``Failed``).
    """

    status: str
    percent: int
    inference_status: str | None
    terminal: bool

    def answer(self) -> dict[str, object]:
        """The progress endpoint's JSON body."""
        return {"percent": self.percent, "trainingStatus": self.status, "inferenceStatus": self.inference_status}


@dataclass(frozen=True, slots=True)
class Published:
    """
    What inference on a model can use.

    :param model_id: the model id.
    :param deployed: the generation inference answers from, ``None`` before the first deployment.
    :param trained: whether the latest training completed (deployment may still be pending).
    """

    model_id: str
    deployed: Generation | None
    trained: bool


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
        self._events: list[Event] = []

    def take_events(self) -> list[Event]:
        """The callbacks that became due since the last call, oldest first (the owner sends them)."""
        events, self._events = self._events, []
        return events

    def reset(self) -> None:
        """Forget every model, override and pending event; keep the configuration."""
        self.models.clear()
        self._events.clear()
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

    def sync(self, model: Model, now: float) -> None:
        """
        Bring the current generation up to date with the clock (time mode) and the sequence.

        :param model: the model.
        :param now: the owner's monotonic clock.
        """
        gen = model.current
        sequence = self._sequence(model.model_id)
        if self.advance == "time":
            # Compared as floats first: a tiny step makes the quotient too large for int() (inf).
            target = int(min((now - gen.created_mono) / self.seconds_per_step, sequence.last))
            gen.step = max(gen.step, target)
        gen.step = min(gen.step, sequence.last)
        self._note_failure(model, sequence)

    def tick(self, now: float) -> None:
        """
        Advance the models a failure callback is still due for (time mode needs a clock nobody polls).

        :param now: the owner's monotonic clock.
        """
        for model in self.models.values():
            if model.current.callback is not None and not model.current.notified:
                self.sync(model, now)

    def _note_failure(self, model: Model, sequence: _Sequence) -> None:
        gen = model.current
        if gen.step != sequence.last or sequence.outcome != "failed" or gen.notified:
            return
        gen.notified = True
        if gen.callback is not None:
            status = self.case(sequence.statuses[gen.step]) or ""
            self._events.append(
                Event(model.model_id, "TrainFailed", status, None, sequence.percents[gen.step], gen.callback)
            )

    def observe(self, model: Model) -> Observation:
        """
        What a progress call reports now, without moving anything.

        :param model: the model.
        """
        gen = model.current
        sequence = self._sequence(model.model_id)
        at_end = gen.step == sequence.last and sequence.outcome is not None
        inference = None
        if at_end and sequence.outcome == "completed":
            inference = _INFERENCE_STAGES[gen.publish_stage]
        status = self.case(sequence.statuses[gen.step]) or ""
        return Observation(status, sequence.percents[gen.step], self.case(inference), at_end)

    def peek(self, model_id: str, now: float) -> Observation | None:
        """
        What a progress call would report now, without counting a poll; ``None`` for an unknown model.

        :param model_id: the model id.
        :param now: the owner's monotonic clock.
        """
        model = self.models.get(model_id)
        if model is None:
            return None
        self.sync(model, now)
        return self.observe(model)

    def poll(self, model_id: str, now: float) -> Observation | None:
        """
        Answer a progress call and move the training on; ``None`` for an unknown model.

        :param model_id: the model id.
        :param now: the owner's monotonic clock.
        """
        model = self.models.get(model_id)
        if model is None:
            return None
        self.sync(model, now)
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
                    self._deploy(model)
        answer = self.observe(model)
        if not finished and self.advance == "poll" and gen.step < sequence.last:
            gen.step = min(gen.step + self.steps_per_poll, sequence.last)
            self._note_failure(model, sequence)
        return answer

    def _deploy(self, model: Model) -> None:
        gen = model.current
        model.deployed = gen
        if gen.notified or gen.callback is None:
            return
        gen.notified = True
        completed, running = self.case("Completed") or "", self.case("Running")
        self._events.append(Event(model.model_id, "TrainSuccess", completed, running, 100, gen.callback))

    def create(self, request: TrainingRequest, now: float) -> Generation | None:
        """
        Start a training; ``None`` when the model's previous training has not ended yet.

        :param request: what the train call asked for.
        :param now: the owner's monotonic clock.
        """
        model_id = request.model_id
        model = self.models.get(model_id)
        if model is not None:
            self.sync(model, now)
            if not self.observe(model).terminal:
                return None
        gen = Generation(
            number=0 if model is None else model.current.number + 1,
            project_name=request.project_name,
            files=request.files,
            urls=request.urls,
            callback=request.callback,
            upload_dir=request.upload_dir,
            project_id=str(uuid.uuid4()) if model is None else model.current.project_id,
            created_mono=now,
        )
        if model is None:
            self.models[model_id] = Model(model_id, gen)
        else:
            model.current = gen
        return gen

    def published(self, model_id: str, now: float) -> Published | None:
        """
        What inference on ``model_id`` can use; ``None`` for a model never trained.

        :param model_id: the model id.
        :param now: the owner's monotonic clock.
        """
        model = self.models.get(model_id)
        if model is None:
            return None
        self.sync(model, now)
        seen = self.observe(model)
        return Published(model_id, model.deployed, seen.terminal and seen.status.lower() == "completed")

    def snapshots(self, now: float) -> dict[str, Training]:
        """
        A :class:`Training` per model id, brought up to date first.

        :param now: the owner's monotonic clock.
        """
        snapshots = {}
        for model in self.models.values():
            self.sync(model, now)
            gen = model.current
            seen = self.observe(model)
            snapshots[model.model_id] = Training(
                model_id=model.model_id,
                project_name=gen.project_name,
                status=seen.status,
                percent=seen.percent,
                inference_status=seen.inference_status,
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
        return snapshots
