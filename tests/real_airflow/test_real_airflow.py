"""
A real Airflow (LocalExecutor, SQLite, throwaway AIRFLOW_HOME; scheduler, dag-processor, triggerer and
api-server as separate processes) runs the example DAG against the emulator, itself a separate process:

- the train task goes through ``deferred`` and succeeds;
- the triggerer is SIGKILLed while the task is deferred and a new one is started: the run still succeeds,
  the trigger row (and its absolute deadline) is the same, and Sestek saw exactly one training;
- with distinctive secrets, no secret or issued token appears in task logs, triggerer logs, process output,
  XCom, rendered template fields, the serialized DAG, trigger rows (decrypted) or any other table.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import time
import unittest.mock
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.real_airflow._harness import (
    Emulator,
    RealAirflow,
    RunWatch,
    db_texts,
    emulator_with_secrets,
    file_texts,
    follow_run,
    occurrences,
    sestek_connection_json,
    wait_for,
)

pytestmark = [pytest.mark.airflow_real, pytest.mark.slow, pytest.mark.timeout(420)]

if int(__import__("airflow").__version__.split(".")[0]) < 3:
    pytest.skip("drives the Airflow 3 components (api-server, dag-processor, REST API v2)", allow_module_level=True)

REPO = Path(__file__).parent.parent.parent
EXAMPLE = "example_sestek_generative_qa"
ASSET_EXAMPLE = "example_sestek_model_asset"
PRODUCER, CONSUMER = "example_sestek_model_producer", "example_sestek_model_consumer"
WATCHER_EXAMPLE = WATCHER = "example_sestek_model_watcher"
WATCHED_MODEL = "acme-watched-bot"
SECRETS_DAG = "sestek_reliability_secrets"

TRAIN_SECRET = "SECRET-train-9f3a"
INFERENCE_SECRET = "SECRET-infer-77b1"
CALLBACK_SECRET = "SECRET-callback-c0de"
TOKEN_PREFIX = "TOKEN-leak-"
SECRETS = [TRAIN_SECRET, INFERENCE_SECRET, CALLBACK_SECRET, TOKEN_PREFIX]
#: Seconds per training status: about 25 s from submit to Completed, time to kill a triggerer mid-wait.
SECONDS_PER_STEP = 3.0


@dataclass
class Deployment:
    work: Path
    emulator: Emulator
    airflow: RealAirflow
    #: Trigger rows (decrypted kwargs) seen while tasks were deferred: the table is emptied afterwards.
    trigger_rows: list[dict[str, Any]] = field(default_factory=list)

    def trainings_created(self) -> int:
        return int(self.emulator.client.state()["counters"]["trainings_created"])

    def triggers(self, kind: str | None = "SestekTrainingTrigger") -> list[dict[str, Any]]:
        """The trigger table now (the rows of class ``kind``; all with ``None``), kwargs decrypted."""
        from cryptography.fernet import Fernet

        fernet = Fernet(self.airflow.fernet_key.encode())
        db = self.airflow.home / "airflow.db"
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as conn:
            conn.row_factory = sqlite3.Row
            rows = [dict(row) for row in conn.execute("SELECT * FROM trigger")]
        rows = [row for row in rows if kind is None or str(row["classpath"]).endswith(f".{kind}")]
        for row in rows:
            raw = row.get("kwargs") or row.get("encrypted_kwargs") or ""
            text = fernet.decrypt(raw.encode()).decode() if str(raw).startswith("gAAAAA") else str(raw)
            row["decrypted_kwargs"] = text
            self.trigger_rows.append(row)
        return rows


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    work = Path(tempfile.mkdtemp(prefix="sestek-real-airflow-"))
    emulator = emulator_with_secrets(work, TRAIN_SECRET, INFERENCE_SECRET, TOKEN_PREFIX, SECONDS_PER_STEP)
    dags = work / "dags"
    dags.mkdir()
    examples = REPO / "example_dags"
    shutil.copy(examples / f"{EXAMPLE}.py", dags)
    shutil.copy(examples / f"{ASSET_EXAMPLE}.py", dags)
    shutil.copy(examples / f"{WATCHER_EXAMPLE}.py", dags)
    shutil.copytree(examples / "data", dags / "data")
    shutil.copy(Path(__file__).parent / "dags" / f"{SECRETS_DAG}.py", dags)
    connections = {
        "sestek_default": sestek_connection_json(emulator, TRAIN_SECRET, INFERENCE_SECRET),
        # Sestek would call back here; nothing listens (the emulator records a failed callback).
        "sestek_callback": json.dumps(
            {
                "conn_type": "http",
                "host": "http://127.0.0.1:9/sestek-callback",
                "login": "callback-client",
                "password": CALLBACK_SECRET,
                "extra": {"identity_url": "http://127.0.0.1:9"},
            }
        ),
    }
    env_extra = {
        "SESTEK_EXAMPLE_POLL_INTERVAL": "1",
        # Airflow registers an AssetWatcher only when it parses an unpaused DAG: the watcher example's
        # DAG must not start paused (every other DAG here has schedule=None and is triggered explicitly).
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    }
    airflow = RealAirflow(work / "home", dags, connections, env_extra=env_extra)
    try:
        airflow.start()
        airflow.wait_for_dag(EXAMPLE)
        airflow.wait_for_dag(SECRETS_DAG)
        for dag_id in (PRODUCER, CONSUMER, WATCHER):
            airflow.wait_for_dag(dag_id)
        yield Deployment(work, emulator, airflow)
    finally:
        airflow.stop()
        emulator.process.stop()
        leftovers = [p.name for p in [*airflow.processes.values(), *airflow.retired, emulator.process] if p.alive()]
        if os.environ.get("SESTEK_KEEP_REAL_AIRFLOW"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
        assert not leftovers, f"processes still alive: {leftovers}"


@dataclass
class FirstRuns:
    example_run: str
    secrets_run: str
    example_seen: dict[str, list[str]]
    secrets_seen: dict[str, list[str]]
    example_state: str
    secrets_state: str
    trainings: int


@pytest.fixture(scope="module")
def first_runs(deployment: Deployment) -> FirstRuns:
    """The example DAG and the secrets DAG, run side by side to the end."""
    airflow = deployment.airflow
    example_run = airflow.trigger(EXAMPLE)
    secrets_run = airflow.trigger(SECRETS_DAG)
    example_watch, secrets_watch = RunWatch(), RunWatch()

    def snapshot_triggers(state: str, tasks: dict[str, str | None]) -> bool:
        if tasks.get("train") == "deferred":
            deployment.triggers()
        return False

    def both_done(state: str, tasks: dict[str, str | None]) -> bool:
        snapshot_triggers(state, tasks)
        secrets_tasks = airflow.task_states(SECRETS_DAG, secrets_run)
        secrets_watch.record(secrets_tasks)
        snapshot_triggers(state, secrets_tasks)
        return state in ("success", "failed") and airflow.run_state(SECRETS_DAG, secrets_run) in ("success", "failed")

    example_state = follow_run(airflow, EXAMPLE, example_run, 240, example_watch, until=both_done)
    secrets_state = follow_run(airflow, SECRETS_DAG, secrets_run, 240, secrets_watch, until=snapshot_triggers)
    example_watch.record(airflow.task_states(EXAMPLE, example_run))
    secrets_watch.record(airflow.task_states(SECRETS_DAG, secrets_run))
    return FirstRuns(
        example_run,
        secrets_run,
        example_watch.seen,
        secrets_watch.seen,
        example_state,
        secrets_state,
        deployment.trainings_created(),
    )


def test_example_dag_defers_and_succeeds(deployment: Deployment, first_runs: FirstRuns) -> None:
    seen = first_runs.example_seen
    assert first_runs.example_state == "success", seen
    assert "deferred" in seen["train"] and seen["train"][-1] == "success", seen
    assert seen["ask"][-1] == "success", seen
    (try_,) = deployment.airflow.tries(EXAMPLE, first_runs.example_run, "train")
    assert try_["try_number"] == 1 and try_["state"] == "success"
    # One training per DAG run: the example's and the secrets DAG's.
    assert first_runs.trainings == 2
    assert deployment.trigger_rows, "the train task was never seen deferred with its trigger row"


def test_secrets_dag_ran_as_designed(first_runs: FirstRuns) -> None:
    seen = first_runs.secrets_seen
    assert seen["train"][-1] == "success" and "deferred" in seen["train"], seen
    assert seen["ask"][-1] == "success", seen
    assert seen["ask_unknown_model"][-1] == "failed", seen  # on purpose: its exception text is searched too


def test_triggerer_killed_while_deferred(deployment: Deployment, first_runs: FirstRuns) -> None:
    airflow, emulator = deployment.airflow, deployment.emulator.client
    before = deployment.trainings_created()
    run_id = airflow.trigger(EXAMPLE)
    watch = RunWatch()

    def polling_in_triggerer(state: str, tasks: dict[str, str | None]) -> bool:
        return tasks.get("train") == "deferred" and bool(deployment.triggers())

    follow_run(airflow, EXAMPLE, run_id, 120, watch, until=polling_in_triggerer)

    # The trigger runs in the triggerer: progress polls of this model go on. (Counted per model: the watcher
    # example's trigger polls its own model all the time.)
    def faq_polls() -> int:
        return int(emulator.state()["trainings"]["acme-faq-bot"]["polls"])

    first_polls = faq_polls()
    wait_for("the triggerer to poll", lambda: faq_polls() > first_polls, 60)
    (row,) = deployment.triggers()
    assert row["triggerer_id"] is not None, row
    # Airflow's own backstop: the example's 6 h timeout + one poll interval + one request deadline.
    db = airflow.home / "airflow.db"
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as conn:
        (trigger_timeout,) = conn.execute(
            "SELECT trigger_timeout FROM task_instance WHERE run_id = ? AND task_id = 'train'", (run_id,)
        ).fetchone()
    assert trigger_timeout is not None, "defer() must carry a timeout derived from the deadline"
    old, _new = airflow.replace("triggerer", kill=True)
    assert not old.alive()
    killed_at = time.monotonic()

    def adopted() -> dict[str, Any] | None:
        rows = deployment.triggers()
        return rows[0] if rows and rows[0]["triggerer_id"] != row["triggerer_id"] else None

    # Until a triggerer takes it over the row stays (only a trigger event resumes the task).
    adopted_row = wait_for("a new triggerer to take the trigger over", adopted, 90, interval=0.2)
    adopted_after = time.monotonic() - killed_at
    polls_at_adoption = emulator.state()["trainings"]["acme-faq-bot"]["polls"]
    state = follow_run(airflow, EXAMPLE, run_id, 180, watch)

    assert state == "success", watch.seen
    assert "deferred" in watch.seen["train"] and watch.seen["train"][-1] == "success", watch.seen
    assert deployment.trainings_created() == before + 1, "the restart must not start a second training"
    (try_,) = airflow.tries(EXAMPLE, run_id, "train")
    assert try_["try_number"] == 1, "the task itself never ran again: the trigger was re-created"
    # The same row, re-created from its stored kwargs: the same absolute deadline.
    assert adopted_row["id"] == row["id"]
    assert adopted_row["decrypted_kwargs"] == row["decrypted_kwargs"]
    assert "end_time" in row["decrypted_kwargs"]
    # The new triggerer did the rest of the wait, including the polls after Completed that publish the model.
    training = emulator.state()["trainings"]["acme-faq-bot"]
    assert training["polls"] > polls_at_adoption and training["inference_status"] == "Running", training
    assert training["deployed_generation"] == training["generation"], training
    trigger_logs = sorted((airflow.home / "logs").rglob(f"*{run_id}*/task_id=train/*.trigger.*.log"))
    assert len(trigger_logs) == 2, trigger_logs  # one per triggerer that ran the trigger
    print(f"a new triggerer took the trigger over {adopted_after:.1f}s after the kill, at poll {polls_at_adoption}")


def test_no_secret_anywhere(deployment: Deployment, first_runs: FirstRuns, asset_runs: AssetRuns) -> None:
    """Task and triggerer logs, process output, every DB table (XCom, rendered fields, serialized DAG, ...)."""
    airflow = deployment.airflow
    corpus = file_texts(airflow.home) + db_texts(airflow.home / "airflow.db", airflow.fernet_key)
    corpus += [
        (f"trigger row seen while deferred #{i}", json.dumps(row, default=str))
        for i, row in enumerate(deployment.trigger_rows)
    ]
    # The search sees what it must (so an empty result means something): the model ids in XCom, rendered
    # fields, the serialized DAG, the decrypted trigger kwargs, the task logs and the failed task's error.
    where = {location.split(".")[0].split("#")[0].split("/")[0] for location, text in corpus if "secrets-bot" in text}
    assert {"xcom", "rendered_task_instance_fields", "serialized_dag", "logs"} <= where, where
    assert any("secrets-bot" in row["decrypted_kwargs"] for row in deployment.trigger_rows)
    assert any("no-such-model" in text and "is not published" in text for _, text in corpus)
    assert any(TOKEN_PREFIX not in text and "Obtained a Sestek" in text for _, text in corpus)

    leaks = occurrences(SECRETS, corpus)
    assert leaks == [], "secrets found:\n" + "\n".join(leaks[:50])


# --- the model as an asset, and the watcher (issue 11) --------------------------------------------------------


@dataclass
class AssetRuns:
    producer_run: str
    producer_state: str
    train_ended: str
    consumer_runs: list[dict[str, Any]]
    watcher_runs: list[dict[str, Any]]
    watcher_row: dict[str, Any]


def dag_runs(airflow: RealAirflow, dag_id: str) -> list[dict[str, Any]]:
    return list(airflow.api("GET", f"/dags/{dag_id}/dagRuns")["dag_runs"])


def finished(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in runs if r["state"] in ("success", "failed")]


@pytest.fixture(scope="module")
def asset_runs(deployment: Deployment, first_runs: FirstRuns) -> AssetRuns:
    """
    Side by side: the producer DAG trains and publishes its model (an asset event, so the consumer DAG runs),
    and a training submitted straight to the emulator, as from the Sestek UI, is published while the watcher
    DAG's AssetWatcher polls it (so the watcher DAG runs).
    """
    from airflow_provider_sestek.hooks.sestek import SestekHook

    airflow = deployment.airflow
    for dag_id in (CONSUMER, WATCHER):
        airflow.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
    # The watcher runs in the triggerer once its DAG is active.
    wait_for(
        "the watcher trigger to be assigned to a triggerer",
        lambda: [r for r in deployment.triggers("SestekModelPublishedTrigger") if r["triggerer_id"] is not None],
        90,
    )
    producer_run = airflow.trigger(PRODUCER)
    env = {"AIRFLOW_CONN_SESTEK_DEFAULT": airflow.connections["sestek_default"]}
    with unittest.mock.patch.dict(os.environ, env):
        SestekHook().submit_training(
            WATCHED_MODEL, "Started elsewhere", data_files=[str(REPO / "example_dags/data/faq.txt")]
        )
    producer_state = follow_run(airflow, PRODUCER, producer_run, 180)
    (train_ti,) = airflow.api("GET", f"/dags/{PRODUCER}/dagRuns/{producer_run}/taskInstances")["task_instances"]
    consumer_runs = wait_for("the consumer DAG run", lambda: finished(dag_runs(airflow, CONSUMER)), 120)
    watcher_runs = wait_for("the watcher DAG run", lambda: finished(dag_runs(airflow, WATCHER)), 120)
    (watcher_row,) = deployment.triggers("SestekModelPublishedTrigger")
    return AssetRuns(producer_run, producer_state, train_ti["end_date"], consumer_runs, watcher_runs, watcher_row)


def test_asset_scheduled_consumer_runs_after_the_training(deployment: Deployment, asset_runs: AssetRuns) -> None:
    assert asset_runs.producer_state == "success"
    (run,) = asset_runs.consumer_runs
    assert run["state"] == "success" and run["run_type"] == "asset_triggered", run
    assert run["queued_at"] >= asset_runs.train_ended, (run, asset_runs.train_ended)
    tasks = deployment.airflow.task_states(CONSUMER, run["dag_run_id"])
    assert tasks == {"ask_fresh_model": "success"}


def test_watcher_runs_once_per_publication_across_a_triggerer_restart(
    deployment: Deployment, asset_runs: AssetRuns
) -> None:
    airflow, emulator = deployment.airflow, deployment.emulator.client
    (run,) = asset_runs.watcher_runs
    assert run["state"] == "success" and run["run_type"] == "asset_triggered", run
    assert airflow.task_states(WATCHER, run["dag_run_id"]) == {"ask_published_model": "success"}
    assert emulator.state()["trainings"][WATCHED_MODEL]["inference_status"] == "Running"
    # Only ids and numbers in the stored kwargs.
    assert WATCHED_MODEL in asset_runs.watcher_row["decrypted_kwargs"]
    # The watermark is in the asset state store (Airflow 3.3).
    db = airflow.home / "airflow.db"
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as conn:
        stored = [row[0] for row in conn.execute("SELECT value FROM asset_state_store WHERE key LIKE 'sestek_%'")]
    assert stored and '"publications": 1' in str(stored[0]).replace("'", '"'), stored

    old, _new = airflow.replace("triggerer", kill=True)
    assert not old.alive()

    def adopted() -> bool:
        rows = deployment.triggers("SestekModelPublishedTrigger")
        return bool(rows) and rows[0]["triggerer_id"] not in (None, asset_runs.watcher_row["triggerer_id"])

    wait_for("a new triggerer to take the watcher over", adopted, 90, interval=0.2)
    polls = emulator.state()["trainings"][WATCHED_MODEL]["polls"]
    wait_for("the new watcher to poll", lambda: emulator.state()["trainings"][WATCHED_MODEL]["polls"] >= polls + 3, 60)
    time.sleep(3)  # time for a wrongly fired event to become a DAG run
    runs = dag_runs(airflow, WATCHER)
    assert len(runs) == 1, f"the restart fired again for the same publication: {runs}"
