"""The example DAGs are tests too: each runs end to end on the emulator through dag.test()."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from types import ModuleType

import pytest

from airflow_provider_sestek.assets import model_asset_name, model_asset_uri
from airflow_provider_sestek.hooks.sestek import SestekHook
from airflow_provider_sestek.testing import SestekEmulator
from tests._assets import AIRFLOW_3, asset_events, register_alias, scheduled_on
from tests._moto import S3
from tests.dag_runner import run_dag_file

pytestmark = pytest.mark.usefixtures("airflow_db")

#: The example DAGs live at the top of the repository (beside pyproject.toml), not in the package.
EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
DATA_FILES = ("faq.txt", "shipping-policy.txt")


def load_example(module: str) -> ModuleType:
    """Import one example DAG file by path, afresh (it reads its environment at import time)."""
    spec = importlib.util.spec_from_file_location(f"sestek_example_{module}", EXAMPLES / f"{module}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize(
    ("module", "model_id"),
    [("example_sestek_generative_qa", "acme-faq-bot"), ("example_sestek_sensor", "acme-shipping-bot")],
)
def test_example_dag_runs(
    sestek_conn: SestekEmulator, monkeypatch: pytest.MonkeyPatch, module: str, model_id: str
) -> None:
    monkeypatch.setenv("SESTEK_EXAMPLE_POLL_INTERVAL", "0.05")
    mod = load_example(module)
    dag_run = run_dag_file(mod.dag.dag_id, lambda: load_example(module).dag)
    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()}
    assert set(states.values()) == {"success"}, states
    assert sestek_conn.counters["trainings_created"] == 1
    assert sestek_conn.trainings[model_id].inference_status == "Running"
    assert sestek_conn.counters["inference_requests"] == 1


def test_model_asset_example_producer_then_consumer(
    sestek_conn: SestekEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The producer publishes the model (an asset event); the consumer is scheduled on that very asset and asks it."""
    monkeypatch.setenv("SESTEK_EXAMPLE_POLL_INTERVAL", "0.05")
    register_alias()
    module = "example_sestek_model_asset"
    mod = load_example(module)
    uri = model_asset_uri("acme-asset-bot")
    if AIRFLOW_3:  # a reference by the name the operator gives the model: no connection read at parse time
        from airflow.sdk import Asset

        assert list(mod.consumer.timetable.asset_condition.objects) == [
            Asset.ref(name=model_asset_name("acme-asset-bot"))
        ]
    else:
        assert scheduled_on(mod.consumer) == [uri]
    before = len(asset_events(uri))

    produced = run_dag_file(mod.producer.dag_id, lambda: load_example(module).producer)
    assert str(getattr(produced.state, "value", produced.state)) == "success"
    events = asset_events(uri)
    assert len(events) == before + 1 and events[-1]["extra"]["model_id"] == "acme-asset-bot"
    assert events[-1]["extra"]["experiment_id"] == sestek_conn.trainings["acme-asset-bot"].experiment_id

    consumed = run_dag_file(mod.consumer.dag_id, lambda: load_example(module).consumer)
    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in consumed.get_task_instances()}
    assert states == {"ask_fresh_model": "success"}
    assert sestek_conn.counters["trainings_created"] == 1 and sestek_conn.counters["inference_requests"] == 1


def test_model_watcher_example(sestek_conn: SestekEmulator, monkeypatch: pytest.MonkeyPatch, faq: str) -> None:
    """
    The watcher's trigger, taken from the parsed DAG, fires once when the model is published by a training
    started elsewhere; the DAG then asks the model. (The scheduler + triggerer path is in tests/real_airflow.)
    """
    monkeypatch.setenv("SESTEK_EXAMPLE_POLL_INTERVAL", "0.02")
    module = "example_sestek_model_watcher"
    mod = load_example(module)
    if not AIRFLOW_3:
        assert not hasattr(mod, "dag"), "the documented guard: no DAG on Airflow 2"
        return
    (asset,) = mod.dag.timetable.asset_condition.objects
    assert asset.name == "sestek-published:sestek_default/acme-watched-bot"  # its own asset: no URI to look up
    (watcher,) = asset.watchers
    trigger = watcher.trigger
    assert trigger.serialize()[1]["model_ids"] == ["acme-watched-bot"]

    async def first_event() -> dict[str, object]:
        async def fire() -> dict[str, object]:
            async for event in trigger.run():
                return dict(event.payload)
            raise AssertionError("the watcher ended")

        task = asyncio.create_task(fire())
        await asyncio.sleep(0.2)  # the watcher has seen the model unknown: its publication will be new
        await asyncio.to_thread(SestekHook().submit_training, "acme-watched-bot", "Elsewhere", data_files=[faq])
        return await asyncio.wait_for(task, 30)

    event = asyncio.run(first_event())
    assert event["model_id"] == "acme-watched-bot" and event["publication"] == 1
    dag_run = run_dag_file(mod.dag.dag_id, lambda: load_example(module).dag)
    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()}
    assert states == {"ask_published_model": "success"}


@pytest.mark.parametrize("module", ["example_sestek_model_asset", "example_sestek_model_watcher"])
def test_serialized_asset_dags_hold_no_secret(sestek_conn: SestekEmulator, module: str) -> None:
    """The serialized DAGs (the watcher's trigger kwargs, the alias, the asset URIs) name the model, no secret."""
    try:  # Airflow 3.2+
        from airflow.serialization.serialized_objects import DagSerialization
    except ImportError:
        from airflow.serialization.serialized_objects import SerializedDAG as DagSerialization  # type: ignore[no-redef]

    mod = load_example(module)
    dags = [d for d in vars(mod).values() if type(d).__name__ == "DAG"]
    if not AIRFLOW_3 and module.endswith("watcher"):
        assert dags == []
        return
    text = json.dumps([DagSerialization.to_dict(d) for d in dags], default=str)
    if not AIRFLOW_3:
        assert "sestek://127.0.0.1:" in text
    elif module.endswith("watcher"):
        assert "sestek-published:sestek_default/acme-watched-bot" in text
    else:
        assert model_asset_name("acme-asset-bot") in text
    for secret in (sestek_conn.train_client[1], sestek_conn.inference_client[1]):
        assert secret not in text


