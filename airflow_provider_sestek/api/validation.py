"""
The documented rules for what a user passes in: model id, URLs, project name, lists, chat history (the
callback's rule is :func:`~airflow_provider_sestek.api.bodies.validate_callback`, beside its class).
Each broken rule is a :class:`SestekValidationError` naming the field, before any request.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from airflow_provider_sestek.api.urls import _split, redact_url
from airflow_provider_sestek.exceptions import SestekValidationError

MODEL_ID_MAX_LENGTH = 63
MODEL_ID_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
MODEL_ID_RULE = (
    f"lowercase letters a-z, digits and '-', not starting or ending with '-', at most {MODEL_ID_MAX_LENGTH} characters"
)


def validate_model_id(model_id: object, field_name: str = "model_id") -> str:
    """
    Check the documented model-id rule.

    :param model_id: the value to check.
    :param field_name: parameter name used in the error.
    """
    if not isinstance(model_id, str):
        raise SestekValidationError(field_name, model_id, f"must be a string ({MODEL_ID_RULE})")
    if not model_id:
        raise SestekValidationError(field_name, model_id, f"must not be empty ({MODEL_ID_RULE})")
    if len(model_id) > MODEL_ID_MAX_LENGTH:
        raise SestekValidationError(
            field_name, model_id, f"is {len(model_id)} characters long; at most {MODEL_ID_MAX_LENGTH} are allowed"
        )
    if not MODEL_ID_PATTERN.fullmatch(model_id):
        raise SestekValidationError(field_name, model_id, f"must match {MODEL_ID_RULE}")
    return model_id


#: Tenant names: URL-safe characters only, so neither an inference URL nor a model asset URI ever needs
#: percent-encoding (and no ``/``, ``?`` or ``..`` can change which URL is called).
TENANT_PATTERN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
TENANT_RULE = "letters, digits, '.', '_' and '-', starting and ending with a letter or digit"


def validate_tenant(tenant: object, field_name: str = "tenant") -> str:
    """
    Check the tenant rule (:data:`TENANT_RULE`): the one rule of the connection's ``tenant`` extra and of
    the tenant of a model asset URI.

    :param tenant: a tenant name.
    :param field_name: parameter named in the error.
    :return: the tenant.
    :raises SestekValidationError: no tenant, or one that breaks the rule.
    """
    if tenant is None or tenant == "":
        raise SestekValidationError(
            field_name, None, "is required in a model asset URI (set the connection's extra 'tenant' or pass tenant=)"
        )
    if not isinstance(tenant, str) or not TENANT_PATTERN.fullmatch(tenant):
        raise SestekValidationError(field_name, tenant, f"must be {TENANT_RULE}")
    return tenant


def validate_http_url(value: object, field_name: str) -> str:
    """
    Check that a value is an absolute http(s) URL with a host.

    :param value: the value to check.
    :param field_name: parameter name used in the error.
    """
    if not isinstance(value, str) or not value.strip():
        raise SestekValidationError(field_name, value, "must be a non-empty http(s) URL")
    if any(char.isspace() or not char.isprintable() for char in value.strip()):
        raise SestekValidationError(field_name, redact_url(value), "must not contain spaces or control characters")
    parts = _split(value.strip())
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise SestekValidationError(
            field_name, redact_url(value), "must be an absolute http:// or https:// URL with a host"
        )
    return value.strip()


def validate_flag(value: object, field_name: str, *, optional: bool = False) -> bool | None:
    """
    Check a yes/no argument: a real ``bool``, so a string such as ``"false"`` (truthy) is never taken for one.

    :param value: the value to check.
    :param field_name: parameter name used in the error.
    :param optional: ``None`` is allowed (the server's default).
    """
    if value is None and optional:
        return None
    if not isinstance(value, bool):
        raise SestekValidationError(field_name, value, "must be True or False")
    return value


def validate_text(value: object, field_name: str, *, secret: bool = False) -> str | None:
    """
    Check an optional text argument (``None`` or a string).

    :param value: the value to check.
    :param field_name: parameter name used in the error.
    :param secret: never quote the value, only its type.
    """
    if value is None or isinstance(value, str):
        return value
    shown = None if secret else value
    raise SestekValidationError(field_name, shown, f"must be a string, not {type(value).__name__}")


def validate_project_name(project_name: object) -> str:
    """:param project_name: the value to check."""
    if not isinstance(project_name, str) or not project_name.strip():
        raise SestekValidationError("project_name", project_name, "must be a non-empty string")
    return project_name


def as_list(value: Any, field_name: str = "value") -> list[Any]:
    """
    Accept one string (or path) or a list of them: what templated operator arguments give.

    :param value: ``None``, a string or ``os.PathLike``, or a list (any iterable but a mapping) of them.
    :param field_name: parameter name used in the error.
    """
    if value is None:
        return []
    if isinstance(value, bytes):
        try:
            return [value.decode()]
        except UnicodeDecodeError:
            raise SestekValidationError(field_name, None, "bytes that are not UTF-8 text") from None
    if isinstance(value, str | os.PathLike):
        return [value]
    # A dict would give its keys; anything else iterable (an XCom sequence of a mapped task) is a list.
    if isinstance(value, Iterable) and not isinstance(value, Mapping):
        return list(value)
    raise SestekValidationError(field_name, value, "must be a string or a list of strings")


_PAIR_RULE = 'must be a [user, assistant] pair of {"role", "content"} messages'
_HISTORY_RULE = 'must be a list of [user, assistant] pairs of {"role", "content"} messages'


def chat_history_pairs(chat_history: Any) -> list[list[dict[str, str]]]:
    """
    Check ``chat_history`` and return it as the API wants it: a list of ``[user, assistant]`` pairs, each
    message a ``{"role", "content"}`` dict with the role ``user`` first and ``assistant`` second.

    A string is parsed as JSON first (a templated value is rendered to a string). Anything else (a flat list
    of messages, a dict, a pair of three) raises instead of being sent garbled.

    :param chat_history: ``None``, a list of pairs, or its JSON text.
    :raises SestekValidationError: naming ``chat_history`` (or the offending item) and the rule.
    """
    if chat_history is None:
        return []
    if isinstance(chat_history, str):
        if not chat_history.strip():
            return []
        try:
            chat_history = json.loads(chat_history)
        except ValueError:
            raise SestekValidationError(
                "chat_history", None, f"given as a string it must be JSON text; the value {_HISTORY_RULE}"
            ) from None
    if isinstance(chat_history, str | bytes | Mapping) or not isinstance(chat_history, Sequence):
        raise SestekValidationError("chat_history", None, f"{_HISTORY_RULE}, not a {type(chat_history).__name__}")
    pairs: list[list[dict[str, str]]] = []
    for i, pair in enumerate(chat_history):
        if isinstance(pair, str | bytes | Mapping) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise SestekValidationError(f"chat_history[{i}]", None, f"{_PAIR_RULE}, not {type(pair).__name__}")
        messages = []
        for j, (message, role) in enumerate(zip(pair, ("user", "assistant"), strict=True)):
            if (
                not isinstance(message, Mapping)
                or message.get("role") != role
                or not isinstance(message.get("content"), str)
            ):
                raise SestekValidationError(
                    f"chat_history[{i}][{j}]", None, f'must be {{"role": "{role}", "content": "<text>"}}'
                )
            messages.append({"role": role, "content": message["content"]})
        pairs.append(messages)
    return pairs
