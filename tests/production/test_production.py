"""
Airflow in a production shape, on this machine, with real parts (see RELIABILITY.md, "Production-shaped"):
PostgreSQL as the metadata database, Redis as the Celery broker, moto's S3 server holding the training data,
the Sestek emulator, and Airflow 3 with the CeleryExecutor: api-server, scheduler, dag-processor, two Celery
workers (each its own working directory, log folder and host name, no shared data folder) and two triggerers.

- the object-storage example, mapped over five models, deferred: one triggerer is SIGKILLed while the five
  waits are deferred; the other takes them over; every task succeeds, five trainings, every file whole;
- the Celery worker running a sync-mode training is SIGKILLed mid-wait: the retry runs on the other worker and
  attaches (the durable record is in PostgreSQL); one training;
- a worker SIGKILLed while the train POST of a new model hangs (the record says ``submitting``): the retry
  collects the training it created, one training;
- a local path that exists only on worker A, run on worker B: fails there naming the path and worker B's host,
  before any Sestek request;
- no secret in the PostgreSQL metadata database, the Redis broker, nor in any log of any component.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sestek.testing import Fault
from tests._moto import MotoServer, aws_connection_json
from tests._processes import free_port
from tests.production._services import Postgres, Redis, postgres_texts, redis_texts
from tests.real_airflow._harness import (
    Emulator,
    RealAirflow,
    RunWatch,
    emulator_with_secrets,
    file_texts,
    follow_run,
    occurrences,
    sestek_connection_json,
    wait_for,
)

pytestmark = [pytest.mark.airflow_production, pytest.mark.slow, pytest.mark.timeout(600)]

if int(__import__("airflow").__version__.split(".")[0]) < 3:
    pytest.skip("drives the Airflow 3 components (api-server, dag-processor, REST API v2)", allow_module_level=True)

REPO = Path(__file__).parent.parent.parent
EXAMPLE = "example_sestek_models_from_object_storage"
SYNC_DAG, LOCAL_DAG = "sestek_production_sync_train", "sestek_production_local_file"
CRASH_DAG, CRASH_MODEL = "sestek_production_submit_crash", "acme-submit-crash"
DATA_FILES = ("faq.txt", "shipping-policy.txt")
BUCKET = "acme-sestek-training"

TRAIN_SECRET = "SECRET-prod-train-5e1f"
INFERENCE_SECRET = "SECRET-prod-infer-a04c"
AWS_SECRET = "SECRET-prod-aws/8d2b+never"
TOKEN_PREFIX = "TOKEN-prod-leak-"
SECRETS = [TRAIN_SECRET, INFERENCE_SECRET, AWS_SECRET, TOKEN_PREFIX]
SECONDS_PER_STEP = 3.0
#: The example's default model ids.
MODEL_IDS = ("acme-support-en", "acme-support-de", "acme-support-tr", "acme-sales-en", "acme-sales-de")
LONG_LIFECYCLE = ["Initialized", "PendingTraining", "DatasetUploading", *["Training"] * 12, "Trained", "Completed"]
WORKERS = {"worker-a": "default,worker_a", "worker-b": "default,worker_b"}
TRIGGERERS = ("triggerer-a", "triggerer-b")

#: ``[core] hostname_callable`` of every component: the host name each one records (task instances, jobs).
HOSTNAME_MODULE = """
import os


def hostname():
    return os.environ["SESTEK_TEST_HOSTNAME"]
