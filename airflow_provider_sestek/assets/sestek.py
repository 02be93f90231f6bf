"""
The trained model as an Airflow Asset: ``sestek://{api host[:port]}/{tenant}/{model_id}``.

One function, :func:`model_identity`, names a model; the asset URI and the OpenLineage output of a training
are both built from it, so the two can never disagree. :func:`model_asset_uri` and :func:`model_asset` build
the URI for DAG authors (``schedule=[model_asset("faq-bot", host=..., tenant=...)]``), and :func:`sanitize_uri`
is the ``asset-uris`` handler Airflow calls on every ``Asset("sestek://...")``: it refuses what the helper
would never build.

Nothing here imports Airflow at module level: the operator module imports this on every DAG parse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

from airflow_provider_sestek import api
from airflow_provider_sestek.api.urls import _split, _valid_hostname

# The tenant rule is the connection's (api.validation); re-exported here, where it was first defined.
from airflow_provider_sestek.api.validation import TENANT_PATTERN as TENANT_PATTERN
from airflow_provider_sestek.api.validation import TENANT_RULE as TENANT_RULE
from airflow_provider_sestek.api.validation import validate_tenant as validate_tenant
from airflow_provider_sestek.exceptions import SestekConfigError, SestekValidationError

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Asset

SCHEME = "sestek"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def api_authority(base_url: str) -> str:
    """
    ``host[:port]`` of the API base URL as model names use it: host lowercased, IPv6 in brackets, the
    scheme's default port left out, never any ``user:password@``.

    :param base_url: the connection's API base URL (validated by :func:`api.normalize_base_url`).
    """
    parts = urlsplit(api.redact_url(base_url))
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is not None and port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{port}"
    return host


def model_identity(base_url: str, tenant: str | None, model_id: str) -> tuple[str, str]:
    """
    The one naming of a model: ``(namespace, name)`` = ``("sestek://host[:port]", "tenant/model_id")``.
    OpenLineage uses the pair, the asset URI joins it with ``/``. Without a tenant the name is the model id
    alone (OpenLineage only: an asset URI needs the tenant).

    :param base_url: the API base URL.
    :param tenant: the tenant name, or ``None``.
    :param model_id: the model id.
    """
    name = f"{tenant}/{model_id}" if tenant else str(model_id)
    return f"{SCHEME}://{api_authority(base_url)}", name


def model_asset_uri(
    model_id: str,
    *,
    sestek_conn_id: str | None = None,
    host: str | None = None,
    tenant: str | None = None,
) -> str:
    """
    The asset URI of a model, ``sestek://{api host[:port]}/{tenant}/{model_id}``: what
    :class:`~airflow_provider_sestek.operators.sestek.SestekTrainOperator` emits when it published the model.

    Give either ``host`` (the API base URL, as in the connection) and ``tenant``, or ``sestek_conn_id`` (its
    host and tenant are used; the lookup happens when this is called, in a DAG file at every parse). With
    neither, ``sestek_default`` is used.

    :param model_id: the model id.
    :param sestek_conn_id: a Sestek connection id.
    :param host: the API base URL, e.g. ``https://ai.example.com`` (a bare host name means https).
    :param tenant: the tenant; with a connection it overrides the connection's.
    :raises SestekValidationError: naming the field, the value and the rule.
    """
    if host is not None and sestek_conn_id is not None:
        raise SestekValidationError("sestek_conn_id", sestek_conn_id, "give either sestek_conn_id or host, not both")
    api.validate_model_id(model_id)
    if host is None:
        from airflow_provider_sestek.hooks.sestek import SestekHook

        cfg = SestekHook(sestek_conn_id or SestekHook.default_conn_name).config
        base_url, tenant = cfg.base_url, tenant or cfg.tenant
    else:
        try:
            base_url = api.normalize_base_url(host, "host")
        except SestekConfigError as exc:
            rule = str(exc).split(": ", 1)[-1]
            raise SestekValidationError("host", None, rule) from None
    namespace, name = model_identity(base_url, validate_tenant(tenant), model_id)
    return f"{namespace}/{name}"


def model_asset(
    model_id: str,
    *,
    sestek_conn_id: str | None = None,
    host: str | None = None,
    tenant: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Asset:
    """
    ``Asset(model_asset_uri(...))`` (a ``Dataset`` on Airflow 2.11), e.g. for ``schedule=[...]``.

    :param model_id: the model id.
    :param sestek_conn_id: a Sestek connection id (see :func:`model_asset_uri`).
    :param host: the API base URL.
    :param tenant: the tenant.
    :param extra: the asset's own extra.
    """
    from airflow.providers.common.compat.sdk import Asset

    uri = model_asset_uri(model_id, sestek_conn_id=sestek_conn_id, host=host, tenant=tenant)
    return Asset(uri, extra=extra) if extra else Asset(uri)


def _shown(parts: SplitResult) -> str:
    # A query or a user part may carry anything (a token pasted by mistake): never echo them.
    host = parts.netloc.rpartition("@")[2]
    netloc = f"...@{host}" if "@" in parts.netloc else host
    return urlunsplit(parts._replace(netloc=netloc, query="..." if parts.query else "", fragment=""))


def sanitize_uri(parts: SplitResult) -> SplitResult:
    """
    The ``asset-uris`` handler of the ``sestek`` scheme: accept ``sestek://host[:port]/{tenant}/{model_id}``
    only, host lowercased.

    Airflow has already dropped a password and a fragment and removed trailing slashes when it calls this.

    :param parts: the split URI.
    :raises SestekValidationError: (a ``ValueError``) naming the rule broken.
    """
    shown = _shown(parts)

    def bad(rule: str) -> SestekValidationError:
        return SestekValidationError("uri", shown, f"a Sestek model asset URI {rule}")

    if parts.scheme != SCHEME:
        raise bad(f"must use the {SCHEME}:// scheme")
    if parts.query:
        raise bad("must not have a query")
    if parts.fragment:
        raise bad("must not have a fragment")
    checked = _split(urlunsplit(parts))
    if checked is None:
        raise bad("must have a valid host and port")
    if checked.username is not None or checked.password is not None:
        raise bad("must not contain user information (user@)")
    if not checked.hostname or not _valid_hostname(checked.hostname):
        raise bad("must name the API host: sestek://{host[:port]}/{tenant}/{model_id}")
    if checked.port == 0:
        raise bad("must have a port from 1 to 65535")
    segments = parts.path.split("/")[1:] if parts.path.startswith("/") else []
    if len(segments) != 2 or not all(segments):
        raise bad("must have the path /{tenant}/{model_id}")
    tenant, model_id = segments
    if not TENANT_PATTERN.fullmatch(tenant):
        raise bad(f"has the tenant {tenant!r}; it must be {TENANT_RULE}")
    try:
        api.validate_model_id(model_id)
    except SestekValidationError as exc:
        raise bad(f"has the model id {model_id!r}, which {exc.rule}") from None
    host = checked.hostname.lower()
    netloc = (f"[{host}]" if ":" in host else host) + (f":{checked.port}" if checked.port is not None else "")
    return parts._replace(netloc=netloc)


def create_asset(*, host: str, tenant: str, model_id: str, extra: dict[str, Any] | None = None) -> Asset:
    """
    The ``asset-uris`` factory: an asset for a model.

    :param host: the API base URL.
    :param tenant: the tenant.
    :param model_id: the model id.
    :param extra: the asset's extra.
    """
    return model_asset(model_id, host=host, tenant=tenant, extra=extra)


def convert_asset_to_openlineage(asset: Any, lineage_context: Any) -> Any:
    """
    The ``asset-uris`` OpenLineage converter: the same dataset the training's lineage names as its output.

    :param asset: a ``sestek://`` asset.
    :param lineage_context: unused.
    """
    from airflow.providers.common.compat.openlineage.facet import Dataset

    parts = urlsplit(asset.uri)
    return Dataset(namespace=f"{SCHEME}://{parts.netloc}", name=parts.path.lstrip("/"))
