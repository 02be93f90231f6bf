"""
What an error answer means: the ABP and OpenIddict envelopes, redirects, oversized bodies, Retry-After,
which statuses are worth a retry, and keeping secrets a server echoes out of messages.
"""

from __future__ import annotations

import email.utils
import functools
import html
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus, urljoin

from airflow_provider_sestek.api.urls import INFERENCE_SCOPE, TOKEN_PATH, TRAINING_SCOPE, origin
from airflow_provider_sestek.exceptions import (
    SestekApiError,
    SestekAuthError,
    SestekError,
    SestekModelNotPublished,
    SestekTrainingInProgress,
)

# Longest server message quoted in an exception: an HTML error page must not flood the task log.
_MAX_MESSAGE = 300
# The bounds of an error envelope's fields (ABP ``error.message``/``details``/``code``/``validationErrors``,
# OpenIddict ``error``/``error_description``): each is quoted in the exception text and the task log.
MAX_ERROR_MESSAGE = 500
MAX_ERROR_CODE = 100
MAX_VALIDATION_ERRORS = 20
MAX_VALIDATION_MESSAGE = 200
MAX_VALIDATION_MEMBERS = 10
# The in-progress rejection is documented only by its text; match it whatever the status code.
_IN_PROGRESS_TEXT = "training is still in progress for the same model id"


def excerpt(text: str, limit: int, secrets: Iterable[str] = ()) -> str:
    """
    ``text`` without ``secrets`` (see :func:`redact`), then cut to ``limit`` characters: in this order, so a
    secret straddling the cut leaves none of its characters behind. Every text quoted from a server's answer
    (or from a library's error about it) is cut here and only here.

    :param text: the text.
    :param limit: the most characters kept (at least 4), ``...`` included.
    :param secrets: the secrets the request carried.
    """
    text = redact(text, secrets)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _snippet(body: bytes, secrets: Iterable[str] = ()) -> str:
    """A body as a message quotes it: redacted whole, an HTML page as its visible text, cut last."""
    secrets = tuple(secrets)
    # Before anything changes the text: markup stripping or whitespace folding would split a secret
    # (``a<b>c``, a line break in it) into pieces no longer recognised.
    text = redact(body.decode("utf-8", "replace"), secrets)
    if "<" in text and ">" in text:
        # An HTML error page: keep its title or visible text, not the markup.
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S)
        text = title.group(1) if title else re.sub(r"<[^>]+>", " ", text)
    text = " ".join(text.split())
    if not text:
        return "(empty body)"
    return excerpt(text, _MAX_MESSAGE, secrets)


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """
    Parse ``Retry-After`` (seconds or an HTTP date).

    :param headers: response headers (case-insensitive mapping).
    :param now: current time for the date form.
    """
    value = headers.get("Retry-After") or headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def redact(text: str, secrets: Iterable[str]) -> str:
    """
    ``text`` with every secret replaced by ``***``, as it is, in its URL-encoded forms, HTML-escaped (an
    HTML error page quoting it) and as a JSON or Python string literal escapes it, escaped once or twice
    (a library's error quoting the repr of the bytes it read), in any case (a server that echoes the
    rejected form body or request headers in its error page must not put them in our messages).

    :param text: the text.
    :param secrets: the secrets (client secrets, the bearer token sent).
    """
    forms = {form for secret in secrets if len(secret) >= 4 for form in _forms(secret)}
    if not forms:
        return text
    # Longest first, so a form inside a longer one leaves none of it; in any case, since a host name a
    # message names (a redirect's origin) is lowercased.
    pattern = "|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True))
    return re.sub(pattern, "***", text, flags=re.IGNORECASE)


# How a text quoting a secret may have escaped it: URL-encoding (a form body), HTML (an error page), a JSON
# string and a Python literal (a library's error quoting the bytes it read).
_ESCAPES: tuple[Callable[[str], str], ...] = (
    lambda s: quote(s, safe=""),
    quote_plus,
    html.escape,
    lambda s: html.escape(s, quote=False),
    lambda s: json.dumps(s)[1:-1],
    lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
    lambda s: repr(s)[1:-1],
    lambda s: repr(s.encode())[2:-1],
)


