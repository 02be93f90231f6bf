"""
The durable rule as a model (hypothesis ``RuleBasedStateMachine``): the real ``SestekTrainOperator`` and the real
``SestekTrainingTrigger`` against the emulator over HTTP, over random sequences of tries that crash at every
point, retries, clears after success and after failure, trainings of the same model id started by someone
else, 404 and 5xx flaps and short-lived tokens.

Airflow's part is played here, as its task runner does it: a try is a new operator instance with the next
``try_number`` and the same task state store; a deferral runs the trigger to its first event and resumes in a
new instance's ``execute_complete``; after ``execute`` returns, Airflow records the success and then runs the
success callbacks (the operator's own first). A crash is a ``BaseException`` raised at one of the points below,
as a worker that dies there would leave things.

Invariants, after every step:

- between two successes of the task, it creates at most one training (one more only after a try died with its
  POST's answer lost on a model trained before, the one case the progress endpoint cannot tell apart: see
  RELIABILITY.md);
- a success claims an experiment id only when it is the model's latest training; otherwise none;
- no secret (client secret, callback secret) in any error a try raised.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from airflow_provider_sestek.exceptions import SestekValidationError
from airflow_provider_sestek.hooks.sestek import SestekHook, clear_token_cache
from airflow_provider_sestek.operators._durable import STATE_KEY
from airflow_provider_sestek.operators.sestek import SestekTrainOperator
from airflow_provider_sestek.testing import Fault, SestekEmulator
from tests.conftest import connection_json

AIRFLOW_3_3 = __import__("airflow.providers.common.compat.version_compat", fromlist=["x"]).AIRFLOW_V_3_3_PLUS
pytestmark = [
    pytest.mark.skipif(not AIRFLOW_3_3, reason="the task state store arrived in Airflow 3.3"),
    pytest.mark.usefixtures("fast_retries"),
]

MODEL = "durable-bot"
CALLBACK_SECRET = "cb-secret-never-printed-7f3a"
#: Where a try dies. ``answer_lost``: the POST created the training, the worker died before reading the answer.
CRASHES = (None, "before_post", "answer_lost", "mid_wait", "after_execute", "after_success")


class WorkerDied(BaseException):
    """The worker process ends here (not an ``Exception``: no handler of the operator sees it)."""


class TaskStore:
    """The task state store of one task instance: JSON values by key, shared by all its tries."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return json.loads(json.dumps(self.values.get(key, default)))

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        self.values[key] = json.loads(json.dumps(value))

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


@dataclass
class TI:
    try_number: int = 0
    map_index: int = -1
    xcom: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value

    def xcom_pull(self, **kwargs: Any) -> Any:
        return self.xcom.get(kwargs.get("key", "return_value"))


class OutletEvents(dict[Any, Any]):
    """``context["outlet_events"]``: records each ``add(asset, extra=...)``."""

    def __init__(self) -> None:
        super().__init__()
        self.added: list[dict[str, Any]] = []

    def __missing__(self, alias: Any) -> Any:
        outer = self

        class Accessor:
            def add(self, asset: Any, extra: dict[str, Any] | None = None) -> None:
                outer.added.append(dict(extra or {}))

        return Accessor()


