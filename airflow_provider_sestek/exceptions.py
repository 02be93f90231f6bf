"""
The one exception hierarchy of the provider.

Every error the provider raises is a :class:`SestekError`, so a DAG author can catch them all at once
and still tell the kinds apart. Messages name the endpoint, the HTTP status and the server's own
message; they are built from values that never include a token or a secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class SestekError(Exception):
    """Base class of every error raised by the Sestek provider."""


class SestekConfigError(SestekError, ValueError):
    """
    The connection (or a hook argument) is misconfigured: missing host, bad URL, missing CA file.

    :param field: the connection field or extra key at fault.
    :param message: what is wrong with it.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"Sestek connection field {field!r}: {message}")


class SestekValidationError(SestekError, ValueError):
    """
    An argument breaks a documented rule; raised before any request is sent.

    :param field: the parameter name as the user wrote it (``model_id``, ``data_files[1]`` ...).
    :param value: the offending value (never a secret; pass ``None`` to leave it out).
    :param rule: the rule it breaks, in words.
    """

    def __init__(self, field: str, value: Any, rule: str) -> None:
        self.field = field
        self.value = value
        self.rule = rule
        shown = "" if value is None else f" = {value!r}"
        super().__init__(f"Invalid {field}{shown}: {rule}")


class SestekDataFileError(SestekError):
    """
    A training data file failed while it was being uploaded (deleted, unreadable, or changed size since it
    was checked). The upload is cut off, so the server receives no complete request and starts no training.

    :param name: the file's name.
    :param message: what went wrong.
    """

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(f"Data file {name!r} {message}")