@functools.lru_cache(maxsize=256)
def _forms(secret: str) -> frozenset[str]:
    """A secret as it is and escaped once or twice, in any order (aiohttp's error is the repr of a repr)."""
    once = {escape(secret) for escape in _ESCAPES}
    return frozenset({secret, *once, *(escape(form) for form in once for escape in _ESCAPES)})


E = TypeVar("E", bound=BaseException)


def without_secrets(exc: E, secrets: Iterable[str]) -> E:
    """
    ``exc``, or a copy of it whose texts (its message, ``args`` and every attribute) quote none of
    ``secrets`` (see :func:`redact`) and which has no exception chain: what it was raised from (a library's
    error quoting the odd bytes it received, a JSON error holding the whole document) is never reachable.

    Written for any exception class: the copy is made without calling ``__init__``, so a new error type
    needs nothing here.

    :param exc: an error built from a server's answer.
    :param secrets: the secrets.
    """
    secrets = [s for s in secrets if len(s) >= 4]
    attributes = vars(exc)
    clean_args = _redacted(exc.args, secrets)
    clean_attributes = {name: _redacted(value, secrets) for name, value in attributes.items()}
    chained = exc.__cause__ is not None or exc.__context__ is not None
    if clean_args == exc.args and clean_attributes == attributes and not chained:
        return exc
    clean = type(exc).__new__(type(exc))
    clean.args = clean_args
    vars(clean).update(clean_attributes)
    return clean


def _redacted(value: Any, secrets: Sequence[str]) -> Any:
    """``value`` with :func:`redact` applied to every string in it (in lists, tuples and dicts too)."""
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, list | tuple):
        items = [_redacted(item, secrets) for item in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {_redacted(k, secrets): _redacted(v, secrets) for k, v in value.items()}
    return value


def error_from_response(
    method: str,
    endpoint: str,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    inference: bool = False,
    secrets: Iterable[str] = (),
) -> SestekError:
    """
    Map an error response to the right exception (never raises; returns it).

    Handles the ABP envelope, OpenIddict token errors (RFC 6749 shape), empty 401/403 bodies, HTML error
    pages and anything else.

    :param method: HTTP method.
    :param endpoint: URL of the request, for the message.
    :param status: HTTP status code.
    :param headers: response headers.
    :param body: raw body.
    :param inference: the request was an inference call (404/503 mean "not published").
    :param secrets: the secrets the request carried: kept out of every text, redacted before any cut.
    """
    secrets = tuple(secrets)
    retry_after = retry_after_seconds(headers)
    message = _snippet(body, secrets)
    code: str | None = None
    details: str | None = None
    validation: list[tuple[str, list[str]]] = []
    try:
        data = json.loads(body) if body.strip() else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):  # ABP envelope
            if error.get("message"):
                message = excerpt(str(error["message"]), MAX_ERROR_MESSAGE, secrets)
            code = excerpt(str(error["code"]), MAX_ERROR_CODE, secrets) if error.get("code") else None
            details = excerpt(str(error["details"]), MAX_ERROR_MESSAGE, secrets) if error.get("details") else None
            validation = _validation_errors(error.get("validationErrors"), secrets)
        elif isinstance(error, str):  # OpenIddict / RFC 6749
            code = excerpt(error, MAX_ERROR_CODE, secrets)
            message = excerpt(str(data.get("error_description") or error), MAX_ERROR_MESSAGE, secrets)
    if endpoint.endswith(TOKEN_PATH):
        hint = " Check the Client ID and Client Secret." if status in (400, 401) else ""
        if status in (400, 401, 403):
            return SestekAuthError(
                f"Token request to {endpoint} was refused: HTTP {status} "
                f"{code + ' ' if code else ''}{message.rstrip('.')}.{hint}",
                status=status,
            )
        if status in (404, 405):
            # Not a model that is missing: the token service is not at this address (never "no such model").
            return SestekAuthError(
                f"Token request to {endpoint} failed: HTTP {status} {message.rstrip('.')}. Check the connection's "
                "identity URL (extra 'identity_url', or the host when it is not set)",
                status=status,
            )
    elif status == 401:
        return SestekAuthError(
            f"Sestek API {method} {endpoint} answered HTTP 401: the access token was not accepted (missing or expired)",
            status=status,
        )
    elif status == 403 and data is None and not body.strip():
        scope = INFERENCE_SCOPE if inference else TRAINING_SCOPE
        return SestekAuthError(
            f"Sestek API {method} {endpoint} answered HTTP 403: the token lacks the {scope} scope "
            f"(check that the {'inference ' if inference else ''}client id and secret are the right ones)",
            status=status,
        )
    kwargs: dict[str, Any] = {
        "method": method,
        "endpoint": endpoint,
        "status": status,
        "message": message,
        "code": code,
        "details": details,
        "validation_errors": validation,
        "retry_after": retry_after,
    }
    if _IN_PROGRESS_TEXT in message.lower():
        return SestekTrainingInProgress(**kwargs)
    if inference and status in (404, 503):
        return SestekModelNotPublished(**kwargs)
    return SestekApiError(**kwargs)


