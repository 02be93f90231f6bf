"""
The fault matrix: every fault x phase x mode, each a real DAG run (``dag.test()``) against the emulator over
real HTTP. Each case asserts the task's final state, the number of trainings the server created, that the
fault was really delivered, and for failures the message. The table is printed at the end of the session.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pendulum
import pytest

from airflow_provider_sestek.testing import Fault, SestekEmulator
from tests.conftest import connection_json
from tests.dag_runner import run_dag_file
from tests.reliability import _matrix
from tests.reliability.conftest import Waiters

pytestmark = pytest.mark.usefixtures("airflow_db", "fast_retries")

MODEL = "matrix-bot"
POLL = 0.02
REPO = Path(__file__).parent.parent.parent


def _build(dag_id: str, mode: str, faq: str, waiters: Waiters) -> Any:
    from airflow.providers.common.compat.sdk import DAG

    from airflow_provider_sestek.operators.sestek import SestekTrainOperator
    from airflow_provider_sestek.sensors.sestek import SestekTrainingSensor

    common: dict[str, Any] = {"model_id": MODEL, "project_name": "Fault matrix", "data_files": [faq]}
    with DAG(dag_id=dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False) as dag:
        if mode == "sensor":
            submit = SestekTrainOperator(
                # poll_interval: the looks after a submit of unknown outcome are that far apart (default 30 s).
                task_id="submit",
                wait_for_completion=False,
                poll_interval=POLL,
                **common,
            )
            wait = SestekTrainingSensor(
                task_id="under_test",
                model_id=MODEL,
                mode="poke",
                deferrable=False,
                poke_interval=POLL,
                timeout=120,
                pre_execute=waiters.sensor_pre_execute(),
            )
            submit >> wait
        else:
            SestekTrainOperator(task_id="under_test", deferrable=mode == "deferrable", poll_interval=POLL, **common)
    return dag


def _inject(emu: SestekEmulator, waiters: Waiters, fault: str, phase: str, mode: str) -> None:
    """Up front (the worker's requests) or when the waiter starts (trigger / sensor), as the phase needs."""
    made = _matrix.faults(fault, phase)
    waiters.emulator = emu
    if phase == "token":
        if mode != "sensor":
            for f in made:
                emu.add_fault(f)
        if mode != "sync":
            waiters.faults = made
    elif phase in ("lookup", "submit", "submit-lost"):
        for f in made:
            emu.add_fault(f)
    elif mode == "sync":
        # The operator looks at progress once before submitting; this placeholder (answered normally after
        # 1 ms) takes that request, so the fault hits the first poll after the submit.
        emu.add_fault(Fault(endpoint="progress", kind="delay", delay=0.001, when=made[0].when))
        for f in made:
            emu.add_fault(f)
    else:
        waiters.faults = made


@pytest.mark.parametrize(
    ("fault", "phase", "mode"), _matrix.cases(), ids=[_matrix.case_id(*case) for case in _matrix.cases()]
)
def test_fault(
    fault: str,
    phase: str,
    mode: str,
    emulator_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    faq: str,
    waiters: Waiters,
    capsys: pytest.CaptureFixture[str],
) -> None:
    emu: SestekEmulator = emulator_factory(steps_per_poll=8)
    extra = {"timeout": _matrix.READ_TIMEOUT} if fault == "timeout" else {}
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emu, **extra))
    _inject(emu, waiters, fault, phase, mode)
    want = _matrix.expected(fault, phase, mode)

    dag_id = f"matrix_{uuid.uuid4().hex[:10]}"
    dag_run = run_dag_file(dag_id, lambda: _build(dag_id, mode, faq, waiters))
    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()}
    out = "".join(capsys.readouterr())

    faulted = [f"{r.endpoint}:{r.fault}" for r in emu.requests if r.fault and not r.fault.startswith("delay")]
    context = f"states={states} faulted={faulted} requests={[(r.endpoint, r.status) for r in emu.requests]}"
    assert states["under_test"] == want.state, context + "\n" + out[-3000:]
    if mode == "sensor":
        assert states["submit"] == want.submit_state, context
    assert emu.counters["trainings_created"] == want.trainings, context
    # The fault was really delivered (none left over), at the intended endpoint.
    assert emu.faults == [], context
    endpoint = {"token": "token", "lookup": "progress", "progress": "progress"}.get(phase, "train")
    assert any(r.endpoint == endpoint and r.fault for r in emu.requests), context
    if want.state == "success":
        training = emu.trainings[MODEL]
        assert (training.status, training.inference_status) == ("Completed", "Running"), context
        if mode == "deferrable":
            assert waiters.started == ["trigger"], context
    for needle in want.message:
        assert needle in out, f"{needle!r} not in the task log\n{out[-3000:]}"


def test_matrix_is_complete() -> None:
    """
    11 faults x 3 phases (token, submit, progress) x 3 modes, plus the submit faults arriving before anything
    was created and the faults of the look-up before the submit.
    """
    all_cases = _matrix.cases()
    assert len(_matrix.FAULTS) == 11 and len(_matrix.MODES) == 3
    assert len([c for c in all_cases if c[1] in ("token", "submit", "progress")]) == 99
    assert len(all_cases) == 99 + 8 * 3 + 10 * 3


def test_reliability_doc_carries_the_matrix() -> None:
    """RELIABILITY.md shows exactly the cases and expected outcomes this suite asserts."""
    doc = (REPO / "RELIABILITY.md").read_text()
    table = _matrix.render_table({case: "passed" for case in _matrix.cases()})
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    for row in rows:
        assert row in doc, f"RELIABILITY.md lacks the row {row!r}"
    assert re.search(rf"\b{len(_matrix.cases())} cases\b", doc), "RELIABILITY.md must state the number of cases"
