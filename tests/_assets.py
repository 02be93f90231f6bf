"""Reading asset (2.11: dataset) events from the metadata DB, for the asset tests."""

from __future__ import annotations

from typing import Any

from airflow_provider_sestek.operators._assets import MODEL_ALIAS

AIRFLOW_3 = int(__import__("airflow").__version__.split(".")[0]) >= 3


def asset_events(uri: str) -> list[dict[str, Any]]:
    """The events of the asset ``uri``, oldest first: ``extra`` and ``source_task_id``."""
    from airflow.utils.session import create_session
    from sqlalchemy import select

    if AIRFLOW_3:
        from airflow.models.asset import AssetEvent as Event
        from airflow.models.asset import AssetModel as Model

        key = Event.asset_id
    else:
        from airflow.models.dataset import DatasetEvent as Event  # type: ignore[no-redef]
        from airflow.models.dataset import DatasetModel as Model  # type: ignore[no-redef]

        key = Event.dataset_id
    with create_session() as session:
        rows = session.execute(select(Event).join(Model, Model.id == key).where(Model.uri == uri).order_by(Event.id))
        return [{"extra": dict(e.extra or {}), "source_task_id": e.source_task_id} for (e,) in rows]


def register_alias() -> None:
    """
    Airflow 2.11 records an alias event only for an alias its DAG processor wrote to the DB when it parsed
    the DAG; ``dag.test()`` parses nothing, so the row is written here, as the DAG processor would.
    """
    if AIRFLOW_3:
        return
    from airflow.models.dataset import DatasetAliasModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        if session.scalar(select(DatasetAliasModel).where(DatasetAliasModel.name == MODEL_ALIAS)) is None:
            session.add(DatasetAliasModel(name=MODEL_ALIAS))


def activate_assets(*assets: Any) -> None:
    """
    Airflow 3.0's ``dag.test()`` writes no DAG to the DB, so a concrete asset in a task's outlets is an
    inactive one there and fails the task (``AirflowInactiveAssetInInletOrOutletException``): the rows are
    written here, as the DAG processor and the scheduler would. (3.1 and later write them in dag.test().)

    :param assets: the concrete assets of the task's outlets.
    """
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS

    if not AIRFLOW_3 or AIRFLOW_V_3_1_PLUS:
        return
    from airflow.models.asset import AssetActive, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        for asset in assets:
            model = session.scalar(select(AssetModel).where(AssetModel.name == asset.name, AssetModel.uri == asset.uri))
            if model is None:
                model = AssetModel.from_public(asset)
                session.add(model)
                session.flush()
            if session.scalar(select(AssetActive).where(AssetActive.name == asset.name)) is None:
                session.add(AssetActive.for_asset(model))


def scheduled_on(dag: Any) -> list[str]:
    """The URIs of the assets (datasets) a DAG is scheduled on."""
    if AIRFLOW_3:
        return [asset.uri for asset in dag.timetable.asset_condition.objects]
    return [uri for uri, _ in dag.timetable.dataset_condition.iter_datasets()]
