"""OpenLineage facets of a training: its data files and URLs in, the trained model out, no credentials."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_sestek import api
from airflow_provider_sestek.hooks.config import SestekConnectionConfig


def training_lineage(cfg: SestekConnectionConfig, model_id: str, sources: Sequence[str]) -> Any:
    """
    The ``OperatorLineage`` of a training (needs the OpenLineage provider).

    :param cfg: the Sestek connection settings (the output's namespace is the API host).
    :param model_id: the model trained.
    :param sources: the data files and URLs, as the task was given them.
    """
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.openlineage.extractors import OperatorLineage

    inputs = [Dataset(namespace=ns, name=name) for ns, name in map(lineage_name, sources)]
    # The same naming as the model's asset URI (sestek://host[:port]{/base/path}/tenant/model_id).
    from airflow_provider_sestek.assets.sestek import model_identity

    namespace, name = model_identity(cfg.base_url, cfg.tenant, model_id)
    return OperatorLineage(inputs=inputs, outputs=[Dataset(namespace=namespace, name=name)])


def lineage_name(location: str) -> tuple[str, str]:
    """
    OpenLineage namespace and name of a data location (``file://host`` + path, ``s3://bucket`` + key ...),
    with any ``user:password@`` removed.

    :param location: a path or URL of training data.
    """
    if "://" not in location:
        return f"file://{socket.getfqdn()}", os.path.abspath(location)
    parts = urlsplit(api.redact_url(location))
    if parts.scheme == "file":
        return f"file://{parts.netloc or socket.getfqdn()}", parts.path
    name = parts.path if parts.scheme in ("http", "https") else parts.path.lstrip("/")
    return f"{parts.scheme}://{parts.netloc}", name


def evaluation_lineage(
    cfg: SestekConnectionConfig,
    model_id: str,
    by_check: Mapping[str, Sequence[int]],
    cases: str | None,
    report: str | None,
) -> Any:
    """
    The ``OperatorLineage`` of an evaluation: the model (named as its asset) as an input with a
    ``dataQualityAssertions`` facet, one assertion per check kind (``success`` when every case passed it); the
    cases file an input, the report an output.

    :param cfg: the Sestek connection settings.
    :param model_id: the model evaluated.
    :param by_check: ``check -> (passed, failed)`` counts.
    :param cases: the cases file or URL, when the cases came from one.
    :param report: the report's path or URL, when written.
    """
    from airflow.providers.common.compat.openlineage.facet import Dataset, InputDataset
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.facet_v2 import data_quality_assertions_dataset as dq

    from airflow_provider_sestek.assets.sestek import model_identity

    namespace, name = model_identity(cfg.base_url, cfg.tenant, model_id)
    assertions = [
        dq.Assertion(
            assertion=check,
            success=failed == 0,
            expected=f"{passed + failed} cases pass",
            actual=f"{passed} passed, {failed} failed",
        )
        for check, (passed, failed) in by_check.items()
    ]
    model = InputDataset(
        namespace=namespace,
        name=name,
        inputFacets={"dataQualityAssertions": dq.DataQualityAssertionsDatasetFacet(assertions=assertions)},
    )
    inputs = [model] + ([Dataset(*lineage_name(cases))] if cases else [])
    outputs = [Dataset(*lineage_name(report))] if report else []
    return OperatorLineage(inputs=inputs, outputs=outputs)
