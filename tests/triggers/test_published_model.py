"""
The publication watcher's firing rule as a model (hypothesis ``RuleBasedStateMachine``): the real
``SestekModelPublishedTrigger`` against the emulator over HTTP, re-created from its kwargs at every step (a
triggerer restart) with the same asset state store, over random sequences of trainings started elsewhere,
404 flaps (a gateway restarting), 503s and short-lived tokens.

Invariant, after every step: the watcher fired exactly once per real publication, numbered 1, 2, 3, ...
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from airflow_provider_sestek.exceptions import SestekAuthError
from airflow_provider_sestek.hooks.sestek import SestekHook, clear_token_cache
from airflow_provider_sestek.testing import Fault, SestekEmulator
from tests.conftest import connection_json
from tests.triggers.test_published import MemoryStore, needs_airflow_3, polls, trigger, until, watching

MODEL = "watched-bot"


class WatcherRule(RuleBasedStateMachine):
    """One watched model; the world trains it, breaks the gateway, and the triggerer restarts at every step."""

    emulator: ClassVar[SestekEmulator]
    data: ClassVar[Path]
    totals: ClassVar[dict[str, int]] = {"publications": 0}

    def __init__(self) -> None:
        super().__init__()
        self.emu = self.emulator
        self.emu.reset()
        self.store = MemoryStore()
        self.publications = 0
        self.events: list[dict[str, Any]] = []

    def _watch(self, before: Any, polls_after: int) -> None:
        """A triggerer (re)start: the trigger re-created from its kwargs, run for a while, then stopped."""

        async def scenario() -> None:
            clear_token_cache()  # a new triggerer process
            async with watching(trigger(MODEL), self.store) as events:
                await before()
                await polls(self.emu, MODEL, polls_after)
            self.events.extend(events)

        asyncio.run(scenario())

    def _submit_elsewhere(self) -> str:
        """
        The other pipeline's POST. It is not under test: with the 0.5 s tokens the watcher is tested with, a
        loaded machine can let both the token and its one refresh expire before the upload arrives (401 twice).
        A 401 creates no training, so the pipeline just sends it again: the model stays deterministic.
        """
        for _ in range(5):
            try:
                return str(SestekHook().submit_training(MODEL, "Elsewhere", data_files=[str(self.data)])["id"])
            except SestekAuthError:
                clear_token_cache()
        raise AssertionError("the other pipeline's training was refused 5 times with a 401")

    @rule()
    def a_training_elsewhere_is_published(self) -> None:
        """Another pipeline trains the model; the watcher's polls see it train and get published."""
        experiment = self._submit_elsewhere()

        def done() -> bool:
            training = self.emu.trainings[MODEL]
            return training.experiment_id == experiment and training.inference_status == "Running"

        async def published() -> None:
            await until(done, timeout=30)

        self._watch(published, 3)
        self.publications += 1
        WatcherRule.totals["publications"] += 1

    @rule(count=st.integers(1, 3))
    def the_gateway_answers_404(self, count: int) -> None:
        self.emu.add_fault(Fault(endpoint="progress", kind="status", status=404, body="abp", count=count))

        async def nothing() -> None:
            return None

        self._watch(nothing, count + 2)

    @rule(count=st.integers(1, 3))
    def the_gateway_answers_503(self, count: int) -> None:
        self.emu.add_fault(Fault(endpoint="progress", kind="status", status=503, count=count))

        async def nothing() -> None:
            return None

        self._watch(nothing, count + 2)

    @invariant()
    def fired_exactly_once_per_publication(self) -> None:
        assert [e["publication"] for e in self.events] == list(range(1, self.publications + 1)), self.events


@needs_airflow_3
def test_the_watcher_fires_once_per_publication_over_restarts_and_flaps(
    emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    emu = emulator_factory(token_lifetime=0.5)
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emu))
    data = tmp_path / "faq.txt"
    data.write_text("Q: Hours?\nA: 9 to 17.\n")
    WatcherRule.emulator, WatcherRule.data = emu, data
    WatcherRule.totals["publications"] = 0
    run_state_machine_as_test(
        WatcherRule,
        settings=settings(
            max_examples=15,
            stateful_step_count=6,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
    assert WatcherRule.totals["publications"] >= 5, WatcherRule.totals