class DurableRule(RuleBasedStateMachine):
    """One task instance of a training task, tried again and again, and a world that does not stand still."""

    emulator: SestekEmulator
    #: Over all examples: tries run and tries that succeeded (a model that never succeeds proves nothing).
    totals: ClassVar[dict[str, int]] = {"tries": 0, "successes": 0, "collected": 0}

    def __init__(self) -> None:
        super().__init__()
        self.emu = self.emulator
        self.emu.reset()
        self.store = TaskStore()
        self.ti = TI()
        self.own: list[str] = []  # experiment ids of the trainings this task created, in order
        self.own_at_success = 0
        self.ambiguous = 0  # tries that died with their answer lost on a model trained before
        self.latest: str | None = None  # the model's latest training (own or foreign)
        self.succeeded = False
        self.errors: list[str] = []
        self.claims: list[tuple[str | None, str | None]] = []  # (claimed, latest) at each success

    # --- Airflow's part ---------------------------------------------------------------------------------------

    def _operator(self, deferrable: bool) -> SestekTrainOperator:
        return SestekTrainOperator(
            task_id="under_test",
            model_id=MODEL,
            project_name="Model",
            data_urls=["https://example.invalid/faq.txt"],
            callback_address="https://hooks.example.invalid/sestek",
            callback_identity_address="https://identity.example.invalid/connect/token",
            callback_client_id="cb-client",
            callback_client_secret=CALLBACK_SECRET,
            poll_interval=0.01,
            deferrable=deferrable,
            max_consecutive_failures=4,
            timeout=20,
        )

    def _context(self, op: SestekTrainOperator) -> dict[str, Any]:
        return {"ti": self.ti, "task_state_store": self.store, "outlet_events": OutletEvents(), "task": op}

    def _try(self, crash: str | None, deferrable: bool) -> None:
        """One try of the task, as Airflow's task runner runs it, dying at ``crash``."""
        from airflow.providers.common.compat.sdk import TaskDeferred

        clear_token_cache()  # a new worker process
        self.ti.try_number += 1
        had_training = MODEL in self.emu.trainings
        original = SestekHook.submit_training
        harness = self

        def submit(hook: SestekHook, *args: Any, **kwargs: Any) -> dict[str, Any]:
            if crash == "before_post":
                raise WorkerDied("before the POST")
            answer = original(hook, *args, **kwargs)
            harness.own.append(str(answer["id"]))
            harness.latest = str(answer["id"])
            if crash == "answer_lost":
                if had_training:
                    harness.ambiguous += 1
                raise WorkerDied("answer lost")
            return answer

        op = self._operator(deferrable)
        context = self._context(op)
        DurableRule.totals["tries"] += 1
        before = len(self.own)
        try:
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(SestekHook, "submit_training", submit)
                if crash == "mid_wait":
                    self._die_on_first_poll(patch)
                try:
                    result = op.execute(context)
                    final = op
                except TaskDeferred as deferred:
                    event = asyncio.run(self._first_event(deferred.trigger))
                    final = self._operator(deferrable)
                    context = self._context(final)
                    result = getattr(final, deferred.method_name)(context, event)
            if crash == "after_execute":
                raise WorkerDied("after execute returned")
        except WorkerDied:
            return
        except Exception as exc:  # a failed try: Airflow retries it or the user clears it
            assert not isinstance(exc, SestekValidationError), exc  # the harness's own arguments are valid
            self.errors.append(f"{exc!s} {exc!r}")
            return
        assert result["model_id"] == MODEL
        DurableRule.totals["successes"] += 1
        if len(self.own) == before:
            DurableRule.totals["collected"] += 1
        self.succeeded = True
        self.own_at_success = len(self.own)
        self.ambiguous = 0
        self.claims.append((final._experiment_id, self.latest))
        if crash == "after_success":
            return  # Airflow recorded the success; the worker died before the success callbacks
        for callback in final.on_success_callback:
            callback(context)

    def _die_on_first_poll(self, patch: pytest.MonkeyPatch) -> None:
        original = SestekHook.get_training_progress
        polls = {"n": 0}

        def progress(hook: SestekHook, *args: Any, **kwargs: Any) -> Any:
            polls["n"] += 1
            if polls["n"] > 1:  # the first look is before the submit; the wait's first poll dies
                raise WorkerDied("mid wait")
            return original(hook, *args, **kwargs)

        patch.setattr(SestekHook, "get_training_progress", progress)

    @staticmethod
    async def _first_event(trigger: Any) -> Any:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    # --- rules ------------------------------------------------------------------------------------------------

    @rule(crash=st.sampled_from(CRASHES), deferrable=st.booleans())
    def a_try(self, crash: str | None, deferrable: bool) -> None:
        """A retry after a failure, or a clear (after success or failure): Airflow runs the next try."""
        if self.succeeded:
            self.succeeded = False  # a new run of the task: a clear after success
        self._try(crash, deferrable)

    @rule()
    def someone_else_retrains(self) -> None:
        """Another pipeline or the Sestek UI trains the same model id (refused while a training runs)."""
        try:
            answer = SestekHook().submit_training(MODEL, "Elsewhere", data_urls=["https://example.invalid/b.txt"])
        except Exception:
            return
        self.latest = str(answer["id"])

    @rule(status=st.sampled_from([404, 503]), count=st.integers(1, 3))
    def progress_flaps(self, status: int, count: int) -> None:
        """A gateway restarting (404) or overloaded (503) for a few polls."""
        self.emu.add_fault(Fault(endpoint="progress", kind="status", status=status, body="abp", count=count))

    # --- invariants -------------------------------------------------------------------------------------------

    @invariant()
    def at_most_one_training_between_two_successes(self) -> None:
        assert len(self.own) - self.own_at_success <= 1 + self.ambiguous, (self.own, self.store.values)

    @invariant()
    def a_success_claims_only_the_latest_training(self) -> None:
        for claimed, latest in self.claims:
            assert claimed is None or claimed == latest, (claimed, latest)

    @invariant()
    def no_secret_in_any_error(self) -> None:
        for text in self.errors:
            assert CALLBACK_SECRET not in text
            assert "s3cr3t" not in text

    @invariant()
    def the_record_is_readable(self) -> None:
        value = self.store.values.get(STATE_KEY)
        assert value is None or value["phase"] in ("submitting", "submitted", "completed", "succeeded")


