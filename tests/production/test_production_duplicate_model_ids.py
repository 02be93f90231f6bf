"""
A mapped training over one model id listed twice trains it once, the instances running at once on two Celery
workers, then the whole run cleared and run again.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.production.test_production import Production
from tests.real_airflow._harness import RunWatch, follow_run

pytestmark = [pytest.mark.airflow_production, pytest.mark.slow, pytest.mark.timeout(900)]

DAG_ID = "sestek_production_duplicate_ids"


def test_duplicate_model_ids_race_on_two_workers_then_clear(production: Production) -> None:
    started = time.monotonic()
    airflow = production.airflow
    shutil.copy(Path(__file__).parent / "dags" / f"{DAG_ID}.py", airflow.dags)
    airflow.wait_for_dag(DAG_ID, timeout=180)
    before = int(production.counters()["trainings_created"])
    run_id = airflow.trigger(DAG_ID)
    watch = RunWatch()
    state = follow_run(airflow, DAG_ID, run_id, 300, watch)
    tis = production.task_instances(DAG_ID, run_id)
    print("first run:", [(ti["map_index"], ti["state"], ti["try_number"], ti["hostname"]) for ti in tis])
    assert state == "success", watch.seen
    first = int(production.counters()["trainings_created"]) - before
    assert first == 2, f"{first} trainings for two model ids"

    body = {"dag_run_id": run_id, "dry_run": False, "only_failed": False, "reset_dag_runs": True}
    airflow.api("POST", f"/dags/{DAG_ID}/clearTaskInstances", json=body)
    time.sleep(2)
    state = follow_run(airflow, DAG_ID, run_id, 300, watch)
    tis = production.task_instances(DAG_ID, run_id)
    print("after clear:", [(ti["map_index"], ti["state"], ti["try_number"], ti["hostname"]) for ti in tis])
    print(f"duplicate ids scenario: {time.monotonic() - started:.0f} s")
    assert state == "success", watch.seen
    assert int(production.counters()["trainings_created"]) - before == 4, "a clear retrains each model once"
