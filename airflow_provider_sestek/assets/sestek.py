"""
The trained model as an Airflow Asset: ``sestek://{api host[:port]}{/base/path}/{tenant}/{model_id}``, named
``sestek-model:{conn_id}/{model_id}`` on Airflow 3.

One function, :func:`model_identity`, names a model; the asset URI and the OpenLineage output of a training
are both built from it, so the two can never disagree. The URI needs the connection (its host, base path and
tenant), the name does not: :func:`model_asset` gives DAG authors a reference by name (Airflow 3), so a DAG
file scheduled on a model reads no connection when it is parsed. :func:`sanitize_uri` is the ``asset-uris``
handler Airflow calls on every ``Asset("sestek://...")``: it refuses what the helper would never build.

Nothing here imports Airflow at module level: the operator module imports this on every DAG parse.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, quote, unquote, urlsplit, urlunsplit

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
#: The prefix of a model's asset name on Airflow 3: ``sestek-model:{conn_id}/{model_id}``.
NAME_PREFIX = "sestek-model:"
_DEFAULT_PORTS = {"http": 80, "https": 443}
# RFC 3986 unreserved characters and sub-delimiters, kept as they are in a base-path segment; the rest is
# percent-encoded, so "%7e" and "~" (or a raw "ü" and "%C3%BC") name one deployment.
_PATH_SAFE = "-._~!$&'()*+,;=:@"

log = logging.getLogger(__name__)


def normalize_host(hostname: str) -> str:
    """
    One spelling per host, as it appears in a model's URI: lower case, no trailing dot, an IPv6 address
    compressed and in brackets (``[0:0:0:0:0:0:0:1]`` is ``[::1]``), an internationalised name as its
    A-label (``bücher.example`` is ``xn--bcher-kva.example``).

    :param hostname: the host, with or without the brackets of an IPv6 literal.
    """
    host = hostname.strip("[]").rstrip(".")
    if ":" in host:
        try:
            return f"[{ipaddress.IPv6Address(host).compressed}]"
        except ValueError:  # a zone id ipaddress does not know: lower case is still one spelling
            return f"[{host.lower()}]"
    if host.isascii():
        return host.lower()
    import idna  # IDNA 2008 with UTS 46 mapping (upper case, full-width dots): a dependency of httpx

    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError:
        # What IDNA 2008 refuses (a label with '_') the connection accepted through Python's IDNA 2003.
        return host.encode("idna").decode("ascii").lower()


def _base_segments(path: str) -> list[str]:
    """The segments of a base path, empty ones dropped, percent-encoding made canonical."""
    return [quote(unquote(segment), safe=_PATH_SAFE) for segment in path.split("/") if segment]


def api_authority(base_url: str) -> str:
    """
    ``host[:port]`` of the API base URL as model names use it: the host as :func:`normalize_host` spells it,
    the scheme's default port left out, never any ``user:password@``.

    :param base_url: the connection's API base URL (validated by :func:`api.normalize_base_url`).
    """
    parts = urlsplit(api.redact_url(base_url))
    host = normalize_host(parts.hostname or "")
    port = parts.port
    if port is not None and port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{port}"
    return host


def model_identity(base_url: str, tenant: str | None, model_id: str) -> tuple[str, str]:
    """
    The one naming of a model: ``(namespace, name)`` = ``("sestek://host[:port]", "base/path/tenant/model_id")``
    where ``base/path`` is the path of the API base URL (none for ``https://ai.example.com``), so two
    deployments behind one proxy (``https://proxy/sestek-prod``, ``https://proxy/sestek-test``) are two
    models. OpenLineage uses the pair, the asset URI joins it with ``/``. Without a tenant the name leaves it
    out (OpenLineage only: an asset URI needs the tenant).

    :param base_url: the API base URL.
    :param tenant: the tenant name, or ``None``.
    :param model_id: the model id.
    """
    segments = _base_segments(urlsplit(api.redact_url(base_url)).path)
    segments += [tenant, str(model_id)] if tenant else [str(model_id)]
    return f"{SCHEME}://{api_authority(base_url)}", "/".join(segments)


def model_asset_name(model_id: str, sestek_conn_id: str = "sestek_default") -> str:
    """
    The asset name of a model on Airflow 3, ``sestek-model:{conn_id}/{model_id}``: known without reading the
    connection, so a DAG file can schedule on it (:func:`model_asset`) with no lookup when it is parsed.

    :param model_id: the model id.
    :param sestek_conn_id: the Sestek connection id the training uses.
    :raises SestekValidationError: naming the field, the value and the rule.
    """
    api.validate_model_id(model_id)
    if not isinstance(sestek_conn_id, str) or not sestek_conn_id:
        raise SestekValidationError("sestek_conn_id", sestek_conn_id, "must be a non-empty string")
    if any(char.isspace() or not char.isprintable() for char in sestek_conn_id):
        raise SestekValidationError(
            "sestek_conn_id", sestek_conn_id, "must not contain white space or control characters"
        )
    return f"{NAME_PREFIX}{sestek_conn_id}/{model_id}"


def model_asset_uri(
    model_id: str,
    *,
    sestek_conn_id: str | None = None,
    host: str | None = None,
    tenant: str | None = None,
) -> str:
    """
    The asset URI of a model, ``sestek://{api host[:port]}{/base/path}/{tenant}/{model_id}``: what
    :class:`~airflow_provider_sestek.operators.sestek.SestekTrainOperator` emits when it published the model.

    Give either ``host`` (the API base URL, as in the connection) and ``tenant`` (a pure function), or
    ``sestek_conn_id`` (its host and tenant are used: the connection is **read when this is called**, so call
    it at run time, not at the top of a DAG file). With neither, ``sestek_default`` is used.

    :param model_id: the model id.
    :param sestek_conn_id: a Sestek connection id.
    :param host: the API base URL, e.g. ``https://ai.example.com`` (a bare host name means https).
    :param tenant: the tenant; with a connection it overrides the connection's.
    :raises SestekValidationError: naming the field, the value and the rule.
    :raises SestekConfigError: the connection is not defined.
    """
    if host is not None and sestek_conn_id is not None:
        raise SestekValidationError("sestek_conn_id", sestek_conn_id, "give either sestek_conn_id or host, not both")
    api.validate_model_id(model_id)
    if host is None:
        cfg = _connection_config(sestek_conn_id or "sestek_default")
        base_url, tenant = cfg.base_url, tenant or cfg.tenant
    else:
        try:
            base_url = api.normalize_base_url(host, "host")
        except SestekConfigError as exc:
            rule = str(exc).split(": ", 1)[-1]
            raise SestekValidationError("host", None, rule) from None
    namespace, name = model_identity(base_url, validate_tenant(tenant), model_id)
    return f"{namespace}/{name}"


def _connection_config(conn_id: str) -> Any:
    """The connection's settings; a connection that is not defined is a :class:`SestekConfigError`."""
    from airflow_provider_sestek.hooks.config import NOT_DEFINED
    from airflow_provider_sestek.hooks.sestek import SestekHook

    try:
        return SestekHook(conn_id).config
    except SestekConfigError as exc:
        if NOT_DEFINED not in str(exc):
            raise
        raise SestekConfigError(
            "sestek_conn_id",
            f"the connection {conn_id!r} is not defined; define it, or name the model without a lookup: "
            "host='https://...' and tenant='...'",
        ) from None


def model_asset(
    model_id: str,
    *,
    sestek_conn_id: str | None = None,
    host: str | None = None,
    tenant: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Any:
    """
    What a DAG schedules on to run when the model is published, e.g. ``schedule=[model_asset("faq-bot")]``.

    On Airflow 3 this reads no connection: with ``sestek_conn_id`` (or nothing: ``sestek_default``) it is
    ``Asset.ref(name=model_asset_name(...))``, matched by the name the operator gives the model; with
    ``host`` and ``tenant`` it is ``Asset.ref(uri=model_asset_uri(...))``, matched by the URI. Airflow 3.0 to
    3.2 resolve a reference only to an asset some DAG names (apache/airflow#58058, fixed in 3.3): there the
    ``host`` form is the asset itself (its name with ``sestek_conn_id``, its URI), which makes it active for
    the name form too; a DAG that uses only the name form never runs on those lines. On Airflow 2.11,
    which has no references, it is ``Dataset(model_asset_uri(...))``: with a connection id the connection is
    read when the DAG file is parsed.

    :param model_id: the model id.
    :param sestek_conn_id: the Sestek connection id the trainings use (on Airflow 3 it may come with ``host``:
        it then names the asset, which Airflow 3.0 to 3.2 need when it is not ``sestek_default``).
    :param host: the API base URL.
    :param tenant: the tenant.
    :param extra: the dataset's extra (Airflow 2.11 only: a reference has none, see :func:`create_asset`).
    :raises SestekValidationError: naming the field, the value and the rule.
    :raises SestekConfigError: on Airflow 2.11, the connection is not defined.
    """
    from airflow.providers.common.compat.sdk import Asset
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS

    if not AIRFLOW_V_3_0_PLUS:
        uri = model_asset_uri(model_id, sestek_conn_id=sestek_conn_id, host=host, tenant=tenant)
        return Asset(uri, extra=extra) if extra else Asset(uri)
    if extra:
        raise SestekValidationError(
            "extra", None, "a reference to the model's asset carries no extra on Airflow 3 (the producer's asset does)"
        )
    name = model_asset_name(model_id, "sestek_default" if sestek_conn_id is None else sestek_conn_id)
    if host is None:
        if tenant is not None:
            raise SestekValidationError("tenant", tenant, "give tenant with host; a connection id names its own")
        ref = Asset.ref(name=name)
        if not AIRFLOW_V_3_3_PLUS:  # (after the checks: a refused id is an error, not this warning)
            log.warning(
                "model_asset(%r) is a reference by name: Airflow before 3.3 resolves it only once a DAG schedules "
                "on model_asset(%r, host=..., tenant=...) (apache/airflow#58058)",
                model_id,
                model_id,
            )
        return ref
    # With host, sestek_conn_id only names the asset (the URI comes from host and tenant): 3.3+ needs no name.
    uri = model_asset_uri(model_id, host=host, tenant=tenant)
    if not AIRFLOW_V_3_3_PLUS:
        # Before 3.3 the scheduler activates only assets a DAG names (apache/airflow#58058): the one the
        # operator's alias makes stays inactive and no reference resolves to it. The same asset, named here
        # (the name the operator gives it, the URI), is active and its events reach this DAG.
        return Asset(name=name, uri=uri)
    return Asset.ref(uri=uri)


def _shown(parts: SplitResult) -> str:
    # A query or a user part may carry anything (a token pasted by mistake): never echo them.
    host = parts.netloc.rpartition("@")[2]
    netloc = f"...@{host}" if "@" in parts.netloc else host
    return urlunsplit(parts._replace(netloc=netloc, query="..." if parts.query else "", fragment=""))


def sanitize_uri(parts: SplitResult) -> SplitResult:
    """
    The ``asset-uris`` handler of the ``sestek`` scheme: accept
    ``sestek://host[:port]{/base/path}/{tenant}/{model_id}`` only (two path segments or more: the last two are
    the tenant and the model id), the host spelled as :func:`normalize_host` does.

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
        raise bad("must name the API host: sestek://{host[:port]}{/base/path}/{tenant}/{model_id}")
    if checked.port == 0:
        raise bad("must have a port from 1 to 65535")
    segments = parts.path.split("/")[1:] if parts.path.startswith("/") else []
    if len(segments) < 2 or not all(segments) or any(s in (".", "..") for s in segments):
        raise bad("must have the path {/base/path}/{tenant}/{model_id}, no segment empty, '.' or '..'")
    *base, tenant, model_id = segments
    if not TENANT_PATTERN.fullmatch(tenant):
        raise bad(f"has the tenant {tenant!r}; it must be {TENANT_RULE}")
    try:
        api.validate_model_id(model_id)
    except SestekValidationError as exc:
        raise bad(f"has the model id {model_id!r}, which {exc.rule}") from None
    netloc = normalize_host(checked.hostname) + (f":{checked.port}" if checked.port is not None else "")
    path = "/" + "/".join([*_base_segments("/".join(base)), tenant, model_id])
    return parts._replace(netloc=netloc, path=path)


def create_asset(*, host: str, tenant: str, model_id: str, extra: dict[str, Any] | None = None) -> Asset:
    """
    The ``asset-uris`` factory: a concrete ``Asset(uri)`` (``Dataset`` on 2.11) for a model. On Airflow 3 its
    name is the URI, not the operator's :func:`model_asset_name`: schedule on :func:`model_asset` instead.

    :param host: the API base URL.
    :param tenant: the tenant.
    :param model_id: the model id.
    :param extra: the asset's extra.
    """
    from airflow.providers.common.compat.sdk import Asset

    uri = model_asset_uri(model_id, host=host, tenant=tenant)
    return Asset(uri, extra=extra) if extra else Asset(uri)


def convert_asset_to_openlineage(asset: Any, lineage_context: Any) -> Any:
    """
    The ``asset-uris`` OpenLineage converter: the same dataset the training's lineage names as its output
    (namespace ``sestek://host[:port]``, name ``base/path/tenant/model_id``).

    :param asset: a ``sestek://`` asset.
    :param lineage_context: unused.
    """
    from airflow.providers.common.compat.openlineage.facet import Dataset

    parts = urlsplit(asset.uri)
    return Dataset(namespace=f"{SCHEME}://{parts.netloc}", name=parts.path.lstrip("/"))
