"""
Reading the answers: token, experiment, progress and inference bodies, with no trust in their shape.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterable, Sequence
from typing import Any

from airflow_provider_sestek.api.errors import _snippet, excerpt
from airflow_provider_sestek.api.statuses import Token, TrainingProgress, parse_progress
from airflow_provider_sestek.exceptions import SestekApiError, SestekAuthError

#: What an access token may contain to be sent in an ``Authorization: Bearer`` header: visible ASCII
#: (RFC 6750's b64token is stricter; real servers send JWTs and opaque tokens within this).
BEARER_TOKEN_PATTERN = re.compile(r"[\x21-\x7e]+")


def _decode_json(method: str, endpoint: str, status: int, body: bytes, secrets: Iterable[str]) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise SestekApiError(
            method=method,
            endpoint=endpoint,
            status=status,
            message=f"response is not JSON: {_snippet(body, secrets)}",
        ) from None


def _expect_object(
    method: str, endpoint: str, status: int, data: Any, what: str, secrets: Iterable[str]
) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise SestekApiError(
            method=method,
            endpoint=endpoint,
            status=status,
            message=f"expected a JSON object ({what}), got {excerpt(repr(data), 80, secrets)}",
        )
    return data


def parse_token(status: int, body: bytes, endpoint: str, now: float | None = None) -> Token:
    """
    Parse a 200 token response.

    :param status: HTTP status (200).
    :param body: raw body.
    :param endpoint: token URL, for messages.
    :param now: when the token request was sent (defaults to now): the server issued the token after
        that, so the expiry computed from it is never later than the server's, however slow the answer.
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        data = None
    if not isinstance(data, dict):
        # Unreadable (cut off, garbled by a proxy): worth asking again like any such answer. No snippet of
        # the body: whatever it holds may be a credential.
        raise SestekApiError(
            method="POST", endpoint=endpoint, status=status, message="token response is not a JSON object"
        )
    token = data.get("access_token")
    if not isinstance(token, str) or not token:
        raise SestekAuthError(f"Token response from {endpoint} has no access_token", status=status)
    if not BEARER_TOKEN_PATTERN.fullmatch(token):
        # CR/LF would split the Authorization header, non-Latin-1 cannot be encoded in it, and a message
        # quoting it would show an escaped form the log masker does not recognise: refuse, never echo.
        raise SestekAuthError(
            f"Token response from {endpoint} has an access_token of {len(token)} characters that cannot be sent "
            "as a bearer token (only visible ASCII characters can); check the connection's identity URL",
            status=status,
        )
    try:
        expires_in = float(data.get("expires_in", 3600))
    except (TypeError, ValueError, OverflowError):
        expires_in = 3600.0
    if not math.isfinite(expires_in):
        expires_in = 3600.0
    expires_in = max(expires_in, 0.0)
    now = time.time() if now is None else now
    scope = data.get("scope")
    return Token(
        access_token=token,
        expires_at=now + expires_in,
        scope=scope if isinstance(scope, str) else None,
        lifetime=expires_in,
    )


def parse_experiment(status: int, body: bytes, endpoint: str, secrets: Iterable[str] = ()) -> dict[str, Any]:
    """
    Parse the 200 answer of the train endpoint (the ABP "experiment" object).

    :param status: HTTP status.
    :param body: raw body.
    :param endpoint: URL, for messages.
    :param secrets: the secrets the request carried: no message quotes any part of them.
    """
    data = _decode_json("POST", endpoint, status, body, secrets)
    return _expect_object("POST", endpoint, status, data, "experiment", secrets)


