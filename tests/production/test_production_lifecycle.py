"""
The production-shaped deployment (``tests/production/test_production.py``'s fixture: PostgreSQL, Redis,
CeleryExecutor with two workers, two triggerers, moto S3, the Sestek emulator) through both triggerers killed,
clears of mapped runs and a worker killed mid-submit: each model trained exactly once per run or clear, no secret
left anywhere. One deployment, the scenarios in order; see README_disruptions.md here for what held and broke.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from airflow_provider_sestek.testing import Fault
from tests.production._services import postgres_texts, redis_texts
from tests.production.test_production import EXAMPLE, SECRETS, TRIGGERERS, WORKERS, Production
from tests.real_airflow._harness import RunWatch, file_texts, follow_run, occurrences, wait_for

pytestmark = [pytest.mark.airflow_production, pytest.mark.slow, pytest.mark.timeout(900)]

CRASH_DAG = "sestek_production_submit_crash_waiting"
CRASH_MODEL = "acme-submit-crash-waiting"
MODEL_IDS = ["acme-support-en", "acme-support-de", "acme-support-tr", "acme-sales-en", "acme-sales-de"]
TIMINGS: dict[str, float] = {}


def _created(production: Production) -> int:
    return int(production.counters()["trainings_created"])


def _clear(production: Production, run_id: str, task_ids: list[Any] | None = None) -> None:
    body: dict[str, Any] = {
        "dag_run_id": run_id,
        "dry_run": False,
        "only_failed": False,
        "reset_dag_runs": True,
        "include_downstream": True,
    }
    if task_ids is not None:
        body["task_ids"] = task_ids
    production.airflow.api("POST", f"/dags/{EXAMPLE}/clearTaskInstances", json=body)


def _rerun(production: Production, run_id: str, timeout: float = 300) -> str:
    # The clear resets the run to queued; wait until the scheduler has it running or done again.
    time.sleep(2)
    return follow_run(production.airflow, EXAMPLE, run_id, timeout)


def test_both_triggerers_killed_then_clears_retrain_exactly_once_per_model(production: Production) -> None:
    """
    Five mapped deferred waits; both triggerers SIGKILLed, then restarted: five trainings, every try 1. Then a
    clear of the whole mapped run retrains each model exactly once (+5), and a clear of one mapped instance
    retrains that model only (+1).
    """
    started = time.monotonic()
    airflow = production.airflow
    before = _created(production)
    run_id = airflow.trigger(EXAMPLE)
    watch = RunWatch()

    production.follow_until_waits_are_deferred(run_id, watch)
    for name in TRIGGERERS:
        airflow.retire(name, kill=True)
    time.sleep(5)  # the waits sit with no triggerer alive
    for name in TRIGGERERS:
        production.airflow.restart(name)
    state = follow_run(airflow, EXAMPLE, run_id, 300, watch)
    assert state == "success", watch.seen
    trains = [ti for ti in production.task_instances(EXAMPLE, run_id) if ti["task_id"] == "train"]
    assert sorted(ti["try_number"] for ti in trains) == [1] * 5, trains
    assert _created(production) - before == 5
    TIMINGS["triggerers killed"] = time.monotonic() - started

    started = time.monotonic()
    _clear(production, run_id)
    assert _rerun(production, run_id) == "success"
    assert _created(production) - before == 10, "a clear of the mapped run retrains each of 5 models once"
    TIMINGS["clear whole mapped run"] = time.monotonic() - started

    started = time.monotonic()
    generations = {m: production.training(m) for m in MODEL_IDS}
    _clear(production, run_id, [["train", 2]])
    assert _rerun(production, run_id) == "success"
    assert _created(production) - before == 11, "a clear of one mapped instance retrains that model only"
    changed = {m for m in MODEL_IDS if production.training(m) != generations[m]}
    assert MODEL_IDS[2] in changed, changed
    TIMINGS["clear one mapped instance"] = time.monotonic() - started


def test_worker_killed_after_the_training_was_created_but_before_the_submit_answer(production: Production) -> None:
    """
    A model id never trained before; the train POST creates the training but its answer is held back (the
    record in the task state store is still ``submitting``); the worker is SIGKILLed then. The training ends
    before the retry looks (the retry waits for the heartbeat timeout). The only training of this model id is
    the one this task created: the retry must collect it, not start a second training.
    """
    started = time.monotonic()
    # The variant waiting for the inference endpoint; the other one (the defect this scenario found) is
    # test_production.py::test_worker_killed_mid_submit_retry_collects_the_training.
    dag_id, model_id = CRASH_DAG, CRASH_MODEL
    airflow, emulator = production.airflow, production.emulator.client
    airflow.wait_for_dag(dag_id, timeout=180)
    emulator.set_lifecycle(model_id, ["Initialized", "DatasetUploading", "Training", "Completed"])
    emulator.add_fault(Fault(endpoint="train", kind="delay", delay=50, when="after", model_id=model_id))
    before = _created(production)
    run_id = airflow.trigger(dag_id)

    def created() -> dict[str, Any] | None:
        if model_id not in production.emulator.client.state()["trainings"]:
            return None
        (ti,) = production.task_instances(dag_id, run_id)
        return ti if ti["state"] == "running" and ti["hostname"] in WORKERS else None

    first = wait_for("the training to be created while its POST hangs", created, 180, interval=0.2)
    killed = first["hostname"]
    records = production.postgres.query(
        "SELECT value FROM task_state_store WHERE dag_id = %s AND run_id = %s", dag_id, run_id
    )
    airflow.retire(killed, kill=True)
    try:
        state = follow_run(airflow, dag_id, run_id, 300)
    finally:
        production.airflow.restart(killed)
    TIMINGS[f"worker killed mid-submit ({model_id})"] = time.monotonic() - started
    print("record when killed:", records)
    assert state == "success"
    assert _created(production) - before == 1, "the retry submitted a second training of a model trained once"


def test_no_secret_in_redis_postgres_or_logs_after_the_disruptions(production: Production) -> None:
    """Every Redis key of the Celery broker, every PostgreSQL cell (celery_taskmeta too) and every log."""
    corpus = redis_texts(production.airflow.env_extra["AIRFLOW__CELERY__BROKER_URL"])
    corpus += postgres_texts(production.postgres, production.airflow.fernet_key)
    corpus += file_texts(production.work)
    tables = {where.split(".")[0] for where, _ in corpus}
    print("redis keys:", sorted({w for w, _ in corpus if w.startswith("redis:")})[:20])
    assert "task_state_store" in tables, sorted(tables)
    leaks = occurrences(SECRETS, corpus)
    assert leaks == [], "secrets found:\n" + "\n".join(leaks[:50])
    print("timings:", {k: round(v) for k, v in TIMINGS.items()})
