"""
The training lifecycle's rules, checked as a state machine (hypothesis ``RuleBasedStateMachine``) on the
pure :class:`Trainings` with a clock the test owns: any interleaving of trainings, retrains, polls, the
clock moving, the failure ticker, inference lookups and resets, in both ``poll`` and ``time`` mode.

What must hold after every step:

- within one generation the percent never goes down and a terminal training stays terminal;
- the inference status only moves ``None -> Pending -> Running``, and only after ``Completed``;
- a retrain is refused exactly while the latest training has not ended;
- every generation with a callback sends at most one event: ``TrainSuccess`` when it is deployed,
  ``TrainFailed`` when it failed, and nothing else; one without a callback sends none;
- the generation inference answers from only ever moves forward, and is never one that failed.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from airflow_provider_sestek.testing._lifecycle import Event, Observation, TrainingRequest, Trainings
from airflow_provider_sestek.testing._model import CallbackInfo

MODELS = st.sampled_from(["m1", "m2", "bad"])
_INFERENCE_ORDER = {None: 0, "Pending": 1, "Running": 2}


@dataclass
class _Seen:
    experiment_id: str
    percent: int = 0
    terminal: bool = False
    inference: int = 0
    events: int = 0
    has_callback: bool = False


class LifecycleRules(RuleBasedStateMachine):
    def __init__(self, advance: str = "poll") -> None:
        super().__init__()
        self.now = 1000.0
        self.trainings = Trainings(advance, 2, 1.0, "title", ["bad"])
        self.seen: dict[str, _Seen] = {}
        self.deployed: dict[str, int] = {}

    def _check(self, model_id: str, seen: Observation) -> None:
        model = self.trainings.models[model_id]
        record = self.seen[model_id]
        assert record.experiment_id == model.current.experiment_id
        assert seen.percent >= record.percent, (record, seen)
        assert seen.terminal or not record.terminal, (record, seen)
        stage = _INFERENCE_ORDER[seen.inference_status]
        assert stage >= record.inference
        assert stage == 0 or (seen.terminal and seen.status == "Completed")
        record.percent, record.terminal, record.inference = seen.percent, seen.terminal, stage

    def _take_events(self) -> None:
        for event in self.trainings.take_events():
            self._on_event(event)

    def _on_event(self, event: Event) -> None:
        model = self.trainings.models[event.model_id]
        record = self.seen[event.model_id]
        record.events += 1
        assert record.has_callback and record.events == 1, (event, record)
        if event.event == "TrainSuccess":
            assert model.deployed is model.current and event.inference_status == "Running"
        else:
            assert event.event == "TrainFailed" and event.training_status == "Failed"

    @rule(model_id=MODELS, callback=st.booleans())
    def train(self, model_id: str, callback: bool) -> None:
        model = self.trainings.models.get(model_id)
        ended = True
        if model is not None:
            self.trainings.sync(model, self.now)  # what create() sees first
            self._take_events()
            ended = self.trainings.observe(model).terminal
        info = CallbackInfo("http://127.0.0.1:9/hook", None, None, None) if callback else None
        gen = self.trainings.create(TrainingRequest(model_id, "P", (), ("http://x/faq",), info, "/tmp/none"), self.now)
        self._take_events()
        assert (gen is not None) == ended
        if gen is not None:
            self.seen[model_id] = _Seen(gen.experiment_id, has_callback=callback)

    @rule(model_id=MODELS)
    def poll(self, model_id: str) -> None:
        seen = self.trainings.poll(model_id, self.now)
        if seen is None:
            assert model_id not in self.trainings.models
            return
        self._take_events()
        self._check(model_id, seen)

    @rule(model_id=MODELS)
    def ask(self, model_id: str) -> None:
        published = self.trainings.published(model_id, self.now)
        self._take_events()
        if published is None:
            assert model_id not in self.trainings.models
            return
        if published.deployed is not None:
            assert published.deployed.number >= self.deployed.get(model_id, -1)
            self.deployed[model_id] = published.deployed.number

    @rule(seconds=st.floats(0, 5))
    def clock(self, seconds: float) -> None:
        self.now += seconds
        self.trainings.tick(self.now)
        self._take_events()

    @rule()
    def reset(self) -> None:
        self.trainings.reset()
        self.seen.clear()
        self.deployed.clear()
        assert self.trainings.take_events() == []

    @invariant()
    def snapshots_agree_and_failed_generations_are_never_deployed(self) -> None:
        snapshots = self.trainings.snapshots(self.now)
        self._take_events()
        for model_id, model in self.trainings.models.items():
            snapshot = snapshots[model_id]
            assert snapshot.generation == model.current.number
            if model.deployed is not None:
                assert model_id != "bad"  # fail_models fail at the Training step: never deployed
                assert snapshot.deployed_generation == model.deployed.number
            if model.current.callback is None:
                assert self.seen[model_id].events == 0


def test_the_lifecycle_rules_hold_when_polls_move_trainings() -> None:
    run_state_machine_as_test(
        lambda: LifecycleRules("poll"), settings=settings(max_examples=100, stateful_step_count=40, deadline=None)
    )


def test_the_lifecycle_rules_hold_when_the_clock_moves_trainings() -> None:
    run_state_machine_as_test(
        lambda: LifecycleRules("time"), settings=settings(max_examples=100, stateful_step_count=40, deadline=None)
    )
