"""The callback settings of a training: from the operator's arguments, or an Airflow connection that holds them."""

from __future__ import annotations

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_sestek import api
from airflow_provider_sestek.exceptions import SestekValidationError
from airflow_provider_sestek.hooks.tokens import mask


def resolve_callback(
    conn_id: str | None,
    address: str | None,
    identity: str | None,
    client_id: str | None,
    secret: str | None,
) -> api.CallbackConfig | None:
    """
    The callback Sestek calls when the training ends, or ``None``; an argument given wins over the connection.

    :param conn_id: a connection with host = callback address, login/password = client id/secret and the
        ``identity_url`` extra; ``None`` for none.
    :param address: the callback URL.
    :param identity: the identity (token) URL of the callback's client.
    :param client_id: the callback's client id.
    :param secret: the callback's client secret (registered with the masker, never in a message).
    :raises SestekValidationError: identity or client settings without an address.
    """
    for field, value in (
        ("callback_address", address),
        ("callback_identity_address", identity),
        ("callback_client_id", client_id),
        ("callback_conn_id", conn_id),
    ):
        api.validate_text(value, field)
    api.validate_text(secret, "callback_client_secret", secret=True)
    if conn_id:
        from airflow.providers.common.compat.sdk import AirflowNotFoundException

        try:
            conn = BaseHook.get_connection(conn_id)
        except AirflowNotFoundException:
            raise SestekValidationError(
                "callback_conn_id", conn_id, "no Airflow connection has this id; define it or pass another"
            ) from None
        host = conn.host or ""
        address = address or (host if "://" in host or not host else f"https://{host}")
        identity = identity or conn.extra_dejson.get("identity_url")
        client_id = client_id or conn.login
        secret = secret or conn.password
    if secret:
        mask(secret)
    if not address:
        if identity or client_id or secret:
            raise SestekValidationError(
                "callback_address", None, "is required when callback identity or client settings are given"
            )
        return None
    return api.CallbackConfig(address, identity or None, client_id or None, secret or None)
