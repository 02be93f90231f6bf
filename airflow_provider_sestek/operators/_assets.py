"""
The asset event of a training: the published model, emitted through an asset alias the operator declares.

The model's URI is known only at run time (``model_id`` is templated, the host comes from the connection),
so the operator declares :data:`MODEL_ALIAS` in its outlets at parse time and, on success, adds the event for
``Asset(name="sestek-model:{conn_id}/{model_id}", uri="sestek://{host[:port]}{/base/path}/{tenant}/{model_id}")``
to it. A DAG scheduled on ``model_asset(...)`` (a reference by that name, or by that URI) then runs once per
publication. Works on Airflow 2.11 too (``DatasetAlias`` / ``Dataset(uri)``, through common-compat: 2.11
datasets have no name).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_sestek.hooks.config import SestekConnectionConfig

#: The asset alias every ``SestekTrainOperator`` declares; its events point at the models' assets.
MODEL_ALIAS = "sestek-trained-models"


def with_model_alias(outlets: Any) -> list[Any]:
    """
    The user's outlets (one, a list, or ``None``) with :data:`MODEL_ALIAS` added once: merged, never replaced.

    :param outlets: the ``outlets`` argument as given.
    """
    from airflow.providers.common.compat.sdk import AssetAlias

    merged = [] if outlets is None else list(outlets) if isinstance(outlets, list | tuple) else [outlets]
    if not any(isinstance(o, AssetAlias) and o.name == MODEL_ALIAS for o in merged):
        merged.append(AssetAlias(name=MODEL_ALIAS))
    return merged


def model_event_extra(
    result: Mapping[str, Any], experiment_id: str | None, submitted_experiment_id: str | None = None
) -> dict[str, Any]:
    """
    The asset event's ``extra``: ids and statuses only, never a secret.

    :param result: the task result (``model_id``, ``training_status``, ``inference_status``, ``percent``).
    :param experiment_id: the Sestek experiment id of the training, when this task knows it.
    :param submitted_experiment_id: the experiment an earlier try submitted, when the task cannot tell whether
        the published training is that one (a retry that attached): added as ``submitted_experiment_id``.
    """
    extra = {
        "model_id": result.get("model_id"),
        "experiment_id": experiment_id,
        "training_status": result.get("training_status"),
        "inference_status": result.get("inference_status"),
        "percent": result.get("percent"),
    }
    if experiment_id is None and submitted_experiment_id:
        extra["submitted_experiment_id"] = submitted_experiment_id
    return extra


def emit_model_event(
    context: Mapping[str, Any],
    cfg: SestekConnectionConfig,
    result: Mapping[str, Any],
    experiment_id: str | None,
    log: Any,
    submitted_experiment_id: str | None = None,
    *,
    sestek_conn_id: str = "sestek_default",
) -> str | None:
    """
    Add the published model's asset event to the alias; returns the URI, or ``None`` when nothing was emitted
    (the model is not published, the connection has no tenant, or the task has no outlet events).

    :param context: the task context.
    :param cfg: the Sestek connection settings (host and tenant name the model).
    :param result: the task result.
    :param experiment_id: the experiment id, when known.
    :param log: the task logger.
    :param submitted_experiment_id: see :func:`model_event_extra`.
    :param sestek_conn_id: the connection id of the training: on Airflow 3 it is part of the asset's name
        (:func:`~airflow_provider_sestek.assets.sestek.model_asset_name`), which consumers reference.
    """
    # Imported here, not at the top: this module is imported on every DAG parse, these only on success.
    from airflow_provider_sestek.api import TrainingProgress

    if not result.get("training_status") or not TrainingProgress.from_dict(result).is_published:
        log.info("Model %s is not published yet: no asset event", result.get("model_id"))
        return None
    extra = model_event_extra(result, experiment_id, submitted_experiment_id)
    return emit_model_asset(context, cfg, str(result["model_id"]), extra, log, sestek_conn_id=sestek_conn_id)


def emit_model_asset(
    context: Mapping[str, Any],
    cfg: SestekConnectionConfig,
    model_id: str,
    extra: dict[str, Any],
    log: Any,
    *,
    sestek_conn_id: str = "sestek_default",
) -> str | None:
    """
    Add an event of the published model's asset to :data:`MODEL_ALIAS`; returns the URI, or ``None`` when
    nothing was emitted (the connection has no tenant, or the task has no outlet events).

    :param context: the task context.
    :param cfg: the Sestek connection settings (host and tenant name the model).
    :param model_id: the model.
    :param extra: the event's ``extra`` (ids, statuses, an evaluation's summary: never a secret).
    :param log: the task logger.
    :param sestek_conn_id: the connection id: on Airflow 3 it is part of the asset's name.
    """
    from airflow_provider_sestek.assets.sestek import model_asset_name, model_asset_uri, validate_tenant
    from airflow_provider_sestek.exceptions import SestekValidationError

    try:
        validate_tenant(cfg.tenant)
    except SestekValidationError as exc:
        # The training succeeded: a connection without a tenant (enough for training) must not fail it.
        log.warning("No asset event for model %s: %s", model_id, exc)
        return None
    from airflow.providers.common.compat.sdk import Asset, AssetAlias
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    uri = model_asset_uri(model_id, host=cfg.base_url, tenant=cfg.tenant)
    events = context.get("outlet_events")
    if events is None:
        log.warning("No outlet_events in the task context: no asset event for %s", uri)
        return None
    if not _alias_in_db_on_airflow_2():
        # Airflow 2.11 fails the whole task on an event through an alias its DAG processor never recorded
        # (dag.test(), `airflow tasks test`): a finished training must not fail for that.
        log.warning(
            "Dataset alias %s is not in the metadata DB (DAG not parsed by a DAG processor): no event", MODEL_ALIAS
        )
        return None
    # Airflow 3 keys an asset by name and URI: the name is what a DAG file can reference without reading the
    # connection (model_asset). 2.11 datasets are keyed by URI alone.
    asset = Asset(name=model_asset_name(model_id, sestek_conn_id), uri=uri) if AIRFLOW_V_3_0_PLUS else Asset(uri)
    events[AssetAlias(name=MODEL_ALIAS)].add(asset, extra=extra)
    log.info("Asset event for %s (through alias %s)", uri, MODEL_ALIAS)
    return uri


def _alias_in_db_on_airflow_2() -> bool:
    """On Airflow 2, whether the DAG processor recorded :data:`MODEL_ALIAS`; always ``True`` on Airflow 3."""
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    if AIRFLOW_V_3_0_PLUS:
        return True
    try:
        from airflow.models.dataset import DatasetAliasModel  # type: ignore[import-not-found,unused-ignore]
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            found = session.scalar(select(DatasetAliasModel.id).where(DatasetAliasModel.name == MODEL_ALIAS))
            return found is not None
    except Exception:  # no DB access from this worker: emit, as Airflow itself would try
        return True