def _validation_errors(raw: Any, secrets: Sequence[str]) -> list[tuple[str, list[str]]]:
    """
    ABP ``validationErrors`` as ``(message, members)`` pairs, bounded: at most
    :data:`MAX_VALIDATION_ERRORS` of them (then one ``(N more)`` entry), each message and member cut to
    :data:`MAX_VALIDATION_MESSAGE` characters (redacted first), at most :data:`MAX_VALIDATION_MEMBERS`
    members each (then a ``(N more)`` member). Anything but a list of objects is not a validation error.
    """
    items = [item for item in raw if isinstance(item, dict)] if isinstance(raw, list) else []
    validation: list[tuple[str, list[str]]] = []
    for item in items[:MAX_VALIDATION_ERRORS]:
        raw_members = item.get("members")
        raw_members = raw_members if isinstance(raw_members, list) else []
        members = [excerpt(str(m), MAX_VALIDATION_MESSAGE, secrets) for m in raw_members[:MAX_VALIDATION_MEMBERS]]
        if len(raw_members) > MAX_VALIDATION_MEMBERS:
            members.append(f"({len(raw_members) - MAX_VALIDATION_MEMBERS} more)")
        validation.append((excerpt(str(item.get("message", "")), MAX_VALIDATION_MESSAGE, secrets), members))
    if len(items) > MAX_VALIDATION_ERRORS:
        validation.append((f"({len(items) - MAX_VALIDATION_ERRORS} more validation errors)", []))
    return validation


def redirect_error(method: str, endpoint: str, status: int, location: str | None) -> SestekApiError:
    """
    The error for a 3xx answer: no Sestek endpoint redirects, and following one could carry the client
    secret or a token to another host, so it is reported, never followed.

    :param method: HTTP method.
    :param endpoint: URL of the request.
    :param status: the 3xx status.
    :param location: the ``Location`` header, if any (shown as an origin only: no path, query or credentials).
    """
    try:
        target = origin(urljoin(endpoint, location.strip())) if location else None
    except ValueError:
        target = "an unparsable URL"
    if target is None:
        where = "without a Location"
    else:
        where = f"to {target}" if target != origin(endpoint) else f"elsewhere on {target}"
    return SestekApiError(
        method=method,
        endpoint=endpoint,
        status=status,
        message=f"redirected {where}; redirects are not followed (a proxy or a wrong host or identity_url "
        "in the connection?)",
    )


def too_large_error(method: str, endpoint: str, status: int, limit: int) -> SestekApiError:
    """
    The error for an answer larger than the client reads.

    :param method: HTTP method.
    :param endpoint: URL of the request.
    :param status: HTTP status of the answer.
    :param limit: bytes read at most.
    """
    return SestekApiError(
        method=method,
        endpoint=endpoint,
        status=status,
        message=f"response body is larger than {limit:,} bytes (max_response_bytes); not read further. "
        "Sestek answers are a few KiB: check that the connection points at the Sestek API",
    )


def is_retryable_status(status: int, method: str) -> bool:
    """
    Transient statuses worth another try: 429 and gateway errors always, 500 only for an idempotent GET.

    A POST answered 502/503/504 may still have been processed behind the gateway; the train call is
    not retried on those (see :meth:`SestekHook.submit_training`), which is decided by the caller.

    :param status: HTTP status.
    :param method: HTTP method.
    """
    if status in (429, 502, 503, 504):
        return True
    return status == 500 and method.upper() == "GET"
