"""
The production-shaped deployment's infrastructure restarted under running work, each run ends with one training
per model: the Celery broker (Redis, no persistence) restarted and the scheduler SIGKILLed while five mapped
waits are deferred; PostgreSQL SIGKILLed and restarted while a sync-mode training polls in a worker. One
deployment, the scenarios in order.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from tests._processes import start_process
from tests.production._services import Postgres, _as_postgres_user, _postgres_bin, _start_as
from tests.production.test_production import EXAMPLE, SYNC_DAG, WORKERS, Production
from tests.real_airflow._harness import RunWatch, follow_run, wait_for

pytestmark = [pytest.mark.airflow_production, pytest.mark.slow, pytest.mark.timeout(900)]

TIMINGS: dict[str, float] = {}
#: Servers this module started in place of the fixture's (stopped after the module).
_STARTED: list[Any] = []


@pytest.fixture(scope="module", autouse=True)
def _stop_started(production: Production) -> Any:
    yield
    for process in _STARTED:
        process.stop()


def _created(production: Production) -> int:
    return int(production.counters()["trainings_created"])


def _restart_redis(production: Production) -> Any:
    """SIGKILL the broker and start an empty one on the same port (no persistence: queued messages are lost)."""
    port = production.airflow.env_extra["AIRFLOW__CELERY__BROKER_URL"].rsplit(":", 1)[1].split("/")[0]
    pids = [p for p in os.listdir("/proc") if p.isdigit()]
    killed = False
    for pid in pids:
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        # Redis rewrites its title: "/usr/bin/redis-server 127.0.0.1:<port>".
        if cmdline and b"redis-server" in cmdline[0] and f":{port}".encode() in b" ".join(cmdline):
            os.kill(int(pid), 9)
            killed = True
    assert killed, f"no redis-server on port {port}"
    time.sleep(3)
    argv = ["/usr/bin/redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    argv += ["--dir", str(production.work)]
    process = start_process("redis-2", argv, os.environ, production.work / "redis-2.out", production.work)
    _STARTED.append(process)
    return process


def _restart_postgres(postgres: Postgres, down: float) -> None:
    """SIGKILL the postmaster (crash recovery on start) and start it again on the same port and data."""
    postgres.process.kill()
    time.sleep(down)
    argv = [str(_postgres_bin() / "postgres"), "-D", str(postgres.root / "pgdata"), "-p", str(postgres.port)]
    argv += ["-h", "127.0.0.1", "-c", "unix_socket_directories=", "-c", "fsync=off", "-c", "max_connections=200"]
    # Children of the killed postmaster hold the shared memory a moment: try until it starts.
    for _ in range(20):
        process = _start_as(_as_postgres_user(), "postgres", argv, postgres.root / "postgres-2.out", postgres.root)
        postgres.process = process
        try:
            process.wait_until(postgres._accepts, 15, "accepting connections")
            return
        except RuntimeError:
            time.sleep(1)
    raise RuntimeError("PostgreSQL did not come back")


def test_redis_restarted_and_scheduler_killed_while_waits_are_deferred(production: Production) -> None:
    started = time.monotonic()
    airflow = production.airflow
    before = _created(production)
    run_id = airflow.trigger(EXAMPLE)
    watch = RunWatch()

    production.follow_until_waits_are_deferred(run_id, watch)
    airflow.retire("scheduler", kill=True)
    redis = _restart_redis(production)
    try:
        time.sleep(5)
        airflow.start_component("scheduler")
        state = follow_run(airflow, EXAMPLE, run_id, 400, watch)
    finally:
        TIMINGS["redis restart + scheduler kill"] = time.monotonic() - started
    assert state == "success", watch.seen
    trains = [ti for ti in production.task_instances(EXAMPLE, run_id) if ti["task_id"] == "train"]
    print("train tries:", sorted(ti["try_number"] for ti in trains), "redis", redis.popen.pid)
    assert _created(production) - before == 5


def test_postgres_killed_and_restarted_while_a_sync_training_polls(production: Production) -> None:
    started = time.monotonic()
    airflow, emulator = production.airflow, production.emulator.client
    emulator.set_lifecycle("acme-sync-bot", ["Initialized", "DatasetUploading", *["Training"] * 25, "Completed"])
    before = _created(production)
    run_id = airflow.trigger(SYNC_DAG)

    def polling() -> dict[str, Any] | None:
        trainings = emulator.state()["trainings"]
        if "acme-sync-bot" not in trainings or trainings["acme-sync-bot"]["polls"] < 2:
            return None
        (ti,) = production.task_instances(SYNC_DAG, run_id)
        return ti if ti["state"] == "running" and ti["hostname"] in WORKERS else None

    wait_for("the sync train task to poll on a worker", polling, 180)
    _restart_postgres(production.postgres, down=10)
    # The scheduler, dag-processor and triggerers exit when the database goes away (Airflow's own behaviour):
    # a process supervisor (systemd, Kubernetes) starts them again; so does this loop.
    revived: list[str] = []
    deadline = time.monotonic() + 300
    state = ""
    while time.monotonic() < deadline:
        for name, process in list(airflow.processes.items()):
            if not process.alive():
                airflow.replace(name, kill=True)
                revived.append(name)
        try:
            state = airflow.run_state(SYNC_DAG, run_id)
        except Exception:  # the api-server reconnecting
            state = ""
        if state in ("success", "failed"):
            break
        time.sleep(1)
    print("revived:", revived)
    TIMINGS["postgres restart mid-poll"] = time.monotonic() - started
    tries = airflow.tries(SYNC_DAG, run_id, "train")
    print("tries:", [(t["try_number"], t["state"], t["hostname"]) for t in tries], "timings:", TIMINGS)
    assert state == "success", tries
    assert _created(production) - before == 1, "the retry (if any) must attach, not train again"