def parse_progress_response(status: int, body: bytes, endpoint: str, secrets: Iterable[str] = ()) -> TrainingProgress:
    """
    Parse a 200 progress response.

    :param status: HTTP status.
    :param body: raw body.
    :param endpoint: URL, for messages.
    :param secrets: the secrets the request carried: no message quotes any part of them.
    """
    data = _decode_json("GET", endpoint, status, body, secrets)
    data = _expect_object("GET", endpoint, status, data, "progress", secrets)
    if "trainingStatus" not in data:
        raise SestekApiError(
            method="GET",
            endpoint=endpoint,
            status=status,
            message=f"progress response lacks trainingStatus: {excerpt(repr(data), 120, secrets)}",
        )
    percent = data.get("percent")
    if isinstance(percent, float) and not math.isfinite(percent):
        # JSON has no such numbers; Python reads Infinity, NaN and 1e999 all the same. Unreadable, not 0%.
        raise SestekApiError(
            method="GET",
            endpoint=endpoint,
            status=status,
            message=f"progress percent is not a finite number: {percent}",
        )
    return parse_progress(data)


def parse_inference(status: int, body: bytes, endpoint: str, secrets: Iterable[str] = ()) -> list[dict[str, Any]]:
    """
    Parse an inference response: one result per input.

    :param status: HTTP status.
    :param body: raw body.
    :param endpoint: URL, for messages.
    :param secrets: the secrets the request carried: no message quotes any part of them.
    """
    data = _decode_json("POST", endpoint, status, body, secrets)
    data = _expect_object("POST", endpoint, status, data, "inference", secrets)
    result = data.get("result")
    if not isinstance(result, list):
        raise SestekApiError(
            method="POST",
            endpoint=endpoint,
            status=status,
            message=f"inference response lacks a result list: {excerpt(repr(data), 120, secrets)}",
        )
    for index, item in enumerate(result):
        if not isinstance(item, dict) or not isinstance(item.get("answer"), str):
            raise SestekApiError(
                method="POST",
                endpoint=endpoint,
                status=status,
                message=f"inference result {index} is not an answer (an object with a text 'answer'): "
                f"{excerpt(repr(item), 80, secrets)}",
            )
        _check_docs(index, item.get("docs"), endpoint, status, secrets)
    return result


def _check_docs(index: int, docs: Any, endpoint: str, status: int, secrets: Iterable[str]) -> None:
    """
    An answer's ``docs``: absent, ``null`` or a list of objects whose ``source`` (when there is one) is a
    string. Anything else is an error naming the result, never coerced: a ``source`` that is an object
    would reach the XCom as it is.
    """
    if docs is None:
        return

    def bad(what: str, value: Any) -> SestekApiError:
        return SestekApiError(
            method="POST",
            endpoint=endpoint,
            status=status,
            message=f"inference result {index} has {what}: {excerpt(repr(value), 80, secrets)}",
        )

    if not isinstance(docs, list):
        raise bad("'docs' that is not a list", docs)
    for number, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise bad(f"a document {number} that is not an object", doc)
        source = doc.get("source")
        if source is not None and not isinstance(source, str):
            raise bad(f"a document {number} whose 'source' is not a string", source)


#: The most sources kept of one answer, and the longest source name kept.
MAX_SOURCES = 50
MAX_SOURCE_LENGTH = 300


def answer_sources(result: dict[str, Any]) -> tuple[list[str], int]:
    """
    The source names of one answer (parsed by :func:`parse_inference`), as an operator returns them:
    at most :data:`MAX_SOURCES`, each cut to :data:`MAX_SOURCE_LENGTH` characters (``...`` included).

    :param result: one inference result.
    :return: the sources kept and how many more there were.
    """
    docs = result.get("docs") or []
    sources = [d["source"] for d in docs if isinstance(d, dict) and isinstance(d.get("source"), str)]
    kept = [excerpt(source, MAX_SOURCE_LENGTH) for source in sources[:MAX_SOURCES]]
    return kept, len(sources) - len(kept)


def check_inference_results(questions: int, results: Sequence[Any], endpoint: str) -> None:
    """
    The inference API answers one result per input, in order: anything else cannot be matched to the
    questions and is an error (never truncated or padded).

    :param questions: how many questions were sent.
    :param results: the parsed results.
    :param endpoint: URL, for the message.
    :raises SestekApiError: naming both counts.
    """
    if len(results) != questions:
        raise SestekApiError(
            method="POST",
            endpoint=endpoint,
            status=200,
            message=(
                f"inference answered {len(results)} result(s) for {questions} question(s); "
                "expected exactly one result per question"
            ),
        )
