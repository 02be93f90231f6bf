"""Run one task in a real DAG with ``dag.test()`` and collect what it produced."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pendulum

_COLLECTED: dict[str, dict[str, Any]] = {}
#: DAG factories by dag id; the DAG files written for the bundle look them up here (parsing is in-process).
FACTORIES: dict[str, Callable[[], Any]] = {}

XCOM_KEYS = ("return_value", "model_id", "sestek_portal_url")


@dataclass
class RunResult:
    """
    What one ``run_task`` produced. ``state`` is the state of the task under test, not of the DAG run: the
    run's only leaf is the ``all_done`` collector, so the run succeeds whatever the task did (``run_state``).
    """

    run_state: str
    task_states: dict[str, str]
    xcom: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> str:
        return self.task_states.get("under_test", "missing")

    @property
    def value(self) -> Any:
        return self.xcom.get("return_value")


def run_dag_file(dag_id: str, build: Callable[[], Any], **test_kwargs: Any) -> Any:
    """
    Put a DAG where the DAG bundle finds it (Airflow 3's dag.test() needs that), run ``dag.test()``
    in-process (a deferred task's trigger runs inline) and return the DagRun.
    """
    FACTORIES[dag_id] = build
    path = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / f"{dag_id}.py"
    path.write_text(
        "# An Airflow DAG file (safe-mode discovery looks for the words airflow and dag).\n"
        "from tests.dag_runner import FACTORIES\n"
        f"if {dag_id!r} in FACTORIES:\n"
        f"    dag = FACTORIES[{dag_id!r}]()\n"
    )
    try:
        return build().test(**test_kwargs)
    finally:
        path.unlink()
        FACTORIES.pop(dag_id, None)


def run_task(
    factory: Callable[[], Any],
    *,
    dag_kwargs: dict[str, Any] | None = None,
    dag_id: str | None = None,
    test_kwargs: dict[str, Any] | None = None,
) -> RunResult:
    """
    Build ``factory()`` (one operator, task_id ``under_test``) into a DAG with a collector downstream, run it
    with ``dag.test()``, and report the states and the XCom the task pushed. The same ``dag_id`` and
    ``test_kwargs={"logical_date": ...}`` twice run the same DAG run again (``dag.test()`` clears its tasks
    first, like ``airflow tasks clear``).
    """
    from airflow.providers.common.compat.sdk import DAG, task

    dag_id = dag_id or f"t_{uuid.uuid4().hex[:10]}"

    def build() -> Any:
        with DAG(
            dag_id=dag_id,
            schedule=None,
            start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
            catchup=False,
            **(dag_kwargs or {}),
        ) as dag:
            op = factory()

            @task(task_id="collect", trigger_rule="all_done")
            def collect(**context: Any) -> None:
                ti = context["ti"]
                _COLLECTED[dag_id] = {key: ti.xcom_pull(task_ids=op.task_id, key=key) for key in XCOM_KEYS}

            op >> collect()
        return dag

    dag_run = run_dag_file(dag_id, build, **(test_kwargs or {}))
    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()}
    return RunResult(str(getattr(dag_run.state, "value", dag_run.state)), states, _COLLECTED.pop(dag_id, {}))


def fails_once() -> Any:
    """A ``post_execute`` that raises the first time: the try fails after ``execute()`` returned."""
    calls: list[int] = []

    def post_execute(context: Any, result: Any = None) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("outlet events could not be recorded")

    return post_execute


def without_connection_echo(text: str, *passwords: str) -> str:
    """
    ``text`` without Airflow 3.0's own DEBUG lines that print a connection's password as it registers it with
    the masker (``Sending request msg=MaskSecret(value='...')``, sent when a task reads a connection; 3.1
    masks first). Other lines, and every line on other Airflow lines, are kept.

    :param text: the task output.
    :param passwords: the passwords of the connections the task reads.
    """
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_1_PLUS

    if not AIRFLOW_V_3_0_PLUS or AIRFLOW_V_3_1_PLUS:
        return text
    echoes = tuple(f"MaskSecret(value={p!r}" for p in passwords)
    return "\n".join(line for line in text.splitlines() if not any(echo in line for echo in echoes))
