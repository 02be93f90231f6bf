"""
What the requests carry: the train form fields, the token form, the inference JSON body.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_sestek.api.validation import chat_history_pairs, validate_flag, validate_http_url, validate_text
from airflow_provider_sestek.exceptions import SestekValidationError

#: Fields (of a form or, at any depth, of a JSON body) whose values are secrets. A request carrying one keeps
#: it out of every text built from its answer, should the server echo the request: add a new secret field
#: here, beside the builders below, and every request that sends it is covered.
SECRET_FIELDS = frozenset({"client_secret", "callbackClientSecret"})


def secret_values(body: Mapping[str, Any] | Sequence[tuple[str, Any]] | None) -> frozenset[str]:
    """
    The values of the :data:`SECRET_FIELDS` a request body carries.

    :param body: form fields as ``(name, value)`` pairs (file parts are skipped), a form or JSON mapping
        (searched at any depth), or ``None``.
    """
    found: set[str] = set()
    todo: list[Any] = [body]
    while todo:
        item = todo.pop()
        if isinstance(item, Mapping):
            pairs: Iterable[Any] = item.items()
        elif isinstance(item, list | tuple):
            pairs = item
        else:
            continue
        for pair in pairs:
            if isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str):
                name, value = pair
                if name in SECRET_FIELDS and isinstance(value, str) and value:
                    found.add(value)
                    continue
                todo.append(value)
            else:
                todo.append(pair)
    return frozenset(found)


@dataclass(frozen=True)
class CallbackConfig:
    """
    Where Sestek reports "train failed" / "train success".

    :param address: the callback URL.
    :param identity_address: token service Sestek authenticates against.
    :param client_id: client id for that token service.
    :param client_secret: client secret for that token service (never shown in ``repr``).
    """

    address: str
    identity_address: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)


def validate_callback(callback: CallbackConfig | None) -> None:
    """
    Check the callback URLs; credentials must come in pairs.

    :param callback: the callback settings or ``None``.
    """
    if callback is None:
        return
    validate_http_url(callback.address, "callback_address")
    if callback.identity_address is not None:
        validate_http_url(callback.identity_address, "callback_identity_address")
    if bool(callback.client_id) != bool(callback.client_secret):
        raise SestekValidationError(
            "callback_client_id", callback.client_id, "callback client id and secret must be given together"
        )
    if callback.client_id and not callback.identity_address:
        raise SestekValidationError(
            "callback_identity_address", None, "is required when callback client credentials are given"
        )


def training_form_fields(
    model_id: str,
    project_name: str,
    data_urls: Sequence[str] = (),
    callback: CallbackConfig | None = None,
) -> list[tuple[str, str]]:
    """
    The non-file multipart fields of a train request, in order (plain values: the doc's escaped quotes
    are a Postman artefact).

    :param model_id: a valid model id.
    :param project_name: project name.
    :param data_urls: training data URLs, one ``dataUrls`` field each.
    :param callback: optional callback settings.
    """
    fields = [("modelId", model_id), ("projectName", project_name)]
    fields += [("dataUrls", url) for url in data_urls]
    if callback is not None:
        fields.append(("callbackAddress", callback.address))
        if callback.identity_address:
            fields.append(("callbackIdentityAddress", callback.identity_address))
        if callback.client_id:
            fields.append(("callbackClientId", callback.client_id))
        if callback.client_secret:
            fields.append(("callbackClientSecret", callback.client_secret))
    return fields


def token_form(client_id: str, client_secret: str) -> dict[str, str]:
    """
    Form body of a client-credentials token request (no scope is sent, as documented).

    :param client_id: OAuth2 client id.
    :param client_secret: OAuth2 client secret.
    """
    return {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}


def inference_body(
    queries: Sequence[str],
    prompt: str | None = None,
    chat_history: Sequence[Any] | None = None,
    use_semantic_cache: bool | None = None,
    semantic_cache_threshold: float | None = None,
    chat_histories: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """
    JSON body of an inference request: one ``inputs`` item per query.

    :param queries: the questions.
    :param prompt: optional instructions.
    :param chat_history: list of ``[user, assistant]`` message pairs, shared by every query (a JSON string,
        as a rendered template gives, is parsed first); see :func:`chat_history_pairs`.
    :param use_semantic_cache: let the server answer from its semantic cache.
    :param semantic_cache_threshold: similarity needed for a cache hit (0-1).
    :param chat_histories: one chat history per query (each as ``chat_history``), instead of one for all.
    """
    history = chat_history_pairs(chat_history)
    if not queries:
        raise SestekValidationError("queries", list(queries), "at least one question is required")
    if chat_histories is not None and len(chat_histories) != len(queries):
        raise SestekValidationError(
            "chat_histories", None, f"needs one history per query: {len(chat_histories)} for {len(queries)} queries"
        )
    histories = [history] * len(queries) if chat_histories is None else list(map(chat_history_pairs, chat_histories))
    for i, query in enumerate(queries):
        if not isinstance(query, str) or not query.strip():
            raise SestekValidationError(f"queries[{i}]", query, "must be a non-empty string")
    validate_text(prompt, "prompt")
    validate_flag(use_semantic_cache, "use_semantic_cache", optional=True)
    threshold = semantic_cache_threshold
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0.0 <= threshold <= 1.0
    ):
        raise SestekValidationError("semantic_cache_threshold", threshold, "must be a number between 0 and 1")
    inputs = []
    for query, query_history in zip(queries, histories, strict=True):
        item: dict[str, Any] = {"query": query, "chat_history": query_history}
        if use_semantic_cache is not None:
            item["use_semantic_cache"] = bool(use_semantic_cache)
        if semantic_cache_threshold is not None:
            item["semantic_cache_threshold"] = float(semantic_cache_threshold)
        inputs.append(item)
    body: dict[str, Any] = {"inputs": inputs}
    if prompt:
        body["prompt"] = prompt
    return body
