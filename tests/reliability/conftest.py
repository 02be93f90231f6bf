"""
Fixtures of the reliability suite, and the fault-matrix summary printed at the end of the session.

The root ``tests/conftest.py`` provides the throwaway AIRFLOW_HOME, the emulator fixtures and ``airflow_db``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from airflow_provider_sestek.testing import Fault, SestekEmulator
from tests.reliability import _matrix

# --- "this runs in another process" --------------------------------------------------------------------------


@dataclass
class Waiters:
    """
    ``dag.test()`` runs every task and the trigger in one process, so they would share the token cache. In a
    real deployment the trigger runs in the triggerer and a sensor in its own worker process: each starts
    with no token. ``start`` models that (and injects faults meant for the waiter).

    :param faults: faults added to the emulator when a waiter starts.
    :param started: which waiters started (``trigger`` / ``sensor``), in order.
    """

    emulator: SestekEmulator | None = None
    faults: list[Fault] = field(default_factory=list)
    started: list[str] = field(default_factory=list)

    def start(self, kind: str) -> None:
        from airflow_provider_sestek.hooks.sestek import clear_token_cache

        clear_token_cache()
        self.started.append(kind)
        if self.emulator is not None:
            for fault in self.faults:
                self.emulator.add_fault(fault)

    def sensor_pre_execute(self) -> Callable[[Any], None]:
        return lambda context: self.start("sensor")


@pytest.fixture
def waiters(monkeypatch: pytest.MonkeyPatch) -> Iterator[Waiters]:
    """Make every SestekTrainingTrigger run start as if in a fresh triggerer process."""
    from airflow_provider_sestek.triggers.sestek import SestekTrainingTrigger

    state = Waiters()
    original = SestekTrainingTrigger.run

    async def run(self: SestekTrainingTrigger) -> AsyncIterator[Any]:
        state.start("trigger")
        async for event in original(self):
            yield event

    monkeypatch.setattr(SestekTrainingTrigger, "run", run)
    yield state


# --- summary table ---------------------------------------------------------------------------------------------

_BY_ID = {_matrix.case_id(*case): case for case in _matrix.cases()}
MATRIX_RESULTS: dict[tuple[str, str, str], str] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "test_fault_matrix.py::test_fault[" not in report.nodeid:
        return
    case = _BY_ID.get(report.nodeid.rsplit("[", 1)[1].rstrip("]"))
    if case is None:
        return
    if report.failed:
        MATRIX_RESULTS[case] = "failed"
    elif report.when == "call" and report.passed:
        MATRIX_RESULTS.setdefault(case, "passed")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not MATRIX_RESULTS:
        return
    passed = sum(1 for r in MATRIX_RESULTS.values() if r == "passed")
    terminalreporter.section("Sestek fault matrix")
    terminalreporter.write_line(_matrix.render_table(MATRIX_RESULTS))
    terminalreporter.write_line(
        f"fault matrix: {len(MATRIX_RESULTS)} of {len(_matrix.cases())} cases run, {passed} passed, "
        f"{len(MATRIX_RESULTS) - passed} failed"
    )
