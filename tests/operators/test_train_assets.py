"""The published model is an asset event: emitted through the operator's alias, user outlets kept (dag.test())."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_sestek.assets import model_asset, model_asset_name, model_asset_uri
from airflow_provider_sestek.operators._assets import MODEL_ALIAS
from airflow_provider_sestek.testing import SestekEmulator
from tests._assets import AIRFLOW_3, activate_assets, asset_events, register_alias
from tests.conftest import connection_json
from tests.dag_runner import FACTORIES, run_task
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
    activate_assets(user_asset())
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
    if AIRFLOW_3:  # the name a DAG file references without reading the connection
        assert asset_names(uri) == ["sestek-model:sestek_default/faq-bot"]
    # The user's own outlet is kept: it gets its event too (2.11 records events only for datasets its DAG
    # processor wrote to the DB, which dag.test() does not do: there the merge test covers it).
    if AIRFLOW_3:
        assert asset_events("s3://acme/reports/trained.txt")


def asset_names(uri: str) -> list[str]:
    """The names of the Airflow 3 assets with this URI."""
    from airflow.models.asset import AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return list(session.scalars(select(AssetModel.name).where(AssetModel.uri == uri)))


@contextmanager
def dag_in_bundle(dag_id: str, build: Callable[[], Any]) -> Iterator[None]:
    """A DAG file in the bundle while the block runs: the next dag.test() writes its DAG to the metadata DB."""
    FACTORIES[dag_id] = build
    path = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / f"{dag_id}.py"
    path.write_text(
        "# An Airflow DAG file (safe-mode discovery looks for the words airflow and dag).\n"
        "from tests.dag_runner import FACTORIES\n"
        f"if {dag_id!r} in FACTORIES:\n"
        f"    dag = FACTORIES[{dag_id!r}]()\n"
    )
    try:
        yield
    finally:
        path.unlink()
        FACTORIES.pop(dag_id, None)


def parse_and_unpause(*dag_ids: str) -> None:
    """What the DAG processor and a user do: write the bundle's DAGs to the metadata DB, unpause these."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    manager = DagBundlesManager()
    manager.sync_bundles_to_db()
    for bundle in manager.get_all_dag_bundles():
        if not bundle.is_initialized:
            bundle.initialize()
        try:  # 3.2+
            from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
        except ImportError:
            try:  # 3.1: the bag takes no bundle name yet
                from airflow.models.dagbag import BundleDagBag, sync_bag_to_db
            except ImportError:  # 3.0
                from airflow.models.dagbag import DagBag

                DagBag(dag_folder=bundle.path, include_examples=False).sync_to_db(bundle.name, bundle.version)
                continue
            sync_bag_to_db(BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path), bundle.name, bundle.version)
            continue
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        sync_bag_to_db(bag, bundle.name, bundle.version)
    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id.in_(dag_ids)).values(is_paused=False))


def consumer_dag(dag_id: str, schedule: list[Any]) -> Callable[[], Any]:
    def build() -> Any:
        import pendulum
        from airflow.providers.common.compat.sdk import DAG
        from airflow.providers.standard.operators.empty import EmptyOperator

        with DAG(dag_id, schedule=schedule, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False) as dag:
            EmptyOperator(task_id="noop")
        return dag

    return build


@pytest.mark.skipif(not AIRFLOW_3, reason="asset names and references are Airflow 3")
def test_published_model_queues_the_dags_referencing_it_by_name_and_by_uri(
    sestek_conn: SestekEmulator, faq: str
) -> None:
    """
    The producer's event, on an asset the alias creates at run time, queues a DAG scheduled on
    ``model_asset("queued-bot")`` (a name reference, parsed without any connection) and one on
    ``model_asset("queued-bot", host=..., tenant=...)`` (a URI reference; before 3.3 the asset itself, which
    makes it active for the name reference too, see model_asset); the scheduler's own steps then find both
    due: it activates the alias-made asset, and the references resolve to it. (A model id of its own:
    an earlier test's faq-bot, same name on another emulator port, would own the name among active assets.)
    """
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.asset import AssetDagRunQueue
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import delete, select, update

    by_name, by_uri = f"by_name_{uuid.uuid4().hex[:8]}", f"by_uri_{uuid.uuid4().hex[:8]}"
    uri = model_asset_uri("queued-bot", host=sestek_conn.url, tenant=sestek_conn.tenant)
    with (
        dag_in_bundle(by_name, consumer_dag(by_name, [model_asset("queued-bot")])),
        dag_in_bundle(by_uri, consumer_dag(by_uri, [model_asset("queued-bot", host=sestek_conn.url, tenant="acme")])),
    ):
        parse_and_unpause(by_name, by_uri)
        try:
            result = run_task(lambda: train(faq, model_id="queued-bot"))
            assert result.state == "success", result
            assert asset_names(uri) == [model_asset_name("queued-bot", "sestek_default")]
            with create_session() as session:
                queued = set(session.scalars(select(AssetDagRunQueue.target_dag_id)))
                assert {by_name, by_uri} <= queued
                # What the scheduler loop does: activate referenced assets (an alias-made one counts), then
                # evaluate each queued DAG's asset condition.
                SchedulerJobRunner._update_asset_orphanage(
                    SchedulerJobRunner.__new__(SchedulerJobRunner), session=session
                )
                session.flush()  # Airflow's sessions do not autoflush; the scheduler commits this step itself
                _, due = DagModel.dags_needing_dagruns(session)
                assert {by_name, by_uri} <= set(due)
                session.rollback()  # release the rows dags_needing_dagruns locks
        finally:  # later tests' events on faq-bot must not queue these
            with create_session() as session:
                session.execute(delete(AssetDagRunQueue).where(AssetDagRunQueue.target_dag_id.in_([by_name, by_uri])))
                session.execute(update(DagModel).where(DagModel.dag_id.in_([by_name, by_uri])).values(is_paused=True))


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