def test_the_durable_rule_holds_over_crashes_retries_clears_and_foreign_trainings(
    emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, airflow_db: str
) -> None:
    emu = emulator_factory(advance="time", seconds_per_step=0.01, token_lifetime=0.5)
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emu))
    DurableRule.emulator = emu
    DurableRule.totals.update(tries=0, successes=0, collected=0)
    run_state_machine_as_test(
        DurableRule,
        settings=settings(
            max_examples=30,
            # The same sequences every run: the coverage asserted below must not depend on the draw of a run.
            derandomize=True,
            stateful_step_count=10,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
    totals = DurableRule.totals
    # The sequences reached the interesting places: tries that succeeded, and retries that collected a result
    # without training again.
    print(f"durable model: {totals}")
    assert totals["tries"] >= 40 and totals["successes"] >= 8 and totals["collected"] >= 1, totals


def test_a_recorded_training_hidden_by_404s_is_not_trained_again(
    emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, airflow_db: str
) -> None:
    """
    A sequence the model found: once the server has confirmed this task's training, a retry whose looks all
    answer 404 (a gateway restarting) fails the try instead of submitting a second training.
    """
    emu = emulator_factory(advance="time", seconds_per_step=0.01, token_lifetime=0.5)
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emu))
    DurableRule.emulator = emu
    machine = DurableRule()
    steps: list[tuple[str, dict[str, Any]]] = [
        ("a_try", {"crash": "answer_lost", "deferrable": False}),
        ("a_try", {"crash": "before_post", "deferrable": False}),
        ("a_try", {"crash": "mid_wait", "deferrable": False}),
        ("a_try", {"crash": "mid_wait", "deferrable": False}),
        ("progress_flaps", {"count": 3, "status": 404}),
        ("progress_flaps", {"count": 2, "status": 503}),
        ("a_try", {"crash": "after_execute", "deferrable": False}),
        ("a_try", {"crash": None, "deferrable": False}),
    ]
    for name, kwargs in steps:
        getattr(machine, name)(**kwargs)
        machine.at_most_one_training_between_two_successes()
        machine.no_secret_in_any_error()
    assert any("not submitting a second one" in error for error in machine.errors), machine.errors
