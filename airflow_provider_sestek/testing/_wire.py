"""
The Sestek API's wire formats, as the emulator writes them: ABP error envelopes, OpenIddict errors,
RFC 7807 problem details, gateway HTML pages and the bodies of successful answers.

Nothing here knows about HTTP servers: a :class:`Reply` is what an endpoint answers, and the server
layer turns it into bytes. The formats are spelled out here on purpose instead of imported from the
provider's client: a wrong field name in the client must fail against the emulator, not be mirrored.
"""

from __future__ import annotations

import datetime as dt
import http
import json
import math
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

JSON = "application/json; charset=utf-8"
TEXT = "text/plain; charset=utf-8"
HTML = "text/html; charset=utf-8"
ABP_INVALID = "Your request is not valid!"
ABP_INTERNAL = "An internal error occurred during your request!"
UNAVAILABLE = "Published pod is currently unavailable"
REASONS = {status.value: status.phrase for status in http.HTTPStatus}
_OPENIDDICT_ERROR_URI = "https://documentation.openiddict.com/errors/{}"
_NO_STORE = (("Cache-Control", "no-store"), ("Pragma", "no-cache"))


@dataclass(slots=True)
class Reply:
    """
    What an endpoint answers, before any fault distorts it.

    :param status: the HTTP status.
    :param body: the body bytes.
    :param content_type: the ``Content-Type``; ``None`` sends none.
    :param headers: further headers, in order.
    """

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_bytes(value: Any) -> bytes:
    """
    Compact UTF-8 JSON, as ASP.NET writes it.

    :param value: anything JSON-serialisable.
    """
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def iso(moment: dt.datetime) -> str:
    """
    A timestamp the way the API writes one.

    :param moment: an aware UTC datetime.
    """
    # .NET serialises DateTime with 7 fractional digits; the seed page shows that form.
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def json_reply(status: int, value: Any, headers: Iterable[tuple[str, str]] = ()) -> Reply:
    """
    A JSON answer.

    :param status: the HTTP status.
    :param value: the JSON value.
    :param headers: further headers.
    """
    return Reply(status, json_bytes(value), JSON, list(headers))


def abp_error(
    status: int, message: str, *, details: str | None = None, validation: list[dict[str, Any]] | None = None
) -> Reply:
    """
    The ABP framework's error envelope (``{"error": {...}}`` with the ``_AbpErrorFormat`` header).

    :param status: the HTTP status.
    :param message: ``error.message``.
    :param details: ``error.details``.
    :param validation: ``error.validationErrors``.
    """
    error: dict[str, Any] = {
        "code": None,
        "message": message,
        "details": details,
        "data": {},
        "validationErrors": validation,
    }
    return Reply(status, json_bytes({"error": error}), JSON, [("_AbpErrorFormat", "true")])


def abp_validation(errors: list[tuple[str, list[str]]]) -> Reply:
    """
    ABP's 400 for a request that failed model validation.

    :param errors: ``(message, member names)`` per problem.
    """
    details = "The following errors were detected during validation.\r\n" + "".join(
        f" - {message}\r\n" for message, _ in errors
    )
    validation = [{"message": message, "members": members} for message, members in errors]
    return abp_error(400, ABP_INVALID, details=details, validation=validation)


def oidc_error(status: int, error: str, description: str, code: str) -> Reply:
    """
    An OpenIddict token-endpoint error (RFC 6749 section 5.2 plus OpenIddict's ``error_uri``).

    :param status: the HTTP status.
    :param error: the RFC 6749 error code.
    :param description: ``error_description``.
    :param code: OpenIddict's ``IDxxxx`` code, part of ``error_uri``.
    """
    body = {"error": error, "error_description": description, "error_uri": _OPENIDDICT_ERROR_URI.format(code)}
    return json_reply(status, body, _NO_STORE)


def problem(status: int) -> Reply:
    """
    RFC 7807 problem details: what ASP.NET answers a wrong media type with, instead of the ABP envelope.

    :param status: the HTTP status.
    """
    body = {
        "type": "https://tools.ietf.org/html/rfc9110#section-15.5.16",
        "title": REASONS.get(status, "Error"),
        "status": status,
        "traceId": f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00",
    }
    return Reply(status, json_bytes(body), "application/problem+json; charset=utf-8")