def test_models_from_object_storage_example(
    sestek_conn: SestekEmulator, s3: S3, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five mapped trainings read their data from S3 (moto on 127.0.0.1); each model received both files whole."""
    digests = {name: s3.put(f"training/{name}", (EXAMPLES / "data" / name).read_bytes()) for name in DATA_FILES}
    monkeypatch.setenv("SESTEK_EXAMPLE_DATA_PREFIX", s3.url("training/"))
    monkeypatch.setenv("SESTEK_EXAMPLE_POLL_INTERVAL", "0.05")
    module = "example_sestek_models_from_object_storage"
    mod = load_example(module)
    assert len(mod.MODEL_IDS) == 5

    dag_run = run_dag_file(mod.dag.dag_id, lambda: load_example(module).dag)
    states = [
        (ti.task_id, ti.map_index, str(getattr(ti.state, "value", ti.state))) for ti in dag_run.get_task_instances()
    ]
    assert sorted(states) == sorted((task, i, "success") for task in ("train", "ask") for i in range(5)), states
    assert sestek_conn.counters["trainings_created"] == 5
    assert sestek_conn.counters["inference_requests"] == 5
    for model_id in mod.MODEL_IDS:
        training = sestek_conn.trainings[model_id]
        assert training.inference_status == "Running"
        received = {f.filename: (f.size, f.sha256) for f in training.files}
        assert received == {name: (len((EXAMPLES / "data" / name).read_bytes()), digests[name]) for name in DATA_FILES}


def _airflow(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the Airflow CLI of this venv on ``home``: the example DAGs as DAG folder, no Sestek connection in env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__", "AIRFLOW_HOME"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(EXAMPLES),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
    )
    airflow = str(Path(sys.executable).with_name("airflow"))
    return subprocess.run([airflow, *args], env=env, capture_output=True, text=True, timeout=300, check=False)


def _parsed(home: Path) -> tuple[set[str], dict[str, str]]:
    """The serialized DAG ids and the import errors (file name -> stack trace) in ``home``'s metadata DB."""
    with closing(sqlite3.connect(home / "airflow.db")) as db:
        dag_ids = {row[0] for row in db.execute("SELECT dag_id FROM serialized_dag")}
        errors = {Path(row[0]).name: row[1] for row in db.execute("SELECT filename, stacktrace FROM import_error")}
    return dag_ids, errors


@pytest.fixture(scope="module")
def reserialize_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("reserialize-home")
    done = _airflow(home, "db", "migrate")
    assert done.returncode == 0, done.stderr[-3000:]
    return home


def test_example_dags_parse_in_airflow_without_and_with_a_stored_connection(
    reserialize_home: Path, emulator: SestekEmulator
) -> None:
    """
    ``airflow dags reserialize`` (a real DAG parse, in a subprocess) writes every example DAG with no Sestek
    connection defined, then with ``sestek_default`` stored in the metadata DB. On Airflow 3 no example reads
    a connection when parsed. On 2.11 (no asset references) the asset example's consumer needs the URI, so
    without a connection that file is a SestekConfigError that says how to name the model instead.
    """
    from tests.conftest import connection_json

    every = {
        "example_sestek_generative_qa",
        "example_sestek_sensor",
        "example_sestek_models_from_object_storage",
        "example_sestek_model_producer",
        "example_sestek_model_consumer",
        "example_sestek_evaluation_gate",
        "example_sestek_evaluated_model_consumer",
    } | ({"example_sestek_model_watcher"} if AIRFLOW_3 else set())
    # On 2.11 these files schedule a DAG on the model's URI, which needs the connection when parsed.
    asset_files = {
        "example_sestek_model_producer",
        "example_sestek_model_consumer",
        "example_sestek_evaluation_gate",
        "example_sestek_evaluated_model_consumer",
    }
    done = _airflow(reserialize_home, "dags", "reserialize")
    assert done.returncode == 0, done.stderr[-3000:]
    dag_ids, errors = _parsed(reserialize_home)
    if AIRFLOW_3:
        assert errors == {} and dag_ids == every, errors
    else:  # 2.11's reserialize logs import errors instead of recording them
        trace = done.stdout + done.stderr
        assert errors == {} and "example_sestek_model_asset.py" in trace, trace[-3000:]
        assert "example_sestek_evaluation_gate.py" in trace, trace[-3000:]
        assert "SestekConfigError" in trace and "'sestek_default' is not defined" in trace and "host=" in trace
        assert "AirflowNotFoundException" not in trace
        assert dag_ids == every - asset_files

    added = _airflow(reserialize_home, "connections", "add", "sestek_default", "--conn-json", connection_json(emulator))
    assert added.returncode == 0, added.stderr[-3000:]
    done = _airflow(reserialize_home, "dags", "reserialize")
    assert done.returncode == 0, done.stderr[-3000:]
    dag_ids, errors = _parsed(reserialize_home)
    assert errors == {} and dag_ids == every, errors
    for secret in (emulator.train_client[1], emulator.inference_client[1]):
        assert secret not in done.stdout + done.stderr
