"""
The settings of a ``sestek`` connection, read and validated once (pure: no lookup, no network).
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any, Literal

from airflow_provider_sestek import api
from airflow_provider_sestek.exceptions import SestekConfigError, SestekValidationError

ClientKind = Literal["training", "inference"]

DEFAULT_CONNECT_TIMEOUT = 10.0
#: Total deadline of one request unless the connection's ``timeout`` extra says otherwise.
DEFAULT_TIMEOUT = 60.0
#: Largest response body read: Sestek answers are a few KiB; a misbehaving server or proxy must not
#: exhaust the memory of a worker, or of the triggerer that every deferred task shares.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
#: Longest request deadline accepted.
MAX_TIMEOUT = 86_400.0


def check_ca(path: str) -> None:
    """
    Refuse a ``verify`` path TLS cannot use, when the connection is read: a file that holds no certificate
    would otherwise fail every request later, as a retried transport error. A directory is taken as it is
    (OpenSSL looks certificates up in it by hash, when it needs one).

    The file is loaded the way both transports load it; the result is kept per file version, so a hook
    reading its connection again costs a ``stat``.

    :param path: the CA file or directory (a path, never a secret: the messages name it).
    :raises SestekConfigError: naming the path and why it cannot be loaded.
    """
    if os.path.isdir(path):
        return
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise SestekConfigError("verify", f"CA bundle {path!r} cannot be read: {exc.strerror or exc}") from None
    problem = _ca_problem(path, stat.st_mtime_ns, stat.st_size)
    if problem is not None:
        raise SestekConfigError(
            "verify",
            f"CA bundle {path!r} cannot be loaded as PEM certificates ({problem}); give true, false, "
            "or the path of a CA bundle file or directory",
        )


@lru_cache(maxsize=32)
def _ca_problem(path: str, mtime_ns: int, size: int) -> str | None:
    """Why a CA file cannot be loaded, or ``None``; one answer per file version (path, mtime, size)."""
    import ssl

    try:
        ssl.create_default_context(cafile=path)
    except ssl.SSLError as exc:
        return str(exc.reason or exc.__class__.__name__).lower().replace("_", " ")
    except (OSError, ValueError) as exc:
        return getattr(exc, "strerror", None) or exc.__class__.__name__
    return None


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off")
    return bool(value)


def _timeout(raw: Any) -> float:
    if raw is None:
        return DEFAULT_TIMEOUT
    if isinstance(raw, bool):  # JSON true would read as 1 second
        raise SestekConfigError("timeout", f"{raw!r} is not a number of seconds")
    try:
        seconds = float(raw)
    except (TypeError, ValueError, OverflowError):
        raise SestekConfigError("timeout", f"{raw!r} is not a number of seconds") from None
    # "nan" and "inf" parse as floats but would make every deadline meaningless.
    if not math.isfinite(seconds) or seconds <= 0:
        raise SestekConfigError("timeout", f"{raw!r} must be a positive, finite number of seconds")
    if seconds > MAX_TIMEOUT:
        # Socket and lock timeouts overflow the platform's time_t long before "infinite"; one request
        # waiting a day is already a hung request.
        raise SestekConfigError("timeout", f"{raw!r} is more than {MAX_TIMEOUT:g} seconds (one day)")
    return seconds


def _tenant(raw: Any) -> str | None:
    """
    The ``tenant`` extra, checked when the connection is read (:func:`api.validate_tenant`): a tenant
    goes into the inference URL's path and the model asset URI, so ``a/b``, ``..`` or ``a?x=1`` would call
    another URL, and only the asset event at the end of a training would notice.
    """
    if raw is None:
        return None
    try:
        return api.validate_tenant(raw)
    except SestekValidationError as exc:
        shown = api.excerpt(repr(raw), 80)
        raise SestekConfigError("tenant", f"{shown} {exc.rule}") from None


@dataclass(frozen=True)
class SestekConnectionConfig:
    """
    Everything the transports need from an Airflow connection, validated once.

    :param conn_id: the connection id (for messages).
    :param base_url: API base URL.
    :param identity_url: token service base URL.
    :param client_id: training client id.
    :param client_secret: training client secret (not in ``repr``).
    :param tenant: tenant name, needed for inference URLs.
    :param inference_client_id: inference client id (falls back to the training client).
    :param inference_client_secret: inference client secret (not in ``repr``).
    :param verify: TLS verification: ``True``, ``False`` or a CA bundle path.
    :param connect_timeout: seconds to connect.
    :param timeout: total deadline of one request, in seconds: connecting, sending and the whole answer
        (for a training upload, the answer once the body is sent).
    :param portal_url: template of a portal link, e.g. ``https://portal.example.com/models/{model_id}``.
    """

    conn_id: str
    base_url: str
    identity_url: str
    client_id: str
    client_secret: str = field(repr=False)
    tenant: str | None = None
    inference_client_id: str | None = None
    inference_client_secret: str | None = field(default=None, repr=False)
    verify: bool | str = True
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    timeout: float = DEFAULT_TIMEOUT
    portal_url: str | None = None

    @classmethod
    def from_connection(
        cls,
        conn_id: str,
        host: str | None,
        login: str | None,
        password: str | None,
        extra: Mapping[str, Any],
        port: int | None = None,
    ) -> SestekConnectionConfig:
        """
        Build and validate the config from connection fields (pure: no lookup, no network).

        :param conn_id: connection id.
        :param host: the connection host (API base URL; a bare host name means https).
        :param login: client id.
        :param password: client secret.
        :param extra: the connection extra, already decoded.
        :param port: the connection port, added to a host that has none.
        """

        def get(key: str) -> Any:
            # Older connection forms stored custom fields as ``extra__sestek__<key>``.
            value = extra.get(key)
            if value in (None, ""):
                value = extra.get(f"extra__sestek__{key}")
            return None if value == "" else value

        if host and port and "://" not in host and ":" not in host:
            host = f"{host}:{port}"
        base_url = api.normalize_base_url(host, "host")
        identity = get("identity_url")
        identity_url = api.normalize_base_url(identity, "identity_url") if identity else base_url
        if not login:
            raise SestekConfigError("login", "the Client ID is empty")
        if not password:
            raise SestekConfigError("password", "the Client Secret is empty")
        inference_id, inference_secret = get("inference_client_id"), get("inference_client_secret")
        if bool(inference_id) != bool(inference_secret):
            raise SestekConfigError(
                "inference_client_id", "inference_client_id and inference_client_secret must be set together"
            )
        verify: bool | str = True
        raw_verify = get("verify")
        if raw_verify is not None:
            if isinstance(raw_verify, bool):
                verify = raw_verify
            elif str(raw_verify).strip().lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                verify = _truthy(raw_verify)
            else:
                verify = str(raw_verify)
                if not os.path.exists(verify):
                    raise SestekConfigError(
                        "verify", f"CA bundle {verify!r} does not exist (give true, false or a CA path)"
                    )
                check_ca(verify)
        timeout = _timeout(get("timeout"))
        tenant = _tenant(get("tenant"))
        portal = get("portal_url")
        return cls(
            conn_id=conn_id,
            base_url=base_url,
            identity_url=identity_url,
            client_id=str(login),
            client_secret=str(password),
            tenant=tenant,
            inference_client_id=str(inference_id) if inference_id else None,
            inference_client_secret=str(inference_secret) if inference_secret else None,
            verify=verify,
            connect_timeout=min(DEFAULT_CONNECT_TIMEOUT, timeout),
            timeout=timeout,
            portal_url=api.validate_portal_template(portal) if portal is not None else None,
        )

    @property
    def read_timeout(self) -> float:
        """The total deadline of a request (the name the connection field had when it bounded only reads)."""
        return self.timeout

    @property
    def token_url(self) -> str:
        """The token endpoint."""
        return api.token_url(self.identity_url)

    def credentials(self, kind: ClientKind) -> tuple[str, str]:
        """
        Client id and secret for a kind of call; inference falls back to the training client.

        :param kind: ``training`` or ``inference``.
        """
        if kind == "inference" and self.inference_client_id and self.inference_client_secret:
            return self.inference_client_id, self.inference_client_secret
        return self.client_id, self.client_secret

    def token_key(self, kind: ClientKind) -> tuple[str, str, str]:
        """
        Cache key of a client's token. A digest of the secret is part of it, so a connection with a wrong
        secret never borrows the token another connection earned with the right one.

        :param kind: ``training`` or ``inference``.
        """
        return self._token_keys[kind]

    @cached_property
    def _token_keys(self) -> dict[str, tuple[str, str, str]]:
        # Hashed once per connection, not on every poll of every trigger.
        keys = {}
        for kind in ("training", "inference"):
            client_id, secret = self.credentials(kind)  # type: ignore[arg-type]
            keys[kind] = (self.token_url, client_id, hashlib.sha256(secret.encode()).hexdigest()[:16])
        return keys


#: What :func:`connection_lookup` says of a connection Airflow does not know (callers that add a hint match it).
NOT_DEFINED = "is not defined"


@contextmanager
def connection_lookup(conn_id: object) -> Iterator[None]:
    """
    Around a hook's connection lookup (sync or async): the id is checked first, and Airflow's
    ``AirflowNotFoundException`` becomes a :class:`SestekConfigError` naming the id.

    :param conn_id: the Sestek connection id a hook was given.
    :raises SestekConfigError: it is not a non-empty string, or no connection has it.
    """
    from airflow.providers.common.compat.sdk import AirflowNotFoundException

    if not isinstance(conn_id, str) or not conn_id.strip():
        raise SestekConfigError("sestek_conn_id", f"must name an Airflow connection, not {conn_id!r}")
    try:
        yield
    except AirflowNotFoundException:
        raise SestekConfigError(
            "sestek_conn_id",
            f"the connection {conn_id!r} {NOT_DEFINED}; define it (Admin -> Connections, an AIRFLOW_CONN_... "
            "environment variable or a secrets backend) or pass the id of one that is",
        ) from None