"""


@dataclass
class Production:
    work: Path
    postgres: Postgres
    emulator: Emulator
    airflow: RealAirflow
    workdirs: dict[str, Path]
    trigger_rows: list[dict[str, Any]] = field(default_factory=list)

    def counters(self) -> dict[str, int]:
        return dict(self.emulator.client.state()["counters"])

    def training(self, model_id: str) -> dict[str, Any]:
        return dict(self.emulator.client.state()["trainings"][model_id])

    def triggers(self) -> list[dict[str, Any]]:
        """The training trigger rows now, with the host of the triggerer that holds each and decrypted kwargs."""
        from cryptography.fernet import Fernet

        fernet = Fernet(self.airflow.fernet_key.encode())
        rows = self.postgres.query(
            "SELECT t.id, t.classpath, t.kwargs, t.triggerer_id, j.hostname AS triggerer_host "
            "FROM trigger t LEFT JOIN job j ON j.id = t.triggerer_id WHERE t.classpath LIKE %s",
            "%.SestekTrainingTrigger",
        )
        for row in rows:
            raw = str(row["kwargs"] or "")
            row["decrypted_kwargs"] = fernet.decrypt(raw.encode()).decode() if raw.startswith("gAAAAA") else raw
            self.trigger_rows.append(row)
        return rows

    def follow_until_waits_are_deferred(self, run_id: str, watch: RunWatch, waits: int = 5) -> None:
        """Follow a run of the mapped example until ``waits`` training triggers are held by the triggerers."""

        def held(state: str, tasks: dict[str, str | None]) -> bool:
            rows = self.triggers()
            return len(rows) == waits and all(row["triggerer_host"] in TRIGGERERS for row in rows)

        follow_run(self.airflow, EXAMPLE, run_id, 240, watch, until=held)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        data = self.airflow.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return list(data["task_instances"])


def _start_airflow(work: Path, postgres: Postgres, redis: Redis, emulator: Emulator, moto: MotoServer) -> RealAirflow:
    dags = work / "dags"  # the DAGs folder: the same path on every component, as a git-sync would give
    dags.mkdir()
    shutil.copy(REPO / "example_dags" / f"{EXAMPLE}.py", dags)
    shutil.copy(Path(__file__).parent / "dags" / "sestek_production.py", dags)
    hostnames = work / "hostnames"
    hostnames.mkdir()
    (hostnames / "sestek_test_hostname.py").write_text(HOSTNAME_MODULE)
    connections = {
        "sestek_default": sestek_connection_json(emulator, TRAIN_SECRET, INFERENCE_SECRET),
        "aws_default": aws_connection_json(moto.url, key="AKIAPRODTESTKEY00001", secret=AWS_SECRET),
    }
    db = postgres.url.split("://", 1)[1]
    env_extra = {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres.url,
        "AIRFLOW__CELERY__BROKER_URL": redis.url,
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{db}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
        "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
        # A worker that died is noticed after 20 s without a task heartbeat (default 300 s).
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "sestek_test_hostname.hostname",
        "PYTHONPATH": str(hostnames),
        "SESTEK_TEST_HOSTNAME": "control-plane",
        "SESTEK_EXAMPLE_POLL_INTERVAL": "1",
        "SESTEK_EXAMPLE_DATA_PREFIX": f"s3://aws_default@{BUCKET}/training/",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    airflow = RealAirflow(work / "home", dags, connections, env_extra=env_extra)
    airflow.start(components=("api-server", "scheduler", "dag-processor"))
    for name in TRIGGERERS:
        airflow.start_component(
            name,
            ["triggerer"],
            env={
                "SESTEK_TEST_HOSTNAME": name,
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(work / name / "logs"),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            },
        )
    for name, queues in WORKERS.items():
        workdir = work / name
        workdir.mkdir(exist_ok=True)
        airflow.start_component(name, *_worker(name, queues, workdir))
    return airflow


def _worker(name: str, queues: str, workdir: Path) -> tuple[list[str], Path, dict[str, str]]:
    args = ["celery", "worker", "--queues", queues, "--concurrency", "4", "--celery-hostname", f"{name}@%h"]
    env = {
        "SESTEK_TEST_HOSTNAME": name,
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(workdir / "logs"),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
    }
    return args, workdir, env


@pytest.fixture(scope="module")
def production() -> Iterator[Production]:
    work = Path(tempfile.mkdtemp(prefix="sestek-production-"))
    started: list[Any] = []
    airflow: RealAirflow | None = None
    try:
        postgres = Postgres.start()
        started.append(postgres)
        redis = Redis.start(work)
        started.append(redis)
        moto = MotoServer(str(work)).start()
        started.append(moto)
        s3 = moto.client(key="AKIAPRODTESTKEY00001", secret=AWS_SECRET)
        s3.create_bucket(Bucket=BUCKET)
        for name in DATA_FILES:
            s3.put_object(Bucket=BUCKET, Key=f"training/{name}", Body=(REPO / "example_dags/data" / name).read_bytes())
        emulator = emulator_with_secrets(work, TRAIN_SECRET, INFERENCE_SECRET, TOKEN_PREFIX, SECONDS_PER_STEP)
        started.append(emulator.process)
        # Worker A's disk alone has the local file (relative to its working directory).
        (work / "worker-a" / "training").mkdir(parents=True)
        shutil.copy(REPO / "example_dags/data/faq.txt", work / "worker-a" / "training" / "faq.txt")
        airflow = _start_airflow(work, postgres, redis, emulator, moto)
        for dag_id in (EXAMPLE, SYNC_DAG, LOCAL_DAG, CRASH_DAG):
            airflow.wait_for_dag(dag_id, timeout=180)
        yield Production(work, postgres, emulator, airflow, {name: work / name for name in WORKERS})
    finally:
        if airflow is not None:
            airflow.stop()
        for part in reversed(started):
            part.stop()
        if os.environ.get("SESTEK_KEEP_PRODUCTION"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


# --- five mapped trainings from S3, deferred; a triggerer SIGKILLed ---------------------------------------------


@dataclass
class MappedRun:
    run_id: str
    state: str
    seen: dict[str, list[str]]
    killed: str
    holders_before: dict[str, int]
    holders_after: set[str]
    trainings_before: int


@pytest.fixture(scope="module")
def mapped_run(production: Production) -> MappedRun:
    airflow = production.airflow
    trainings_before = production.counters()["trainings_created"]
    # About 50 s per training: all five must be waiting in a triggerer together, also on a slow machine.
    for model_id in MODEL_IDS:
        production.emulator.client.set_lifecycle(model_id, LONG_LIFECYCLE)
    run_id = airflow.trigger(EXAMPLE)
    watch = RunWatch()

    production.follow_until_waits_are_deferred(run_id, watch)
    rows = production.triggers()
    holders: dict[str, int] = {}
    for row in rows:
        holders[row["triggerer_host"]] = holders.get(row["triggerer_host"], 0) + 1
    killed = max(holders, key=lambda host: holders[host])
    airflow.retire(killed, kill=True)
    survivor = next(name for name in TRIGGERERS if name != killed)

    def all_adopted() -> bool:
        return all(row["triggerer_host"] == survivor for row in production.triggers())

    wait_for("the other triggerer to take every wait over", all_adopted, 120, interval=0.5)
    adopted = {row["triggerer_host"] for row in production.triggers()}
    state = follow_run(airflow, EXAMPLE, run_id, 300, watch)
    return MappedRun(run_id, state, watch.seen, killed, holders, adopted, trainings_before)


def test_mapped_trainings_from_s3_survive_a_triggerer_kill(production: Production, mapped_run: MappedRun) -> None:
    assert mapped_run.state == "success", mapped_run.seen
    tis = production.task_instances(EXAMPLE, mapped_run.run_id)
    assert sorted((ti["task_id"], ti["map_index"], ti["state"]) for ti in tis) == sorted(
        (task, i, "success") for task in ("ask", "train") for i in range(5)
    ), tis
    trains = [ti for ti in tis if ti["task_id"] == "train"]
    assert all(ti["try_number"] == 1 for ti in trains), "no task ran again: the triggers were taken over"
    assert {ti["hostname"] for ti in tis} <= set(WORKERS), tis
    # The waits were spread or not, but one triggerer held some and died; the other finished them all.
    assert mapped_run.holders_after <= {next(n for n in TRIGGERERS if n != mapped_run.killed)}
    assert production.counters()["trainings_created"] - mapped_run.trainings_before == 5
    expected = {
        name: (len(data), __import__("hashlib").sha256(data).hexdigest())
        for name in DATA_FILES
        for data in [(REPO / "example_dags/data" / name).read_bytes()]
    }
    for model_id in MODEL_IDS:
        training = production.training(model_id)
        received = {f["filename"]: (f["size"], f["sha256"]) for f in training["files"]}
        assert received == expected, (model_id, received)
        assert training["inference_status"] == "Running", training
    print(f"killed {mapped_run.killed} holding {mapped_run.holders_before}; adopted by {mapped_run.holders_after}")


# --- a Celery worker SIGKILLed while a sync-mode training polls -----------------------------------------------


def test_worker_killed_mid_poll_retry_attaches_on_the_other_worker(
    production: Production, mapped_run: MappedRun
) -> None:
    airflow, emulator = production.airflow, production.emulator.client
    # Long enough that the training still runs when the retry starts (heartbeat timeout + retry delay).
    emulator.set_lifecycle("acme-sync-bot", ["Initialized", "DatasetUploading", *["Training"] * 25, "Completed"])
    before = production.counters()["trainings_created"]
    run_id = airflow.trigger(SYNC_DAG)
    watch = RunWatch()

    def polling() -> dict[str, Any] | None:
        trainings = emulator.state()["trainings"]
        if "acme-sync-bot" not in trainings or trainings["acme-sync-bot"]["polls"] < 2:
            return None
        (ti,) = production.task_instances(SYNC_DAG, run_id)
        return ti if ti["state"] == "running" and ti["hostname"] in WORKERS else None

    first = wait_for("the sync train task to poll on a worker", polling, 180)
    killed = first["hostname"]
    other = next(name for name in WORKERS if name != killed)
    airflow.retire(killed, kill=True)
    state = follow_run(airflow, SYNC_DAG, run_id, 240, watch)

    assert state == "success", watch.seen
    tries = airflow.tries(SYNC_DAG, run_id, "train")
    assert [t["try_number"] for t in tries] == [1, 2], tries
    assert tries[0]["hostname"] == killed and tries[1]["hostname"] == other, tries
    assert tries[1]["state"] == "success", tries
    assert production.counters()["trainings_created"] == before + 1, "the retry must attach, not train again"
    # The retry found the first try's record in the task state store, in PostgreSQL.
    records = production.postgres.query(
        "SELECT key, value FROM task_state_store WHERE dag_id = %s AND run_id = %s", SYNC_DAG, run_id
    )
    assert records, "no durable record in PostgreSQL"
    log = "\n".join(text for where, text in file_texts(production.workdirs[other] / "logs") if run_id in where)
    assert "acme-sync-bot" in log and "an earlier try of this task submitted it" in log, log[-3000:]
    # Worker A (or B) comes back for the next test, as a supervisor would restart it.
    airflow.restart(killed)


def test_worker_killed_mid_submit_retry_collects_the_training(production: Production, mapped_run: MappedRun) -> None:
    """
    A model id never trained before; its train POST creates the training but the answer is held back, so the
    durable record still says ``submitting`` when the worker is SIGKILLed. The training finishes before the
    retry looks: it can only be this task's, and the retry collects it (found by the adversarial review of issue 13:
    the retry trained the model a second time).
    """
    airflow, emulator = production.airflow, production.emulator.client
    emulator.set_lifecycle(CRASH_MODEL, ["Initialized", "DatasetUploading", "Training", "Completed"])
    emulator.add_fault(Fault(endpoint="train", kind="delay", delay=50, when="after", model_id=CRASH_MODEL))
    before = production.counters()["trainings_created"]
    run_id = airflow.trigger(CRASH_DAG)

    def created_while_the_post_hangs() -> dict[str, Any] | None:
        if CRASH_MODEL not in emulator.state()["trainings"]:
            return None
        (ti,) = production.task_instances(CRASH_DAG, run_id)
        return ti if ti["state"] == "running" and ti["hostname"] in WORKERS else None

    first = wait_for("the training to be created while its POST hangs", created_while_the_post_hangs, 180, 0.2)
    (record,) = production.postgres.query(
        "SELECT value FROM task_state_store WHERE dag_id = %s AND run_id = %s", CRASH_DAG, run_id
    )
    assert '"submitting"' in record["value"] and '"first_training": true' in record["value"], record
    killed = first["hostname"]
    airflow.retire(killed, kill=True)
    try:
        state = follow_run(airflow, CRASH_DAG, run_id, 240)
    finally:
        airflow.restart(killed)

    assert state == "success"
    tries = airflow.tries(CRASH_DAG, run_id, "train")
    assert (tries[0]["try_number"], tries[0]["hostname"]) == (1, killed), tries
    assert tries[-1]["state"] == "success" and tries[-1]["hostname"] != killed, tries
    assert production.counters()["trainings_created"] == before + 1, "the retry trained the model a second time"


# --- a local file that exists on the other worker only --------------------------------------------------------


def test_local_path_on_the_other_worker_fails_before_any_request(production: Production, mapped_run: MappedRun) -> None:
    airflow, emulator = production.airflow, production.emulator.client
    time.sleep(1)  # no poll of an earlier wait may land in the window below
    requests_before = len(emulator.requests())
    run_id = airflow.trigger(LOCAL_DAG)
    state = follow_run(airflow, LOCAL_DAG, run_id, 180)

    assert state == "failed"
    (ti,) = production.task_instances(LOCAL_DAG, run_id)
    assert ti["state"] == "failed" and ti["hostname"] == "worker-b", ti
    assert emulator.requests(since=requests_before) == [], "not even a token request may be sent"
    assert "acme-local-bot" not in emulator.state()["trainings"]
    log = "\n".join(text for where, text in file_texts(production.workdirs["worker-b"] / "logs") if run_id in where)
    workdir = production.workdirs["worker-b"]
    assert "Invalid data_files[0] = 'training/faq.txt': file does not exist on host 'worker-b'" in log, log[-3000:]
    assert f"relative to the working directory {str(workdir)!r}" in log
    assert "object storage" in log
    assert (production.workdirs["worker-a"] / "training" / "faq.txt").is_file()


# --- secrets ---------------------------------------------------------------------------------------------------


def test_no_secret_in_postgres_or_any_log(production: Production, mapped_run: MappedRun) -> None:
    airflow = production.airflow
    corpus = file_texts(production.work) + postgres_texts(production.postgres, airflow.fernet_key)
    corpus += redis_texts(airflow.env_extra["AIRFLOW__CELERY__BROKER_URL"])
    corpus += [(f"trigger row #{i}", json.dumps(row, default=str)) for i, row in enumerate(production.trigger_rows)]
    # The search sees what it must: the model ids in XCom, rendered fields, the serialized DAG, trigger kwargs,
    # both workers' and both triggerers' logs.
    where = {location.split("#")[0].split(".")[0] for location, text in corpus if "acme-support-en" in text}
    assert {"xcom", "rendered_task_instance_fields", "serialized_dag"} <= where, where
    # Each worker ran a try of the sync training or the local-file task; the surviving triggerer finished every
    # mapped wait: their task logs are in the corpus (which holds every file under the work folder). The killed
    # triggerer's task logs are there too if it wrote any before its SIGKILL (on a loaded machine it may be
    # killed first); its process output always is.
    task_logs = {where.split("/")[0] for where, _ in corpus if "/logs/dag_id=" in where and where.endswith(".log")}
    survivor = next(name for name in TRIGGERERS if name != mapped_run.killed)
    assert {*WORKERS, survivor} <= task_logs, task_logs
    assert any(f"process-output/{mapped_run.killed}-" in where for where, _ in corpus), "the killed one's output"
    assert any("acme-support-en" in row["decrypted_kwargs"] for row in production.trigger_rows)
    tables = {location.split(".")[0] for location, _ in corpus}
    assert {"task_state_store", "celery_taskmeta", "job", "xcom"} <= tables, tables
    assert any(where.startswith("redis:_kombu.binding.") for where, _ in corpus), "the broker was not read"

    leaks = occurrences(SECRETS, corpus)
    assert leaks == [], "secrets found:\n" + "\n".join(leaks[:50])