def html_error(status: int) -> Reply:
    """
    The nginx error page a gateway in front of the API answers with.

    :param status: the HTTP status.
    """
    phrase = REASONS.get(status, "Error")
    page = (
        f"<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )
    return Reply(status, page.encode("utf-8"), HTML)


def token_reply(token: str, lifetime: float, scope: str) -> Reply:
    """
    A successful token response.

    :param token: the access token.
    :param lifetime: seconds it lives.
    :param scope: its scope.
    """
    body = {"access_token": token, "expires_in": math.ceil(lifetime), "token_type": "Bearer", "scope": scope}
    return json_reply(200, body, _NO_STORE)


def non_finite_json(answer: Mapping[str, Any], literal: str) -> bytes:
    """
    Render a progress answer with ``percent`` written as ``literal`` (``Infinity``, ``NaN``, ``1e999``).

    :param answer: the progress answer; its own ``percent`` is replaced.
    :param literal: the raw JSON text of ``percent``.
    """
    rest = json.dumps({k: v for k, v in answer.items() if k != "percent"}, separators=(",", ":"), ensure_ascii=False)
    tail = "}" if rest == "{}" else "," + rest[1:]
    return ('{"percent":' + literal + tail).encode("utf-8")


def _audited(created: str, entity_id: str) -> dict[str, Any]:
    # ABP's FullAuditedEntity fields, which every entity the API returns ends with.
    return {
        "isDeleted": False,
        "deleterId": None,
        "deletionTime": None,
        "lastModificationTime": None,
        "lastModifierId": None,
        "creationTime": created,
        "creatorId": None,
        "id": entity_id,
    }


def experiment(
    model_id: str,
    *,
    project_name: str,
    project_id: str,
    experiment_id: str,
    module_version_id: str,
    created_at: dt.datetime,
    status_message: str | None,
    datasets: int,
) -> dict[str, Any]:
    """
    The experiment a train call answers with.

    :param model_id: ``name``.
    :param project_name: ``description``.
    :param project_id: ``projectId``.
    :param experiment_id: ``id``.
    :param module_version_id: ``moduleVersionId``.
    :param created_at: ``creationTime``.
    :param status_message: ``statusMessage`` (``Initialized`` in the configured case).
    :param datasets: how many dataset mappings (files plus URLs).
    """
    created = iso(created_at)
    mappings = [
        {
            "datasetColumn": None,
            "experimentId": experiment_id,
            "datasetId": str(uuid.uuid4()),
            "moduleDatasetColumnId": None,
            **_audited(created, str(uuid.uuid4())),
        }
        for _ in range(datasets)
    ]
    return {
        "name": model_id,
        "description": project_name,
        "status": 0,
        "statusMessage": status_message,
        "percent": 0,
        "trainingParams": {},
        "endpoints": [],
        "documentationPath": None,
        "projectId": project_id,
        "moduleVersionId": module_version_id,
        "experimentMetrics": [],
        "experimentDatasetMappings": mappings,
        "experimentTestsetMapping": [],
        "lastPublishTime": None,
        "tryToStop": None,
        "completionTime": None,
        **_audited(created, experiment_id),
    }


def status_fault_reply(status: int, body: str, message: str | None) -> Reply:
    """
    What a ``status`` fault answers, in the body style real servers use for that status.

    :param status: the HTTP status.
    :param body: ``abp``, ``html``, ``empty`` or ``openiddict``.
    :param message: the error message instead of the default one.
    """
    if body == "empty":
        return Reply(status)
    if body == "html":
        return html_error(status)
    if body == "openiddict":
        error = {
            400: "invalid_request",
            401: "invalid_client",
            403: "unauthorized_client",
            503: "temporarily_unavailable",
        }
        description = message or "The authorization server is temporarily unavailable."
        return oidc_error(status, error.get(status, "server_error"), description, "ID2000")
    default = {
        400: ABP_INVALID,
        401: "Unauthorized",
        403: "Forbidden",
        404: "There is no such an entity.",
        409: "There is already an entity with the same key.",
        429: "Too many requests. Please try again later.",
    }.get(status, ABP_INTERNAL)
    return abp_error(status, message or default)
