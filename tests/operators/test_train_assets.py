"""The published model is an asset event: emitted through the operator's alias, user outlets kept (dag.test())."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_sestek.assets import model_asset_uri
from airflow_provider_sestek.operators._assets import MODEL_ALIAS
from airflow_provider_sestek.testing import SestekEmulator
from tests._assets import AIRFLOW_3, asset_events, register_alias
from tests.conftest import connection_json
from tests.dag_runner import run_task
from tests.operators.test_train import train

pytestmark = pytest.mark.usefixtures("airflow_db", "alias_in_db")

AIRFLOW_3_3 = __import__("airflow.providers.common.compat.version_compat", fromlist=["x"]).AIRFLOW_V_3_3_PLUS


@pytest.fixture
def alias_in_db(airflow_db: str) -> None:
    register_alias()


def user_asset() -> Any:
    from airflow.providers.common.compat.sdk import Asset

    return Asset("s3://acme/reports/trained.txt")


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_emits_the_model_asset_with_user_outlets(sestek_conn: SestekEmulator, faq: str, deferrable: bool) -> None:
    uri = model_asset_uri("faq-bot", host=sestek_conn.url, tenant=sestek_conn.tenant)
    before = len(asset_events(uri))
    result = run_task(lambda: train(faq, deferrable=deferrable, outlets=[user_asset()]))
    assert result.state == "success", result
    events = asset_events(uri)
    assert len(events) == before + 1
    experiment_id = sestek_conn.trainings["faq-bot"].experiment_id
    assert events[-1]["extra"] == {
        "model_id": "faq-bot",
        "experiment_id": experiment_id,
        "training_status": "Completed",
        "inference_status": "Running",
        "percent": 100,
    }
    assert events[-1]["source_task_id"] == "under_test"
    # The user's own outlet is kept: it gets its event too (2.11 records events only for datasets its DAG
    # processor wrote to the DB, which dag.test() does not do: there the merge test covers it).
    if AIRFLOW_3:
        assert asset_events("s3://acme/reports/trained.txt")


def test_outlets_merge_never_replace(faq: str) -> None:
    from airflow.providers.common.compat.sdk import AssetAlias

    op = train(faq, outlets=user_asset())
    names = [getattr(o, "name", None) for o in op.outlets]
    assert op.outlets[0] == user_asset() and names.count(MODEL_ALIAS) == 1
    again = train(faq, task_id="again", outlets=[AssetAlias(name=MODEL_ALIAS)])
    assert [o.name for o in again.outlets] == [MODEL_ALIAS]
    assert [o.name for o in train(faq, task_id="plain").outlets] == [MODEL_ALIAS]


def test_mapped_operator_declares_the_alias(faq: str) -> None:
    from airflow.providers.common.compat.sdk import DAG

    from airflow_provider_sestek.operators.sestek import SestekTrainOperator

    with DAG("mapped_alias", schedule=None):
        mapped = SestekTrainOperator.partial(task_id="m", project_name="p", data_files=[faq]).expand(
            model_id=["a-bot", "b-bot"]
        )
    assert MODEL_ALIAS in [getattr(o, "name", None) for o in mapped.outlets]


def test_not_published_no_event(sestek_conn: SestekEmulator, faq: str) -> None:
    uri = model_asset_uri("faq-bot", host=sestek_conn.url, tenant=sestek_conn.tenant)
    before = len(asset_events(uri))
    result = run_task(lambda: train(faq, wait_for_completion=False))
    assert result.state == "success"
    assert len(asset_events(uri)) == before


def test_no_tenant_trains_without_event(emulator: SestekEmulator, monkeypatch: pytest.MonkeyPatch, faq: str) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emulator, tenant=""))
    result = run_task(lambda: train(faq))
    assert result.state == "success", result
    assert emulator.trainings["faq-bot"].inference_status == "Running"


@pytest.mark.skipif(not AIRFLOW_3_3, reason="the task state store arrived in Airflow 3.3")
@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_durable_retry_returning_the_finished_training_emits(
    emulator_factory: Any, monkeypatch: pytest.MonkeyPatch, faq: str, deferrable: bool, capsys: Any
) -> None:
    """
    Try 1 times out; the model is published before try 2, which returns it (no retrain) and emits the event. Try 2
    cannot tell that training from a later one of the same model id: the event names the experiment try 1
    submitted as ``submitted_experiment_id`` and claims no ``experiment_id``.
    """
    from airflow_provider_sestek.hooks.sestek import SestekHook

    emu = emulator_factory(advance="time", seconds_per_step=0.1)
    monkeypatch.setenv("AIRFLOW_CONN_SESTEK_DEFAULT", connection_json(emu))
    uri = model_asset_uri("faq-bot", host=emu.url, tenant=emu.tenant)
    before = len(asset_events(uri))
    stop = threading.Event()

    def publish() -> None:  # another reader's polls publish the model while try 1 waits for its retry
        while not stop.wait(0.2):
            try:
                if SestekHook().get_training_progress("faq-bot").is_published:
                    return
            except Exception:
                continue

    poller = threading.Thread(target=publish, daemon=True)
    poller.start()
    try:
        result = run_task(
            lambda: train(faq, deferrable=deferrable, timeout=0.2, retries=1, retry_delay=timedelta(seconds=3))
        )
    finally:
        stop.set()
        poller.join(5)
    assert result.state == "success", result
    assert emu.counters["trainings_created"] == 1
    assert "Job already completed successfully, skipping resubmission" in "".join(capsys.readouterr())
    events = asset_events(uri)
    assert len(events) == before + 1
    assert events[-1]["extra"]["experiment_id"] is None
    assert events[-1]["extra"]["submitted_experiment_id"] == emu.trainings["faq-bot"].experiment_id


@pytest.mark.skipif(AIRFLOW_3, reason="Airflow 2.11 only")
def test_airflow_2_alias_not_recorded_still_succeeds(sestek_conn: SestekEmulator, faq: str) -> None:
    """dag.test() on 2.11 records no alias (no DAG processor): the training succeeds, without a dataset event."""
    from airflow.models.dataset import DatasetAliasModel
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    with create_session() as session:
        session.execute(delete(DatasetAliasModel).where(DatasetAliasModel.name == MODEL_ALIAS))
    uri = model_asset_uri("faq-bot", host=sestek_conn.url, tenant=sestek_conn.tenant)
    try:
        result = run_task(lambda: train(faq))
        assert result.state == "success", result
        assert asset_events(uri) == []
    finally:
        register_alias()