class SestekAuthError(SestekError):
    """
    The token service refused the credentials, or the API refused the token (401/403).

    :param message: what happened, including the endpoint and status.
    :param status: the HTTP status, when there was a response.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class SestekTransportError(SestekError):
    """
    No usable HTTP response: connection refused or dropped, timeout, TLS failure.

    :param message: what happened, including the endpoint.
    :param maybe_sent: ``True`` when the request may have reached the server (so a POST may
        have taken effect and must not be blindly repeated).
    """

    def __init__(self, message: str, *, maybe_sent: bool = True) -> None:
        self.maybe_sent = maybe_sent
        super().__init__(message)


class SestekApiError(SestekError):
    """
    The API answered with an error status (or an unreadable body).

    :param method: HTTP method of the request.
    :param endpoint: which endpoint (``train``, ``progress``, ``inference``, ``token``) and URL.
    :param status: HTTP status code.
    :param message: the server's message (ABP ``error.message``), or a summary of the body.
    :param code: the ABP ``error.code`` when present.
    :param details: the ABP ``error.details`` when present.
    :param validation_errors: the ABP ``validationErrors`` as ``(message, members)`` pairs.
    :param retry_after: seconds from a ``Retry-After`` header, when present.
    """

    def __init__(
        self,
        *,
        method: str,
        endpoint: str,
        status: int,
        message: str,
        code: str | None = None,
        details: str | None = None,
        validation_errors: Sequence[tuple[str, Sequence[str]]] = (),
        retry_after: float | None = None,
    ) -> None:
        self.method = method
        self.endpoint = endpoint
        self.status = status
        self.message = message
        self.code = code
        self.details = details
        self.validation_errors = list(validation_errors)
        self.retry_after = retry_after
        text = f"Sestek API {method} {endpoint} answered HTTP {status}: {message}"
        if code:
            text += f" (code {code})"
        if details:
            text += f" - {details}"
        for msg, members in self.validation_errors:
            text += f"; {', '.join(members) or 'request'}: {msg}"
        super().__init__(text)


class SestekTrainingInProgress(SestekApiError):
    """The server refused a new training because one for the same model id is still running."""


class SestekModelNotPublished(SestekApiError):
    """The model has no published inference endpoint yet (unknown model, or pod not running)."""


def where_to_look(experiment_id: str | None = None, portal_url: str | None = None) -> str:
    """
    The tail of a wait's error naming what to look up: ``" (experiment 3fa8...; portal https://...)"``, or ``""``.

    :param experiment_id: the Sestek experiment id of the training, when known.
    :param portal_url: the model's page in the Sestek portal, when the connection has ``portal_url``.
    """
    parts = [f"experiment {experiment_id}"] if experiment_id else []
    parts += [f"portal {portal_url}"] if portal_url else []
    return f" ({'; '.join(parts)})" if parts else ""


class SestekTrainingFailed(SestekError):
    """
    The training ended in ``Failed``.

    :param model_id: the model.
    :param status: the last training status reported.
    :param percent: the last percent reported.
    :param experiment_id: the experiment id of the training, when known (named in the message).
    :param portal_url: the model's portal page, when known (named in the message).
    """

    def __init__(
        self,
        model_id: str,
        status: str,
        percent: int | None,
        *,
        experiment_id: str | None = None,
        portal_url: str | None = None,
    ) -> None:
        self.model_id = model_id
        self.status = status
        self.percent = percent
        self.experiment_id = experiment_id
        self.portal_url = portal_url
        super().__init__(
            f"Sestek training of model {model_id!r} failed: status {status}, {percent}% done"
            + where_to_look(experiment_id, portal_url)
        )


class SestekTimeout(SestekError):
    """
    The wait ran past its deadline. The training itself goes on: the public API has no cancel call.

    :param model_id: the model.
    :param last_status: the last status seen, in words.
    :param waited: how long was waited, in seconds (``None`` if unknown).
    :param experiment_id: the experiment id of the training, when known (named in the message).
    :param portal_url: the model's portal page, when known (named in the message).
    """

    def __init__(
        self,
        model_id: str,
        last_status: str,
        waited: float | None = None,
        *,
        experiment_id: str | None = None,
        portal_url: str | None = None,
    ) -> None:
        self.model_id = model_id
        self.last_status = last_status
        self.experiment_id = experiment_id
        self.portal_url = portal_url
        after = f" after {waited:.0f}s" if waited is not None else ""
        super().__init__(
            f"Timed out waiting for Sestek model {model_id!r}{after}; last status: {last_status}"
            f"{where_to_look(experiment_id, portal_url)}. "
            "The training goes on on the Sestek side (the public API has no cancel endpoint)."
        )


class SestekEvaluationFailed(SestekError):
    """
    A model answered its golden set below the required pass rate.

    :param model_id: the model.
    :param summary: the evaluation's summary (``cases``, ``passed``, ``pass_rate`` ...).
    :param min_pass_rate: the rate required.
    :param failures: one line per failing case shown (``id | query | failed checks | answer``).
    """

    def __init__(self, model_id: str, summary: dict[str, Any], min_pass_rate: float, failures: Sequence[str]) -> None:
        self.model_id = model_id
        self.summary = summary
        self.min_pass_rate = min_pass_rate
        self.failures = list(failures)
        more = summary["failed"] - len(self.failures)
        lines = "".join(f"\n  {line}" for line in self.failures)
        tail = f"\n  ... and {more} more" if more > 0 else ""
        report = f"; full report: {summary['report_path']}" if summary.get("report_path") else ""
        super().__init__(
            f"Model {model_id!r} passed {summary['passed']} of {summary['cases']} cases "
            f"({summary['pass_rate']:.1%}), below min_pass_rate {min_pass_rate:.1%}{report}. Failing cases:"
            f"{lines}{tail}"
        )


class SestekUnsupported(SestekError):
    """
    A feature needs a newer Airflow than the one running (e.g. asset watchers need Airflow 3).

    :param feature: what was asked for.
    :param reason: why it cannot work here, and what to do instead.
    """

    def __init__(self, feature: str, reason: str) -> None:
        self.feature = feature
        super().__init__(f"{feature} is not available: {reason}")
